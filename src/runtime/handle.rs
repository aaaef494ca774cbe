//! The handle every task and thread uses to reach a runtime.

use super::builder::Config;
use super::context;
use super::task::{self, JoinHandle};
use super::worker::Worker;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex};
use crate::topology::WorkerPlacement;
use std::fmt;
use std::future::Future;
use std::panic::Location;

/// Everything the workers of one runtime share.
pub(crate) struct Shared {
    pub(crate) workers: Box<[Arc<Worker>]>,
    /// Serializes stop_cpus, stop_machine and hotplug (the kernel's
    /// `stop_cpus_mutex` plus `cpus_read_lock`): the set of online workers
    /// cannot change while a stop runs.
    pub(crate) stop_lock: Arc<crate::stop_lock::StopLock>,
    /// Held while the works of one multi-worker request are queued, so that
    /// any two such requests appear in the same order on every worker they
    /// share and can never wait for each other in a cycle.
    pub(crate) queue_lock: Mutex<()>,
    next_worker: AtomicUsize,
    pub(crate) placement: WorkerPlacement,
    pub(crate) config: Config,
    /// Set when the runtime begins to shut down.
    pub(crate) shutdown: AtomicBool,
    /// Stop-a-lot mode: one of its stops is on its way.
    pub(crate) stop_a_lot_inflight: AtomicBool,
    /// What every stop cost.
    pub(crate) stats: crate::stats::Recorder,
}

// std's atomic even under the loom cfg: a static needs a const constructor.
static NEXT_TASK_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Shared {
    pub(crate) fn new(workers: Vec<Arc<Worker>>, placement: WorkerPlacement, config: Config) -> Shared {
        let stats = crate::stats::Recorder::new(workers.len());
        Shared {
            workers: workers.into_boxed_slice(),
            stop_lock: Arc::new(crate::stop_lock::StopLock::new()),
            queue_lock: Mutex::new(()),
            next_worker: AtomicUsize::new(0),
            placement,
            config,
            shutdown: AtomicBool::new(false),
            stop_a_lot_inflight: AtomicBool::new(false),
            stats,
        }
    }
}

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
        context::current().map(|(h, _)| h).ok_or(TryCurrentError(()))
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

    /// Spawns a task: on the current worker when called from one of this
    /// runtime's workers, otherwise on the online workers in turn.
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
        let here = context::with(|local| {
            local
                .filter(|l| Arc::ptr_eq(&l.handle.shared, &self.shared))
                .map(|l| l.worker.index)
        });
        let worker = here.unwrap_or_else(|| self.next_online_worker());
        self.spawn_on(worker, fut)
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
        task::spawn(w, next_task_id(), Location::caller(), fut)
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
        let worker = context::with(|local| {
            local
                .filter(|l| Arc::ptr_eq(&l.handle.shared, &self.shared))
                .map(|l| l.worker.clone())
        });
        let Some(worker) = worker else {
            panic!("spawn_local must be called on a worker thread of this runtime");
        };
        task::spawn_local(&worker, next_task_id(), Location::caller(), fut)
    }

    pub(crate) fn worker(&self, worker: usize) -> Result<&Arc<Worker>, crate::StopError> {
        self.shared
            .workers
            .get(worker)
            .ok_or(crate::StopError::InvalidWorker)
    }

    /// The checks every stop entry point makes first: a stop requested from a
    /// stop function would wait on itself, and a stopped runtime runs none.
    pub(crate) fn check(&self) -> Result<(), crate::StopError> {
        if context::in_stopper() {
            return Err(crate::StopError::Nested);
        }
        if self.shared.shutdown.load(Ordering::SeqCst) {
            return Err(crate::StopError::Shutdown);
        }
        Ok(())
    }

    /// The next worker in turn, skipping offline ones (their tasks would wait
    /// until they are back); any worker when all are offline.
    fn next_online_worker(&self) -> usize {
        let n = self.shared.workers.len();
        let start = self.shared.next_worker.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|w| self.shared.workers[*w].is_online())
            .unwrap_or(start % n)
    }

    /// The index of the calling worker if it belongs to this runtime.
    pub(crate) fn current_index(&self) -> Option<usize> {
        context::current()
            .filter(|(h, _)| Arc::ptr_eq(&h.shared, &self.shared))
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

fn next_task_id() -> u64 {
    NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed)
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
    context::current().map(|(_, i)| i)
}
