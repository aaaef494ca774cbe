//! Stopping one worker: `stop_one_cpu` and `stop_one_cpu_nowait`.

use crate::error::{StopError, run_caught};
use crate::runtime::handle::Handle;
use crate::runtime::service;
use crate::stats::StopKind;
use crate::stop::completion::Completion;
use crate::stop::plan::Request;
use crate::stop::report;
use crate::stop::work::{Go, StopWork};
use crate::sync::{Arc, Mutex};
use std::panic::Location;
use std::time::Instant;

/// What the one worker of a `stop_one_cpu` leaves behind: `f`'s value and
/// when it ran, or why it did not.
type Slot<R> = Arc<Mutex<Option<Result<(Result<R, StopError>, Instant, Instant), StopError>>>>;

impl Handle {
    /// Runs `f` on worker `worker` with the highest priority: before the
    /// next task poll there, monopolizing the worker (no task runs and its
    /// driver is not turned until `f` returns). Resolves to `f`'s value.
    ///
    /// CONTEXT: a task of this runtime (its worker takes its own part
    /// right where the task awaits), a task of another executor, or a thread
    /// outside the runtime through `futures::executor::block_on` or any
    /// executor. Not from a stop function ([`StopError::Nested`]), and never
    /// blocked on through another executor's `block_on` on one of this
    /// runtime's worker threads ([`StopError::WouldBlockWorker`]). The work
    /// is queued at the first poll; dropping the future after that does not
    /// cancel it.
    /// Awaited from a task on `worker` itself, `f` runs at once, inside that
    /// task's poll, at its `.await`.
    ///
    /// RETURNS: `f`'s value.
    ///
    /// # Errors
    ///
    /// - [`StopError::InvalidWorker`]: `worker` is out of range;
    /// - [`StopError::Offline`]: the worker is parked (the kernel's `-ENOENT`);
    /// - [`StopError::Panicked`]: `f` panicked (the worker goes on);
    /// - [`StopError::Nested`]: called from inside a stop function;
    /// - [`StopError::WouldBlockWorker`]: blocked on through a foreign
    ///   `block_on` on a worker thread;
    /// - [`StopError::Shutdown`]: the runtime is shutting down;
    /// - [`StopError::WorkerDied`]: the worker's loop died.
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
            let request = Request::new(StopKind::One, caller, None);
            let done = Arc::new(Completion::new(1));
            let slot: Slot<R> = Arc::new(Mutex::new(None));
            let work = {
                let (done, slot) = (done.clone(), slot.clone());
                StopWork::new(request.kind, caller, move |go: Go| {
                    let ran = go.map(|()| {
                        let start = Instant::now();
                        let out = run_caught(f);
                        (out, start, Instant::now())
                    });
                    *slot.lock() = Some(ran);
                    done.signal();
                })
            };
            target.stopper.queue(work).map_err(|e| handle.shared.refused(e))?;
            target.notify();
            service::serve_here(&handle.shared);
            done.wait().await;
            let ran = slot.lock().take();
            let (out, start, end) =
                ran.expect("invariant: a stop work ends by running or being cancelled")?;
            report::record_each(&handle.shared, &request, &[(worker, start, end)], out.is_ok());
            out
        }
    }

    /// Queues `f` to run on worker `worker` with the highest priority and
    /// returns without waiting. A panic in `f` is caught and logged; the
    /// worker goes on.
    ///
    /// CONTEXT: anywhere, stop functions included; never blocks.
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
        let request = Request::new(StopKind::Nowait, Location::caller(), None);
        let shared = self.shared.clone();
        let work = StopWork::new(request.kind, request.caller, move |go: Go| {
            if go.is_err() {
                return;
            }
            let start = Instant::now();
            let out = run_caught(f);
            report::record_each(&shared, &request, &[(worker, start, Instant::now())], out.is_ok());
            if let Err(e) = out {
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
