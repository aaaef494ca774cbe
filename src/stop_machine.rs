//! Multi-worker stops driven through the state machine: `stop_machine`,
//! `stop_two_cpus`, and the blocking `stop_machine_blocking`.

use crate::blocking::block_on_servicing;
use crate::completion::Completion;
use crate::cpumask::CpuMask;
use crate::error::StopError;
use crate::error::Straggler;
use crate::multi_stop::MultiStop;
use crate::multi_stop::{State, Timeline};
use crate::runtime::handle::Handle;
use crate::runtime::worker::Worker;
use crate::stats::{Measured, StopKind};
use crate::stop_lock::StopGuard;
use crate::stopper::StopWork;
use crate::sync::{Arc, Mutex, MutexGuard, lock};
use futures::future::Either;
use std::future::Future;
use std::panic::Location;
use std::pin::{Pin, pin};
use std::time::{Duration, Instant};

/// What a multi-worker stop is asked to do.
pub(crate) struct Plan {
    /// Workers that take part (all online).
    pub(crate) participants: CpuMask,
    /// Workers that run the function; a subset of `participants`.
    pub(crate) active: CpuMask,
    /// Whether inactive workers asleep in their driver may be counted as
    /// stopped without waking them.
    pub(crate) claim_idle: bool,
    pub(crate) kind: &'static str,
    /// The kind its statistics are filed under.
    pub(crate) stat: StopKind,
    pub(crate) caller: &'static Location<'static>,
    /// How long to wait for every participant to reach its stopper.
    pub(crate) timeout: Option<Duration>,
}

/// Checks a caller's mask against the runtime.
pub(crate) fn validate(handle: &Handle, mask: &CpuMask) -> Result<(), StopError> {
    if mask.is_empty() {
        return Err(StopError::EmptyMask);
    }
    if mask.iter().any(|w| w >= handle.num_workers()) {
        return Err(StopError::InvalidWorker);
    }
    Ok(())
}

/// Queues `work(w)` on each worker of `mask`. The caller holds the queueing
/// lock (`_order`) across everything that must form one step of the
/// queueing order, so that requests sharing workers are ordered the same
/// way on all of them; it wakes the workers after releasing it (the
/// kernel's wake_q).
/// Returns the workers that took their work; a refused work is signalled
/// done at once.
pub(crate) fn queue_on(
    handle: &Handle,
    _order: &MutexGuard<'_, ()>,
    mask: impl Iterator<Item = usize>,
    done: &Completion,
    kind: &'static str,
    caller: &'static Location<'static>,
    mut work: impl FnMut(usize) -> Box<dyn FnOnce() + Send>,
) -> (Vec<Arc<Worker>>, Option<StopError>) {
    let mut queued = Vec::new();
    let mut refused = None;
    for w in mask {
        let worker = &handle.shared.workers[w];
        match worker.stopper.queue(StopWork::new(kind, caller, work(w))) {
            Ok(()) => queued.push(worker.clone()),
            Err((why, _)) => {
                refused.get_or_insert(StopError::from(why));
                done.signal();
            }
        }
    }
    (queued, refused)
}

