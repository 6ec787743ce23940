-- wrk script for bench/scale.sh: overwrite a uniformly random existing key per request.
-- PUT {SCALE_BASE}k%08d, i uniform in [0, SCALE_N), with a new 100-byte value:
-- "k%08d:" .. the request's sequence number in hex .. "-" .. random hex digits (from a 4 KiB
-- per-thread random blob at a random offset), so the values, like the loaded ones, do not
-- compress. Durable writes (the server's default sync policy).
-- env: SCALE_BASE (path up to and including ".../values/"), SCALE_TOKEN, SCALE_N.

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "scale_common.lua")
local base = common.env("SCALE_BASE")
local n = common.keys()
local headers = {
  ["Authorization"] = common.auth(common.env("SCALE_TOKEN")),
  ["Content-Type"] = "application/octet-stream",
}
local seq = 0
local blob = ""

setup = common.setup

function init(args)
  common.seed(tid)
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
