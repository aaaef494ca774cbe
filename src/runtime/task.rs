//! Tasks: what a spawned future is wrapped in, and the handle that awaits it.

use super::worker::Worker;
use crate::error::JoinError;
use crate::sync::atomic::{AtomicBool, Ordering};
use futures::FutureExt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// What every task carries: its id and where it was spawned.
#[derive(Debug)]
pub(crate) struct TaskInfo {
    pub(crate) id: u64,
    pub(crate) location: &'static Location<'static>,
    /// Set by [`JoinHandle::abort`]: the scheduler drops the task instead of
    /// polling it, which cancels it.
    pub(crate) aborted: AtomicBool,
}

impl TaskInfo {
    fn new(id: u64, location: &'static Location<'static>) -> TaskInfo {
        TaskInfo {
            id,
            location,
            aborted: AtomicBool::new(false),
        }
    }

    /// Whether the task must be dropped rather than polled.
    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
}

/// An owned permission to await a task's output, as tokio's.
///
/// Awaiting it yields `Ok(value)`, or a [`JoinError`] when the task panicked
/// or was cancelled. Dropping it detaches the task, which runs on.
///
/// # Examples
///
/// ```
/// use stop_machine::Runtime;
///
/// let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
/// let v = rt.block_on(async { stop_machine::spawn(async { 6 * 7 }).await.unwrap() });
/// assert_eq!(v, 42);
/// ```
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<Result<T, JoinError>, TaskInfo>>,
    /// Wakes the task so that the scheduler sees an abort.
    waker: Waker,
    /// The task's metadata, in the task's own allocation.
    info: NonNull<TaskInfo>,
    id: u64,
}

// SAFETY: `info` points at the `TaskInfo` inside the task's allocation,
// which `waker` keeps alive as long as the handle exists; `TaskInfo` is
// `Sync` (an id, a `&'static Location` and an atomic), so sharing the
// pointer across threads is as safe as sharing `&TaskInfo`. The other
// fields are `Send`/`Sync` when `T` is `Send`, as async-task's own handle.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: as for `Send`; `&JoinHandle` only reads `info` and wakes.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// Cancels the task: it is dropped at its next scheduling point (at once
    /// if it is idle) and its handle resolves to a cancelled [`JoinError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let cancelled = rt.block_on(async {
    ///     let h = stop_machine::spawn(std::future::pending::<()>());
    ///     h.abort();
    ///     h.await.unwrap_err().is_cancelled()
    /// });
    /// assert!(cancelled);
    /// ```
    pub fn abort(&self) {
        // SAFETY: see the field: `waker` keeps the allocation alive.
        let info = unsafe { self.info.as_ref() };
        info.aborted.store(true, Ordering::Release);
        self.waker.wake_by_ref();
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let h = rt.handle().spawn(std::future::pending::<()>());
    /// assert!(!h.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The task's id, unique within the process.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let (a, b) = (rt.handle().spawn(async {}), rt.handle().spawn(async {}));
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let task = self.task.as_mut().expect("JoinHandle polled after completion");
        match Pin::new(task).poll(cx) {
            Poll::Ready(Some(out)) => Poll::Ready(out),
            // The runnable was dropped unrun: the runtime shut down.
            Poll::Ready(None) => Poll::Ready(Err(JoinError::cancelled(id))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

/// Removes a task from its worker's registry when its future is dropped.
struct Registered {
    worker: Arc<Worker>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.worker.forget_task(self.id);
    }
}

/// Wraps a task's future so that it removes itself from the worker's
/// registry when dropped and turns a panic into a [`JoinError`] instead of
/// unwinding into the worker.
fn wrap<F: Future>(
    worker: &Arc<Worker>,
    id: u64,
    fut: F,
) -> impl Future<Output = Result<F::Output, JoinError>> + use<F> {
    let registered = Registered {
        worker: worker.clone(),
        id,
    };
    async move {
        let _registered = registered;
        AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .map_err(|payload| JoinError::panic(id, payload))
    }
}

fn schedule_on(
    worker: &Arc<Worker>,
) -> impl Fn(async_task::Runnable<TaskInfo>) + Send + Sync + 'static + use<> {
    let home = worker.clone();
    move |runnable| home.schedule(runnable)
}

fn adopt<T>(
    worker: &Arc<Worker>,
    id: u64,
    (runnable, task): (
        async_task::Runnable<TaskInfo>,
        async_task::Task<Result<T, JoinError>, TaskInfo>,
    ),
) -> JoinHandle<T> {
    let waker = runnable.waker();
    let info = NonNull::from(task.metadata());
    worker.adopt(id, runnable);
    JoinHandle {
        task: Some(task.fallible()),
        waker,
        info,
        id,
    }
}

/// Spawns `fut` onto `worker`, from any thread.
pub(crate) fn spawn<F>(
    worker: &Arc<Worker>,
    id: u64,
    location: &'static Location<'static>,
    fut: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let wrapped = wrap(worker, id, fut);
    let builder = async_task::Builder::new().metadata(TaskInfo::new(id, location));
    let pair = builder.spawn(move |_| wrapped, schedule_on(worker));
    adopt(worker, id, pair)
}

/// Spawns a `!Send` future onto `worker`.
///
/// # Panics
///
/// async-task panics if the task is polled or dropped off the thread that
/// spawned it; callers spawn only onto the current thread's own worker, whose
/// queues are only ever run and drained on that thread.
pub(crate) fn spawn_local<F>(
    worker: &Arc<Worker>,
    id: u64,
    location: &'static Location<'static>,
    fut: F,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let wrapped = wrap(worker, id, fut);
    let builder = async_task::Builder::new().metadata(TaskInfo::new(id, location));
    let pair = builder.spawn_local(move |_| wrapped, schedule_on(worker));
    adopt(worker, id, pair)
}