/// Runs `f` through the multi-stop state machine on `plan.participants`.
/// `guard` (the serialization lock, when the caller holds it) is released
/// only when every worker has left the stop, even if the caller's future is
/// dropped before.
pub(crate) async fn multi_stop<F, R>(
    handle: &Handle,
    plan: Plan,
    f: F,
    guard: Option<StopGuard>,
) -> Result<Vec<(usize, R)>, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let requested = Instant::now();
    let done = Arc::new(Completion::new(plan.participants.weight()));
    let span = tracing::debug_span!(
        "stop",
        kind = plan.kind,
        caller = %plan.caller,
        mask = %plan.participants,
        active = %plan.active
    );
    let mut ms = MultiStop::new(
        f,
        plan.active.clone(),
        plan.timeout.map(|t| requested + t),
        done.clone(),
    );
    ms.set_span(span.clone());
    let ms = Arc::new(ms);
    // What each worker is doing at the request: read back only to name
    // stragglers (with a timeout) or the slowest worker (slow-stop warning).
    let workers = &handle.shared.workers;
    let polls: Vec<u64> = match plan.timeout {
        Some(_) => workers.iter().map(|w| w.poll_seq()).collect(),
        None => Vec::new(),
    };
    let polling: Vec<_> = match handle.shared.config.slow_stop {
        Some(_) => workers.iter().map(|w| w.polling()).collect(),
        None => Vec::new(),
    };
    let (claimed, queued, refused) = {
        // Claims and queueing form one step in the queueing order.
        let order = lock(&handle.shared.queue_lock);
        // All or nothing: hotplug flips a stopper's `enabled` under this
        // lock, so a participant found online here takes its work; one that
        // is not makes the whole stop fail before anything is queued.
        if let Some(w) = plan
            .participants
            .iter()
            .find(|w| !handle.shared.workers[*w].is_online())
        {
            drop(order);
            let shutting_down = handle.shared.workers[w]
                .shutdown
                .load(crate::sync::atomic::Ordering::SeqCst);
            return Err(if shutting_down {
                StopError::Shutdown
            } else {
                StopError::Offline
            });
        }
        let claimed: Vec<Arc<Worker>> = if plan.claim_idle {
            plan.participants
                .iter()
                .filter(|w| !plan.active.contains(*w))
                .map(|w| handle.shared.workers[w].clone())
                .filter(|w| w.try_claim())
                .collect()
        } else {
            Vec::new()
        };
        // Claims and queueing form one step in the queueing order: a request
        // queued in between could need a worker we claimed while it holds
        // one we wait for.
        let unclaimed = plan
            .participants
            .iter()
            .filter(|w| !claimed.iter().any(|c| c.index == *w));
        let (queued, refused) = queue_on(handle, &order, unclaimed, &done, plan.kind, plan.caller, |w| {
            let (ms, done) = (ms.clone(), done.clone());
            Box::new(move || {
                ms.participate(w);
                done.signal();
            })
        });
        (claimed, queued, refused)
    };
    done.signal_n(claimed.len());
    ms.start(
        queued.len(),
        queued.iter().filter_map(|w| w.thread.get().cloned()).collect(),
    );
    for w in &queued {
        w.notify();
    }
    let claimed_ids: Vec<usize> = claimed.iter().map(|w| w.index).collect();
    done.on_complete(move || {
        for w in &claimed {
            w.release();
        }
        drop(guard);
    });
    match plan.timeout {
        None => done.wait().await,
        Some(timeout) => {
            let mut wait = pin!(done.wait());
            if let Either::Right(_) = futures::future::select(wait.as_mut(), timer(requested + timeout)).await
            {
                ms.abandon();
                wait.await;
            }
        }
    }
    let kind = plan.stat;
    if ms.state() == State::Abandoned {
        handle.shared.stats.record(Measured::failed(kind));
        let waited: CpuMask = queued.iter().map(|w| w.index).collect();
        let stragglers = ms
            .stragglers(&waited)
            .iter()
            .map(|w| straggler(&handle.shared.workers[w], polls[w], requested))
            .collect::<Vec<_>>();
        for s in &stragglers {
            tracing::warn!(kind = plan.kind, caller = %plan.caller, "stop abandoned: {s}");
        }
        return Err(StopError::TimedOut { stragglers });
    }
    if let Some(e) = refused {
        handle.shared.stats.record(Measured::failed(kind));
        return Err(e);
    }
    let results = ms.take_results();
    let timeline = ms.timeline();
    record(handle, kind, &timeline, requested, claimed_ids, results.is_ok());
    if let Some(threshold) = handle.shared.config.slow_stop {
        warn_if_slow(&span, threshold, &timeline, requested, &polling);
    }
    results
}

