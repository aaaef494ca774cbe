//! One worker's state shared with every other thread: its stopper, its
//! remote run queue, its idle handshake, its task registry, and what it is
//! polling.
//!
//! # Who wakes whom
//!
//! A worker sleeps in one of five places; each has one way in and one way
//! out, and every request that can arrive while it sleeps there wakes it.
//!
//! | where it sleeps | how it is woken | by whom |
//! |---|---|---|
//! | tokio's driver (idle, between ticks) | its loop task's waker ([`Worker::notify`]) | a remote spawn or wake, a queued stop work, park, shutdown |
//! | `on_thread_unpark`, claimed by a stop | thread unpark ([`Worker::release`]) | the last worker leaving that stop |
//! | offline (`service::go_offline`) | thread unpark | `unpark_worker`, shutdown |
//! | a blocking stop call (`service::block_on_servicing`) | thread unpark ([`Worker::notify`] while `blocking`) | the call's own progress, a queued stop work, park |
//! | waiting in a multi-worker stop (`MultiStop::participate`) | thread unpark | the worker that moves the stop to its next state |
//!
//! Every place but the claimed one serves the stopper before it sleeps
//! again: runs the queued works and acts on park and shutdown requests
//! (`service.rs`). A claimed worker is part of a stop and runs nothing
//! until that stop ends; hotplug cannot happen meanwhile (it waits for the
//! stop lock), and works queued to it run once it is released.
//!
//! # Fields and their writers
//!
//! Fields are grouped by who writes them, each group on its own cache line,
//! so that the worker's per-poll writes do not contend with the queues and
//! flags other threads write:
//!
//! | group | written by | read by |
//! |---|---|---|
//! | `poll` (task id, location, poll count) | the worker, every poll | stops naming stragglers, `stopper_info` |
//! | `inbox` (remote queue, its hint, `notified`) | any thread scheduling a task or notifying | the worker, every tick, and at its next poll boundary for a task to resume first (the stopper's `RESUME` bit) |
//! | `stopper` | callers of stops and hotplug, the worker | the worker, before every poll |
//! | `idle` | the worker (park/unpark), stops (claim/release) | both |

use super::idle::IdleState;
use super::priority::Priority;
use super::task::{TaskId, TaskInfo};
use crate::stop::stopper::{RESUME, Stopper};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::sync::thread::Thread;
use async_task::Runnable;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::panic::Location;
use std::sync::OnceLock;
use std::task::Waker;

/// The tasks that live on a worker, so that shutdown can drop every one of
/// them, idle ones included, on the worker's own thread.
#[derive(Debug, Default)]
struct Registry {
    closed: bool,
    /// Each live task's waker.
    tasks: slab::Slab<Waker>,
}

/// What the worker is polling: written on every poll by the worker alone.
#[derive(Debug)]
struct PollRecord {
    /// The id of the task being polled, 0 when none.
    task: AtomicU64,
    location: AtomicPtr<Location<'static>>,
    /// Counts polls. Two equal readings around a wait mean one poll spanned
    /// it.
    seq: AtomicU64,
}

/// How other threads hand the worker tasks and wake it.
#[derive(Debug)]
struct Inbox {
    remote: Mutex<RemoteQueue>,
    /// Whether `remote` may hold tasks: lets the scheduler skip the lock.
    remote_pending: AtomicBool,
    /// Set by whoever wakes the scheduler loop, cleared by the loop before
    /// it drains its queues: one wake-up per tick at most.
    notified: AtomicBool,
    /// The thread is blocked in a stop call or offline and must be
    /// unparked, not just notified, when work arrives.
    blocking: AtomicBool,
}

/// Tasks woken on other threads, for the worker to take.
#[derive(Debug, Default)]
struct RemoteQueue {
    tasks: VecDeque<Runnable<TaskInfo>>,
    /// How many at the front were woken to resume first.
    first: usize,
}

