-- bench/lib/edge_kv.lua - wrk script for bench/edge.sh: reads and writes of known keys whose
-- value is derived from the key, so every answer can be checked.
--
--   key(i)   = EDGE_PREFIX .. string.format("%010d", i)
--   value(k) = the first 100 bytes of k .. ":" .. "xxx..."   (same rule as edgeprobe.py)
--
-- env: EDGE_MODE      get  - GET key(i), i = EDGE_START, +1, ... (each key once; with several
--                            wrk threads, thread t reads EDGE_START + t, + t + EDGE_THREADS, ...)
--                     hit  - GET EDGE_KEY on every request (a cached key)
--                     put  - PUT key(i) = value(key(i)), i = EDGE_START, +1, ...
--      EDGE_BASE      path up to and including ".../values/"
--      EDGE_TOKEN     API token (Authorization: Bearer)
--      EDGE_PREFIX    key prefix;  EDGE_START (default 0);  EDGE_THREADS (wrk -t, default 1)
--      EDGE_COUNT     get: keys that exist from EDGE_START on; requests past them are counted
--                     (they would be misses of absent keys, i.e. a wrong measurement)
--      EDGE_KEY       hit: the key
--      EDGE_EXACT=1   get with ONE connection (wrk -c1): each answer must be the value of the
--                     very key requested (answers come in request order); otherwise any
--                     value(k) of a key k with EDGE_PREFIX is accepted
--      EDGE_DELAY_MS  put: pause before each request of a connection (paces the write load:
--                     rate ~ connections * 1000 / (EDGE_DELAY_MS + latency ms)); 0 = none
-- done() prints one line: "EDGE_KV mode=... checked=N bad_status=N bad_body=N past_end=N"
-- (bad_status: not 200; bad_body: GET body differs from value(key); past_end: see EDGE_COUNT).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local mode = os.getenv("EDGE_MODE") or "get"
local base = assert(os.getenv("EDGE_BASE"), "EDGE_BASE not set")
local token = assert(os.getenv("EDGE_TOKEN"), "EDGE_TOKEN not set")
local prefix = os.getenv("EDGE_PREFIX") or "k-"
local start = tonumber(os.getenv("EDGE_START") or "0")
local nthreads = tonumber(os.getenv("EDGE_THREADS") or "1")
local count = tonumber(os.getenv("EDGE_COUNT") or "0")
local fixed = os.getenv("EDGE_KEY") or ""
local delay_ms = tonumber(os.getenv("EDGE_DELAY_MS") or "0")
local exact = os.getenv("EDGE_EXACT") == "1"
local pad = string.rep("x", 100)

local function keyname(i)
  return prefix .. string.format("%010d", i)
end

local function value_for(k)
  return string.sub(k .. ":" .. pad, 1, 100)
end

local get_headers = { ["Authorization"] = "Bearer " .. token }
local put_headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/octet-stream",
}
local fixed_path = base .. fixed
local fixed_value = value_for(fixed)

-- per-thread counters (globals: done() reads them with thread:get)
checked = 0
bad_status = 0
bad_body = 0
past_end = 0
local n = 0
local sent, sent_head, sent_tail = {}, 1, 0 -- EDGE_EXACT: keys requested, not yet answered

function request()
  if mode == "hit" then
    return wrk.format("GET", fixed_path, get_headers)
  end
  local i = start + (tid or 0) + n * nthreads
  n = n + 1
  local k = keyname(i)
  if mode == "put" then
    return wrk.format("PUT", base .. k, put_headers, value_for(k))
  end
  if count > 0 and i >= start + count then
    past_end = past_end + 1
  end
  if exact then
    sent_tail = sent_tail + 1
    sent[sent_tail] = k
  end
  return wrk.format("GET", base .. k, get_headers)
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function response(status, headers, body)
  checked = checked + 1
  local want -- EDGE_EXACT: the key this answer is for
  if exact and mode == "get" then
    -- wrk 4.1 builds one request per thread at start-up that it never sends: on the first
    -- answer, skip it when the answer is for the next key
    if checked == 1 and sent_tail > sent_head and body and
       string.sub(body, 1, #sent[sent_head + 1] + 1) == sent[sent_head + 1] .. ":" then
      sent[sent_head] = nil
      sent_head = sent_head + 1
    end
    want = sent[sent_head]
    sent[sent_head] = nil
    sent_head = sent_head + 1
  end
  if status ~= 200 then
    bad_status = bad_status + 1
    return
  end
  if mode == "hit" then
    if body ~= fixed_value then bad_body = bad_body + 1 end
  elseif mode == "get" then
    local k = want or (body and string.match(body, "^([^:]*):"))
    if not k or string.sub(k, 1, #prefix) ~= prefix or body ~= value_for(k) then
      bad_body = bad_body + 1
    end
  end
end

function done(summary, latency, requests)
  local c, s, b, p = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("checked") or 0)
    s = s + (t:get("bad_status") or 0)
    b = b + (t:get("bad_body") or 0)
    p = p + (t:get("past_end") or 0)
  end
  io.write(string.format("EDGE_KV mode=%s checked=%d bad_status=%d bad_body=%d past_end=%d\n",
    mode, c, s, b, p))
end
