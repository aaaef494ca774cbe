//! `WorkerLocal<T>`: per-worker data, the kernel's per-CPU variables.

use crate::rcu::read_section::ReadSection;
use crate::runtime::context;
use crate::runtime::handle::Handle;
use crate::stopped_world::StoppedWorld;
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::fmt;

/// One value per worker of a runtime. A task reaches its own worker's slot
/// with [`with`](WorkerLocal::with): no lock, no atomic, no cache line
/// shared with another worker (slots are padded). A
/// [`stop_machine_once`](Handle::stop_machine_once) function gets every slot
/// mutably ([`get_mut`](WorkerLocal::get_mut),
/// [`iter_mut`](WorkerLocal::iter_mut)) through its [`StoppedWorld`]: the
/// type system then proves that no task holds a slot meanwhile.
/// [`stop_each`](WorkerLocal::stop_each) is the `stop_cpus` form: each
/// worker stopped in turn gets its own slot mutably. Uses:
/// per-worker counters summed consistently, caches flushed, roots scanned.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::sync::Arc;
/// use stop_machine::WorkerLocal;
///
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let hits = Arc::new(WorkerLocal::new(rt.handle(), |_| Cell::new(0u64)));
/// let tasks: Vec<_> = (0..2)
///     .map(|w| {
///         let hits = hits.clone();
///         rt.handle().spawn_on(w, async move {
///             for _ in 0..10 {
///                 hits.with(|c| c.set(c.get() + 1));
///             }
///         })
///     })
///     .collect();
/// for t in tasks {
///     rt.block_on(t).unwrap();
/// }
/// // Every slot read in one stopped world: a consistent sum.
/// let h = hits.clone();
/// let total = rt
///     .handle()
///     .stop_machine_once_blocking(move |world| h.iter_mut(world).map(|(_, c)| c.get()).sum::<u64>())
///     .unwrap();
/// assert_eq!(total, 20);
/// ```
pub struct WorkerLocal<T> {
    slots: Box<[CachePadded<UnsafeCell<T>>]>,
    handle: Handle,
}

// SAFETY: a slot is only reached by its worker's thread (`with`) or by the
// holder of a `StoppedWorld` while that worker runs nothing (`get_mut`):
// one thread at a time, so `T: Send` suffices; `&T` never crosses threads.
unsafe impl<T: Send> Sync for WorkerLocal<T> {}
// SAFETY: owning it owns every slot.
unsafe impl<T: Send> Send for WorkerLocal<T> {}

impl<T> WorkerLocal<T> {
    /// One slot per worker of `handle`'s runtime, slot `w` set to `init(w)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(3).pin(false).build().unwrap();
    /// let ids = stop_machine::WorkerLocal::new(rt.handle(), |w| w * 10);
    /// assert_eq!(ids.len(), 3);
    /// ```
    pub fn new(handle: &Handle, mut init: impl FnMut(usize) -> T) -> WorkerLocal<T> {
        WorkerLocal {
            slots: (0..handle.num_workers())
                .map(|w| CachePadded::new(UnsafeCell::new(init(w))))
                .collect(),
            handle: handle.clone(),
        }
    }

