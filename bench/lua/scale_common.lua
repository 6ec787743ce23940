-- Shared by the scale_*.lua wrk scripts (bench/scale.sh): environment, the Authorization
-- header, and the per-thread id and random seed. Loaded with dofile from the script's own
-- directory (wrk runs each script once per thread state, so this runs there too).
local M = {}

-- the value of environment variable name; an error naming it when unset
function M.env(name)
  return assert(os.getenv(name), name .. " not set")
end

-- SCALE_N: the number of keys k00000000..k{N-1} the data set holds
function M.keys()
  return assert(tonumber(os.getenv("SCALE_N") or ""), "SCALE_N not set")
end

function M.auth(token)
  return "Bearer " .. token
end

-- wrk's setup(thread): number the threads so that each seeds its own sequence
local next_id = 0
function M.setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

-- a different random sequence per thread and per run
function M.seed(tid)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + math.floor(os.clock() * 1e6))
end

return M
