-- wrk script for bench/scale.sh: GET a uniformly random existing key per request.
-- GET {SCALE_BASE}k%08d with i uniform in [0, SCALE_N) (the keys bench/lib/scale_load.py
-- loaded). env: SCALE_BASE (path up to and including ".../values/"), SCALE_TOKEN, SCALE_N.

local base = assert(os.getenv("SCALE_BASE"), "SCALE_BASE not set")
local token = assert(os.getenv("SCALE_TOKEN"), "SCALE_TOKEN not set")
local n = assert(tonumber(os.getenv("SCALE_N") or ""), "SCALE_N not set")
local headers = { ["Authorization"] = "Bearer " .. token }
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  -- a different sequence per thread and per run
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + math.floor(os.clock() * 1e6))
end

function request()
  return wrk.format("GET", string.format("%sk%08d", base, math.random(0, n - 1)), headers)
end
