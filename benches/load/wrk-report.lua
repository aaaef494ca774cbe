-- wrk's summary as one machine-readable line (scripts/load_report.py reads
-- it). Only `done` is defined, so wrk keeps its fast path: no Lua runs per
-- request or response. Latencies are in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%.0f,\"duration_us\":%.0f,\"bytes\":%.0f," ..
    "\"connect_errors\":%.0f,\"read_errors\":%.0f,\"write_errors\":%.0f," ..
    "\"status_errors\":%.0f,\"timeouts\":%.0f," ..
    "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f," ..
    "\"max_us\":%.0f,\"mean_us\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
