-- wrk script for `digits bench throughput`: single-image POST /v1/predict.
-- Usage: wrk -s predict.lua URL -- BODIES_FILE
-- BODIES_FILE holds one JSON request body per line; each thread cycles through them.
-- Prints one JSON line at the end: requests, duration, latency percentiles, errors, and
-- `not_ok`, the answers other than 200 (a 202 is a prediction that did not arrive in time).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  requests_list = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(requests_list, wrk.format("POST", "/v1/predict",
        {["Content-Type"] = "application/json"}, line))
    end
  end
  next_index = 1
  not_ok = 0
end

function request()
  local req = requests_list[next_index]
  next_index = next_index % #requests_list + 1
  return req
end

function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local not_ok_total = 0
  for _, thread in ipairs(threads) do
    not_ok_total = not_ok_total + thread:get("not_ok")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"not_ok": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    not_ok_total))
end
