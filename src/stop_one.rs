//! Stopping one worker: `stop_one_cpu` and `stop_one_cpu_nowait`.

use crate::completion::Completion;
use crate::error::{StopError, panic_message};
use crate::runtime::handle::Handle;
use crate::stats::{Measured, StopKind};
use crate::stopper::StopWork;
use crate::sync::{Arc, Mutex, lock};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::time::{Duration, Instant};

/// Runs `f`, turning a panic into [`StopError::Panicked`].
pub(crate) fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R, StopError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| StopError::Panicked(panic_message(&*p)))
}

impl Handle {
    /// Runs `f` on worker `worker` with the highest priority: before the
    /// next task poll there, monopolizing the worker (no task runs and its
    /// driver is not turned until `f` returns). Resolves to `f`'s value.
    ///
    /// The work is queued when this future is first polled; dropping the
    /// future afterwards does not cancel it (`f` still runs, its value is
    /// dropped).
    ///
    /// CONTEXT: any task, or any thread through `futures::executor::block_on`.
    /// Awaiting it from a task on `worker` itself is fine: `f` runs as soon
    /// as the task yields.
    ///
    /// # Errors
    ///
    /// - [`StopError::InvalidWorker`]: `worker` is out of range;
    /// - [`StopError::Offline`]: the worker is parked (the kernel's `-ENOENT`);
    /// - [`StopError::Panicked`]: `f` panicked (the worker goes on);
    /// - [`StopError::Nested`]: called from inside a stop function;
    /// - [`StopError::Shutdown`]: the runtime is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let on = rt.block_on(async move { h.stop_one_cpu(1, stop_machine::current_worker).await });
    /// assert_eq!(on, Ok(Some(1)));
    /// ```
    #[track_caller]
    pub fn stop_one_cpu<F, R>(
        &self,
        worker: usize,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, StopError>> + use<F, R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let caller = Location::caller();
        let handle = self.clone();
        async move {
            handle.check()?;
            let target = handle.worker(worker)?;
            let done = Arc::new(Completion::new(1));
            let slot: Arc<Mutex<Option<Result<R, StopError>>>> = Arc::new(Mutex::new(None));
            let requested = Instant::now();
            let times = Arc::new(Mutex::new((requested, requested)));
            let work = {
                let (done, slot, times) = (done.clone(), slot.clone(), times.clone());
                StopWork::new("stop_one_cpu", caller, move || {
                    let start = Instant::now();
                    let out = run_caught(f);
                    *lock(&times) = (start, Instant::now());
                    *lock(&slot) = Some(out);
                    done.signal();
                })
            };
            target
                .stopper
                .queue(work)
                .map_err(|(refused, _)| StopError::from(refused))?;
            target.notify();
            done.wait().await;
            let out = lock(&slot).take().expect("stop work signalled without a result");
            let (start, end) = *lock(&times);
            handle.shared.stats.record(Measured {
                kind: StopKind::One,
                ok: out.is_ok(),
                to_stop: start - requested,
                stopped: end - start,
                restart: Duration::ZERO,
                arrivals: vec![(worker, start - requested)],
                restarts: vec![(worker, Duration::ZERO)],
                claimed: Vec::new(),
            });
            out
        }
    }

    /// Queues `f` to run on worker `worker` with the highest priority and
    /// returns without waiting. A panic in `f` is caught and logged; the
    /// worker goes on.
    ///
    /// CONTEXT: anywhere, stop functions included.
    ///
    /// RETURNS: `true` if `f` was queued and will run; `false` if `worker` is
    /// out of range, offline or shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// assert!(rt.handle().stop_one_cpu_nowait(0, move || tx.send(1).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// assert!(!rt.handle().stop_one_cpu_nowait(5, || ()));
    /// ```
    #[track_caller]
    pub fn stop_one_cpu_nowait<F>(&self, worker: usize, f: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        let Ok(target) = self.worker(worker) else {
            return false;
        };
        let work = StopWork::new("stop_one_cpu_nowait", Location::caller(), move || {
            if let Err(e) = run_caught(f) {
                tracing::error!(worker, error = %e, "stop_one_cpu_nowait function panicked");
            }
        });
        if target.stopper.queue(work).is_err() {
            return false;
        }
        target.notify();
        true
    }
}

/// [`Handle::stop_one_cpu`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::stop_one_cpu`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let v = rt.block_on(async { stop_machine::stop_one_cpu(0, || 5).await });
/// assert_eq!(v, Ok(5));
/// ```
#[track_caller]
pub fn stop_one_cpu<F, R>(
    worker: usize,
    f: F,
) -> impl std::future::Future<Output = Result<R, StopError>> + use<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Handle::current().stop_one_cpu(worker, f)
}

/// [`Handle::stop_one_cpu_nowait`] on the current runtime.
///
/// RETURNS: whether `f` was queued.
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// assert!(rt.block_on(async { stop_machine::stop_one_cpu_nowait(0, || ()) }));
/// ```
#[track_caller]
pub fn stop_one_cpu_nowait<F>(worker: usize, f: F) -> bool
where
    F: FnOnce() + Send + 'static,
{
    Handle::current().stop_one_cpu_nowait(worker, f)
}
