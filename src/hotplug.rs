//! Taking workers offline and back: the kernel's `stop_machine_park` and
//! `stop_machine_unpark`.

use crate::completion::Completion;
use crate::error::StopError;
use crate::runtime::handle::Handle;
use crate::stopper::StopperInfo;
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, lock};

impl Handle {
    /// What worker `worker`'s stopper is doing: the analogue of the kernel's
    /// `print_stop_info`.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`] for an id out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().stopper_info(0).unwrap().worker, 0);
    /// assert!(rt.handle().stopper_info(1).is_err());
    /// ```
    pub fn stopper_info(&self, worker: usize) -> Result<StopperInfo, StopError> {
        let w = self.worker(worker)?;
        Ok(StopperInfo {
            worker,
            online: w.is_online(),
            idle: w.is_idle(),
            running: w.stopper.running(),
            polling: w.polling(),
            queued: w.stopper.queued(),
            wakeups: w.wakeups.load(Ordering::Relaxed),
        })
    }

    /// Takes worker `worker` offline. It first runs the stop works already
    /// queued to it; from then on it takes no new ones (queueing to it
    /// reports [`StopError::Offline`]), runs no task and does not turn its
    /// driver, until [`unpark_worker`](Handle::unpark_worker). Its tasks wait
    /// for it; they do not migrate.
    ///
    /// Serialized with stops: the set of workers a stop waits for never
    /// changes while it runs. Resolves once the worker is offline, or at
    /// once when it is the caller's own worker (which goes offline as soon
    /// as the calling task yields).
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Nested`],
    /// [`StopError::Shutdown`]. Parking an offline worker is a no-op.
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
        let _serialized = self.shared.stop_lock.lock().await;
        let ack = Arc::new(Completion::new(1));
        {
            let _order = lock(&self.shared.queue_lock);
            if w.shutdown.load(Ordering::SeqCst) {
                return Err(StopError::Shutdown);
            }
            if !w.is_online() {
                return Ok(());
            }
            w.stopper.set_enabled(false);
        }
        *lock(&w.offline_ack) = Some(ack.clone());
        w.want_offline.store(true, Ordering::SeqCst);
        w.stopper.poke();
        w.notify();
        if self.current_index() != Some(worker) {
            ack.wait().await;
        }
        Ok(())
    }

    /// Brings worker `worker` back online: its stopper takes works again and
    /// its tasks run.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Nested`],
    /// [`StopError::Shutdown`]. Unparking an online worker is a no-op.
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
        {
            let _order = lock(&self.shared.queue_lock);
            if w.shutdown.load(Ordering::SeqCst) {
                return Err(StopError::Shutdown);
            }
            w.stopper.set_enabled(true);
        }
        w.want_offline.store(false, Ordering::SeqCst);
        w.unpark_thread();
        Ok(())
    }
}
