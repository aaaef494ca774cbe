//! From a request to works on the workers and back: validation, the
//! queueing order, and the driver of multi-worker stops (the kernel's
//! `stop_cpus`/`stop_machine_cpuslocked` bodies).

use super::completion::Completion;
use super::lock::StopGuard;
use super::multi_stop::{MultiStop, State};
use super::report;
use super::wait::Waiting;
use super::work::{Go, StopWork};
use crate::cpumask::WorkerMask;
use crate::error::StopError;
use crate::runtime::priority::Cause;
use crate::runtime::service;
use crate::runtime::shared::Shared;
use crate::runtime::worker::Worker;
use crate::stats::{Measured, StopKind};
use crate::sync::{Arc, MutexGuard};
use std::panic::Location;
use std::pin::pin;
use std::time::{Duration, Instant};

/// Who asked for a stop, when, and until when it may take to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) kind: StopKind,
    pub(crate) caller: &'static Location<'static>,
    /// When the call began: the time to stop counts from here, lock wait
    /// included.
    pub(crate) at: Instant,
    /// When the whole call gives up, lock wait included.
    pub(crate) deadline: Option<Instant>,
}

impl Request {
    /// A request made now, bounded by `timeout` when there is one.
    pub(crate) fn new(
        kind: StopKind,
        caller: &'static Location<'static>,
        timeout: Option<Duration>,
    ) -> Request {
        let at = Instant::now();
        Request {
            kind,
            caller,
            at,
            deadline: super::deadline::deadline(at, timeout),
        }
    }
}

/// What a multi-worker stop is asked to do.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) request: Request,
    /// Workers that take part (all online).
    pub(crate) participants: WorkerMask,
    /// Workers that run the function; a subset of `participants`.
    pub(crate) active: WorkerMask,
    /// Whether inactive workers asleep in their driver may be counted as
    /// stopped without waking them.
    pub(crate) claim_idle: bool,
}

/// Checks a caller's mask against the runtime.
///
/// # Errors
///
/// [`StopError::EmptyMask`], [`StopError::InvalidWorker`].
pub(crate) fn validate(shared: &Shared, mask: &WorkerMask) -> Result<(), StopError> {
    if mask.is_empty() {
        return Err(StopError::EmptyMask);
    }
    if mask.iter().any(|w| w >= shared.workers.len()) {
        return Err(StopError::InvalidWorker);
    }
    Ok(())
}

/// Takes the stop lock (the kernel's `stop_cpus_mutex`), within the
/// request's deadline.
///
/// # Errors
///
/// [`StopError::TimedOut`] with no straggler: another stop held the lock
/// past the deadline; [`StopError::Shutdown`]: the runtime began to shut
/// down meanwhile.
pub(crate) async fn lock(shared: &Shared, request: &Request) -> Result<StopGuard, StopError> {
    run_records_waiting(shared);
    let locked = shared
        .watchdog
        .within(request.deadline, shared.stop_lock.lock())
        .await;
    let guard = locked.map_err(|()| {
        report::record(shared, request, Measured::timed_out(request.kind));
        StopError::TimedOut {
            stragglers: Vec::new(),
        }
    })?;
    // The runtime may have begun to shut down while this waited: every
    // worker is closing then, and the stop would find none online.
    if shared.is_shut_down() {
        return Err(StopError::Shutdown);
    }
    Ok(guard)
}

/// Queues `job(w)` on each worker of `mask`. The caller holds the queueing
/// lock (`_order`) across everything that must form one step of the
/// queueing order, so that requests sharing workers are ordered the same
/// way on all of them; it wakes the workers after releasing it (the
/// kernel's wake_q). A refused work is cancelled, which completes its
/// share. Returns the workers that took their work, with its sequence
/// number there, and the first refusal.
pub(crate) fn queue_on<J>(
    shared: &Shared,
    _order: &MutexGuard<'_, ()>,
    mask: impl Iterator<Item = usize>,
    request: &Request,
    mut job: impl FnMut(usize) -> J,
) -> (Vec<(Arc<Worker>, u64)>, Option<StopError>)
where
    J: FnOnce(Go) + Send + 'static,
{
    let mut queued = Vec::new();
    let mut refused = None;
    for w in mask {
        let worker = &shared.workers[w];
        match worker
            .stopper
            .queue(StopWork::new(request.kind, request.caller, job(w)))
        {
            Ok(seq) => queued.push((worker.clone(), seq)),
            Err(why) => {
                refused.get_or_insert(why);
            }
        }
    }
    (queued, refused)
}

