//! The per-worker stopper: a queue of stop works that run before the
//! worker's next task poll, the kernel's `struct cpu_stopper`.

use crate::error::StopError;
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

impl From<Refused> for StopError {
    fn from(r: Refused) -> StopError {
        match r {
            Refused::Offline => StopError::Offline,
            Refused::Shutdown => StopError::Shutdown,
        }
    }
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
    /// The work running now, for [`StopperInfo`].
    running: Mutex<Option<RunningStop>>,
}

/// The stop work a worker's stopper is running.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// let h = rt.handle().clone();
/// let seen = rt.handle().stopper_info(0).unwrap().running;
/// assert!(seen.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningStop {
    /// The primitive that queued it: `"stop_machine"`, `"stop_cpus"`, ...
    pub kind: &'static str,
    /// Where in the caller's source the stop was requested.
    pub caller: &'static Location<'static>,
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
    pub polling: Option<(u64, &'static Location<'static>)>,
    /// Stop works queued behind it.
    pub queued: usize,
    /// How often it has woken from its driver since the runtime started.
    pub wakeups: u64,
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
            running: Mutex::new(None),
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
    pub(crate) fn run_pending(&self) {
        while let Some(work) = self.pop() {
            *lock(&self.running) = Some(RunningStop {
                kind: work.kind,
                caller: work.caller,
            });
            (work.run)();
            *lock(&self.running) = None;
        }
    }

    /// The work running now.
    pub(crate) fn running(&self) -> Option<RunningStop> {
        *lock(&self.running)
    }

    /// How many works wait.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.inner).works.len()
    }
}

#[cfg(all(test, stop_machine_loom))]
#[path = "loom/stopper.rs"]
mod loom_tests;
