//! The server's results: one JSON object (written by hand: the numbers and
//! a few names are all it holds) for `scripts/load_report.py`, and a line
//! for whoever watches.

use crate::patcher::Stops;
use std::fmt::Write as _;

pub struct Results {
    pub server: &'static str,
    pub workers: usize,
    pub pinned: bool,
    pub patch_interval_ns: u64,
    pub started_unix_ns: u64,
    pub ended_unix_ns: u64,
    pub torn_reads: u64,
    pub connection_errors: u64,
    pub closed_mid_request: u64,
    pub stop_errors: u64,
    pub last_version: u64,
    pub stops: Stops,
}

fn column(out: &mut String, name: &str, values: &[u64]) {
    let _ = write!(out, "\"{name}\":[");
    for (i, v) in values.iter().enumerate() {
        let _ = write!(out, "{}{v}", if i == 0 { "" } else { "," });
    }
    out.push(']');
}

impl Results {
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"server\":\"{}\",\"workers\":{},\"pinned\":{},\"patch_interval_ns\":{},\"started_unix_ns\":{},\
             \"ended_unix_ns\":{},\"torn_reads\":{},\"connection_errors\":{},\"closed_mid_request\":{},\
             \"stop_errors\":{},\"last_version\":{},\"stops\":{{",
            self.server,
            self.workers,
            self.pinned,
            self.patch_interval_ns,
            self.started_unix_ns,
            self.ended_unix_ns,
            self.torn_reads,
            self.connection_errors,
            self.closed_mid_request,
            self.stop_errors,
            self.last_version,
        );
        let s = &self.stops;
        column(&mut out, "at_unix_ns", &s.at_unix_ns);
        out.push(',');
        column(&mut out, "request_to_stopped_ns", &s.request_to_stopped_ns);
        out.push(',');
        column(&mut out, "stopped_ns", &s.stopped_ns);
        out.push(',');
        column(&mut out, "resume_ns", &s.resume_ns);
        out.push(',');
        column(&mut out, "total_ns", &s.total_ns);
        out.push_str("}}\n");
        out
    }

    /// One line: stops with p50 / p99 / max, torn reads, errors.
    pub fn summary(&self) -> String {
        let mut total = self.stops.total_ns.clone();
        total.sort_unstable();
        let pct = |p: usize| match total.len() {
            0 => 0,
            n => total[(n * p).div_ceil(100).clamp(1, n) - 1],
        };
        if self.patch_interval_ns == 0 {
            return format!(
                "{}: no stops, {} torn reads, {} connection errors, {} connections closed mid-request",
                self.server, self.torn_reads, self.connection_errors, self.closed_mid_request
            );
        }
        format!(
            "{}: {} stops (p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs), {} torn reads, {} stop errors, \
             {} connection errors, {} connections closed mid-request",
            self.server,
            total.len(),
            pct(50) as f64 / 1e3,
            pct(99) as f64 / 1e3,
            total.last().copied().unwrap_or(0) as f64 / 1e3,
            self.torn_reads,
            self.stop_errors,
            self.connection_errors,
            self.closed_mid_request,
        )
    }
}

/// Each worker's share of the stops (from the runtime's own statistics):
/// how many it took part in, how many of those claimed it asleep, and its
/// time to reach its stopper.
pub fn per_worker(stats: &stop_machine::Stats, workers: usize) -> String {
    let rows: Vec<String> = (0..workers)
        .filter_map(|w| stats.worker(w).map(|s| (w, s)))
        .map(|(w, s)| {
            format!(
                "worker {w}: {} stops, {} claimed asleep, time to stop p50 {:.1} µs p99 {:.1} µs",
                s.stops,
                s.claimed,
                s.time_to_stop.p50().as_nanos() as f64 / 1e3,
                s.time_to_stop.quantile(0.99).as_nanos() as f64 / 1e3,
            )
        })
        .collect();
    format!(
        "stop-machine per worker: {}; {} raised",
        rows.join("; "),
        stats.boosts()
    )
}
