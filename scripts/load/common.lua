-- Shared by check.lua, batch_check.lua, filter.lua and lookup.lua (see scripts/load_test.sh).
--
--   wrk -t2 -c64 -d20s --latency -s scripts/load/check.lua http://127.0.0.1:8099 -- BODIES.jsonl
--
-- The endpoint script sets ENDPOINT (the path) and ITEMS (decisions per request) and then loads this file.
-- BODIES.jsonl (from `scripts/load_http.py bodies`) holds one JSON request body a line, taken from the
-- workload's own requests. Every wrk thread reads it once at init, pre-formats one HTTP request per body,
-- and sends them in turn (thread k starts k·0.618 of the way in, so threads do not send the same body at the
-- same time). No `response` callback, so wrk does not parse response bodies: correctness is checked
-- before and after the run by `load_http.py verify`, and every non-2xx reply is counted by wrk.
-- `done` prints one line `LOADJSON {...}` (latencies in microseconds) that load_test.sh reads.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs, n, i = {}, 0, 0

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s SCRIPT URL -- BODIES.jsonl")
  end
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", ENDPOINT, headers, line)
    end
  end
  if n == 0 then
    error("no request bodies in " .. path)
  end
  -- Spread the threads' starting points (golden-ratio steps: halves for 2 threads, thirds-ish for 3...).
  i = math.floor((tonumber(tid) or 0) * 0.6180339887 * n) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local p = function(q) return latency:percentile(q) end
  io.write(string.format(
    'LOADJSON {"endpoint":"%s","items":%d,"requests":%d,"duration_s":%.3f,"rps":%.1f,"items_per_s":%.1f,' ..
    '"bytes":%d,"non2xx":%d,"connect_err":%d,"read_err":%d,"write_err":%d,"timeouts":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
    ENDPOINT, ITEMS, summary.requests, secs, summary.requests / secs, summary.requests * ITEMS / secs,
    summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, p(50), p(90), p(99), p(99.9), latency.max))
end
