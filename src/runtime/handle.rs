//! The handle every task and thread uses to reach a runtime.

use super::context;
use super::shared::Shared;
use super::task::{self, JoinHandle};
use super::worker::Worker;
use crate::TaskId;
use crate::error::StopError;
use crate::stop::stopper::RunningStop;
use crate::sync::Arc;
use crate::sync::atomic::Ordering;
use crate::topology::WorkerPlacement;
use std::fmt;
use std::future::Future;
use std::panic::Location;

/// A cheap, cloneable reference to a runtime: spawns tasks and requests
/// stops from any thread.
///
/// # Examples
///
/// ```
/// use stop_machine::{Handle, Runtime};
///
/// let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
/// let handle: Handle = rt.handle().clone();
/// let on = std::thread::spawn(move || {
///     let h = handle.spawn_on(1, async { stop_machine::current_worker() });
///     futures::executor::block_on(h).unwrap()
/// });
/// assert_eq!(on.join().unwrap(), Some(1));
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// Returned by [`Handle::try_current`] off a worker thread.
///
/// # Examples
///
/// ```
/// assert!(stop_machine::Handle::try_current().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not on a stop-machine worker thread")
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    /// The handle of the runtime whose worker runs the caller.
    ///
    /// # Panics
    ///
    /// Panics when not called on a worker thread (from a task, a stop
    /// function or a tokio task of the runtime); see [`try_current`].
    ///
    /// [`try_current`]: Handle::try_current
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let n = rt.block_on(async { stop_machine::Handle::current().num_workers() });
    /// assert_eq!(n, 1);
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}: Handle::current() must be called from a task of the runtime"),
        }
    }

    /// The current runtime's handle, or an error off its worker threads.
    ///
    /// # Errors
    ///
    /// [`TryCurrentError`] when the calling thread is not a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stop_machine::Handle::try_current().is_err());
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current()
            .map(|(shared, _)| Handle { shared })
            .ok_or(TryCurrentError(()))
    }

    /// The number of workers, online or not.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(3).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().num_workers(), 3);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// The OS CPU worker `worker` is pinned to; `None` when unpinned or out
    /// of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().worker_cpu(0), None);
    /// ```
    pub fn worker_cpu(&self, worker: usize) -> Option<usize> {
        self.shared.workers.get(worker).and_then(|w| w.cpu)
    }

    /// The machine's topology as the runtime sees it: which CPU, core, NUMA
    /// node and package each worker runs on, and masks of workers by each.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).build().unwrap();
    /// let placement = rt.handle().topology();
    /// assert_eq!(placement.num_workers(), 2);
    /// assert!(placement.core_mask_of(0).contains(0));
    /// ```
    pub fn topology(&self) -> &WorkerPlacement {
        &self.shared.placement
    }

    /// Counters and latency histograms of every stop so far: time to stop,
    /// time stopped and time to restart, by kind and by worker.
    ///
    /// A multi-worker stop returns to its caller at EXIT and is recorded a
    /// moment later, by the last worker out of it; this waits for such
    /// stops (at most a second), so every stop that has returned is in the
    /// snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// rt.handle().stop_machine_blocking(|_| (), None).unwrap();
    /// assert_eq!(rt.handle().stats().kind(stop_machine::StopKind::Machine).count, 1);
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.shared.stats.snapshot()
    }

    /// Whether stops raise the OS priority of late participants: asked for
    /// with [`Builder::boost_stragglers`](crate::Builder::boost_stragglers)
    /// (the default) and allowed to the process.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).boost_stragglers(false).build().unwrap();
    /// assert!(!rt.handle().boosting());
    /// ```
    pub fn boosting(&self) -> bool {
        self.shared.boosting.load(Ordering::Relaxed)
    }

    /// Clears the [`stats`](Handle::stats).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// rt.handle().stop_machine_blocking(|_| (), None).unwrap();
    /// rt.handle().reset_stats();
    /// assert_eq!(rt.handle().stats().kind(stop_machine::StopKind::Machine).count, 0);
    /// ```
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Whether worker `worker` is online (not parked by [`park_worker`]).
    ///
    /// [`park_worker`]: Handle::park_worker
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert!(rt.handle().is_online(0));
    /// assert!(!rt.handle().is_online(7));
    /// ```
    pub fn is_online(&self, worker: usize) -> bool {
        self.shared.workers.get(worker).is_some_and(|w| w.is_online())
    }

    /// Spawns a task. From one of this runtime's workers, where the
    /// [`SpawnPolicy`](crate::SpawnPolicy) says (by default the current
    /// worker); from any other thread, on the online workers in turn.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().spawn(async { 1 + 1 });
    /// assert_eq!(futures::executor::block_on(h).unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(self.shared.place(self.current_index()), fut)
    }

    /// Where [`spawn`](Handle::spawn) places tasks spawned from a worker
    /// ([`Builder::spawn_policy`](crate::Builder::spawn_policy)).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().spawn_policy(), stop_machine::SpawnPolicy::Local);
    /// ```
    pub fn spawn_policy(&self) -> crate::SpawnPolicy {
        self.shared.config.spawn_policy
    }

    /// Spawns a task on worker `worker`, where it stays: tasks never migrate.
    ///
    /// # Panics
    ///
    /// Panics if `worker >= self.num_workers()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().spawn_on(1, async { stop_machine::current_worker() });
    /// assert_eq!(futures::executor::block_on(h).unwrap(), Some(1));
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&self, worker: usize, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let n = self.shared.workers.len();
        let Some(w) = self.shared.workers.get(worker) else {
            panic!("spawn_on: worker {worker} out of range (the runtime has {n})");
        };
        task::spawn(w, Location::caller(), fut)
    }

    /// Spawns a `!Send` task on the current worker.
    ///
    /// # Panics
    ///
    /// Panics when not called on one of this runtime's worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let v = rt.block_on(async {
    ///     let shared = Rc::new(5);
    ///     stop_machine::spawn_local(async move { *shared + 1 }).await.unwrap()
    /// });
    /// assert_eq!(v, 6);
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let Some(worker) = context::current_worker_of(&self.shared) else {
            panic!("spawn_local must be called on a worker thread of this runtime");
        };
        task::spawn_local(&worker, Location::caller(), fut)
    }

    /// What worker `worker`'s stopper is doing: the analogue of the kernel's
    /// `print_stop_info`.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`] for an id out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().stopper_info(0).unwrap().worker, 0);
    /// assert!(rt.handle().stopper_info(1).is_err());
    /// ```
    pub fn stopper_info(&self, worker: usize) -> Result<StopperInfo, StopError> {
        let w = self.worker(worker)?;
        Ok(StopperInfo {
            worker,
            online: w.is_online(),
            idle: w.is_idle(),
            running: w.stopper.running(),
            polling: w.polling(),
            queued: w.stopper.queued(),
            wakeups: w.wakeups.load(Ordering::Relaxed),
        })
    }

    pub(crate) fn worker(&self, worker: usize) -> Result<&Arc<Worker>, StopError> {
        self.shared.workers.get(worker).ok_or(StopError::InvalidWorker)
    }

    /// The workers that are online now.
    pub(crate) fn online(&self) -> crate::WorkerMask {
        (0..self.num_workers())
            .filter(|w| self.shared.workers[*w].is_online())
            .collect()
    }

    /// The checks every stop entry point makes first, at its first poll: a
    /// stop requested from a stop function would wait on itself, a stopped
    /// runtime runs none, and a worker thread blocked through a foreign
    /// executor cannot serve its stopper.
    pub(crate) fn check(&self) -> Result<(), StopError> {
        if context::in_stopper() {
            return Err(StopError::Nested);
        }
        if self.shared.is_shut_down() {
            return Err(StopError::Shutdown);
        }
        // `futures::executor::enter` fails inside futures' `block_on`: on
        // one of our workers that means a task blocked its worker on us.
        if self.current_index().is_some() && futures::executor::enter().is_err() {
            return Err(StopError::WouldBlockWorker);
        }
        Ok(())
    }

    /// The index of the calling worker if it belongs to this runtime.
    pub(crate) fn current_index(&self) -> Option<usize> {
        context::current()
            .filter(|(shared, _)| Arc::ptr_eq(shared, &self.shared))
            .map(|(_, i)| i)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.workers.len())
            .finish()
    }
}

