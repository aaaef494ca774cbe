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
    /// last handle is.
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
                let batch = std::mem::take(&mut *h.shared.deferred.lock());
                h.synchronize().await;
                drop(batch);
            }));
        }
    }
}
