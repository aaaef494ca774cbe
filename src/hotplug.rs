//! Taking workers offline and back: the kernel's `stop_machine_park` and
//! `stop_machine_unpark`.

use crate::error::StopError;
use crate::runtime::handle::Handle;
use crate::stats::StopKind;
use crate::stop::completion::Completion;
use crate::stop::work::{Go, InjectedDeath, StopWork};
use crate::sync::Arc;

impl Handle {
    /// Takes worker `worker` offline. It first runs the stop works already
    /// queued to it; from then on it takes no new ones (queueing to it
    /// reports [`StopError::Offline`]), runs no task and does not turn its
    /// driver, until [`unpark_worker`](Handle::unpark_worker). Its tasks wait
    /// for it; they do not migrate.
    ///
    /// Serialized with stops: the set of workers a stop waits for never
    /// changes while it runs. The stop lock stays held until the worker
    /// has acknowledged, whoever waits, so no stop starts with the worker
    /// half-gone.
    ///
    /// CONTEXT: as [`stop_machine`](Handle::stop_machine). A worker blocked
    /// in [`stop_machine_blocking`](Handle::stop_machine_blocking) or at a
    /// [`safepoint`](crate::safepoint) goes offline right there.
    ///
    /// RETURNS: once the worker is offline, or at once when it is the
    /// caller's own worker (which goes offline as soon as the calling task
    /// yields; no stop can start before it has).
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Nested`],
    /// [`StopError::WouldBlockWorker`], [`StopError::Shutdown`] (also when
    /// the runtime shuts down while it waits), [`StopError::WorkerDied`].
    /// Parking an offline worker is a no-op.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// rt.block_on(async move {
    ///     h.park_worker(1).await.unwrap();
    ///     assert_eq!(h.stop_one_cpu(1, || ()).await, Err(stop_machine::StopError::Offline));
    ///     h.unpark_worker(1).await.unwrap();
    ///     assert_eq!(h.stop_one_cpu(1, || 2).await, Ok(2));
    /// });
    /// ```
    pub async fn park_worker(&self, worker: usize) -> Result<(), StopError> {
        self.check()?;
        let w = self.worker(worker)?.clone();
        let guard = self.shared.stop_lock.lock().await;
        let ack = Arc::new(Completion::new(1));
        {
            let _order = self.shared.queue_lock.lock();
            w.stopper.request_offline(&ack)?;
        }
        // The stop lock is released once the worker is offline, by whoever
        // signals that, wherever this future is by then: no stop can start
        // in between and find the worker half-gone.
        ack.on_complete(move || drop(guard));
        w.notify();
        if self.current_index() == Some(worker) {
            return Ok(());
        }
        ack.wait().await;
        match w.stopper.life() {
            ended if ended.is_final() => {
                Err(ended.refusal().expect("invariant: an ended worker refuses works"))
            }
            _ => Ok(()),
        }
    }

    /// Brings worker `worker` back online: its stopper takes works again and
    /// its tasks run.
    ///
    /// CONTEXT: as [`park_worker`](Handle::park_worker).
    ///
    /// RETURNS: once the worker is online again (it resumes at once).
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Nested`],
    /// [`StopError::WouldBlockWorker`], [`StopError::Shutdown`],
    /// [`StopError::WorkerDied`]. Unparking an online worker is a no-op.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// rt.block_on(async move {
    ///     h.park_worker(1).await.unwrap();
    ///     assert!(!h.is_online(1));
    ///     h.unpark_worker(1).await.unwrap();
    ///     assert!(h.is_online(1));
    /// });
    /// ```
    pub async fn unpark_worker(&self, worker: usize) -> Result<(), StopError> {
        self.check()?;
        let w = self.worker(worker)?.clone();
        let _serialized = self.shared.stop_lock.lock().await;
        let changed = {
            let _order = self.shared.queue_lock.lock();
            w.stopper.request_online()?
        };
        if changed {
            w.unpark_thread();
        }
        Ok(())
    }

    /// Kills worker `worker`'s scheduler loop as a bug of this crate would,
    /// for tests of what follows: the worker is declared dead, the works
    /// queued behind this one are cancelled with
    /// [`StopError::WorkerDied`], and dropping the runtime panics with the
    /// report. Not for production use.
    ///
    /// RETURNS: whether the request was queued.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// assert!(rt.handle().inject_worker_death(1));
    /// let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(rt)));
    /// assert!(dropped.is_err(), "dropping the runtime reports the dead worker");
    /// ```
    #[doc(hidden)]
    pub fn inject_worker_death(&self, worker: usize) -> bool {
        let Ok(target) = self.worker(worker) else {
            return false;
        };
        let work = StopWork::new(StopKind::Nowait, std::panic::Location::caller(), |go: Go| {
            if go.is_ok() {
                std::panic::panic_any(InjectedDeath);
            }
        });
        let queued = target.stopper.queue(work).is_ok();
        target.notify();
        queued
    }
}
