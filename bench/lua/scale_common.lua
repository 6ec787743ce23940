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

-- What follows the path in a bodiless GET: the request line's end, the Host header wrk itself
-- sends (wrk sets it before init) and the Authorization header. Call from init(): a script
-- then builds each request as "GET " .. path .. suffix, one concatenation, where wrk.format
-- would build a table and format every header per request. That costs the single wrk thread
-- ~0.7 us per request, which a client near saturation adds to every latency it measures,
-- while the hot-key GET (a fixed request, no script) pays nothing.
function M.get_suffix(token)
  return " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. "\r\nAuthorization: " .. M.auth(token) ..
    "\r\n\r\n"
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