/// The state of one worker shared with every other thread.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) index: usize,
    /// The OS CPU the worker is pinned to, if any.
    pub(crate) cpu: Option<usize>,
    /// The other workers pinned to the same CPU.
    pub(crate) siblings: Vec<usize>,
    poll: CachePadded<PollRecord>,
    inbox: CachePadded<Inbox>,
    pub(crate) stopper: CachePadded<Stopper>,
    idle: CachePadded<IdleState>,
    /// Its thread's OS scheduling policy, raised while a stop waits for it.
    pub(crate) priority: Priority,
    /// The scheduler loop's tokio task waker, which never changes: set at
    /// its first poll and woken by reference, with no per-tick registration.
    waker: OnceLock<Waker>,
    pub(crate) thread: OnceLock<Thread>,
    registry: Mutex<Registry>,
    /// The registry's length, stored under its lock on every change, read
    /// by [`SpawnPolicy::LeastLoaded`](crate::SpawnPolicy) without it.
    live_hint: AtomicUsize,
    /// Why the worker's loop died, if it did.
    death: Mutex<Option<String>>,
    /// Returns from the driver, for [`StopperInfo::wakeups`](crate::StopperInfo).
    pub(crate) wakeups: AtomicU64,
}

impl Worker {
    pub(crate) fn new(index: usize, cpu: Option<usize>, siblings: Vec<usize>) -> Worker {
        Worker {
            index,
            cpu,
            siblings,
            poll: CachePadded::new(PollRecord {
                task: AtomicU64::new(0),
                location: AtomicPtr::new(std::ptr::null_mut()),
                seq: AtomicU64::new(0),
            }),
            inbox: CachePadded::new(Inbox {
                remote: Mutex::new(RemoteQueue::default()),
                remote_pending: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                blocking: AtomicBool::new(false),
            }),
            stopper: CachePadded::new(Stopper::new()),
            idle: CachePadded::new(IdleState::new()),
            priority: Priority::default(),
            waker: OnceLock::new(),
            thread: OnceLock::new(),
            registry: Mutex::new(Registry::default()),
            live_hint: AtomicUsize::new(0),
            death: Mutex::new(None),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Whether the worker is pinned to a CPU no other worker is pinned to.
    pub(crate) fn has_cpu_alone(&self) -> bool {
        self.cpu.is_some() && self.siblings.is_empty()
    }

    /// Queues a task woken off the worker's thread, and wakes the worker;
    /// with `first`, ahead of the queue, taken at its next poll boundary.
    pub(crate) fn push_remote(&self, runnable: Runnable<TaskInfo>, first: bool) {
        let mut remote = self.inbox.remote.lock();
        if first {
            let at = remote.first;
            remote.tasks.insert(at, runnable);
            remote.first += 1;
            self.stopper.hint(RESUME);
        } else {
            remote.tasks.push_back(runnable);
        }
        self.inbox.remote_pending.store(true, Ordering::Release);
        drop(remote);
        self.notify();
    }

    /// Registers a freshly spawned task by its waker; `None` once the
    /// worker has shut down (the task is then dropped unrun).
    pub(crate) fn register_task(&self, waker: Waker) -> Option<usize> {
        let mut registry = self.registry.lock();
        let key = (!registry.closed).then(|| registry.tasks.insert(waker));
        self.live_hint.store(registry.tasks.len(), Ordering::Relaxed);
        key
    }

    /// The task at `key` has been dropped.
    pub(crate) fn forget_task(&self, key: usize) {
        let mut registry = self.registry.lock();
        registry.tasks.try_remove(key);
        self.live_hint.store(registry.tasks.len(), Ordering::Relaxed);
    }

    /// Closes the registry and wakes every live task, so that the worker's
    /// drain of its queues drops them all. Returns how many were alive.
    pub(crate) fn close_registry(&self) -> usize {
        let (wakers, live) = {
            let mut registry = self.registry.lock();
            registry.closed = true;
            let wakers: Vec<Waker> = registry.tasks.iter().map(|(_, w)| w.clone()).collect();
            (wakers, registry.tasks.len())
        };
        for waker in wakers {
            waker.wake();
        }
        live
    }

    /// About how many tasks are alive on this worker, without its lock:
    /// for placing new ones.
    pub(crate) fn live_tasks_hint(&self) -> usize {
        self.live_hint.load(Ordering::Relaxed)
    }

    /// How many tasks are still alive on this worker.
    pub(crate) fn live_tasks(&self) -> usize {
        self.registry.lock().tasks.len()
    }

    /// Moves every remotely scheduled task to the local queue.
    pub(crate) fn take_remote(&self, local: &mut VecDeque<Runnable<TaskInfo>>) {
        if !self.has_remote() {
            return;
        }
        let mut remote = self.inbox.remote.lock();
        self.inbox.remote_pending.store(false, Ordering::Relaxed);
        let first = std::mem::take(&mut remote.first);
        if local.is_empty() {
            std::mem::swap(&mut remote.tasks, local);
        } else {
            // The ones to resume first keep their order, ahead of the rest.
            for runnable in remote.tasks.drain(..first).rev() {
                local.push_front(runnable);
            }
            local.extend(remote.tasks.drain(..));
        }
    }

    /// Whether work for this worker's scheduler may be queued remotely: one
    /// atomic load, the flag being set under the queue's lock after a push.
    pub(crate) fn has_remote(&self) -> bool {
        self.inbox.remote_pending.load(Ordering::Acquire)
    }

    /// Called by the scheduler loop at the start of each tick.
    pub(crate) fn begin_tick(&self, waker: &Waker) {
        // Set before clearing `notified`: a notifier that sees the flag
        // clear also sees the waker.
        let registered = self.waker.get_or_init(|| waker.clone());
        debug_assert!(registered.will_wake(waker), "the scheduler loop's waker changed");
        self.inbox.notified.store(false, Ordering::SeqCst);
    }

    /// Makes sure the worker looks at its queues and stopper soon.
    pub(crate) fn notify(&self) {
        if !self.inbox.notified.swap(true, Ordering::SeqCst)
            && let Some(waker) = self.waker.get()
        {
            waker.wake_by_ref();
        }
        if self.inbox.blocking.load(Ordering::SeqCst) {
            self.unpark_thread();
        }
    }

    /// Wakes the worker's thread wherever it sleeps outside its driver.
    pub(crate) fn unpark_thread(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Runs `wait` with the thread marked as blocking, so that `notify`
    /// unparks it; `wait` must re-check its condition before each park.
    pub(crate) fn blocking<R>(&self, wait: impl FnOnce() -> R) -> R {
        struct Unmark<'a>(&'a AtomicBool, bool);
        impl Drop for Unmark<'_> {
            fn drop(&mut self) {
                self.0.store(self.1, Ordering::SeqCst);
            }
        }
        let was = self.inbox.blocking.swap(true, Ordering::SeqCst);
        let _unmark = Unmark(&self.inbox.blocking, was);
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
        crate::rcu::grace::GracePeriods::woken();
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
            (t.id.as_u64(), t.location as *const _ as *mut _)
        });
        let poll = &self.poll;
        poll.location.store(at, Ordering::Relaxed);
        poll.task.store(id, Ordering::Release);
        // Single writer: a load and a store, no locked instruction.
        poll.seq
            .store(poll.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// The poll counter, for [`polling`](Self::polling) comparisons.
    pub(crate) fn poll_seq(&self) -> u64 {
        self.poll.seq.load(Ordering::Acquire)
    }

    /// The task being polled now, if any: its id and spawn location.
    pub(crate) fn polling(&self) -> Option<(TaskId, &'static Location<'static>)> {
        // The two loads may straddle a task switch and pair one task's id
        // with the next one's location: acceptable for a diagnostic.
        let id = TaskId::from_raw(self.poll.task.load(Ordering::Acquire))?;
        let at = self.poll.location.load(Ordering::Relaxed);
        // SAFETY: the pointer is null or was made from a `&'static Location`.
        unsafe { at.as_ref() }.map(|at| (id, at))
    }

    /// Whether the worker sleeps in its driver, claimed or not.
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.is_idle()
    }

    /// Whether the worker is online (its stopper takes works).
    pub(crate) fn is_online(&self) -> bool {
        self.stopper.is_online()
    }

    /// Records that the worker's loop died, and why.
    pub(crate) fn set_death(&self, why: String) {
        self.death.lock().get_or_insert(why);
    }

    /// Why the worker's loop died, if it did.
    pub(crate) fn death(&self) -> Option<String> {
        self.death.lock().clone()
    }
}
