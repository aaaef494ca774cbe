//! Every finished stop, published through the `metrics` facade (cargo
//! feature `metrics`), in the Prometheus style. A service installs any
//! `metrics` recorder (e.g. `metrics-exporter-prometheus`) and scrapes:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `stop_machine_stops_total` | counter | `kind`, `outcome` (`ok`, `failed`, `timed_out`) | stops that ended |
//! | `stop_machine_time_to_stop_seconds` | histogram | `kind` | request until every worker was stopped |
//! | `stop_machine_time_stopped_seconds` | histogram | `kind` | the stop function's run |
//! | `stop_machine_time_to_restart_seconds` | histogram | `kind` | EXIT until the last worker ran tasks again |
//! | `stop_machine_worker_stops_total` | counter | `worker` | stops a worker took part in |
//! | `stop_machine_worker_claims_total` | counter | `worker` | of those, counted stopped while asleep |
//! | `stop_machine_worker_time_to_stop_seconds` | histogram | `worker` | request until this worker was in its stopper |
//!
//! Go's runtime/metrics has `/sched/pauses/total` and
//! `/sched/pauses/stopping`; these are their analogues, by kind.

use crate::stats::Measured;

/// Publishes one finished stop.
pub(crate) fn export(m: &Measured) {
    let kind = m.kind.name();
    let outcome = match (m.ok, m.timed_out) {
        (true, _) => "ok",
        (false, true) => "timed_out",
        (false, false) => "failed",
    };
    metrics::counter!("stop_machine_stops_total", "kind" => kind, "outcome" => outcome).increment(1);
    if !m.ok {
        return;
    }
    metrics::histogram!("stop_machine_time_to_stop_seconds", "kind" => kind).record(m.to_stop.as_secs_f64());
    metrics::histogram!("stop_machine_time_stopped_seconds", "kind" => kind).record(m.stopped.as_secs_f64());
    metrics::histogram!("stop_machine_time_to_restart_seconds", "kind" => kind)
        .record(m.restart.as_secs_f64());
    for (worker, d) in &m.arrivals {
        let worker = worker.to_string();
        metrics::counter!("stop_machine_worker_stops_total", "worker" => worker.clone()).increment(1);
        metrics::histogram!("stop_machine_worker_time_to_stop_seconds", "worker" => worker)
            .record(d.as_secs_f64());
    }
    for worker in &m.claimed {
        let worker = worker.to_string();
        metrics::counter!("stop_machine_worker_stops_total", "worker" => worker.clone()).increment(1);
        metrics::counter!("stop_machine_worker_claims_total", "worker" => worker).increment(1);
    }
}
