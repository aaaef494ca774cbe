//! `stop_machine_once`: a stop whose function runs once, on one worker,
//! and gets the proof that the world is stopped.

use crate::error::StopError;
use crate::runtime::context::{HOLDS_WORLD, HoldGuard};
use crate::runtime::handle::Handle;
use crate::runtime::service::block_on_servicing;
use crate::runtime::shared::Shared;
use crate::sync::Mutex;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;

/// Proof that every worker of one runtime is stopped and that its holder is
/// the only code running on any of them: what a
/// [`stop_machine_once`](Handle::stop_machine_once) function receives. Only
/// this crate makes one, and only for the duration of such a function, so
/// an `&mut StoppedWorld` in hand means writes to per-worker data
/// ([`WorkerLocal::get_mut`](crate::WorkerLocal::get_mut)) and to
/// [`StopCell`](crate::StopCell)s race with nothing.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let h = rt.handle().clone();
/// let n = rt.block_on(async move { h.stop_machine_once(|world| world.num_workers()).await });
/// assert_eq!(n.unwrap(), 2);
/// ```
pub struct StoppedWorld {
    shared: *const Shared,
    /// Neither `Send` nor `Sync`: it stays on the thread running the stop.
    _here: PhantomData<*const ()>,
}

impl StoppedWorld {
    /// Whether this is the stopped world of `shared`'s runtime.
    pub(crate) fn is_of(&self, shared: &Shared) -> bool {
        std::ptr::eq(self.shared, shared)
    }

    /// How many workers the stopped runtime has.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(3).pin(false).build().unwrap();
    /// let n = rt.handle().stop_machine_once_blocking(|world| world.num_workers());
    /// assert_eq!(n.unwrap(), 3);
    /// ```
    pub fn num_workers(&self) -> usize {
        // SAFETY: made from a live `Shared` for the duration of a stop
        // function that holds an `Arc` of it (through its `Handle`), and
        // never outlives that function (it is only lent, as `&mut`).
        unsafe { (&*self.shared).workers.len() }
    }
}

impl std::fmt::Debug for StoppedWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoppedWorld").finish_non_exhaustive()
    }
}

impl Handle {
    /// Stops every worker and runs `f` exactly once, on a single worker (the
    /// caller's when it is one and online, else the first online one), with
    /// the proof that the world is stopped: `stop_machine` with one active
    /// CPU, taking an `FnOnce`, so that `f` can move values in and out
    /// (a new table in, the old one out, to be dropped after the world has
    /// restarted).
    ///
    /// CONTEXT: as [`stop_machine`](Handle::stop_machine): any task; not a
    /// stop function.
    ///
    /// RETURNS: `f`'s value.
    ///
    /// # Errors
    ///
    /// As [`stop_machine`](Handle::stop_machine): `Nested`, `Shutdown`,
    /// `Offline` (no worker online), `TimedOut`, `Panicked` (`f` panicked;
    /// the world restarts all the same). When `f` did not run it is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let table = vec![1, 2, 3]; // not Copy: moved into f
    /// let len = rt.block_on(async move { h.stop_machine_once(move |_world| table.len()).await });
    /// assert_eq!(len, Ok(3));
    /// ```
    #[track_caller]
    pub fn stop_machine_once<F, R>(&self, f: F) -> impl Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: FnOnce(&mut StoppedWorld) -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = self.shared.clone();
        let once = Mutex::new(Some(f));
        let run = move |_w: usize| {
            let f = once
                .lock()
                .take()
                .expect("invariant: a stop with one active worker runs f once");
            let mut world = StoppedWorld {
                shared: std::sync::Arc::as_ptr(&shared),
                _here: PhantomData,
            };
            let _holding = HoldGuard::enter(HOLDS_WORLD);
            f(&mut world)
        };
        // No active mask: one worker runs `f`, the caller's or the first.
        self.stop_machine_inner(run, None, self.shared.config.stop_timeout, Location::caller())
    }

    /// [`stop_machine_once`](Handle::stop_machine_once) for threads that
    /// cannot await, as [`stop_machine_blocking`](Handle::stop_machine_blocking)
    /// is to `stop_machine`.
    ///
    /// # Errors
    ///
    /// As [`stop_machine_once`](Handle::stop_machine_once).
    ///
    /// # Panics
    ///
    /// Inside a read closure (`Rcu::read`, `StopCell::read`,
    /// `WorkerLocal::with`) on a worker: the stop would change what it reads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let r = rt.handle().stop_machine_once_blocking(|_world| 7);
    /// assert_eq!(r, Ok(7));
    /// ```
    #[track_caller]
    pub fn stop_machine_once_blocking<F, R>(&self, f: F) -> Result<R, StopError>
    where
        F: FnOnce(&mut StoppedWorld) -> R + Send + 'static,
        R: Send + 'static,
    {
        block_on_servicing(&self.shared, self.stop_machine_once(f))
    }
}