/// A poll that stops again makes the records its earlier stops left
/// (`Recorder::record_later`) before the next one begins, so that they
/// stay few however long the poll lasts; and before any stop lock is
/// taken: a record drops its stop's function, and a value it captured may
/// stop the world itself.
fn run_records_waiting(shared: &Shared) {
    if let Some(worker) = crate::runtime::context::take_records_waiting() {
        shared.stats.run_waiting_on(worker);
    }
}

/// Runs `f` through the multi-stop state machine on `plan.participants`.
/// `guard` (the stop lock, when the caller holds it) and the claimed idle
/// workers are released at EXIT (or when the stop is abandoned), even if
/// the caller's future was dropped before: participants still on their way
/// out of their stoppers then come before any later stop's work there.
pub(crate) async fn multi_stop<F, R>(
    shared: &Shared,
    plan: Plan,
    f: F,
    guard: Option<StopGuard>,
) -> Result<Vec<(usize, R)>, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let Plan {
        request,
        participants,
        active,
        claim_idle,
    } = plan;
    // A caller that holds the stop lock made them before it took it.
    if guard.is_none() {
        run_records_waiting(shared);
    }
    // Whose poll may make the record later: the caller's, if it is a task.
    let caller_poll = crate::runtime::context::current_poll(shared);
    // A caller taking part inline on a CPU it shares with other workers
    // counts as inside the stop until its worker's work has let the others
    // out (`settle`), and once more in the completion: the stop is recorded
    // once it, too, is out. Alone on its CPU, its worker leaves at EXIT like
    // any other, and the others (slower to see EXIT) record the stop off the
    // caller's way.
    let caller = crate::runtime::context::current_worker_of(shared)
        .filter(|h| participants.contains(h.index) && !h.siblings.is_empty())
        .map(|h| h.index);
    let done = Arc::new(Completion::new(
        participants.weight() + usize::from(caller.is_some()),
    ));
    let span = tracing::debug_span!(
        "stop",
        kind = request.kind.name(),
        caller = %request.caller,
        mask = %participants,
        active = %active
    );
    let mut ms = MultiStop::new(
        f,
        active.clone(),
        shared.workers.len(),
        request.deadline,
        done.clone(),
    );
    ms.set_span(span.clone());
    if let Some(caller) = caller {
        ms.caller_on(caller);
    }
    let ms = Arc::new(ms);
    let (claimed, queued) = {
        let order = shared.queue_lock.lock();
        // All or nothing: hotplug changes a worker's state under this lock,
        // so a participant found online here takes its work.
        if let Some(why) = participants
            .iter()
            .find_map(|w| shared.workers[w].stopper.life().refusal())
        {
            return Err(shared.refused(why));
        }
        // The runtime's drop marks shutdown before it closes any stopper,
        // without this lock: seen unset here, no worker was closed when the
        // participants were chosen. Seen set, a worker left out as closed
        // may still be polling its last tasks, so the world cannot stop.
        if shared.is_shut_down() {
            return Err(StopError::Shutdown);
        }
        let claimed: Vec<Arc<Worker>> = if claim_idle {
            participants
                .iter()
                .filter(|w| !active.contains(*w))
                .map(|w| shared.workers[w].clone())
                .filter(|w| w.try_claim())
                .collect()
        } else {
            Vec::new()
        };
        // Claims and queueing form one step in the queueing order: a request
        // queued in between could need a worker we claimed while it holds
        // one we wait for.
        let unclaimed = participants
            .iter()
            .filter(|w| !claimed.iter().any(|c| c.index == *w));
        let (queued, _refused) = queue_on(shared, &order, unclaimed, &request, |w| {
            let (ms, done) = (ms.clone(), done.clone());
            let siblings = shared.workers[w].siblings.clone();
            let alone = shared.workers[w].has_cpu_alone();
            move |go: Go| {
                let ran = go.is_ok();
                match go {
                    Ok(()) => ms.participate(w, alone),
                    Err(why) => ms.cancelled(why),
                }
                done.signal();
                if caller == Some(w) {
                    // The caller's worker, on a shared CPU: out once the
                    // others are, and then the stop may be recorded.
                    if ran {
                        settle(&ms, &siblings);
                    }
                    ms.caller_left();
                    done.signal();
                } else if ms.still_inside(&siblings) {
                    // A worker sharing its CPU with a participant still in
                    // this stop hands the CPU over once on its way out, so
                    // that the sibling can leave too instead of waiting for
                    // the OS's next tick behind this worker's tasks.
                    std::thread::yield_now();
                }
            }
        });
        (claimed, queued)
    };
    done.signal_n(claimed.len());
    // Late participants may be raised; whatever happens, the stop's end
    // (the finisher below) drops them back.
    let targets: Vec<(usize, Arc<Worker>, u64)> =
        match shared.boosting.load(crate::sync::atomic::Ordering::Relaxed) {
            true => queued.iter().map(|(w, seq)| (w.index, w.clone(), *seq)).collect(),
            false => Vec::new(),
        };
    if !targets.is_empty() {
        let (targets, stats) = (targets.clone(), shared.stats.clone());
        ms.on_straggle(Box::new(
            move |arrived: &WorkerMask, waiting: &dyn Fn() -> bool| {
                for (index, w, seq) in &targets {
                    let late = || waiting() && w.stopper.done_seq() < *seq;
                    if !arrived.contains(*index) && w.priority.boost(Cause::Stop, late) {
                        stats.count_boost();
                    }
                }
            },
        ));
    }
    ms.start(queued.len());
    for (w, _) in &queued {
        w.notify();
    }
    // What each worker polls as the stop begins, for the slow-stop warning
    // and a timeout's report: read once the participants are on their way,
    // since every read is a cache miss on a line its worker writes.
    let snapshot = report::Snapshot::take(shared, &request);
    let claimed_ids: Vec<usize> = claimed.iter().map(|w| w.index).collect();
    // At EXIT the world restarts: claimed workers may run, and the next
    // stop may be queued behind the participants still on their way out.
    // The stop is recorded once they are all out (`Handle::stats` waits
    // for that), so that the caller need not wait for them.
    let stats = shared.stats.clone();
    let (released, unsettled) = (ms.clone(), stats.clone());
    done.on_release(move || {
        for w in &claimed {
            w.release();
        }
        // Never left raised once the caller is back. The state has left
        // PREPARE by now, so a raise not yet visible here will find its
        // straggler no longer late and not happen (`Priority::boost`).
        for (_, w, _) in &targets {
            w.priority.restore_if_raised(Cause::Stop);
        }
        // Not abandoned here, it runs to EXIT: there will be a record.
        if released.state() != State::Abandoned {
            unsettled.unsettled();
        }
        drop(guard);
    });
    let recorded = ms.clone();
    done.on_complete(move || {
        if recorded.state() == State::Exit {
            // Inside the caller's own poll (its worker ended the stop
            // inline), the record waits until the poll returns: the
            // caller was released at EXIT and need not wait for it.
            stats.record_later(caller_poll, move |stats| {
                // Settled even if recording panics (a tracing subscriber,
                // a metrics exporter): a snapshot must not wait for it.
                let _settled = stats.settles();
                let ok = recorded.cancellation().is_none();
                report::record_multi(stats, &request, &recorded.timeline(), claimed_ids, ok);
            });
        }
    });
    service::serve_here(shared);
    let mut wait = pin!(done.wait());
    if shared
        .watchdog
        .within(request.deadline, wait.as_mut())
        .await
        .is_err()
    {
        ms.abandon();
        wait.await;
    }
    if ms.state() == State::Abandoned {
        if let Some(why) = ms.cancellation() {
            report::record(shared, &request, Measured::failed(request.kind));
            return Err(why);
        }
        report::record(shared, &request, Measured::timed_out(request.kind));
        let waited: WorkerMask = queued.iter().map(|(w, _)| w.index).collect();
        return Err(snapshot.timed_out(shared, &ms.stragglers(&waited), &request));
    }
    snapshot.warn_if_slow(shared, &span, || ms.timeline(), &request);
    ms.take_results()
}

/// The caller's worker is out of its stop, on a CPU it shares with other
/// workers (`siblings`): wait a moment for the other participants to leave
/// too, yielding the CPU while a sibling is still inside the stop.
/// Returning at once would run this worker's tasks (the caller first) over
/// a sibling that needs the CPU to see EXIT, and the OS would let it out
/// only at its next tick, which the next stop, queued behind it, would
/// wait for. Bounded: a few rounds of [`Waiting`], yields included; at once
/// for an abandoned stop.
fn settle<F, R>(ms: &MultiStop<F, R>, siblings: &[usize])
where
    F: Fn(usize) -> R,
{
    let wait = Waiting::new(false);
    while !ms.others_left() && !wait.is_completed() && ms.state() != State::Abandoned {
        if ms.still_inside(siblings) {
            std::thread::yield_now();
        }
        wait.snooze();
    }
}
