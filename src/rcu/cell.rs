//! `Rcu<T>`: a cell for read-mostly data whose readers write nothing.

use super::outside::OutsideReaders;
use super::read_section::ReadSection;
use crate::error::StopError;
use crate::runtime::context;
use crate::runtime::handle::Handle;
use crate::sync::atomic::{AtomicPtr, Ordering};
use std::fmt;
use std::sync::Arc;

/// A value read without locks or reference counts and replaced by
/// publishing a new one: config, routing tables, handlers.
///
/// Readers call [`read`](Rcu::read) with a closure: on a worker of the
/// cell's runtime that is one atomic load and a thread-local counter, no
/// write to shared memory, and the reference cannot outlive the closure,
/// so it cannot be held across an `.await`. Writers call
/// [`publish`](Rcu::publish): the new value is visible to every read that
/// starts afterwards at once; the old one is dropped after a grace period
/// ([`Handle::synchronize`]), once every read that could still see it has
/// ended. Writers are serialized with each other; readers never wait for
/// them.
///
/// Readers off the runtime's workers (other threads, `spawn_blocking`,
/// another runtime) are allowed too, on a slower path: they announce
/// themselves on one of two counters (an atomic increment and decrement,
/// as the kernel's SRCU does), and a writer waits for the readers of the
/// old value among them before dropping it.
///
/// # Examples
///
/// ```
/// use stop_machine::Rcu;
/// use std::sync::Arc;
///
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let routes = Arc::new(Rcu::new(rt.handle(), vec!["/a", "/b"]));
/// let r = routes.clone();
/// rt.block_on(async move {
///     assert_eq!(r.read(|v| v.len()), 2);
///     r.publish(vec!["/a", "/b", "/c"]).await;
///     assert_eq!(r.read(|v| v[2]), "/c");
/// });
/// // From a thread outside the runtime:
/// assert_eq!(routes.read(|v| v.len()), 3);
/// routes.publish_blocking(vec![]);
/// assert!(routes.read(|v| v.is_empty()));
/// ```
pub struct Rcu<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    current: AtomicPtr<T>,
    handle: Handle,
    outside: OutsideReaders,
    /// Held from a publish's swap until its old value is dropped: one
    /// writer at a time, so that each waits for its own old value's readers.
    writer: Arc<tokio::sync::Mutex<()>>,
}

// SAFETY: the cell hands out `&T` to readers on any thread (so `T: Sync`)
// and drops or returns values on whichever thread publishes (so `T: Send`).
unsafe impl<T: Send + Sync> Send for Inner<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Inner<T> {}

