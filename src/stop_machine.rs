//! Multi-worker stops driven through the state machine: `stop_machine`,
//! `stop_two_cpus`, and the blocking `stop_machine_blocking`.

use crate::blocking::block_on_servicing;
use crate::completion::Completion;
use crate::cpumask::CpuMask;
use crate::error::StopError;
use crate::multi_stop::MultiStop;
use crate::runtime::handle::Handle;
use crate::runtime::worker::Worker;
use crate::stopper::StopWork;
use crate::sync::{Arc, Mutex, lock};
use futures::lock::OwnedMutexGuard;
use std::future::Future;
use std::panic::Location;

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
    pub(crate) caller: &'static Location<'static>,
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

/// Queues `work(w)` on each worker of `mask` under the queueing lock, so
/// that requests sharing workers are ordered the same way on all of them;
/// the wake-ups happen after the lock is released (the kernel's wake_q).
/// Returns the workers that took their work; a refused work is signalled
/// done at once.
pub(crate) fn queue_on(
    handle: &Handle,
    mask: impl Iterator<Item = usize>,
    done: &Completion,
    kind: &'static str,
    caller: &'static Location<'static>,
    mut work: impl FnMut(usize) -> Box<dyn FnOnce() + Send>,
) -> (Vec<Arc<Worker>>, Option<StopError>) {
    let mut queued = Vec::new();
    let mut refused = None;
    let _order = lock(&handle.shared.queue_lock);
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
    guard: Option<OwnedMutexGuard<()>>,
) -> Result<Vec<(usize, R)>, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let ms = Arc::new(MultiStop::new(f, plan.active.clone()));
    let done = Arc::new(Completion::new(plan.participants.weight()));
    let (claimed, queued, refused) = {
        // Claims and queueing form one step in the queueing order.
        let _order = lock(&handle.shared.queue_lock);
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
        drop(_order);
        let unclaimed = plan
            .participants
            .iter()
            .filter(|w| !claimed.iter().any(|c| c.index == *w));
        let (queued, refused) = queue_on(handle, unclaimed, &done, plan.kind, plan.caller, |w| {
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
    done.on_complete(move || {
        for w in &claimed {
            w.release();
        }
        drop(guard);
    });
    done.wait().await;
    if let Some(e) = refused {
        return Err(e);
    }
    ms.take_results()
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
        let caller = Location::caller();
        let handle = self.clone();
        let active = active.cloned();
        let here = self.current_index();
        async move {
            handle.check()?;
            if let Some(mask) = &active {
                validate(&handle, mask)?;
            }
            let guard = handle.shared.stop_lock.clone().lock_owned().await;
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
                caller,
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
                caller,
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
