-- wrk script for `make bench`: BENCH_MODE picks the route's requests and
-- done() prints one machine-readable WRKRESULT line that scripts/bench.sh
-- parses (wrk's human summary is printed too, for the log).
--
--   BENCH_MODE=hello|seed|read|json  BENCH_BODY=path (json)
--   BENCH_SEED_PATH=/test_b1 (seed; the ceiling also has /test_b1_pool)
--   wrk -s bench.lua URL
--
-- Requests are built once per thread and replayed round-robin, so the load
-- generator, which shares the cores with the server, spends no time
-- formatting them; /hello and /json are static and skip request() entirely.

local mode = os.getenv("BENCH_MODE") or "hello"

if mode == "json" then
  local path = os.getenv("BENCH_BODY")
  local f = assert(io.open(path, "rb"), "BENCH_BODY: cannot open " .. tostring(path))
  wrk.method = "POST"
  wrk.path = "/json"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
elseif mode == "hello" then
  wrk.path = "/hello"
elseif mode == "seed" or mode == "read" then
  local reqs, n, i = {}, 0, 0
  local seed_path = os.getenv("BENCH_SEED_PATH") or "/test_b1"
  local threads = 0

  function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
  end

  function init(args)
    local t = tonumber(tid) or 1
    if mode == "seed" then
      -- 1,000 keys per thread: writes spread over many keys, as a real
      -- seed workload would, and threads never race on one key.
      for j = 1, 1000 do
        reqs[j] = wrk.format("GET", seed_path .. "?key=b1_" .. t .. "_" .. j .. "&value=v" .. j)
      end
    else
      -- 10,000 random picks among the preloaded keys bench_0 … bench_9999.
      math.randomseed(12345 + t)
      for j = 1, 10000 do
        reqs[j] = wrk.format("GET", "/read?k=" .. math.random(0, 9999))
      end
    end
    n = #reqs
  end

  function request()
    i = i % n + 1
    return reqs[i]
  end
else
  error("BENCH_MODE must be hello, seed, read or json, not " .. mode)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
