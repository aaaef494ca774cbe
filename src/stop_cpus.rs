//! Stopping a set of workers, each running the function on its own:
//! `stop_cpus` and `try_stop_cpus`.

use crate::completion::Completion;
use crate::cpumask::CpuMask;
use crate::error::StopError;
use crate::runtime::handle::Handle;
use crate::stats::{Measured, StopKind};
use crate::stop_lock::StopGuard;
use crate::stop_machine::{queue_on, validate};
use crate::stop_one::run_caught;
use crate::sync::{Arc, Mutex, lock};
use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

/// What each worker of a `stop_cpus` leaves behind.
type Results<R> = Arc<Mutex<(Vec<(usize, R)>, Option<StopError>, Vec<(usize, Instant, Instant)>)>>;

impl Handle {
    /// Runs `f(worker)` on every online worker of `mask` with the highest
    /// priority (each monopolizes its worker while it runs) and waits for
    /// all. Calls are serialized, so `f` may wait for the other workers of
    /// the same call to enter it.
    ///
    /// CONTEXT: a task, or any thread through `futures::executor::block_on`.
    ///
    /// RETURNS: the values of `f`, by ascending worker id, for the workers
    /// that were online.
    ///
    /// # Errors
    ///
    /// [`StopError::EmptyMask`], [`StopError::InvalidWorker`];
    /// [`StopError::Offline`] if no worker of `mask` was online (`f` ran
    /// nowhere); [`StopError::Panicked`] if `f` panicked on any worker;
    /// [`StopError::Nested`]; [`StopError::Shutdown`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(3).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.stop_cpus(&CpuMask::from(0..3), |w| w * 10).await });
    /// assert_eq!(r, Ok(vec![(0, 0), (1, 10), (2, 20)]));
    /// ```
    #[track_caller]
    pub fn stop_cpus<F, R>(
        &self,
        mask: &CpuMask,
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
    /// # Errors
    ///
    /// As [`stop_cpus`](Handle::stop_cpus), plus [`StopError::Busy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.try_stop_cpus(&CpuMask::of(1), |w| w).await });
    /// assert_eq!(r, Ok(vec![(1, 1)]));
    /// ```
    #[track_caller]
    pub fn try_stop_cpus<F, R>(
        &self,
        mask: &CpuMask,
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
        mask: &CpuMask,
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
            validate(&handle, &mask)?;
            let guard = match wait {
                true => handle.shared.stop_lock.lock().await,
                false => handle.shared.stop_lock.try_lock().ok_or(StopError::Busy)?,
            };
            queue_stop_cpus(&handle, &mask, f, guard, caller).await
        }
    }
}

async fn queue_stop_cpus<F, R>(
    handle: &Handle,
    mask: &CpuMask,
    f: F,
    guard: StopGuard,
    caller: &'static Location<'static>,
) -> Result<Vec<(usize, R)>, StopError>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let requested = Instant::now();
    let f = Arc::new(f);
    let results: Results<R> = Arc::new(Mutex::new((Vec::new(), None, Vec::new())));
    let done = Arc::new(Completion::new(mask.weight()));
    let (queued, refused) = {
        let order = lock(&handle.shared.queue_lock);
        queue_on(handle, &order, mask.iter(), &done, "stop_cpus", caller, |w| {
            let (f, results, done) = (f.clone(), results.clone(), done.clone());
            Box::new(move || {
                let start = Instant::now();
                let out = run_caught(|| f(w));
                let mut results = lock(&results);
                results.2.push((w, start, Instant::now()));
                match out {
                    Ok(r) => results.0.push((w, r)),
                    Err(e) => {
                        results.1.get_or_insert(e);
                    }
                }
                drop(results);
                done.signal();
            })
        })
    };
    for w in &queued {
        w.notify();
    }
    done.on_complete(move || drop(guard));
    done.wait().await;
    if queued.is_empty() {
        return Err(refused.unwrap_or(StopError::Offline));
    }
    let (mut values, error, times) = std::mem::take(&mut *lock(&results));
    record_cpus(handle, requested, &times, error.is_none());
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
/// let r = rt.block_on(async { stop_machine::stop_cpus(&stop_machine::CpuMask::full(2), |w| w).await });
/// assert_eq!(r, Ok(vec![(0, 0), (1, 1)]));
/// ```
#[track_caller]
pub fn stop_cpus<F, R>(
    mask: &CpuMask,
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
/// let r = rt.block_on(async { stop_machine::try_stop_cpus(&stop_machine::CpuMask::of(0), |_| ()).await });
/// assert!(r.is_ok());
/// ```
#[track_caller]
pub fn try_stop_cpus<F, R>(
    mask: &CpuMask,
    f: F,
) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().try_stop_cpus(mask, f)
}

/// Records a `stop_cpus`: stopped from the first worker's start to the last
/// one's end; each worker restarts as soon as its own call returns.
fn record_cpus(handle: &Handle, requested: Instant, times: &[(usize, Instant, Instant)], ok: bool) {
    let (Some(first), Some(last_start), Some(last_end)) = (
        times.iter().map(|t| t.1).min(),
        times.iter().map(|t| t.1).max(),
        times.iter().map(|t| t.2).max(),
    ) else {
        return;
    };
    handle.shared.stats.record(Measured {
        kind: StopKind::Cpus,
        ok,
        to_stop: last_start - requested,
        stopped: last_end.saturating_duration_since(first),
        restart: Duration::ZERO,
        arrivals: times
            .iter()
            .map(|(w, start, _)| (*w, *start - requested))
            .collect(),
        restarts: times.iter().map(|(w, _, _)| (*w, Duration::ZERO)).collect(),
        claimed: Vec::new(),
    });
}