/// Records a finished multi-worker stop's three timings.
fn record(handle: &Handle, kind: StopKind, t: &Timeline, requested: Instant, claimed: Vec<usize>, ok: bool) {
    let end = Instant::now();
    let run_start = t.run_start.unwrap_or(end);
    let run_end = t.run_end.unwrap_or(end);
    handle.shared.stats.record(Measured {
        kind,
        ok,
        to_stop: run_start.saturating_duration_since(requested),
        stopped: run_end.saturating_duration_since(run_start),
        restart: t.last_left.unwrap_or(end).saturating_duration_since(run_end),
        arrivals: t
            .arrivals
            .iter()
            .map(|(w, at)| (*w, at.saturating_duration_since(requested)))
            .collect(),
        restarts: t
            .lefts
            .iter()
            .map(|(w, at)| (*w, at.saturating_duration_since(run_end)))
            .collect(),
        claimed,
    });
}

/// Warns about a stop that took longer than `threshold`, naming the worker
/// that arrived last and the task it was polling when the stop was asked.
fn warn_if_slow(
    span: &tracing::Span,
    threshold: Duration,
    t: &Timeline,
    requested: Instant,
    polling: &[Option<(u64, &'static Location<'static>)>],
) {
    let total = t
        .last_left
        .unwrap_or_else(Instant::now)
        .saturating_duration_since(requested);
    if total <= threshold {
        return;
    }
    let Some(&(slowest, arrived)) = t.arrivals.iter().max_by_key(|(_, at)| *at) else {
        return;
    };
    let waited = arrived.saturating_duration_since(requested);
    match polling.get(slowest).copied().flatten() {
        Some((task, at)) => tracing::warn!(
            parent: span,
            ?total, slowest_worker = slowest, ?waited, task, spawned_at = %at,
            "slow stop: worker {slowest} took {waited:?} to reach its stopper, polling task {task} spawned at {at}"
        ),
        None => tracing::warn!(
            parent: span,
            ?total, slowest_worker = slowest, ?waited,
            "slow stop: worker {slowest} took {waited:?} to reach its stopper"
        ),
    }
}

/// Names what `worker` was doing instead of reaching its stopper.
fn straggler(worker: &Worker, polls_at_request: u64, requested: Instant) -> Straggler {
    let polling = worker.polling();
    let same_poll = polling.is_some() && worker.poll_seq() == polls_at_request;
    Straggler {
        worker: worker.index,
        task: polling.map(|(id, _)| id),
        spawned_at: polling.map(|(_, at)| at),
        polling_for: same_poll.then(|| requested.elapsed()),
    }
}

/// A future that resolves at `deadline`: a tokio timer on our own workers,
/// a sleeping helper thread elsewhere (a caller on a foreign executor or a
/// plain thread has no timer we may use). A timer on a worker cannot fire
/// while that worker is itself held in the stop; then the participants that
/// have arrived enforce the deadline instead (`MultiStop::participate`).
fn timer(deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if crate::current_worker().is_some() {
        return Box::pin(tokio::time::sleep_until(deadline.into()));
    }
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let cancel = Arc::new(crate::sync::atomic::AtomicBool::new(false));
    let stop = cancel.clone();
    let spawned = std::thread::Builder::new()
        .name("stop-machine-timer".into())
        .spawn(move || {
            use crate::sync::atomic::Ordering;
            while !stop.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= deadline {
                    let _ = tx.send(());
                    return;
                }
                std::thread::park_timeout(deadline - now);
            }
        });
    let Ok(thread) = spawned else {
        // No thread to time with: the waiting participants still enforce
        // the deadline as soon as one of them has arrived.
        return Box::pin(std::future::pending());
    };
    struct Cancel(Arc<crate::sync::atomic::AtomicBool>, std::thread::Thread);
    impl Drop for Cancel {
        fn drop(&mut self) {
            self.0.store(true, crate::sync::atomic::Ordering::Release);
            self.1.unpark();
        }
    }
    let guard = Cancel(cancel, thread.thread().clone());
    Box::pin(async move {
        let _guard = guard;
        let _ = rx.await;
    })
}

impl Handle {
    /// The workers that are online now.
    pub(crate) fn online(&self) -> CpuMask {
        (0..self.num_workers())
            .filter(|w| self.shared.workers[*w].is_online())
            .collect()
    }

