-- wrk script for bench/scale.sh: one page of list keys per request.
-- GET {SCALE_KEYS}?prefix=k%05d&limit=1000, the 5-digit prefix uniform in [0, SCALE_N / 1000)
-- so that it covers 1000 existing keys (k%08d: the last 3 digits are free).
-- env: SCALE_KEYS (path ".../namespaces/{ns}/keys"), SCALE_TOKEN, SCALE_N (>= 1000).

local path = assert(os.getenv("SCALE_KEYS"), "SCALE_KEYS not set")
local token = assert(os.getenv("SCALE_TOKEN"), "SCALE_TOKEN not set")
local n = assert(tonumber(os.getenv("SCALE_N") or ""), "SCALE_N not set")
local pages = math.floor(n / 1000)
assert(pages >= 1, "SCALE_N must be >= 1000")
local headers = { ["Authorization"] = "Bearer " .. token }
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + math.floor(os.clock() * 1e6))
end

function request()
  return wrk.format("GET", string.format("%s?prefix=k%05d&limit=1000", path, math.random(0, pages - 1)),
    headers)
end
