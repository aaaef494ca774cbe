//! Stopping a set of workers, each running the function on its own:
//! `stop_cpus` and `try_stop_cpus`.

use crate::cpumask::WorkerMask;
use crate::error::{StopError, run_caught};
use crate::runtime::handle::Handle;
use crate::runtime::service;
use crate::stats::StopKind;
use crate::stop::completion::Completion;
use crate::stop::lock::StopGuard;
use crate::stop::plan::{self, Request};
use crate::stop::report;
use crate::stop::work::Go;
use crate::sync::{Arc, Mutex};
use std::future::Future;
use std::panic::Location;
use std::time::Instant;

/// What the workers of a `stop_cpus` leave behind: each one's value and
/// when it ran, and the first error.
struct Results<R> {
    values: Vec<(usize, R)>,
    runs: Vec<(usize, Instant, Instant)>,
    error: Option<StopError>,
}

impl<R> Default for Results<R> {
    fn default() -> Results<R> {
        Results {
            values: Vec::new(),
            runs: Vec::new(),
            error: None,
        }
    }
}

impl Handle {
    /// Runs `f(worker)` on every online worker of `mask` with the highest
    /// priority (each monopolizes its worker while it runs) and waits for
    /// all. Calls are serialized, so `f` may wait for the other workers of
    /// the same call to enter it.
    ///
    /// CONTEXT: a task of this runtime (its worker takes its own part
    /// right where the task awaits), a task of another executor, or a thread
    /// outside the runtime through `futures::executor::block_on` or any
    /// executor. Not from a stop function ([`StopError::Nested`]), and never
    /// blocked on through another executor's `block_on` on one of this
    /// runtime's worker threads ([`StopError::WouldBlockWorker`]). The work
    /// is queued at the first poll; dropping the future after that does not
    /// cancel it.
    ///
    /// RETURNS: the values of `f`, by ascending worker id, for the workers
    /// that were online.
    ///
    /// # Errors
    ///
    /// [`StopError::EmptyMask`], [`StopError::InvalidWorker`];
    /// [`StopError::Offline`] if no worker of `mask` was online (`f` ran
    /// nowhere); [`StopError::Panicked`] if `f` panicked on any worker;
    /// [`StopError::Nested`]; [`StopError::WouldBlockWorker`];
    /// [`StopError::Shutdown`] or [`StopError::WorkerDied`] if a worker of
    /// `mask` shut down or died (offline ones are skipped, as the kernel
    /// skips them).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::WorkerMask;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(3).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.stop_cpus(&WorkerMask::from(0..3), |w| w * 10).await });
    /// assert_eq!(r, Ok(vec![(0, 0), (1, 10), (2, 20)]));
    /// ```
    #[track_caller]
    pub fn stop_cpus<F, R>(
        &self,
        mask: &WorkerMask,
        f: F,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stop_cpus_inner(mask, f, true, Location::caller())
    }

    /// [`stop_cpus`](Handle::stop_cpus), except that it fails at once with
    /// [`StopError::Busy`] (the kernel's `-EAGAIN`) when another stop holds
    /// the facility.
    ///
    /// CONTEXT: as [`stop_cpus`](Handle::stop_cpus).
    ///
    /// RETURNS: as [`stop_cpus`](Handle::stop_cpus).
    ///
    /// # Errors
    ///
    /// As [`stop_cpus`](Handle::stop_cpus), plus [`StopError::Busy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::WorkerMask;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.try_stop_cpus(&WorkerMask::of(1), |w| w).await });
    /// assert_eq!(r, Ok(vec![(1, 1)]));
    /// ```
    #[track_caller]
    pub fn try_stop_cpus<F, R>(
        &self,
        mask: &WorkerMask,
        f: F,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stop_cpus_inner(mask, f, false, Location::caller())
    }

    /// `stop_cpus` (`wait`: for the facility) or `try_stop_cpus`.
    fn stop_cpus_inner<F, R>(
        &self,
        mask: &WorkerMask,
        f: F,
        wait: bool,
        caller: &'static Location<'static>,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let (handle, mask) = (self.clone(), mask.clone());
        async move {
            handle.check()?;
            plan::validate(&handle.shared, &mask)?;
            let request = Request::new(StopKind::Cpus, caller, None);
            let guard = match wait {
                true => plan::lock(&handle.shared, &request).await?,
                false => handle.shared.stop_lock.try_lock().ok_or(StopError::Busy)?,
            };
            each_cpu(&handle, &mask, f, guard, request).await
        }
    }
}

/// Runs `f` on each online worker of `mask` in its stopper, each on its
/// own (the kernel's `queue_stop_cpus_work`), and waits for all. `guard` is
/// released when the last one is done, wherever the caller is by then.
async fn each_cpu<F, R>(
    handle: &Handle,
    mask: &WorkerMask,
    f: F,
    guard: StopGuard,
    request: Request,
) -> Result<Vec<(usize, R)>, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let f = Arc::new(f);
    let results: Arc<Mutex<Results<R>>> = Arc::new(Mutex::new(Results::default()));
    let done = Arc::new(Completion::new(mask.weight()));
    let (queued, refused) = {
        let order = handle.shared.queue_lock.lock();
        plan::queue_on(&handle.shared, &order, mask.iter(), &request, |w| {
            let (f, results, done) = (f.clone(), results.clone(), done.clone());
            move |go: Go| {
                if go.is_ok() {
                    let start = Instant::now();
                    let out = run_caught(|| f(w));
                    let mut results = results.lock();
                    results.runs.push((w, start, Instant::now()));
                    match out {
                        Ok(r) => results.values.push((w, r)),
                        Err(e) => {
                            results.error.get_or_insert(e);
                        }
                    }
                }
                done.signal();
            }
        })
    };
    for (w, _) in &queued {
        w.notify();
    }
    done.on_complete(move || drop(guard));
    service::serve_here(&handle.shared);
    done.wait().await;
    // Offline workers are skipped, as the kernel skips them; a worker that
    // died or shut down is an error.
    let Results {
        mut values,
        runs,
        error,
    } = std::mem::take(&mut *results.lock());
    let error = error
        .or(refused.filter(|e| *e != StopError::Offline || queued.is_empty()))
        .map(|e| handle.shared.refused(e));
    report::record_each(&handle.shared, &request, &runs, error.is_none());
    if let Some(e) = error {
        return Err(e);
    }
    values.sort_by_key(|(w, _)| *w);
    Ok(values)
}

/// [`Handle::stop_cpus`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::stop_cpus`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let r = rt.block_on(async { stop_machine::stop_cpus(&stop_machine::WorkerMask::full(2), |w| w).await });
/// assert_eq!(r, Ok(vec![(0, 0), (1, 1)]));
/// ```
#[track_caller]
pub fn stop_cpus<F, R>(
    mask: &WorkerMask,
    f: F,
) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().stop_cpus(mask, f)
}

/// [`Handle::try_stop_cpus`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::try_stop_cpus`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let r = rt.block_on(async { stop_machine::try_stop_cpus(&stop_machine::WorkerMask::of(0), |_| ()).await });
/// assert!(r.is_ok());
/// ```
#[track_caller]
pub fn try_stop_cpus<F, R>(
    mask: &WorkerMask,
    f: F,
) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().try_stop_cpus(mask, f)
}
