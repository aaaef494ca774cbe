//! Multi-worker stops driven through the state machine: `stop_machine`,
//! `stop_two_cpus`, and the blocking `stop_machine_blocking`.

use crate::cpumask::WorkerMask;
use crate::error::StopError;
use crate::runtime::handle::Handle;
use crate::runtime::service::block_on_servicing;
use crate::stats::StopKind;
use crate::stop::plan::{self, Plan, Request};
use crate::sync::Mutex;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

impl Handle {
    /// Stops every online worker and runs `f` on the active ones while all
    /// others wait in their stoppers: from the moment every worker has
    /// stopped until the last `f` has returned (EXIT), no task runs
    /// anywhere and no worker turns its I/O driver. Resolves to `f`'s value
    /// on the lowest active worker, as soon as EXIT is reached: the caller
    /// does not wait for the other workers to leave their stoppers.
    ///
    /// `active`: the workers that run `f(worker)`; `None` runs it once, on
    /// the caller's worker when the caller is a task of this runtime,
    /// otherwise on the first online worker. Idle workers that need not run
    /// `f` are counted as stopped without being woken.
    ///
    /// Stops are serialized with each other and with hotplug.
    ///
    /// CONTEXT: a task of this runtime (its worker takes its own part
    /// right where the task awaits), a task of another executor, or a thread
    /// outside the runtime through `futures::executor::block_on` or any
    /// executor. Not from a stop function ([`StopError::Nested`]), and never
    /// blocked on through another executor's `block_on` on one of this
    /// runtime's worker threads ([`StopError::WouldBlockWorker`]). The work
    /// is queued at the first poll; dropping the future after that does not
    /// cancel it.
    /// A thread that cannot await uses [`stop_machine_blocking`].
    ///
    /// RETURNS: `f`'s value on the lowest active worker.
    ///
    /// # Errors
    ///
    /// [`StopError::EmptyMask`] / [`StopError::InvalidWorker`] for a bad
    /// `active`; [`StopError::Offline`] when no active worker is online;
    /// [`StopError::Panicked`] if `f` panicked on any worker (all workers
    /// still leave the stop); [`StopError::TimedOut`] past
    /// [`Builder::stop_timeout`](crate::Builder::stop_timeout), if set;
    /// [`StopError::Nested`] from a stop function;
    /// [`StopError::WouldBlockWorker`]; [`StopError::Shutdown`];
    /// [`StopError::WorkerDied`] when a participant died before it ran.
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
        active: Option<&WorkerMask>,
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
    /// The bound covers the whole call, the wait for another stop to finish
    /// included.
    ///
    /// CONTEXT: as [`stop_machine`](Handle::stop_machine).
    ///
    /// RETURNS: as [`stop_machine`](Handle::stop_machine).
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
        active: Option<&WorkerMask>,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stop_machine_inner(f, active, Some(timeout), Location::caller())
    }

    pub(crate) fn stop_machine_inner<F, R>(
        &self,
        f: F,
        active: Option<&WorkerMask>,
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
            let request = Request::new(StopKind::Machine, caller, timeout);
            handle.check()?;
            if let Some(mask) = &active {
                plan::validate(&handle.shared, mask)?;
            }
            let guard = plan::lock(&handle.shared, &request).await?;
            let online = handle.online();
            let active = match active {
                Some(mask) => &mask & &online,
                None => here
                    .filter(|w| online.contains(*w))
                    .or(online.first())
                    .map(WorkerMask::of)
                    .unwrap_or_default(),
            };
            if active.is_empty() {
                return Err(handle.shared.refused(StopError::Offline));
            }
            let plan = Plan {
                request,
                participants: online,
                active,
                claim_idle: true,
            };
            let results = plan::multi_stop(&handle.shared, plan, f, Some(guard)).await?;
            let (_, first) = results
                .into_iter()
                .next()
                .expect("invariant: a stop that ran has run f on an active worker");
            Ok(first)
        }
    }

    /// [`stop_machine`](Handle::stop_machine) for threads that cannot await:
    /// blocks the caller until the stop is over. Called on one of this
    /// runtime's worker threads (inside a task's poll), that worker takes
    /// part inline instead of deadlocking; the kernel's
    /// `stop_machine_from_inactive_cpu`.
    ///
    /// CONTEXT: any thread. A thread outside the runtime blocks until the
    /// stop is over. A task of this runtime blocks its worker, which serves
    /// its stopper meanwhile: it takes part in this stop (and any other
    /// that needs it) inline, and a `park_worker` of it takes effect there,
    /// the call resuming once the worker is back online. Not from a stop
    /// function ([`StopError::Nested`]).
    ///
    /// RETURNS: as [`stop_machine`](Handle::stop_machine).
    ///
    /// # Errors
    ///
    /// As [`stop_machine`](Handle::stop_machine).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let on = rt.handle().stop_machine_blocking(|w| w, Some(&stop_machine::WorkerMask::of(1)));
    /// assert_eq!(on, Ok(1));
    /// ```
    #[track_caller]
    pub fn stop_machine_blocking<F, R>(&self, f: F, active: Option<&WorkerMask>) -> Result<R, StopError>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        block_on_servicing(&self.shared, self.stop_machine(f, active))
    }

    /// Stops workers `a` and `b` together and runs `f` on `a` while `b`
    /// waits in its stopper. Not serialized with other stops (like the
    /// kernel's), yet deadlock-free: both works are queued in one step of
    /// the queueing order that every multi-worker request follows, so no two
    /// requests can ever be queued in opposite orders on two workers.
    ///
    /// CONTEXT: a task of this runtime (its worker takes its own part
    /// right where the task awaits), a task of another executor, or a thread
    /// outside the runtime through `futures::executor::block_on` or any
    /// executor. Not from a stop function ([`StopError::Nested`]), and never
    /// blocked on through another executor's `block_on` on one of this
    /// runtime's worker threads ([`StopError::WouldBlockWorker`]). The work
    /// is queued at the first poll; dropping the future after that does not
    /// cancel it.
    ///
    /// RETURNS: `f`'s value.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Offline`] (either worker
    /// offline: nothing ran), [`StopError::Panicked`],
    /// [`StopError::TimedOut`] past
    /// [`Builder::stop_timeout`](crate::Builder::stop_timeout), if set,
    /// [`StopError::Nested`], [`StopError::WouldBlockWorker`],
    /// [`StopError::Shutdown`], [`StopError::WorkerDied`].
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
            let request = Request::new(StopKind::Two, caller, handle.shared.config.stop_timeout);
            handle.check()?;
            handle.worker(a)?;
            handle.worker(b)?;
            let once = Mutex::new(Some(f));
            let run = move |_| once.lock().take().map(|f| f());
            let plan = Plan {
                request,
                participants: [a, b].into_iter().collect(),
                active: WorkerMask::of(a),
                claim_idle: false,
            };
            let results = plan::multi_stop(&handle.shared, plan, run, None).await?;
            let (_, first) = results
                .into_iter()
                .next()
                .expect("invariant: a stop that ran has run f on its active worker");
            Ok(first.expect("invariant: f runs once, on worker a"))
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
    active: Option<&WorkerMask>,
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
pub fn stop_machine_blocking<F, R>(f: F, active: Option<&WorkerMask>) -> Result<R, StopError>
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
