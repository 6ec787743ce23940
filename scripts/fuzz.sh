#!/usr/bin/env bash
# Build the libFuzzer targets in tests/fuzz with clang (+ASan+UBSan) and run each one for a
# bounded time (default 15 s) from the seed corpus. Non-zero exit on any crash or sanitizer
# report. Used by scripts/test.sh; longer runs: scripts/fuzz.sh 300
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
out=build-fuzz
mkdir -p "$out"
flags=(-std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all)
common=(common/buf.c common/errors.c common/codec.c)
clang "${flags[@]}" tests/fuzz/fuzz_multipart.c server/http/multipart.c server/http/json_out.c \
  "${common[@]}" -ljansson -o "$out/fuzz_multipart"
clang "${flags[@]}" tests/fuzz/fuzz_urlcodec.c server/http/urlcodec.c server/api/kv/cursor.c \
  "${common[@]}" -o "$out/fuzz_urlcodec"
clang "${flags[@]}" tests/fuzz/fuzz_do_req.c server/api/do/ids.c server/api/do/storage_req.c \
  server/api/do/txn.c server/api/do/list_opts.c server/http/urlcodec.c server/http/json_out.c \
  "${common[@]}" -ljansson -lcrypto -o "$out/fuzz_do_req"
# the replication frame decoder needs the protobuf-c code generated from proto/
mkdir -p "$out/proto"
protoc-c --proto_path=proto --c_out="$out/proto" proto/*.proto
clang "${flags[@]}" -I"$out/proto" tests/fuzz/fuzz_repl_frame.c replication/frame.c \
  replication/auth.c common/log.c common/clock.c \
  "$out/proto/repl.pb-c.c" "$out/proto/changelog.pb-c.c" "${common[@]}" -lprotobuf-c -lcrypto \
  -o "$out/fuzz_repl_frame"
# the HTTP client's response parser needs llhttp's C sources (node-llhttp)
llhttp_src=${LLHTTP_DIR:-/usr/share/llhttp}
llhttp_inc=${LLHTTP_INC:-/usr/share/include/llhttp}
clang "${flags[@]}" -I"$llhttp_inc" tests/fuzz/fuzz_http_response.c server/http/resp_parser.c \
  "$llhttp_src"/api.c "$llhttp_src"/http.c "$llhttp_src"/llhttp.c "${common[@]}" \
  -o "$out/fuzz_http_response"
# the whole request path: server/http + server/api over a real store (no server/node: the role
# ops stay NULL = standalone), so most of the tree and its libraries
clang "${flags[@]}" -I"$out/proto" -I"$llhttp_inc" tests/fuzz/fuzz_http_conn.c common/*.c \
  storage/*.c server/http/*.c server/api/*.c server/api/kv/*.c server/api/admin/*.c \
  server/api/do/*.c \
  "$out/proto/repl.pb-c.c" "$out/proto/changelog.pb-c.c" \
  "$llhttp_src"/api.c "$llhttp_src"/http.c "$llhttp_src"/llhttp.c \
  -luv -ljansson -lprotobuf-c -lmsgpackc -lcrypto -lxxhash -lrocksdb -lpthread \
  -o "$out/fuzz_http_conn"

run() { # name, extra libFuzzer args...
  local name=$1; shift
  local corpus="$out/corpus-$name"
  mkdir -p "$corpus"
  echo "fuzz: $name for ${secs}s"
  "$out/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 "$@" "$corpus" \
    "tests/fuzz/corpus/$name" > "$out/$name.log" 2>&1 || { tail -40 "$out/$name.log"; exit 1; }
  grep -E "stat::number_of_executed_units" "$out/$name.log" | sed "s/^/fuzz: $name /"
}
run multipart -max_len=4096 -dict=tests/fuzz/multipart.dict
run urlcodec
run do_req -max_len=4096
run repl_frame -max_len=4096
run http_response -max_len=4096 -dict=tests/fuzz/http_response.dict
run http_conn -max_len=65536 -dict=tests/fuzz/http_conn.dict
