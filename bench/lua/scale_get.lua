-- wrk script for bench/scale.sh: GET a uniformly random existing key per request.
-- GET {SCALE_BASE}k%08d with i uniform in [0, SCALE_N) (the keys bench/lib/scale_load.py
-- loaded). env: SCALE_BASE (path up to and including ".../values/"), SCALE_TOKEN, SCALE_N.

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "scale_common.lua")
local base = common.env("SCALE_BASE")
local n = common.keys()
local token = common.env("SCALE_TOKEN")
local prefix, suffix = "GET " .. base .. "k", nil
local format, random = string.format, math.random

setup = common.setup

function init(args)
  common.seed(tid)
  suffix = common.get_suffix(token)
end

function request()
  return prefix .. format("%08d", random(0, n - 1)) .. suffix
end
