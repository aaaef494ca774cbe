//! The handle that awaits a task.

use super::{Output, TaskId, TaskInfo};
use crate::error::JoinError;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

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
    task: Option<async_task::FallibleTask<Output<T>, TaskInfo>>,
    /// Wakes the task so that the scheduler sees an abort.
    waker: Waker,
    /// The task's metadata, in the task's own allocation.
    info: NonNull<TaskInfo>,
    id: TaskId,
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
    pub(crate) fn new(
        runnable: &async_task::Runnable<TaskInfo>,
        task: async_task::Task<Output<T>, TaskInfo>,
        id: TaskId,
    ) -> JoinHandle<T> {
        JoinHandle {
            info: NonNull::from(task.metadata()),
            waker: runnable.waker(),
            task: Some(task.fallible()),
            id,
        }
    }

    fn info(&self) -> &TaskInfo {
        // SAFETY: see the field: `waker` keeps the allocation alive.
        unsafe { self.info.as_ref() }
    }

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
        self.info().abort();
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
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let task = self.task.as_mut().expect("JoinHandle polled after completion");
        let out = match Pin::new(task).poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        // A panic while dropping the future outranks how the task ended.
        if let Some(payload) = self.info().take_drop_panic() {
            return Poll::Ready(Err(JoinError::panic(id, payload)));
        }
        Poll::Ready(match out {
            Some(Ok(value)) => Ok(value.into_inner()),
            Some(Err(e)) => Err(e),
            // Dropped unrun: aborted, or the runtime shut down.
            None => Err(JoinError::cancelled(id)),
        })
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
