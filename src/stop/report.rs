//! What a stop reports when it is over: its timings for the statistics,
//! the stragglers of an abandoned stop, the slow-stop warning.

use super::multi_stop::Timeline;
use super::plan::Request;
use crate::cpumask::WorkerMask;
use crate::error::{StopError, Straggler};
use crate::runtime::shared::Shared;
use crate::runtime::task::TaskId;
use crate::stats::{Measured, Recorder};
use std::panic::Location;
use std::time::{Duration, Instant};

/// What each worker was doing when a stop was requested: read back only to
/// name stragglers (with a deadline) or the slowest worker (slow-stop
/// warning), so taken only when one of those is on.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    polls: Vec<u64>,
    polling: Vec<Option<(TaskId, &'static Location<'static>)>>,
}

impl Snapshot {
    pub(crate) fn take(shared: &Shared, request: &Request) -> Snapshot {
        let workers = &shared.workers;
        Snapshot {
            polls: match request.deadline {
                Some(_) => workers.iter().map(|w| w.poll_seq()).collect(),
                None => Vec::new(),
            },
            polling: match shared.config.slow_stop {
                Some(_) => workers.iter().map(|w| w.polling()).collect(),
                None => Vec::new(),
            },
        }
    }

    /// The error of a stop abandoned at its deadline, naming what each
    /// straggler was doing instead of reaching its stopper.
    pub(crate) fn timed_out(&self, shared: &Shared, stragglers: &WorkerMask, request: &Request) -> StopError {
        let stragglers: Vec<Straggler> = stragglers
            .iter()
            .map(|w| {
                let worker = &shared.workers[w];
                let polling = worker.polling();
                let same_poll = polling.is_some() && self.polls.get(w) == Some(&worker.poll_seq());
                Straggler {
                    worker: w,
                    task: polling.map(|(id, _)| id),
                    spawned_at: polling.map(|(_, at)| at),
                    polling_for: same_poll.then(|| request.at.elapsed()),
                }
            })
            .collect();
        for s in &stragglers {
            tracing::warn!(kind = request.kind.name(), caller = %request.caller, "stop abandoned: {s}");
        }
        StopError::TimedOut { stragglers }
    }

    /// Warns about a stop that took longer than the runtime's threshold,
    /// naming the worker that arrived last and the task it was polling when
    /// the stop was asked.
    pub(crate) fn warn_if_slow(
        &self,
        shared: &Shared,
        span: &tracing::Span,
        timeline: impl FnOnce() -> Timeline,
        request: &Request,
    ) {
        let Some(threshold) = shared.config.slow_stop else {
            return;
        };
        // Until the caller resumes: the participants may still be leaving.
        let total = request.at.elapsed();
        if total <= threshold {
            return;
        }
        let t = timeline();
        let Some(&(slowest, arrived)) = t.arrivals.iter().max_by_key(|(_, at)| *at) else {
            return;
        };
        let waited = arrived.saturating_duration_since(request.at);
        match self.polling.get(slowest).copied().flatten() {
            Some((task, at)) => tracing::warn!(
                parent: span,
                ?total, slowest_worker = slowest, ?waited, task = %task, spawned_at = %at,
                "slow stop: worker {slowest} took {waited:?} to reach its stopper, polling task {task} spawned at {at}"
            ),
            None => tracing::warn!(
                parent: span,
                ?total, slowest_worker = slowest, ?waited,
                "slow stop: worker {slowest} took {waited:?} to reach its stopper"
            ),
        }
    }
}

/// Records a finished multi-worker stop's three timings.
pub(crate) fn record_multi(stats: &Recorder, request: &Request, t: &Timeline, claimed: Vec<usize>, ok: bool) {
    let end = Instant::now();
    let run_start = t.run_start.unwrap_or(end);
    let run_end = t.run_end.unwrap_or(end);
    record_to(
        stats,
        request,
        Measured {
            kind: request.kind,
            ok,
            timed_out: false,
            to_stop: run_start.saturating_duration_since(request.at),
            stopped: run_end.saturating_duration_since(run_start),
            restart: t.last_left.unwrap_or(end).saturating_duration_since(run_end),
            arrivals: since(&t.arrivals, request.at),
            restarts: since(&t.lefts, run_end),
            claimed,
        },
    );
}

/// Records a stop whose workers each ran the function on their own
/// (`stop_one_cpu`, `stop_cpus`): stopped from the first start to the last
/// end; each worker restarts as soon as its own call returns. `runs` holds
/// each worker's start and end.
pub(crate) fn record_each(shared: &Shared, request: &Request, runs: &[(usize, Instant, Instant)], ok: bool) {
    let (Some(first), Some(last_start), Some(last_end)) = (
        runs.iter().map(|r| r.1).min(),
        runs.iter().map(|r| r.1).max(),
        runs.iter().map(|r| r.2).max(),
    ) else {
        if !ok {
            record(shared, request, Measured::failed(request.kind));
        }
        return;
    };
    record(
        shared,
        request,
        Measured {
            kind: request.kind,
            ok,
            timed_out: false,
            to_stop: last_start.saturating_duration_since(request.at),
            stopped: last_end.saturating_duration_since(first),
            restart: Duration::ZERO,
            arrivals: runs
                .iter()
                .map(|(w, start, _)| (*w, start.saturating_duration_since(request.at)))
                .collect(),
            restarts: runs.iter().map(|(w, _, _)| (*w, Duration::ZERO)).collect(),
            claimed: Vec::new(),
        },
    );
}

/// Files a finished stop in the runtime's statistics: see [`record_to`].
pub(crate) fn record(shared: &Shared, request: &Request, m: Measured) {
    record_to(&shared.stats, request, m);
}

/// Files a finished stop in `stats` and logs it: one `debug` event per
/// stop, target `stop_machine::stop`, with its kind, caller and three
/// durations (the JVM's safepoint log line).
pub(crate) fn record_to(stats: &Recorder, request: &Request, m: Measured) {
    tracing::debug!(
        target: "stop_machine::stop",
        kind = request.kind.name(),
        caller = %request.caller,
        ok = m.ok,
        to_stop = ?m.to_stop,
        stopped = ?m.stopped,
        restart = ?m.restart,
        "stop"
    );
    #[cfg(feature = "metrics")]
    super::metrics::export(&m);
    stats.record(m);
}

fn since(events: &[(usize, Instant)], origin: Instant) -> Vec<(usize, Duration)> {
    events
        .iter()
        .map(|(w, at)| (*w, at.saturating_duration_since(origin)))
        .collect()
}
