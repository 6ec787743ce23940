-- wrk script for bench/scale.sh: overwrite a uniformly random existing key per request.
-- PUT {SCALE_BASE}k%08d, i uniform in [0, SCALE_N), with a new 100-byte value:
-- "k%08d:" .. the request's sequence number in hex .. "-" .. random hex digits (from a 4 KiB
-- per-thread random blob at a random offset), so the values, like the loaded ones, do not
-- compress. Durable writes (the server's default sync policy).
-- env: SCALE_BASE (path up to and including ".../values/"), SCALE_TOKEN, SCALE_N.

local base = assert(os.getenv("SCALE_BASE"), "SCALE_BASE not set")
local token = assert(os.getenv("SCALE_TOKEN"), "SCALE_TOKEN not set")
local n = assert(tonumber(os.getenv("SCALE_N") or ""), "SCALE_N not set")
local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/octet-stream",
}
local next_id = 0
local seq = 0
local blob = ""

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + math.floor(os.clock() * 1e6))
  local t = {}
  for i = 1, 4096 do t[i] = string.format("%x", math.random(0, 15)) end
  blob = table.concat(t)
end

function request()
  local key = string.format("k%08d", math.random(0, n - 1))
  seq = seq + 1
  local off = math.random(1, 4096 - 90)
  local tail = string.sub(string.format("%x-", seq) .. string.sub(blob, off, off + 89), 1, 90)
  return wrk.format("PUT", base .. key, headers, key .. ":" .. tail)
end