impl<T: Send + Sync + 'static> Rcu<T> {
    /// A cell holding `value`, whose grace periods are `handle`'s runtime's.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let cell = stop_machine::Rcu::new(rt.handle(), 5);
    /// assert_eq!(cell.read(|v| *v), 5);
    /// ```
    pub fn new(handle: &Handle, value: T) -> Rcu<T> {
        Rcu {
            inner: Arc::new(Inner {
                current: AtomicPtr::new(Box::into_raw(Box::new(value))),
                handle: handle.clone(),
                outside: OutsideReaders::new(),
                writer: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    /// Calls `f` with the current value and returns what it returns.
    ///
    /// CONTEXT: any thread. Inside `f` the calling worker does not serve
    /// its stopper: [`safepoint`](crate::safepoint) does nothing there and
    /// blocking stop calls panic, since a stop or quiescent state in the
    /// middle of a read could free what `f` reads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let cell = stop_machine::Rcu::new(rt.handle(), String::from("v1"));
    /// let len = rt.block_on(async { cell.read(|s| s.len()) });
    /// assert_eq!(len, 2);
    /// ```
    #[inline]
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let inner = &*self.inner;
        if context::is_worker_of(&inner.handle.shared) {
            let _section = ReadSection::enter();
            let value = inner.current.load(Ordering::SeqCst);
            // SAFETY: a value is dropped only after it was swapped out and a
            // grace period passed; this worker cannot pass a quiescent state
            // before `f` returns (the read section keeps it from serving its
            // stopper, and the other quiescent points are outside any poll),
            // so a value loaded here lives until then.
            f(unsafe { &*value })
        } else {
            let _reader = inner.outside.enter();
            let value = inner.current.load(Ordering::SeqCst);
            // SAFETY: a writer drops an old value only once the outside
            // readers of the epoch it saw have left; this one is counted
            // until `f` returns.
            f(unsafe { &*value })
        }
    }

    /// Makes `value` the current one, then waits for a grace period and
    /// drops the old one. Every read that starts after the swap sees
    /// `value`; the future resolves once no read can see the old one.
    ///
    /// Dropping the future after its first poll does not undo the
    /// publication: the swap may have happened, and then the old value is
    /// dropped after its grace period all the same, by a task of the cell's
    /// runtime. After the runtime has shut down the new value still becomes
    /// current, and the old one is leaked (see [`replace`](Rcu::replace)).
    ///
    /// CONTEXT: any task (of this runtime or another); see
    /// [`publish_blocking`](Rcu::publish_blocking) for threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = std::sync::Arc::new(stop_machine::Rcu::new(rt.handle(), 1));
    /// let c = cell.clone();
    /// rt.block_on(async move { c.publish(2).await });
    /// assert_eq!(cell.read(|v| *v), 2);
    /// ```
    pub fn publish(&self, value: T) -> impl Future<Output = ()> + Send + 'static + use<T> {
        let replaced = self.replace(value);
        async move { drop(replaced.await) }
    }

    /// As [`publish`](Rcu::publish), but hands the old value back once no
    /// read can see it any more, instead of dropping it.
    ///
    /// # Errors
    ///
    /// [`StopError::Shutdown`](crate::StopError::Shutdown) if the runtime
    /// shut down before the old value could be reclaimed: the new value is
    /// current all the same, and the old one is leaked, since a worker that
    /// is still exiting might read it.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = std::sync::Arc::new(stop_machine::Rcu::new(rt.handle(), vec![1]));
    /// let c = cell.clone();
    /// let old = rt.block_on(async move { c.replace(vec![2]).await });
    /// assert_eq!(old.unwrap(), [1]);
    /// ```
    pub fn replace(&self, value: T) -> impl Future<Output = Result<T, StopError>> + Send + 'static + use<T> {
        let inner = self.inner.clone();
        let new = Box::new(value);
        async move {
            let writer = inner.writer.clone().lock_owned().await;
            let old = Retired(inner.current.swap(Box::into_raw(new), Ordering::SeqCst));
            // The rest runs as a task of the cell's runtime, so that dropping
            // this future cannot leave the old value unreclaimed.
            // On an online worker: a task left on a worker parked later
            // would hold the writer lock until it came back.
            let handle = inner.handle.clone();
            let reclaim = handle.spawn_on(handle.shared.next_online_worker(), async move {
                inner.handle.synchronize().await;
                inner.outside.wait_for_readers().await;
                drop(writer);
                old
            });
            match reclaim.await {
                Ok(old) => Ok(*old.into_box()),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_cancelled) => Err(StopError::Shutdown),
            }
        }
    }

    /// [`publish`](Rcu::publish) for threads outside the runtime: blocks
    /// until the old value has been dropped.
    ///
    /// # Panics
    ///
    /// On one of the cell's runtime's worker threads: it would wait for its
    /// own quiescent state.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = stop_machine::Rcu::new(rt.handle(), "old");
    /// cell.publish_blocking("new");
    /// assert_eq!(cell.read(|v| *v), "new");
    /// ```
    #[track_caller]
    pub fn publish_blocking(&self, value: T) {
        assert!(
            !context::is_worker_of(&self.inner.handle.shared),
            "Rcu::publish_blocking called on a worker of the cell's runtime: await Rcu::publish instead"
        );
        futures::executor::block_on(self.publish(value));
    }
}

/// An old value swapped out of its cell, waiting for its readers. Dropped
/// unreclaimed (its task dropped by a shutdown), it is leaked: a worker may
/// still be reading it.
struct Retired<T>(*mut T);

// SAFETY: it owns the value (`T: Send`); readers only reach it through the
// cell, never through this.
unsafe impl<T: Send> Send for Retired<T> {}

impl<T> Retired<T> {
    fn into_box(self) -> Box<T> {
        // SAFETY: the pointer came from `Box::into_raw` and was swapped out
        // of the cell, so no other owner exists; its readers are gone.
        unsafe { Box::from_raw(self.0) }
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        // SAFETY: the last reference to the cell is gone, so no reader can
        // hold the current value; it came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(self.current.load(Ordering::Relaxed)) });
    }
}

impl<T: fmt::Debug + Send + Sync + 'static> fmt::Debug for Rcu<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.read(|v| f.debug_tuple("Rcu").field(v).finish())
    }
}