    /// Stops every online worker and runs `f` on the active ones while all
    /// others wait in their stoppers: no task runs anywhere and no worker
    /// turns its I/O driver until every worker has left the stop. Resolves
    /// to `f`'s value on the lowest active worker.
    ///
    /// `active`: the workers that run `f(worker)`; `None` runs it once, on
    /// the caller's worker when the caller is a task of this runtime,
    /// otherwise on the first online worker. Idle workers that need not run
    /// `f` are counted as stopped without being woken.
    ///
    /// Stops are serialized with each other and with hotplug. Dropping the
    /// future after its first poll does not cancel the stop.
    ///
    /// CONTEXT: a task, or any thread via [`stop_machine_blocking`].
    ///
    /// # Errors
    ///
    /// [`StopError::EmptyMask`] / [`StopError::InvalidWorker`] for a bad
    /// `active`; [`StopError::Offline`] when no active worker is online;
    /// [`StopError::Panicked`] if `f` panicked on any worker (all workers
    /// still leave the stop); [`StopError::Nested`] from a stop function;
    /// [`StopError::Shutdown`].
    ///
    /// [`stop_machine_blocking`]: Handle::stop_machine_blocking
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let config = Arc::new(AtomicU64::new(1));
    /// let c = config.clone();
    /// let h = rt.handle().clone();
    /// let old = rt.block_on(async move {
    ///     h.stop_machine(move |_| c.swap(2, Ordering::Relaxed), None).await
    /// });
    /// assert_eq!(old, Ok(1));
    /// ```
    #[track_caller]
    pub fn stop_machine<F, R>(
        &self,
        f: F,
        active: Option<&CpuMask>,
    ) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stop_machine_inner(f, active, self.shared.config.stop_timeout, Location::caller())
    }

    /// [`stop_machine`](Handle::stop_machine) with its own bound on the time
    /// to stop, overriding [`Builder::stop_timeout`](crate::Builder::stop_timeout):
    /// if some online workers have not reached their stopper within
    /// `timeout`, the stop is abandoned before DISABLE_IRQ (nobody has run
    /// `f`), the workers already waiting go back to their tasks, and the
    /// caller learns which workers held it up and what they were polling.
    ///
    /// # Errors
    ///
    /// As [`stop_machine`](Handle::stop_machine), plus
    /// [`StopError::TimedOut`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.stop_machine_timeout(|w| w, None, Duration::from_secs(5)).await });
    /// assert!(r.is_ok());
    /// ```
    #[track_caller]
    pub fn stop_machine_timeout<F, R>(
        &self,
        f: F,
        active: Option<&CpuMask>,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stop_machine_inner(f, active, Some(timeout), Location::caller())
    }

    fn stop_machine_inner<F, R>(
        &self,
        f: F,
        active: Option<&CpuMask>,
        timeout: Option<Duration>,
        caller: &'static Location<'static>,
    ) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let handle = self.clone();
        let active = active.cloned();
        let here = self.current_index();
        async move {
            handle.check()?;
            if let Some(mask) = &active {
                validate(&handle, mask)?;
            }
            let guard = handle.shared.stop_lock.lock().await;
            let online = handle.online();
            let active = match active {
                Some(mask) => &mask & &online,
                None => here
                    .filter(|w| online.contains(*w))
                    .or(online.first())
                    .map(CpuMask::of)
                    .unwrap_or_default(),
            };
            if active.is_empty() {
                return Err(StopError::Offline);
            }
            let plan = Plan {
                participants: online,
                active,
                claim_idle: true,
                kind: "stop_machine",
                stat: StopKind::Machine,
                caller,
                timeout,
            };
            let results = multi_stop(&handle, plan, f, Some(guard)).await?;
            results
                .into_iter()
                .next()
                .map(|(_, r)| r)
                .ok_or(StopError::Shutdown)
        }
    }

    /// [`stop_machine`](Handle::stop_machine) for threads that cannot await:
    /// blocks the caller until the stop is over. Called on one of this
    /// runtime's worker threads (inside a task's poll), that worker takes
    /// part inline instead of deadlocking; the kernel's
    /// `stop_machine_from_inactive_cpu`.
    ///
    /// CONTEXT: any thread; blocks it.
    ///
    /// # Errors
    ///
    /// As [`stop_machine`](Handle::stop_machine).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let on = rt.handle().stop_machine_blocking(|w| w, Some(&stop_machine::CpuMask::of(1)));
    /// assert_eq!(on, Ok(1));
    /// ```
    #[track_caller]
    pub fn stop_machine_blocking<F, R>(&self, f: F, active: Option<&CpuMask>) -> Result<R, StopError>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.check()?;
        block_on_servicing(self, self.stop_machine(f, active))
    }

    /// Stops workers `a` and `b` together and runs `f` on `a` while `b`
    /// waits in its stopper. Not serialized with other stops (like the
    /// kernel's), yet deadlock-free: both works are queued in one step of
    /// the queueing order that every multi-worker request follows, so no two
    /// requests can ever be queued in opposite orders on two workers.
    ///
    /// CONTEXT: a task, or any thread through `futures::executor::block_on`.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Offline`] (either worker
    /// offline: nothing ran), [`StopError::Panicked`], [`StopError::Nested`],
    /// [`StopError::Shutdown`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let ran_on = rt.block_on(async move { h.stop_two_cpus(1, 0, stop_machine::current_worker).await });
    /// assert_eq!(ran_on, Ok(Some(1)));
    /// ```
    #[track_caller]
    pub fn stop_two_cpus<F, R>(
        &self,
        a: usize,
        b: usize,
        f: F,
    ) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let caller = Location::caller();
        let handle = self.clone();
        async move {
            handle.check()?;
            handle.worker(a)?;
            handle.worker(b)?;
            let participants: CpuMask = [a, b].into_iter().collect();
            if !participants.iter().all(|w| handle.shared.workers[w].is_online()) {
                return Err(StopError::Offline);
            }
            let once = Mutex::new(Some(f));
            let run = move |_| lock(&once).take().map(|f| f());
            let plan = Plan {
                participants,
                active: CpuMask::of(a),
                claim_idle: false,
                kind: "stop_two_cpus",
                stat: StopKind::Two,
                caller,
                timeout: handle.shared.config.stop_timeout,
            };
            let results = multi_stop(&handle, plan, run, None).await?;
            results
                .into_iter()
                .next()
                .and_then(|(_, r)| r)
                .ok_or(StopError::Offline)
        }
    }
}