/// Spawns a task on the current runtime; see [`Handle::spawn`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// assert_eq!(rt.block_on(async { stop_machine::spawn(async { 3 }).await.unwrap() }), 3);
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn(fut)
}

/// Spawns a task on worker `worker` of the current runtime; see
/// [`Handle::spawn_on`].
///
/// # Panics
///
/// Panics when not called on a worker thread, or if `worker` is out of range.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let w = rt.block_on(async { stop_machine::spawn_on(1, async { stop_machine::current_worker() }).await });
/// assert_eq!(w.unwrap(), Some(1));
/// ```
#[track_caller]
pub fn spawn_on<F>(worker: usize, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn_on(worker, fut)
}

/// Spawns a `!Send` task on the current worker; see [`Handle::spawn_local`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// let v = rt.block_on(async { stop_machine::spawn_local(async { *std::rc::Rc::new(1) }).await });
/// assert_eq!(v.unwrap(), 1);
/// ```
#[track_caller]
pub fn spawn_local<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Handle::current().spawn_local(fut)
}

/// The index of the worker running the caller, or `None` off the workers.
///
/// # Examples
///
/// ```
/// assert_eq!(stop_machine::current_worker(), None);
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// assert_eq!(rt.block_on(async { stop_machine::current_worker() }), Some(0));
/// ```
pub fn current_worker() -> Option<usize> {
    // No `Arc` clone: a shared reference-count write per call would make
    // this the slowest part of a sharded counter.
    context::with(|l| l.map(|l| l.worker.index))
}

/// What a worker's stopper is doing: the kernel's `print_stop_info`.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let info = rt.handle().stopper_info(1).unwrap();
/// assert!(info.online);
/// assert_eq!(info.queued, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopperInfo {
    /// The worker.
    pub worker: usize,
    /// Whether it is online (takes stop works).
    pub online: bool,
    /// Whether it sleeps in its driver (or is held there by a stop).
    pub idle: bool,
    /// The stop work it runs right now, if any.
    pub running: Option<RunningStop>,
    /// The task it is polling, if any: its id and where it was spawned. A
    /// stop waiting on this worker waits for this poll to return.
    pub polling: Option<(TaskId, &'static Location<'static>)>,
    /// Stop works queued behind it.
    pub queued: usize,
    /// How often it has woken from its driver since the runtime started.
    pub wakeups: u64,
}
