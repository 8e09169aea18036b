-- One benchmark scenario for wrk, driven by bench/run.py (one connection per wrk thread).
--
-- BENCH_PLAN names a file with one line per thread: "<bearer token>\t<id>,<id>,…" (ids may be
-- empty). BENCH_METHOD, BENCH_PATH, BENCH_BODY and BENCH_HEADERS ("Name: value" lines)
-- describe the request; "{id}" (path and body) becomes a random id of the thread's line and
-- "{n}" a per-thread counter. BENCH_OUT receives the results as JSON.

local threads = {}
local counter = 0

-- BENCH_INTERVAL_MS paces each connection by a schedule: one request every that many
-- milliseconds, from a random phase (so the connections do not send in step), whatever the
-- latency: after a late answer it sends at once until it is back on schedule, so a stall of the
-- server does not lower the rate offered. The events bench offers a steady write rate this way.
if os.getenv("BENCH_INTERVAL_MS") then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *now);
  ]]
  local clock = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
    return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
  end
  local interval = tonumber(os.getenv("BENCH_INTERVAL_MS"))
  local due = nil
  function delay()
    local now = now_ms()
    due = (due or now + math.random() * interval) + interval
    return math.max(0, math.floor(due - now))
  end
end

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local function split(text, separator)
  local parts = {}
  for part in string.gmatch(text, "([^" .. separator .. "]+)") do
    table.insert(parts, part)
  end
  return parts
end

function init(args)
  local lines = {}
  for line in io.lines(os.getenv("BENCH_PLAN")) do
    table.insert(lines, line)
  end
  local line = lines[(index % #lines) + 1]
  local token, ids = line:match("^([^\t]*)\t?(.*)$")
  ids_list = split(ids, ",")
  method = os.getenv("BENCH_METHOD")
  path = os.getenv("BENCH_PATH")
  body = os.getenv("BENCH_BODY") or ""
  headers = { ["Content-Type"] = "application/json" }
  if token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  math.randomseed(index + 1)
end

function request()
  counter = counter + 1
  local id = #ids_list > 0 and ids_list[math.random(#ids_list)] or ""
  local target = path:gsub("{id}", id)
  local payload = nil
  if body ~= "" then
    payload = body:gsub("{n}", tostring(counter)):gsub("{id}", id)
  end
  return wrk.format(method, target, headers, payload)
end

function done(summary, latency, requests)
  local errors = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "seconds": %f, "http_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %f, "p95_us": %f, "p99_us": %f}',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
  out:close()
end