/// [`Handle::stop_machine`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::stop_machine`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let here = rt.block_on(async {
///     let me = stop_machine::current_worker();
///     stop_machine::stop_machine(move |w| Some(w) == me, None).await
/// });
/// assert_eq!(here, Ok(true));
/// ```
#[track_caller]
pub fn stop_machine<F, R>(
    f: F,
    active: Option<&CpuMask>,
) -> impl Future<Output = Result<R, StopError>> + use<F, R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().stop_machine(f, active)
}

/// [`Handle::stop_machine_blocking`] on the current runtime, from inside a
/// task's poll.
///
/// # Errors
///
/// See [`Handle::stop_machine`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let v = rt.block_on(async { stop_machine::stop_machine_blocking(|_| 9, None) });
/// assert_eq!(v, Ok(9));
/// ```
#[track_caller]
pub fn stop_machine_blocking<F, R>(f: F, active: Option<&CpuMask>) -> Result<R, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().stop_machine_blocking(f, active)
}

/// [`Handle::stop_two_cpus`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::stop_two_cpus`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// assert_eq!(rt.block_on(async { stop_machine::stop_two_cpus(0, 1, || 1).await }), Ok(1));
/// ```
#[track_caller]
pub fn stop_two_cpus<F, R>(a: usize, b: usize, f: F) -> impl Future<Output = Result<R, StopError>> + use<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Handle::current().stop_two_cpus(a, b, f)
}
