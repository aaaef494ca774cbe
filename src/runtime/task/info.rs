//! What every task carries in its allocation: its id, where it was
//! spawned, and the flags the scheduler and its handle share.

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::any::Any;
use std::fmt;
use std::num::NonZeroU64;
use std::panic::Location;

/// A task's id, unique within the process (as `tokio::task::Id`).
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// let (a, b) = (rt.handle().spawn(async {}), rt.handle().spawn(async {}));
/// assert_ne!(a.id(), b.id());
/// assert!(a.id().as_u64() > 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(NonZeroU64);

// std's atomic even under the loom cfg: a static needs a const constructor.
static NEXT_TASK_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TaskId {
    pub(crate) fn next() -> TaskId {
        let id = NEXT_TASK_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TaskId(NonZeroU64::new(id).expect("invariant: task ids start at 1 and a u64 does not wrap"))
    }

    pub(crate) fn from_raw(id: u64) -> Option<TaskId> {
        NonZeroU64::new(id).map(TaskId)
    }

    /// The id as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let task = rt.handle().spawn(async {});
    /// assert_eq!(task.id().to_string(), task.id().as_u64().to_string());
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The metadata of every task (async-task's `M`).
#[derive(Debug)]
pub(crate) struct TaskInfo {
    pub(crate) id: TaskId,
    pub(crate) location: &'static Location<'static>,
    /// Set by `JoinHandle::abort`: the scheduler drops the task instead of
    /// polling it, which cancels it.
    aborted: AtomicBool,
    /// A panic from dropping the task's future, caught there: the handle
    /// reports it instead of a cancellation. Written once, by whoever drops
    /// the future; read by the handle after the task has ended.
    drop_panic: std::sync::Mutex<Option<Box<dyn Any + Send>>>,
    /// Whether `drop_panic` holds a payload: lets a handle skip the lock.
    dropped_panicking: AtomicBool,
    /// Its key in its worker's registry, `usize::MAX` until registered.
    /// Written once, before the task's first poll, by its spawner.
    registry_key: AtomicUsize,
}

impl TaskInfo {
    pub(crate) fn new(id: TaskId, location: &'static Location<'static>) -> TaskInfo {
        TaskInfo {
            id,
            location,
            aborted: AtomicBool::new(false),
            drop_panic: std::sync::Mutex::new(None),
            dropped_panicking: AtomicBool::new(false),
            registry_key: AtomicUsize::new(usize::MAX),
        }
    }

    /// Whether the task must be dropped rather than polled.
    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    pub(crate) fn set_registry_key(&self, key: usize) {
        self.registry_key.store(key, Ordering::Release);
    }

    pub(crate) fn registry_key(&self) -> Option<usize> {
        let key = self.registry_key.load(Ordering::Acquire);
        (key != usize::MAX).then_some(key)
    }

    pub(crate) fn set_drop_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = self.drop_panic.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(payload);
        self.dropped_panicking.store(true, Ordering::Release);
    }

    pub(crate) fn take_drop_panic(&self) -> Option<Box<dyn Any + Send>> {
        if !self.dropped_panicking.load(Ordering::Acquire) {
            return None;
        }
        self.drop_panic.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
