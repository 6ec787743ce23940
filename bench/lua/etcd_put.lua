-- wrk script: durable etcd v3 puts through the HTTP/JSON gRPC gateway.
-- POST /v3/kv/put {"key":<base64>,"value":<base64>} ; one distinct key per request.
-- env: BENCH_PREFIX (key prefix, distinct per round), BENCH_VALUE_SIZE (default 100)

local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

local prefix = os.getenv("BENCH_PREFIX") or "r0"
local size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "100")
local value_b64 = b64(string.rep("v", size))
local headers = { ["Content-Type"] = "application/json" }
local n = 0

function request()
  n = n + 1
  -- fixed-width key so every key has the same length as in the edgekv script
  local key = string.format("%s-t%d-%010d", prefix, tid or 0, n)
  local body = '{"key":"' .. b64(key) .. '","value":"' .. value_b64 .. '"}'
  return wrk.format("POST", "/v3/kv/put", headers, body)
end
