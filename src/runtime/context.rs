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
use std::task::Waker;

/// The worker-thread-only half of a worker: its local run queue.
pub(crate) struct LocalWorker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker: Arc<Worker>,
    pub(crate) queue: RefCell<VecDeque<Runnable<TaskInfo>>>,
    /// True while the scheduler tick runs: a task woken then is picked up by
    /// the same tick, so scheduling it needs no wake-up of the loop.
    pub(crate) in_tick: Cell<bool>,
    /// True while the scheduler polls one of its tasks.
    pub(crate) in_poll: Cell<bool>,
    /// A poll of this worker left stop records for later
    /// ([`Recorder::record_later`](crate::stats::Recorder::record_later)):
    /// the scheduler runs them once the poll returns.
    pub(crate) records_waiting: Cell<bool>,
}

impl LocalWorker {
    pub(crate) fn new(shared: Arc<Shared>, worker: Arc<Worker>) -> LocalWorker {
        LocalWorker {
            shared,
            worker,
            queue: RefCell::new(VecDeque::new()),
            in_tick: Cell::new(false),
            in_poll: Cell::new(false),
            records_waiting: Cell::new(false),
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<LocalWorker>>> = const { RefCell::new(None) };
    static IN_STOPPER: Cell<bool> = const { Cell::new(false) };
    /// The runtime this thread is a worker of (null: none), for checks on
    /// read fast paths that cannot afford `CURRENT`'s borrow.
    static WORKER_OF: Cell<(*const Shared, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    /// `WORKER_OF` while the worker is quiescent ([`quiesce`]).
    static QUIESCED: Cell<(*const Shared, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    /// Inside a stop function that holds a
    /// [`StoppedWorld`](crate::StoppedWorld) ([`HOLDS_WORLD`]) or one
    /// worker's `WorkerLocal` slot mutably ([`HOLDS_SLOT`]).
    static HOLDING: Cell<u8> = const { Cell::new(0) };
    /// Set by [`wake_first`] around its wake: the next task scheduled from
    /// this thread goes ahead of its worker's queue.
    static WAKE_FIRST: Cell<bool> = const { Cell::new(false) };
}

/// Makes the current thread a worker (or, with `None`, no longer one).
pub(crate) fn set(local: Option<Rc<LocalWorker>>) {
    let of = local.as_ref().map_or((std::ptr::null(), 0), |l| {
        (Arc::as_ptr(&l.shared), l.worker.index)
    });
    WORKER_OF.with(|w| w.set(of));
    CURRENT.with(|c| *c.borrow_mut() = local);
}

/// The worker's thread is about to be counted quiescent (parked in its
/// driver, offline): until [`unquiesce`], code that runs on it anyway (a
/// waker called by tokio's driver or by a grace period) reads as an
/// outside thread, not as the worker, so no read of it can be counted
/// finished while still running.
pub(crate) fn quiesce() {
    let of = WORKER_OF.with(|w| w.replace((std::ptr::null(), 0)));
    QUIESCED.with(|q| q.set(of));
}

/// The worker's thread is no longer quiescent: it reads as the worker again.
pub(crate) fn unquiesce() {
    let of = QUIESCED.with(|q| q.replace((std::ptr::null(), 0)));
    if !of.0.is_null() {
        WORKER_OF.with(|w| w.set(of));
    }
}

/// Whether this thread is one of `shared`'s workers: one thread-local load.
#[inline]
pub(crate) fn is_worker_of(shared: &Shared) -> bool {
    worker_index_of(shared).is_some()
}

/// Which of `shared`'s workers this thread is, if any: one thread-local load.
#[inline]
pub(crate) fn worker_index_of(shared: &Shared) -> Option<usize> {
    WORKER_OF
        .try_with(|w| w.get())
        .ok()
        .filter(|(of, _)| std::ptr::eq(*of, shared))
        .map(|(_, index)| index)
}

/// A `stop_machine_once` function: it may write any `StopCell` or slot.
pub(crate) const HOLDS_WORLD: u8 = 1;
/// A `WorkerLocal::stop_each` function: it holds its worker's slot.
pub(crate) const HOLDS_SLOT: u8 = 2;

/// Whether this thread runs a stop function that holds any of `what`.
#[inline]
pub(crate) fn holding(what: u8) -> bool {
    HOLDING.try_with(|h| h.get() & what != 0).unwrap_or(false)
}

/// Marks the current thread as holding `what` until dropped.
pub(crate) struct HoldGuard(u8);

impl HoldGuard {
    pub(crate) fn enter(what: u8) -> HoldGuard {
        HoldGuard(HOLDING.with(|h| h.replace(h.get() | what)))
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        HOLDING.with(|h| h.set(self.0));
    }
}

/// One poll of one worker of one runtime: the runtime's address, the
/// worker's index and its poll number (which never repeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollId {
    runtime: usize,
    pub(crate) worker: usize,
    seq: u64,
}

fn poll_of(local: &LocalWorker) -> Option<PollId> {
    local.in_poll.get().then(|| PollId {
        runtime: Arc::as_ptr(&local.shared) as usize,
        worker: local.worker.index,
        seq: local.worker.poll_seq(),
    })
}

/// The poll this thread is in, when it is one of `shared`'s workers
/// polling one of its tasks.
pub(crate) fn current_poll(shared: &Shared) -> Option<PollId> {
    with(|local| local.and_then(poll_of)).filter(|p| p.runtime == std::ptr::from_ref(shared) as usize)
}

/// Whether this thread is still in the poll `poll` ([`current_poll`]); if
/// so, notes that the poll leaves records for the scheduler to make once
/// it returns ([`LocalWorker::records_waiting`]).
pub(crate) fn defer_past_poll(poll: PollId) -> bool {
    with(|local| {
        local
            .filter(|l| poll_of(l) == Some(poll))
            .map(|l| l.records_waiting.set(true))
            .is_some()
    })
}

/// Takes this thread's note that its poll left records, with its worker's
/// index.
pub(crate) fn take_records_waiting() -> Option<usize> {
    with(|local| {
        local
            .filter(|l| l.records_waiting.replace(false))
            .map(|l| l.worker.index)
    })
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

/// Wakes `waker`; if it is one of our tasks, the task runs before the
/// others queued on its worker, and a worker busy with a tick takes it
/// before its next poll rather than at the next tick. For a waiter whose
/// wait has just ended (a grace period, a stop it did not take part in):
/// as a stop's inline caller does, it resumes first, not behind every
/// task its worker has queued meanwhile.
pub(crate) fn wake_first(waker: Waker) {
    WAKE_FIRST.with(|f| f.set(true));
    waker.wake();
    // A waker that scheduled nothing (the task was running, or is not
    // ours) leaves the flag for no one else.
    WAKE_FIRST.with(|f| f.set(false));
}

/// Where a task's waker sends it: the local queue when woken on its own
/// worker's thread, the remote queue (and a wake-up) otherwise; ahead of
/// either inside [`wake_first`].
pub(crate) fn schedule(worker: &Arc<Worker>, runnable: Runnable<TaskInfo>) {
    let first = WAKE_FIRST.try_with(|f| f.replace(false)).unwrap_or(false);
    let runnable = with(|local| match local {
        Some(local) if Arc::ptr_eq(&local.worker, worker) => {
            let mut queue = local.queue.borrow_mut();
            if first {
                queue.push_front(runnable);
            } else {
                queue.push_back(runnable);
            }
            drop(queue);
            if !local.in_tick.get() {
                worker.notify();
            }
            None
        }
        _ => Some(runnable),
    });
    if let Some(runnable) = runnable {
        worker.push_remote(runnable, first);
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
