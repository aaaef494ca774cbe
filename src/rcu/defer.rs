//! `defer`: dropping values after a grace period, in batches (the kernel's
//! `call_rcu`).

use crate::runtime::handle::Handle;
use std::any::Any;

/// Values waiting for the grace period that will free them.
pub(crate) type Batch = Vec<Box<dyn Any + Send>>;

impl Handle {
    /// Drops `value` once a grace period has passed, without waiting for it:
    /// the kernel's `call_rcu`. Values deferred before the batch's grace
    /// period begins share it, so a thousand defers cost about one
    /// [`synchronize`](Handle::synchronize). The drop runs in a task of
    /// this runtime; a panic there is caught and logged.
    ///
    /// Values still waiting when the runtime shuts down are dropped when its
    /// last handle is, after every worker thread has exited. A grace period
    /// covers readers on the runtime's workers only: a value read from
    /// other threads must be retired through [`Rcu`](crate::Rcu), whose
    /// writers also wait for those.
    ///
    /// CONTEXT: any thread; it does not block.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let old_table = vec![1, 2, 3];
    /// // Readers that still hold a reference into it finish first.
    /// rt.handle().defer(old_table);
    /// ```
    pub fn defer<T: Send + 'static>(&self, value: T) {
        let first = {
            let mut batch = self.shared.deferred.lock();
            batch.push(Box::new(value));
            batch.len() == 1
        };
        if first {
            let h = self.clone();
            drop(self.spawn(async move {
                let mut waiting = Waiting {
                    batch: std::mem::take(&mut *h.shared.deferred.lock()),
                    handle: h.clone(),
                };
                h.synchronize().await;
                drop(std::mem::take(&mut waiting.batch));
            }));
        }
    }
}

/// A batch whose grace period has not passed. Dropped early (its task
/// dropped at shutdown, while other workers may still be in polls that
/// began before the defer), it goes back to the runtime's queue, which is
/// dropped only with the runtime's last handle, after every worker thread
/// has exited.
struct Waiting {
    batch: Batch,
    handle: Handle,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.handle.shared.deferred.lock().extend(batch);
        }
    }
}
