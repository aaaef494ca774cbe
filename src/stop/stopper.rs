//! The per-worker stopper, the kernel's `struct cpu_stopper`: a queue of
//! stop works that run before the worker's next task poll, and the
//! worker's lifecycle, kept together under one lock so that no request is
//! lost between them.
//!
//! # The lifecycle
//!
//! ```text
//!            park_worker                 worker acks           unpark_worker
//!   Online ─────────────▶ GoingOffline ─────────────▶ Offline ─────────────▶ Online
//!     │                        │                         │
//!     └──────── shutdown ──────┴──────────┬──────────────┘
//!                                         ▼
//!                                      Closing ──(worker exits)──▶ Closed
//!   any state ──(worker loop dies)──▶ Dead
//! ```
//!
//! Only `Online` takes works. A work is refused in every other state, with
//! [`StopError::Offline`] (going offline or offline), [`StopError::Shutdown`]
//! (closing or closed) or [`StopError::WorkerDied`]: refusal cancels the
//! work, so its owner learns at once. Works queued before a state change
//! stay and are flushed by the worker before it acts on it.
//!
//! # Who writes what
//!
//! | field | written by | under | read by |
//! |---|---|---|---|
//! | `inner.life`, `inner.works`, `inner.offline_waiters` | callers (queue, park, unpark, shutdown), the worker (pop, ack, exit, death) | `inner` | everyone, under `inner` |
//! | `life` (mirror of `inner.life`) | whoever changes `inner.life`, before unlocking | `inner` | anyone, lock-free (`is_online`) |
//! | `pending` (bits derived from `inner`, plus the `HINTS`) | whoever changes `inner`, before unlocking; `QUIESCE`: a grace period's waiter (set), the worker (clear); `RESUME`: a thread waking a task to resume first (set), the worker (clear) | `inner` (`HINTS`: none, atomic RMWs) | the worker, before every task poll (one load) |
//! | `running` | the worker | `running` | `stopper_info` |
//!
//! Apart from the `HINTS`, `pending` is recomputed from the state at every
//! change, never set or cleared on its own: a request cannot be lost by a drain that clears it,
//! and a state that needs the worker's attention keeps its bit until the
//! worker has acted on it.

use super::completion::Completion;
use super::work::StopWork;
use crate::error::StopError;
use crate::stats::StopKind;
use crate::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use crate::sync::{Arc, Mutex};
use std::collections::VecDeque;
use std::panic::Location;

/// Works are queued.
pub(crate) const WORK: u8 = 1;
/// The worker is asked to go offline.
pub(crate) const HOTPLUG: u8 = 2;
/// The worker is asked to exit.
pub(crate) const SHUTDOWN: u8 = 4;
/// A grace period waits for this worker: it reports a quiescent state at
/// its next poll boundary. Not derived from `inner`: set and cleared on its
/// own ([`Stopper::hint`], [`Stopper::take_hint`]), and
/// kept by [`publish`](Stopper::publish).
pub(crate) const QUIESCE: u8 = 8;
/// A task woken to resume first ([`wake_first`](crate::runtime::context::wake_first))
/// waits in the worker's remote queue: the worker takes it before its next
/// poll instead of at its next tick. Set and cleared on its own, like
/// `QUIESCE`.
pub(crate) const RESUME: u8 = 16;
/// The bits that ask the worker for something at its next poll boundary
/// and are not derived from `inner`.
pub(crate) const HINTS: u8 = QUIESCE | RESUME;

/// Where a worker is in its life; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Life {
    /// Runs tasks and takes stop works.
    Online = 0,
    /// Asked to go offline: takes no new works, flushes the queued ones,
    /// then acknowledges.
    GoingOffline = 1,
    /// Parked: runs no task and no work, does not turn its driver.
    Offline = 2,
    /// Shutting down: flushes its works, drops its tasks, exits.
    Closing = 3,
    /// Its thread has exited.
    Closed = 4,
    /// Its scheduler loop ended abnormally (a bug of ours).
    Dead = 5,
}

impl Life {
    fn from_u8(v: u8) -> Life {
        match v {
            0 => Life::Online,
            1 => Life::GoingOffline,
            2 => Life::Offline,
            3 => Life::Closing,
            4 => Life::Closed,
            _ => Life::Dead,
        }
    }

    /// Why a work is refused in this state, if it is.
    pub(crate) fn refusal(self) -> Option<StopError> {
        match self {
            Life::Online => None,
            Life::GoingOffline | Life::Offline => Some(StopError::Offline),
            Life::Closing | Life::Closed => Some(StopError::Shutdown),
            Life::Dead => Some(StopError::WorkerDied),
        }
    }