    /// How many slots (workers) there are.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// assert_eq!(stop_machine::WorkerLocal::new(rt.handle(), |_| ()).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always `false`: a runtime has at least one worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert!(!stop_machine::WorkerLocal::new(rt.handle(), |_| ()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Calls `f` with the calling worker's slot. Inside `f` the worker
    /// serves no stop (see [`Rcu::read`](crate::Rcu::read)); mutate through
    /// `Cell`, `RefCell` or atomics in `T`.
    ///
    /// CONTEXT: a task (or stop function) on one of the runtime's workers.
    ///
    /// # Panics
    ///
    /// Off the runtime's worker threads (there is no slot there), and inside
    /// a `stop_machine_once` or [`stop_each`](WorkerLocal::stop_each)
    /// function (which may hold the slot mutably; use what it was given).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let ids = stop_machine::WorkerLocal::new(rt.handle(), |w| w);
    /// let (mine, me) = rt.block_on(async { (ids.with(|w| *w), stop_machine::current_worker()) });
    /// assert_eq!(Some(mine), me);
    /// ```
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let Some(w) = context::worker_index_of(&self.handle.shared) else {
            panic!("WorkerLocal::with called off the runtime's worker threads");
        };
        assert!(
            !context::holding(context::HOLDS_WORLD | context::HOLDS_SLOT),
            "WorkerLocal::with inside a stop_machine_once or stop_each function: use the slot it was given"
        );
        let _section = ReadSection::enter();
        // SAFETY: only this worker's thread takes a shared reference to its
        // slot, and a `StoppedWorld` holder takes a mutable one only while
        // this worker runs nothing: a stop never runs on a worker inside a
        // read section, and not while it runs a task.
        f(unsafe { &*self.slots[w].get() })
    }

    /// Worker `w`'s slot, mutably, in a stopped world.
    ///
    /// # Panics
    ///
    /// If `w` is not a worker, or `world` is another runtime's.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let slots = std::sync::Arc::new(stop_machine::WorkerLocal::new(rt.handle(), |_| 0));
    /// let s = slots.clone();
    /// rt.handle().stop_machine_once_blocking(move |world| *s.get_mut(world, 1) = 5).unwrap();
    /// let s = slots.clone();
    /// let v = rt.handle().stop_machine_once_blocking(move |world| *s.get_mut(world, 1)).unwrap();
    /// assert_eq!(v, 5);
    /// ```
    #[track_caller]
    pub fn get_mut<'a>(&'a self, world: &'a mut StoppedWorld, w: usize) -> &'a mut T {
        self.check_world(world);
        // SAFETY: `world` proves every worker runs nothing while it is
        // borrowed (see `iter_mut`), and borrowing it mutably for `'a` keeps
        // any other slot reference from this cell from coexisting.
        unsafe { &mut *self.slots[w].get() }
    }

    /// Every slot, mutably, with its worker, in a stopped world.
    ///
    /// # Panics
    ///
    /// If `world` is another runtime's.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let slots = std::sync::Arc::new(stop_machine::WorkerLocal::new(rt.handle(), |w| w));
    /// let s = slots.clone();
    /// let all = rt
    ///     .handle()
    ///     .stop_machine_once_blocking(move |world| s.iter_mut(world).map(|(w, v)| (w, *v)).collect::<Vec<_>>())
    ///     .unwrap();
    /// assert_eq!(all, [(0, 0), (1, 1)]);
    /// ```
    #[track_caller]
    pub fn iter_mut<'a>(
        &'a self,
        world: &'a mut StoppedWorld,
    ) -> impl Iterator<Item = (usize, &'a mut T)> + 'a {
        self.check_world(world);
        // SAFETY: every worker of the runtime is stopped (in its stopper,
        // claimed idle, offline or gone) and none of them is inside `with`
        // (stops are not served inside read sections); the stop runs its
        // function on one worker only. Distinct slots, so the references
        // do not alias; the `world` borrow keeps others from this cell out.
        self.slots
            .iter()
            .enumerate()
            .map(|(w, slot)| (w, unsafe { &mut *slot.get() }))
    }

    /// Stops each online worker in turn, as
    /// [`stop_cpus`](Handle::stop_cpus) does, and runs `f(w, slot)` on
    /// worker `w` with its own slot, mutably: the rest of the world keeps
    /// running, and only `w`'s slot is exclusive (its worker runs nothing
    /// else meanwhile). Flushing per-worker caches one worker at a time.
    ///
    /// CONTEXT: as `stop_cpus`: any task; not a stop function.
    ///
    /// RETURNS: `f`'s values, by worker.
    ///
    /// # Errors
    ///
    /// As [`stop_cpus`](Handle::stop_cpus).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let caches = std::sync::Arc::new(stop_machine::WorkerLocal::new(rt.handle(), |w| vec![w; 3]));
    /// let c = caches.clone();
    /// let flushed = rt.block_on(async move { c.stop_each(|_, cache| std::mem::take(cache).len()).await });
    /// assert_eq!(flushed.unwrap(), [(0, 3), (1, 3)]);
    /// ```
    pub fn stop_each<F, R>(
        self: &std::sync::Arc<Self>,
        f: F,
    ) -> impl std::future::Future<Output = Result<Vec<(usize, R)>, crate::StopError>> + use<T, F, R>
    where
        T: Send + 'static,
        F: Fn(usize, &mut T) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        let all = crate::WorkerMask::full(self.slots.len());
        self.handle.stop_cpus(&all, move |w| {
            // `with` refuses to run under this guard, so that `f` cannot
            // take a shared reference to the slot it holds mutably.
            let _holding = context::HoldGuard::enter(context::HOLDS_SLOT);
            // SAFETY: this runs on worker `w`'s thread, in its stopper: no
            // task of `w` runs, no `with` is active there (stops are not
            // served inside read sections), and `with` from `f` panics;
            // other threads never touch slot `w` (`with` reaches only the
            // caller's own worker's slot, and a `StoppedWorld` cannot exist
            // while `w`'s stopper runs this work).
            f(w, unsafe { &mut *this.slots[w].get() })
        })
    }

    #[track_caller]
    fn check_world(&self, world: &StoppedWorld) {
        assert!(
            world.is_of(&self.handle.shared),
            "a StoppedWorld of another runtime than the WorkerLocal's"
        );
    }
}

impl<T> fmt::Debug for WorkerLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerLocal")
            .field("workers", &self.slots.len())
            .finish_non_exhaustive()
    }
}
