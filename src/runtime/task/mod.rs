//! Tasks: what a spawned future is wrapped in, and how it reaches its
//! worker.
//!
//! A task's future runs inside [`Guarded`], which keeps every panic of user
//! code out of the worker: a panic while polling ends the task with a panic
//! [`JoinError`]; a panic while dropping the future (a task aborted, or
//! dropped at shutdown, whose state panics on drop) is caught and reported
//! by the task's [`JoinHandle`]; a panic while dropping the output of a
//! detached task is caught and logged. async-task itself aborts the process
//! on any of those, so none may reach it.
//!
//! An abort ([`JoinHandle::abort`]) sets the task's flag, then wakes it;
//! the task observes the flag at its next poll and ends cancelled without
//! polling its future again.

mod info;
mod join;

pub use info::TaskId;
pub(crate) use info::TaskInfo;
pub use join::JoinHandle;

use super::context;
use super::worker::Worker;
use crate::error::JoinError;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a task's future produces: its value, whose drop cannot unwind.
pub(crate) type Output<T> = Result<CatchDrop<T>, JoinError>;

/// A value whose drop is contained: a panic there is logged, not unwound.
pub(crate) struct CatchDrop<T>(ManuallyDrop<T>);

impl<T> CatchDrop<T> {
    pub(crate) fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the value is
        // moved out exactly once.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }
}

impl<T> Drop for CatchDrop<T> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; `into_inner` bypasses this drop.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(&mut self.0) }));
        if dropped.is_err() {
            tracing::error!("the output of a detached task panicked when dropped; the worker goes on");
        }
    }
}

/// A pointer to the task's [`TaskInfo`], which lives in the same
/// allocation as the future and outlives it.
struct InfoRef(NonNull<TaskInfo>);

// SAFETY: `TaskInfo` is `Sync`; the pointer is only dereferenced while the
// task's allocation (which holds both it and the future) is alive.
unsafe impl Send for InfoRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for InfoRef {}

/// A task's future with its panics contained and its registration held.
struct Guarded<F> {
    fut: ManuallyDrop<F>,
    info: InfoRef,
    id: TaskId,
    /// Whose registry holds the task: it counts as alive there until its
    /// future is gone.
    worker: Arc<Worker>,
}

impl<F: Future> Future for Guarded<F> {
    type Output = Output<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        // SAFETY: see `InfoRef`: the info is alive while its future is.
        let info = unsafe { self.info.0.as_ref() };
        // Checked here, inside the poll, and not when the scheduler pops the
        // task: an abort that lands after the pop finds the task already
        // scheduled, so its wake is a no-op and only this check sees it.
        if info.is_aborted() {
            return Poll::Ready(Err(JoinError::cancelled(id)));
        }
        // SAFETY: `fut` is structurally pinned: it is never moved out of the
        // pinned `Guarded`, and is dropped in place by `Guarded`'s drop.
        let fut = unsafe { self.map_unchecked_mut(|g| &mut *g.fut) };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(CatchDrop(ManuallyDrop::new(v)))),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(JoinError::panic(id, payload))),
        }
    }
}

impl<F> Drop for Guarded<F> {
    fn drop(&mut self) {
        // SAFETY: `fut` is dropped once, here, in place (it is pinned).
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(&mut self.fut) }));
        // SAFETY: see `InfoRef`: the allocation holding the info is alive
        // while its future is being dropped.
        let info = unsafe { self.info.0.as_ref() };
        if let Err(payload) = dropped {
            info.set_drop_panic(payload);
        }
        if let Some(key) = info.registry_key() {
            self.worker.forget_task(key);
        }
    }
}

type Pair<T> = (
    async_task::Runnable<TaskInfo>,
    async_task::Task<Output<T>, TaskInfo>,
);

/// Builds a task's [`Guarded`] future once async-task has placed its
/// metadata.
struct Maker<F> {
    fut: F,
    id: TaskId,
    worker: Arc<Worker>,
}

impl<F> Maker<F> {
    fn make(self, info: &TaskInfo) -> Guarded<F> {
        Guarded {
            fut: ManuallyDrop::new(self.fut),
            info: InfoRef(NonNull::from(info)),
            id: self.id,
            worker: self.worker,
        }
    }
}

/// Builds a task with `build` (which spawns it through async-task),
/// registers it with `worker` and schedules it; a worker that has shut down
/// gets no task and the handle reports cancellation.
fn spawn_with<F: Future>(
    worker: &Arc<Worker>,
    location: &'static Location<'static>,
    fut: F,
    build: impl FnOnce(async_task::Builder<TaskInfo>, Maker<F>) -> Pair<F::Output>,
) -> JoinHandle<F::Output> {
    let id = TaskId::next();
    let maker = Maker {
        fut,
        id,
        worker: worker.clone(),
    };
    let (runnable, task) = build(
        async_task::Builder::new().metadata(TaskInfo::new(id, location)),
        maker,
    );
    let handle = JoinHandle::new(&runnable, task, id);
    // Registered before its first schedule, so it cannot end before its
    // key is known.
    match worker.register_task(runnable.waker()) {
        Some(key) => {
            runnable.metadata().set_registry_key(key);
            runnable.schedule();
        }
        None => drop(runnable),
    }
    handle
}

fn schedule_on(
    worker: &Arc<Worker>,
) -> impl Fn(async_task::Runnable<TaskInfo>) + Send + Sync + 'static + use<> {
    let home = worker.clone();
    move |runnable| context::schedule(&home, runnable)
}

/// Spawns `fut` onto `worker`, from any thread.
pub(crate) fn spawn<F>(
    worker: &Arc<Worker>,
    location: &'static Location<'static>,
    fut: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_with(worker, location, fut, |builder, make| {
        builder.spawn(move |info| make.make(info), schedule_on(worker))
    })
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
    location: &'static Location<'static>,
    fut: F,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_with(worker, location, fut, |builder, make| {
        builder.spawn_local(move |info| make.make(info), schedule_on(worker))
    })
}

/// Spawns onto `worker` a future that may borrow from the caller's stack.
///
/// # Safety
///
/// The caller must not end the borrows that `fut` (or its output) holds
/// before the returned handle has resolved. It resolves only once the
/// future has been dropped (completed, aborted, or dropped at shutdown), so
/// blocking on it until then, as `Runtime::block_on` does, is sound.
pub(crate) unsafe fn spawn_scoped<'a, F>(
    worker: &Arc<Worker>,
    location: &'static Location<'static>,
    fut: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'a,
    F::Output: Send + 'a,
{
    spawn_with(worker, location, fut, |builder, make| {
        // SAFETY: the future is `Send`, and the schedule function `Send`,
        // `Sync` and `'static`; the caller keeps the future's borrows alive
        // until it has been dropped (this function's contract).
        unsafe { builder.spawn_unchecked(move |info| make.make(info), schedule_on(worker)) }
    })
}
