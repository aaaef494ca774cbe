//! A worker: one OS thread, its run queues, its stopper, and the handshake
//! that lets a stop count it as stopped while it sleeps in its driver.

use super::context;
use super::idle::IdleState;
use super::task::TaskInfo;
use crate::completion::Completion;
use crate::stopper::Stopper;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use crate::sync::thread::Thread;
use crate::sync::{Arc, Mutex, lock};
use async_task::Runnable;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::OnceLock;
use std::task::Waker;

/// The tasks that live on a worker, so that shutdown can drop every one of
/// them, idle ones included, on the worker's own thread.
struct Registry {
    closed: bool,
    tasks: HashMap<u64, Waker, BuildHasherDefault<IdHasher>>,
}

/// Task ids are unique counters: they are their own hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// The state of one worker shared with every other thread.
pub(crate) struct Worker {
    pub(crate) index: usize,
    /// The OS CPU the worker is pinned to, if any.
    pub(crate) cpu: Option<usize>,
    pub(crate) stopper: Stopper,
    remote: Mutex<VecDeque<Runnable<TaskInfo>>>,
    /// Whether `remote` may hold tasks: lets the scheduler skip the lock.
    remote_pending: AtomicBool,
    /// Set by whoever wakes the scheduler loop, cleared by the loop before
    /// it drains its queues: one wake-up per tick at most.
    notified: AtomicBool,
    /// The scheduler loop's tokio task waker, which never changes: set at
    /// its first poll and woken by reference, with no per-tick registration.
    waker: OnceLock<Waker>,
    idle: IdleState,
    /// The thread is blocked in a stop call or offline and must be
    /// unparked, not just notified, when work arrives.
    blocking: AtomicBool,
    pub(crate) thread: OnceLock<Thread>,
    pub(crate) shutdown: AtomicBool,
    /// Hotplug: the worker should go (or stay) offline.
    pub(crate) want_offline: AtomicBool,
    /// Signalled once the worker has flushed its stopper and gone offline.
    pub(crate) offline_ack: Mutex<Option<Arc<Completion>>>,
    registry: Mutex<Registry>,
    /// The id of the task being polled, 0 when none: names the culprit when
    /// a stop waits for this worker.
    pub(crate) current_task: AtomicU64,
    current_location: AtomicPtr<Location<'static>>,
    /// Counts polls; only the worker writes it. Two equal readings around a
    /// wait mean one poll spanned it.
    poll_seq: AtomicU64,
    /// Returns from the driver, for [`StopperInfo::wakeups`](crate::StopperInfo).
    pub(crate) wakeups: AtomicU64,
}

impl Worker {
    pub(crate) fn new(index: usize, cpu: Option<usize>) -> Worker {
        Worker {
            index,
            cpu,
            stopper: Stopper::new(),
            remote: Mutex::new(VecDeque::new()),
            remote_pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            waker: OnceLock::new(),
            idle: IdleState::new(),
            blocking: AtomicBool::new(false),
            thread: OnceLock::new(),
            shutdown: AtomicBool::new(false),
            want_offline: AtomicBool::new(false),
            offline_ack: Mutex::new(None),
            registry: Mutex::new(Registry {
                closed: false,
                tasks: HashMap::default(),
            }),
            current_task: AtomicU64::new(0),
            current_location: AtomicPtr::new(std::ptr::null_mut()),
            poll_seq: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Where a task's waker sends it: the local queue when woken on this
    /// worker's thread, the remote queue (and a wake-up) otherwise.
    pub(crate) fn schedule(self: &Arc<Self>, runnable: Runnable<TaskInfo>) {
        let runnable = context::with(|local| match local {
            Some(local) if Arc::ptr_eq(&local.worker, self) => {
                local.queue.borrow_mut().push_back(runnable);
                if !local.in_tick.get() {
                    self.notify();
                }
                None
            }
            _ => Some(runnable),
        });
        if let Some(runnable) = runnable {
            let mut remote = lock(&self.remote);
            remote.push_back(runnable);
            self.remote_pending.store(true, Ordering::Release);
            drop(remote);
            self.notify();
        }
    }

    /// Registers a freshly spawned task and schedules it, or drops it at
    /// once when the worker has shut down (its handle then reports
    /// cancellation).
    pub(crate) fn adopt(self: &Arc<Self>, id: u64, runnable: Runnable<TaskInfo>) {
        let mut registry = lock(&self.registry);
        if registry.closed {
            drop(registry);
            drop(runnable);
            return;
        }
        registry.tasks.insert(id, runnable.waker());
        drop(registry);
        runnable.schedule();
    }

    pub(crate) fn forget_task(&self, id: u64) {
        lock(&self.registry).tasks.remove(&id);
    }

    /// Closes the registry and wakes every live task, so that the caller's
    /// drain of the queues drops them all.
    pub(crate) fn close_registry(&self) {
        let tasks = {
            let mut registry = lock(&self.registry);
            registry.closed = true;
            std::mem::take(&mut registry.tasks)
        };
        for waker in tasks.into_values() {
            waker.wake();
        }
    }

    /// Moves every remotely scheduled task to the local queue.
    pub(crate) fn take_remote(&self, local: &mut VecDeque<Runnable<TaskInfo>>) {
        if !self.has_remote() {
            return;
        }
        let mut remote = lock(&self.remote);
        self.remote_pending.store(false, Ordering::Relaxed);
        if local.is_empty() {
            std::mem::swap(&mut *remote, local);
        } else {
            local.extend(remote.drain(..));
        }
    }

    /// Whether work for this worker's scheduler may be queued remotely: one
    /// atomic load, the flag being set under the queue's lock after a push.
    pub(crate) fn has_remote(&self) -> bool {
        self.remote_pending.load(Ordering::Acquire)
    }

    /// Called by the scheduler loop at the start of each tick.
    pub(crate) fn begin_tick(&self, waker: &Waker) {
        // Set before clearing `notified`: a notifier that sees the flag
        // clear also sees the waker.
        let registered = self.waker.get_or_init(|| waker.clone());
        debug_assert!(registered.will_wake(waker), "the scheduler loop's waker changed");
        self.notified.store(false, Ordering::SeqCst);
    }

    /// Makes sure the worker looks at its queues and stopper soon.
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, Ordering::SeqCst)
            && let Some(waker) = self.waker.get()
        {
            waker.wake_by_ref();
        }
        if self.blocking.load(Ordering::SeqCst) {
            self.unpark_thread();
        }
    }

