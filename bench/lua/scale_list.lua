-- wrk script for bench/scale.sh: one page of list keys per request.
-- GET {SCALE_KEYS}?prefix=k%05d&limit=1000, the 5-digit prefix uniform in [0, SCALE_N / 1000)
-- so that it covers 1000 existing keys (k%08d: the last 3 digits are free).
-- env: SCALE_KEYS (path ".../namespaces/{ns}/keys"), SCALE_TOKEN, SCALE_N (>= 1000).

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "scale_common.lua")
local path = common.env("SCALE_KEYS")
local pages = math.floor(common.keys() / 1000)
assert(pages >= 1, "SCALE_N must be >= 1000")
local token = common.env("SCALE_TOKEN")
local prefix, suffix = "GET " .. path .. "?prefix=k", nil

setup = common.setup

function init(args)
  common.seed(tid)
  suffix = common.get_suffix(token)
end

function request()
  return prefix .. string.format("%05d", math.random(0, pages - 1)) .. "&limit=1000" .. suffix
end
