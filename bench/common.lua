-- Shared by every scenario (appended last): number the threads, count answers by status and
-- problem code unless the scenario counts itself, and print one JSON line when done.
local threads_all = {}

function setup(thread)
  thread:set("id", #threads_all)
  table.insert(threads_all, thread)
end

-- Counts one answer in `counts` by status, and problem code (a scenario's own `response`
-- calls it too).
function count_answer(status, body)
  local key = tostring(status)
  if status >= 400 then
    local code = body:match('"code":"([%w_]+)"')
    if code then key = key .. ":" .. code end
  end
  counts[key] = (counts[key] or 0) + 1
end

if response == nil then
  counts = {}
  function response(status, headers, body)
    count_answer(status, body)
  end
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads_all) do
    local c = thread:get("counts")
    if c then for k, v in pairs(c) do merged[k] = (merged[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"socket_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"counts":{%s}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ",")))
end
