//! The per-worker stopper: a queue of stop works that run before the
//! worker's next task poll, the kernel's `struct cpu_stopper`.

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Mutex, lock};
use std::collections::VecDeque;
use std::panic::Location;

/// One unit of work for a stopper: the kernel's `struct cpu_stop_work`.
///
/// The closure owns everything it needs (its completion included), so a
/// caller that drops its future mid-stop cannot leave a worker holding a
/// dangling request.
pub(crate) struct StopWork {
    run: Box<dyn FnOnce() + Send>,
    /// What and who queued it, for [`StopperInfo`](crate::StopperInfo).
    pub(crate) kind: &'static str,
    pub(crate) caller: &'static Location<'static>,
}

impl StopWork {
    pub(crate) fn new(
        kind: &'static str,
        caller: &'static Location<'static>,
        run: impl FnOnce() + Send + 'static,
    ) -> StopWork {
        StopWork {
            run: Box::new(run),
            kind,
            caller,
        }
    }
}

/// Why a work was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The worker is parked (hotplug): the kernel's disabled stopper.
    Offline,
    /// The runtime is shutting down.
    Shutdown,
}

struct Inner {
    enabled: bool,
    closed: bool,
    works: VecDeque<StopWork>,
}

/// A worker's queue of stop works and the flag its scheduler tests before
/// every task poll.
pub(crate) struct Stopper {
    /// Set while works are queued: the one atomic load on the poll fast path.
    pending: AtomicBool,
    inner: Mutex<Inner>,
}

impl Stopper {
    pub(crate) fn new() -> Stopper {
        Stopper {
            pending: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                enabled: true,
                closed: false,
                works: VecDeque::new(),
            }),
        }
    }

    /// Whether works are waiting: checked before every task poll.
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Queues `work` unless the stopper is disabled; the caller wakes the
    /// worker. On refusal the work is handed back so its owner can complete
    /// its share at once, as `cpu_stop_queue_work` does.
    pub(crate) fn queue(&self, work: StopWork) -> Result<(), (Refused, StopWork)> {
        let mut inner = lock(&self.inner);
        if inner.closed {
            return Err((Refused::Shutdown, work));
        }
        if !inner.enabled {
            return Err((Refused::Offline, work));
        }
        inner.works.push_back(work);
        self.pending.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Makes the worker take its slow path at the next poll boundary without
    /// queueing a work: how hotplug and shutdown requests get its attention.
    pub(crate) fn poke(&self) {
        self.pending.store(true, Ordering::SeqCst);
    }

    /// Whether the stopper accepts works (the worker is online).
    pub(crate) fn is_enabled(&self) -> bool {
        let inner = lock(&self.inner);
        inner.enabled && !inner.closed
    }

    /// Enables or disables the stopper (hotplug). Works already queued stay
    /// and are flushed by the worker before it goes offline.
    pub(crate) fn set_enabled(&self, enabled: bool) {
        lock(&self.inner).enabled = enabled;
    }

    /// Refuses every later work with [`Refused::Shutdown`].
    pub(crate) fn close(&self) {
        lock(&self.inner).closed = true;
    }

    /// Runs `f` with the lock held if no work is queued, so that the decision
    /// cannot race a queueing (the claim of an idle worker).
    pub(crate) fn if_idle<R>(&self, f: impl FnOnce() -> Option<R>) -> Option<R> {
        let inner = lock(&self.inner);
        if inner.works.is_empty() && inner.enabled && !inner.closed {
            f()
        } else {
            None
        }
    }

    /// Pops the oldest work, clearing the pending flag when none is left.
    pub(crate) fn pop(&self) -> Option<StopWork> {
        let mut inner = lock(&self.inner);
        let work = inner.works.pop_front();
        if inner.works.is_empty() {
            self.pending.store(false, Ordering::SeqCst);
        }
        work
    }

    /// Runs every queued work, in order, on the calling thread.
    pub(crate) fn run_pending(&self, mut before_each: impl FnMut(&StopWork)) {
        while let Some(work) = self.pop() {
            before_each(&work);
            (work.run)();
        }
    }
}
