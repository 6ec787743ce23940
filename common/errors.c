#include "common/errors.h"

typedef struct {
    const char *name;
    int status;
    int code;
    const char *msg;
} err_row_t;

static const err_row_t rows[] = {
#define EKV_ERR_ROW(name, status, code, msg) {#name, status, code, msg},
    EKV_ERRNO_MAP(EKV_ERR_ROW)
#undef EKV_ERR_ROW
};

static const err_row_t *row_of(int err)
{
    int i = err - (EKV__ERR_FIRST + 1);
    if (err >= 0 || i < 0 || i >= (int)(sizeof(rows) / sizeof(rows[0])))
        return &rows[EKV_EINTERNAL - (EKV__ERR_FIRST + 1)];
    return &rows[i];
}

const char *ekv_strerror(int err)
{
    return err == 0 ? "ok" : row_of(err)->msg;
}

const char *ekv_err_name(int err)
{
    return err == 0 ? "OK" : row_of(err)->name;
}

int ekv_err_http_status(int err)
{
    return row_of(err)->status;
}

int ekv_err_cf_code(int err)
{
    return row_of(err)->code;
}
