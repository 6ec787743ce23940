-- wrk script: edgekv KV PUT+GET of ONE key, alternating (the peer of bench/do.sh's
-- single-object storage scenario): PUT .../values/{key} (raw body, durable), then GET it.
-- env: EDGEKV_BENCH_VALUES (path up to and including ".../values/"), EDGEKV_BENCH_TOKEN,
--      EDGEKV_BENCH_KEY (the key, default "putget"), BENCH_VALUE_SIZE (default 100)

local base = assert(os.getenv("EDGEKV_BENCH_VALUES"), "EDGEKV_BENCH_VALUES not set")
local token = assert(os.getenv("EDGEKV_BENCH_TOKEN"), "EDGEKV_BENCH_TOKEN not set")
local key = os.getenv("EDGEKV_BENCH_KEY") or "putget"
local size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "100")
local body = string.rep("v", size)
local put_headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/octet-stream",
}
local get_headers = { ["Authorization"] = "Bearer " .. token }
local path = base .. key
local n = 0

function request()
  n = n + 1
  if n % 2 == 1 then
    return wrk.format("PUT", path, put_headers, body)
  end
  return wrk.format("GET", path, get_headers)
end
