-- wrk script: durable edgekv value writes.
-- PUT /client/v4/accounts/{a}/storage/kv/namespaces/{ns}/values/{key}, raw body, one
-- distinct key per request (same key format and value size as etcd_put.lua).
-- env: EDGEKV_BENCH_VALUES (path up to and including ".../values/"), EDGEKV_BENCH_TOKEN,
--      BENCH_PREFIX (key prefix, distinct per round), BENCH_VALUE_SIZE (default 100)

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

local base = assert(os.getenv("EDGEKV_BENCH_VALUES"), "EDGEKV_BENCH_VALUES not set")
local token = assert(os.getenv("EDGEKV_BENCH_TOKEN"), "EDGEKV_BENCH_TOKEN not set")
local prefix = os.getenv("BENCH_PREFIX") or "r0"
local size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "100")
local body = string.rep("v", size)
local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/octet-stream",
}
local n = 0

function request()
  n = n + 1
  local key = string.format("%s-t%d-%010d", prefix, tid or 0, n)
  return wrk.format("PUT", base .. key, headers, body)
end
