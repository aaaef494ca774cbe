//! `StopCell<T>`: the hot-patch primitive, read for free and written only
//! in a stopped world.

use crate::error::StopError;
use crate::rcu::read_section::ReadSection;
use crate::runtime::context;
use crate::runtime::handle::Handle;
use crate::runtime::service::block_on_servicing;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A value that tasks read with no synchronization at all and that only a
/// stopped world writes: what the kernel patches with `stop_machine`
/// (handlers, config read on every request), without the `UnsafeCell` and
/// `unsafe impl Sync` every user would otherwise write.
///
/// [`read`](StopCell::read) is a plain load through a pointer: no atomic,
/// no lock, no counter written. [`patch`](StopCell::patch) and
/// [`replace`](StopCell::replace) run a
/// [`stop_machine_once`](Handle::stop_machine_once): every worker stopped,
/// one writer, and an `FnOnce`, so a new value that is not `Copy` moves in
/// and the old one moves out, to be dropped after the world has restarted.
/// Clones share the value.
///
/// Reads are allowed where a stopped world excludes them: on the cell's
/// runtime's worker threads (tasks, `tokio::spawn`ed tasks there, stop
/// functions other than a writer's). Elsewhere `read` panics; data read
/// from other threads too belongs in an [`Rcu`](crate::Rcu).
///
/// # Examples
///
/// ```
/// use stop_machine::StopCell;
///
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let config = StopCell::new(rt.handle(), (String::from("v1"), 100));
/// let c = config.clone();
/// let old = rt.block_on(async move {
///     assert_eq!(c.read(|(name, _)| name.len()), 2);
///     let old = c.replace((String::from("v2"), 200)).await.unwrap();
///     assert_eq!(c.read(|(_, limit)| *limit), 200);
///     old
/// });
/// assert_eq!(old.0, "v1");
/// ```
pub struct StopCell<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    value: UnsafeCell<T>,
    handle: Handle,
}

// SAFETY: readers on several workers share `&T` (`T: Sync`); a writer
// reaches `&mut T` from whichever worker runs its stop (`T: Send`), while
// every other worker is stopped.
unsafe impl<T: Send + Sync> Send for Inner<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Inner<T> {}

impl<T> Clone for StopCell<T> {
    fn clone(&self) -> StopCell<T> {
        StopCell {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> StopCell<T> {
    /// A cell holding `value`, written through `handle`'s runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let cell = stop_machine::StopCell::new(rt.handle(), 1u32);
    /// assert_eq!(rt.block_on(async { cell.read(|v| *v) }), 1);
    /// ```
    pub fn new(handle: &Handle, value: T) -> StopCell<T> {
        StopCell {
            inner: Arc::new(Inner {
                value: UnsafeCell::new(value),
                handle: handle.clone(),
            }),
        }
    }

    /// Calls `f` with the value. Inside `f` the worker serves no stop (see
    /// [`Rcu::read`](crate::Rcu::read)).
    ///
    /// CONTEXT: a task or stop function on one of the cell's runtime's
    /// workers.
    ///
    /// # Panics
    ///
    /// Off the runtime's worker threads, and inside a writer's stop function
    /// (a `stop_machine_once` function, which may hold `&mut` to it).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let cell = stop_machine::StopCell::new(rt.handle(), vec![1, 2]);
    /// assert_eq!(rt.block_on(async { cell.read(|v| v.len()) }), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let inner = &*self.inner;
        assert!(
            context::is_worker_of(&inner.handle.shared) && !context::holding(context::HOLDS_WORLD),
            "StopCell::read off the runtime's workers or inside a stop_machine_once function"
        );
        let _section = ReadSection::enter();
        // SAFETY: writes happen only in a `stop_machine_once` of this
        // runtime, while every worker runs nothing but the writer; this
        // thread is a worker, not the writer, and serves no stop inside `f`.
        f(unsafe { &*inner.value.get() })
    }

    /// Stops the world and runs `f` on the value, once, with every worker
    /// stopped; returns what `f` returns. `f` moves values in and out.
    ///
    /// CONTEXT: any task; not a stop function.
    ///
    /// # Errors
    ///
    /// As [`Handle::stop_machine_once`]; when the stop did not run, the
    /// value is unchanged and `f` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let routes = stop_machine::StopCell::new(rt.handle(), vec!["/a"]);
    /// let r = routes.clone();
    /// let n = rt.block_on(async move {
    ///     r.patch(|v| {
    ///         v.push("/b");
    ///         v.len()
    ///     })
    ///     .await
    /// });
    /// assert_eq!(n, Ok(2));
    /// ```
    #[track_caller]
    pub fn patch<F, R>(&self, f: F) -> impl Future<Output = Result<R, StopError>> + use<T, F, R>
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        self.inner.handle.stop_machine_once(move |world| {
            debug_assert!(world.is_of(&inner.handle.shared));
            // SAFETY: `world` proves every worker of the cell's runtime is
            // stopped and this is the only function running; readers are
            // tasks on those workers, or stop functions, none running now.
            f(unsafe { &mut *inner.value.get() })
        })
    }

    /// Puts `value` in, in a stopped world, and returns the old value
    /// (dropped by the caller, after the world has restarted).
    ///
    /// # Errors
    ///
    /// As [`patch`](StopCell::patch); the value is then unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = stop_machine::StopCell::new(rt.handle(), String::from("old"));
    /// let c = cell.clone();
    /// let old = rt.block_on(async move { c.replace("new".into()).await });
    /// assert_eq!(old.unwrap(), "old");
    /// ```
    #[track_caller]
    pub fn replace(&self, value: T) -> impl Future<Output = Result<T, StopError>> + use<T> {
        self.patch(move |v| std::mem::replace(v, value))
    }

    /// [`patch`](StopCell::patch) for threads that cannot await.
    ///
    /// # Errors
    ///
    /// As [`patch`](StopCell::patch).
    ///
    /// # Panics
    ///
    /// Inside a read closure on a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = stop_machine::StopCell::new(rt.handle(), 1);
    /// assert_eq!(cell.patch_blocking(|v| { *v += 1; *v }), Ok(2));
    /// ```
    #[track_caller]
    pub fn patch_blocking<F, R>(&self, f: F) -> Result<R, StopError>
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        block_on_servicing(&self.inner.handle.shared, self.patch(f))
    }

    /// [`replace`](StopCell::replace) for threads that cannot await.
    ///
    /// # Errors
    ///
    /// As [`patch`](StopCell::patch).
    ///
    /// # Panics
    ///
    /// Inside a read closure on a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let cell = stop_machine::StopCell::new(rt.handle(), 'a');
    /// assert_eq!(cell.replace_blocking('b'), Ok('a'));
    /// ```
    #[track_caller]
    pub fn replace_blocking(&self, value: T) -> Result<T, StopError> {
        self.patch_blocking(move |v| std::mem::replace(v, value))
    }
}

impl<T> fmt::Debug for StopCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopCell").finish_non_exhaustive()
    }
}
