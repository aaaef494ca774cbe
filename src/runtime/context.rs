//! What the current thread is: one of our workers (and which), inside a
//! stop function, or neither; and where a woken task goes from here.

use super::shared::Shared;
use super::task::TaskInfo;
use super::worker::Worker;
use async_task::Runnable;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// The worker-thread-only half of a worker: its local run queue.
pub(crate) struct LocalWorker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker: Arc<Worker>,
    pub(crate) queue: RefCell<VecDeque<Runnable<TaskInfo>>>,
    /// True while the scheduler tick runs: a task woken then is picked up by
    /// the same tick, so scheduling it needs no wake-up of the loop.
    pub(crate) in_tick: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<LocalWorker>>> = const { RefCell::new(None) };
    static IN_STOPPER: Cell<bool> = const { Cell::new(false) };
}

/// Makes the current thread a worker (or, with `None`, no longer one).
pub(crate) fn set(local: Option<Rc<LocalWorker>>) {
    CURRENT.with(|c| *c.borrow_mut() = local);
}

/// Calls `f` with the current worker, if this thread is one.
///
/// The thread-local is only borrowed mutably by [`set`], at the start and
/// end of a worker thread, so the shared borrow held across `f` (which may
/// call back in here) never conflicts.
pub(crate) fn with<R>(f: impl FnOnce(Option<&LocalWorker>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT.try_with(|c| (f.take().expect("invariant: called once"))(c.borrow().as_deref())) {
        Ok(r) => r,
        // The thread-local is gone (thread exit): not a worker any more.
        Err(_) => (f.take().expect("invariant: not called yet"))(None),
    }
}

/// The current worker's runtime and index.
pub(crate) fn current() -> Option<(Arc<Shared>, usize)> {
    with(|l| l.map(|l| (l.shared.clone(), l.worker.index)))
}

/// The current worker, if this thread is a worker of `shared`.
pub(crate) fn current_worker_of(shared: &Shared) -> Option<Arc<Worker>> {
    with(|l| {
        l.filter(|l| std::ptr::eq(Arc::as_ptr(&l.shared), shared))
            .map(|l| l.worker.clone())
    })
}

/// Where a task's waker sends it: the local queue when woken on its own
/// worker's thread, the remote queue (and a wake-up) otherwise.
pub(crate) fn schedule(worker: &Arc<Worker>, runnable: Runnable<TaskInfo>) {
    let runnable = with(|local| match local {
        Some(local) if Arc::ptr_eq(&local.worker, worker) => {
            local.queue.borrow_mut().push_back(runnable);
            if !local.in_tick.get() {
                worker.notify();
            }
            None
        }
        _ => Some(runnable),
    });
    if let Some(runnable) = runnable {
        worker.push_remote(runnable);
    }
}

/// Whether this thread is running a stop function right now.
pub(crate) fn in_stopper() -> bool {
    IN_STOPPER.try_with(Cell::get).unwrap_or(false)
}

/// Marks the current thread as running stop works until dropped.
pub(crate) struct StopperGuard {
    was: bool,
}

impl StopperGuard {
    pub(crate) fn enter() -> StopperGuard {
        StopperGuard {
            was: IN_STOPPER.with(|c| c.replace(true)),
        }
    }
}

impl Drop for StopperGuard {
    fn drop(&mut self) {
        IN_STOPPER.with(|c| c.set(self.was));
    }
}
