-- wrk script: Durable Object requests for bench/do.sh.
--
-- env: DO_MODE     storage - alternating POST {obj}/storage/put {"entries":{"<key>":<value>}}
--                            and POST {obj}/storage/get {"keys":["<key>"]} of the key just put
--                            (request 2i-1 puts key i, request 2i gets it)
--                  fetch   - POST {obj}/fetch/ping (forwarded to the namespace's script)
--                  direct  - POST /ping (the same request straight to the script: the peer)
--                  alarm   - POST /__edgekv/alarm with an alarm-shaped body straight to the
--                            script (warms the node upstream before the alarm scenario)
--      DO_BASE     path up to and including ".../namespaces/{ns}/objects/" (storage, fetch)
--      DO_OBJS     object ids (64 hex each), comma-separated; request i goes to object
--                  i mod #objects (storage: pair i), so one id = everything on one object
--      DO_TOKEN    API token (Authorization: Bearer; sent in direct mode too, same headers)
--      BENCH_PREFIX     key prefix (distinct per round)
--      BENCH_VALUE_SIZE JSON text size of each value (default 100: a 98-character string)

local mode = os.getenv("DO_MODE") or "storage"
local token = assert(os.getenv("DO_TOKEN"), "DO_TOKEN not set")
local prefix = os.getenv("BENCH_PREFIX") or "r0"
local size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "100")
local value = '"' .. string.rep("v", math.max(size - 2, 0)) .. '"'
local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}

local paths_put, paths_get, paths_fetch = {}, {}, {}
if mode ~= "direct" and mode ~= "alarm" then
  local base = assert(os.getenv("DO_BASE"), "DO_BASE not set")
  local objs = assert(os.getenv("DO_OBJS"), "DO_OBJS not set")
  for id in string.gmatch(objs, "[^,]+") do
    table.insert(paths_put, base .. id .. "/storage/put")
    table.insert(paths_get, base .. id .. "/storage/get")
    table.insert(paths_fetch, base .. id .. "/fetch/ping")
  end
  assert(#paths_put > 0, "DO_OBJS is empty")
end
local nobj = #paths_put

local n = 0

function request()
  n = n + 1
  if mode == "direct" then
    return wrk.format("POST", "/ping", headers, "")
  end
  if mode == "alarm" then
    return wrk.format("POST", "/__edgekv/alarm", headers, '{"namespaceId":"warm","objectId":"warm",'
      .. '"scheduledTime":0,"retryCount":0,"isRetry":false}')
  end
  if mode == "fetch" then
    return wrk.format("POST", paths_fetch[(n % nobj) + 1], headers, "")
  end
  local pair = math.floor((n + 1) / 2)
  local o = (pair % nobj) + 1
  local key = string.format("%s-k%010d", prefix, pair)
  if n % 2 == 1 then
    return wrk.format("POST", paths_put[o], headers, '{"entries":{"' .. key .. '":' .. value .. '}}')
  end
  return wrk.format("POST", paths_get[o], headers, '{"keys":["' .. key .. '"]}')
end