    pub(crate) fn unpark_thread(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Runs `wait` with the thread marked as blocking, so that `notify`
    /// unparks it; `wait` must re-check its condition before each park.
    pub(crate) fn blocking<R>(&self, wait: impl FnOnce() -> R) -> R {
        struct Unmark<'a>(&'a AtomicBool);
        impl Drop for Unmark<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        self.blocking.store(true, Ordering::SeqCst);
        let _unmark = Unmark(&self.blocking);
        wait()
    }

    /// tokio's `on_thread_park`: the worker is about to sleep in its driver.
    pub(crate) fn before_park(&self) {
        self.idle.before_park();
    }

    /// tokio's `on_thread_unpark`: runs after the driver returns and before
    /// any task; a claimed worker waits here until its stop is over.
    pub(crate) fn after_unpark(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        self.idle.after_unpark(std::thread::park);
    }

    /// Counts the worker as stopped without waking it, if it sleeps in its
    /// driver with no stop work queued. The queue is checked under the
    /// stopper's lock so that a work queued concurrently either prevents the
    /// claim or is queued after it (and then runs after the stop).
    pub(crate) fn try_claim(&self) -> bool {
        self.stopper
            .if_idle(|| self.idle.try_claim().then_some(()))
            .is_some()
    }

    /// Ends a claim: the worker may run again.
    pub(crate) fn release(&self) {
        self.idle.release();
        self.unpark_thread();
    }

    /// Records the task about to be polled (`None`: between polls).
    #[inline]
    pub(crate) fn set_polling(&self, task: Option<&TaskInfo>) {
        let (id, at) = task.map_or((0, std::ptr::null_mut()), |t| {
            (t.id, t.location as *const _ as *mut _)
        });
        self.current_location.store(at, Ordering::Relaxed);
        self.current_task.store(id, Ordering::Release);
        // Single writer: a load and a store, no locked instruction.
        self.poll_seq
            .store(self.poll_seq.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// The poll counter, for [`polling`](Self::polling) comparisons.
    pub(crate) fn poll_seq(&self) -> u64 {
        self.poll_seq.load(Ordering::Acquire)
    }

    /// The task being polled now, if any: its id and spawn location.
    pub(crate) fn polling(&self) -> Option<(u64, &'static Location<'static>)> {
        // The two loads may straddle a task switch and pair one task's id
        // with the next one's location: acceptable for a diagnostic.
        let id = self.current_task.load(Ordering::Acquire);
        let at = self.current_location.load(Ordering::Relaxed);
        if id == 0 {
            return None;
        }
        // SAFETY: the pointer is null or was made from a `&'static Location`.
        unsafe { at.as_ref() }.map(|at| (id, at))
    }

    /// Whether the worker sleeps in its driver, claimed or not.
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.is_idle()
    }

    /// Whether the worker is online (its stopper takes works).
    pub(crate) fn is_online(&self) -> bool {
        self.stopper.is_enabled()
    }
}