    /// Whether the worker has ended, for good.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Life::Closing | Life::Closed | Life::Dead)
    }
}

struct Inner {
    life: Life,
    /// Queued works with their sequence numbers, in queueing order.
    works: VecDeque<(u64, StopWork)>,
    /// The sequence number of the next work queued.
    next_seq: u64,
    /// `park_worker` calls waiting for the worker to be offline.
    offline_waiters: Vec<Arc<Completion>>,
}

/// A worker's queue of stop works and its lifecycle.
pub(crate) struct Stopper {
    /// What needs the worker's attention ([`WORK`], [`HOTPLUG`],
    /// [`SHUTDOWN`]): the one atomic load on the poll fast path.
    pending: AtomicU8,
    /// `inner.life`, for lock-free reads.
    life: AtomicU8,
    /// The sequence number of the last work that ended (written by the
    /// worker after each work; works end in queueing order).
    done_seq: AtomicU64,
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
/// let seen = rt.handle().stopper_info(0).unwrap().running;
/// assert!(seen.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningStop {
    /// The primitive that queued it.
    pub kind: StopKind,
    /// Where in the caller's source the stop was requested.
    pub caller: &'static Location<'static>,
}

impl Stopper {
    pub(crate) fn new() -> Stopper {
        Stopper {
            pending: AtomicU8::new(0),
            life: AtomicU8::new(Life::Online as u8),
            done_seq: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                life: Life::Online,
                works: VecDeque::new(),
                next_seq: 1,
                offline_waiters: Vec::new(),
            }),
            running: Mutex::new(None),
        }
    }

    /// What needs the worker's attention: checked before every task poll.
    #[inline]
    pub(crate) fn pending(&self) -> u8 {
        self.pending.load(Ordering::Acquire)
    }

    /// The worker's state, lock-free.
    pub(crate) fn life(&self) -> Life {
        Life::from_u8(self.life.load(Ordering::Acquire))
    }

    /// Whether the stopper takes works.
    pub(crate) fn is_online(&self) -> bool {
        self.life() == Life::Online
    }

    /// Publishes `inner`'s state to the lock-free mirrors. Called before
    /// every unlock that changed it.
    fn publish(&self, inner: &Inner) {
        let mut bits = 0;
        if !inner.works.is_empty() {
            bits |= WORK;
        }
        match inner.life {
            Life::GoingOffline => bits |= HOTPLUG,
            Life::Closing => bits |= SHUTDOWN,
            _ => {}
        }
        self.life.store(inner.life as u8, Ordering::Release);
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |old| {
                Some(bits | (old & HINTS))
            });
    }

    /// Sets one of the [`HINTS`] for the worker's next poll boundary
    /// (`QUIESCE`: a grace period waits for it; `RESUME`: a task to resume
    /// first waits in its remote queue); the caller notifies it.
    pub(crate) fn hint(&self, hint: u8) {
        debug_assert!(hint & !HINTS == 0, "not a hint: {hint}");
        self.pending.fetch_or(hint, Ordering::SeqCst);
    }

    /// The worker, at a poll boundary: whether `hint` was set, clearing it.
    pub(crate) fn take_hint(&self, hint: u8) -> bool {
        self.pending.fetch_and(!hint, Ordering::SeqCst) & hint != 0
    }

    /// Queues `work` if the worker is online; the caller wakes the worker.
    /// A refused work is cancelled (its owner completes its share at once),
    /// as `cpu_stop_queue_work` does.
    ///
    /// RETURNS: the work's sequence number, which [`done_seq`] reaches
    /// once it has ended.
    ///
    /// # Errors
    ///
    /// Why it was refused.
    ///
    /// [`done_seq`]: Stopper::done_seq
    pub(crate) fn queue(&self, work: StopWork) -> Result<u64, StopError> {
        let mut inner = self.inner.lock();
        if let Some(why) = inner.life.refusal() {
            drop(inner);
            work.cancel(why.clone());
            return Err(why);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.works.push_back((seq, work));
        self.publish(&inner);
        Ok(seq)
    }

    /// The sequence number of the last work that ended.
    pub(crate) fn done_seq(&self) -> u64 {
        self.done_seq.load(Ordering::Acquire)
    }

    /// Pops the oldest work.
    fn pop(&self) -> Option<(u64, StopWork)> {
        let mut inner = self.inner.lock();
        let work = inner.works.pop_front();
        if work.is_some() {
            self.publish(&inner);
        }
        work
    }

    /// Runs every queued work, in order, on the calling thread.
    pub(crate) fn run_pending(&self) {
        while let Some((seq, work)) = self.pop() {
            *self.running.lock() = Some(RunningStop {
                kind: work.kind,
                caller: work.caller,
            });
            work.run();
            *self.running.lock() = None;
            self.done_seq.store(seq, Ordering::Release);
        }
    }

    /// Runs `f` under the lock if the worker is online with no work queued,
    /// so that the decision cannot race a queueing (the claim of an idle
    /// worker).
    pub(crate) fn if_idle<R>(&self, f: impl FnOnce() -> Option<R>) -> Option<R> {
        let inner = self.inner.lock();
        if inner.works.is_empty() && inner.life == Life::Online {
            f()
        } else {
            None
        }
    }

    /// Hotplug: asks the worker to go offline; `ack` is signalled once it
    /// is (at once if it already is). The caller holds the queueing lock,
    /// so no multi-worker request is half-queued meanwhile.
    ///
    /// # Errors
    ///
    /// [`StopError::Shutdown`] or [`StopError::WorkerDied`] when the worker
    /// has ended.
    pub(crate) fn request_offline(&self, ack: &Arc<Completion>) -> Result<(), StopError> {
        let mut inner = self.inner.lock();
        match inner.life {
            Life::Online | Life::GoingOffline => {
                inner.life = Life::GoingOffline;
                inner.offline_waiters.push(ack.clone());
                self.publish(&inner);
                Ok(())
            }
            Life::Offline => {
                drop(inner);
                ack.signal();
                Ok(())
            }
            ended => Err(ended.refusal().expect("invariant: an ended worker refuses works")),
        }
    }

    /// The worker's side of going offline: once no work is left, becomes
    /// `Offline` and signals the waiters. Returns the state it is in then.
    pub(crate) fn ack_offline(&self) -> Life {
        let mut inner = self.inner.lock();
        if inner.life != Life::GoingOffline || !inner.works.is_empty() {
            return inner.life;
        }
        inner.life = Life::Offline;
        let waiters = std::mem::take(&mut inner.offline_waiters);
        self.publish(&inner);
        drop(inner);
        for w in waiters {
            w.signal();
        }
        Life::Offline
    }

    /// Hotplug: brings the worker back online. Returns whether the state
    /// changed (the caller then unparks the worker's thread).
    ///
    /// # Errors
    ///
    /// [`StopError::Shutdown`] or [`StopError::WorkerDied`] when the worker
    /// has ended.
    pub(crate) fn request_online(&self) -> Result<bool, StopError> {
        let mut inner = self.inner.lock();
        match inner.life {
            Life::Online => Ok(false),
            Life::GoingOffline | Life::Offline => {
                inner.life = Life::Online;
                // Only reachable through a park of the caller's own worker
                // that has not been acknowledged yet: it never will be.
                let waiters = std::mem::take(&mut inner.offline_waiters);
                self.publish(&inner);
                drop(inner);
                for w in waiters {
                    w.signal();
                }
                Ok(true)
            }
            ended => Err(ended.refusal().expect("invariant: an ended worker refuses works")),
        }
    }

    /// Shutdown: refuses every later work; the worker flushes the queued
    /// ones and exits. Offline waiters are released (they find the worker
    /// closing). Returns whether the state changed.
    pub(crate) fn close(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.life.is_final() {
            return false;
        }
        inner.life = Life::Closing;
        let waiters = std::mem::take(&mut inner.offline_waiters);
        self.publish(&inner);
        drop(inner);
        for w in waiters {
            w.signal();
        }
        true
    }

    /// The worker's last act: `Closed`, or `Dead` when its loop ended
    /// abnormally. Works still queued are cancelled with the matching
    /// error and offline waiters released.
    pub(crate) fn end(&self, died: bool) {
        let mut inner = self.inner.lock();
        inner.life = if died { Life::Dead } else { Life::Closed };
        let works = std::mem::take(&mut inner.works);
        let waiters = std::mem::take(&mut inner.offline_waiters);
        let why = inner
            .life
            .refusal()
            .expect("invariant: an ended worker refuses works");
        self.publish(&inner);
        drop(inner);
        for (seq, work) in works {
            work.cancel(why.clone());
            self.done_seq.store(seq, Ordering::Release);
        }
        for w in waiters {
            w.signal();
        }
    }

    /// The work running now.
    pub(crate) fn running(&self) -> Option<RunningStop> {
        *self.running.lock()
    }

    /// How many works wait.
    pub(crate) fn queued(&self) -> usize {
        self.inner.lock().works.len()
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("life", &self.life())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "tests/stopper.rs"]
mod tests;
