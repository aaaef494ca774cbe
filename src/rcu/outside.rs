//! Readers off the workers: two counters and an epoch, as the kernel's
//! SRCU counts its readers, so that a writer can wait for those that may
//! hold the value it swapped out.
//!
//! A reader adds itself to the counter of the current epoch's parity and
//! checks the epoch again (retrying if it moved); it then loads the value,
//! so a reader counted under epoch `e` may see any value current before
//! the flip to `e + 1`. A writer, after its swap, flips the epoch and waits
//! for the old parity's counter to drain: readers that started later see
//! the new epoch, hence the new value. Writers are serialized (one flip
//! and drain at a time), so a counter being drained gets no new readers
//! except those about to retry.

use crate::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub(crate) struct OutsideReaders {
    epoch: AtomicUsize,
    readers: [AtomicUsize; 2],
}

/// One counted reader; leaves when dropped.
pub(crate) struct Reader<'a>(&'a AtomicUsize);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl OutsideReaders {
    pub(crate) fn new() -> OutsideReaders {
        OutsideReaders {
            epoch: AtomicUsize::new(0),
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// Counts the calling thread as a reader until the guard drops.
    pub(crate) fn enter(&self) -> Reader<'_> {
        loop {
            let epoch = self.epoch.load(Ordering::SeqCst);
            let counter = &self.readers[epoch & 1];
            counter.fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == epoch {
                return Reader(counter);
            }
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Flips the epoch, then returns once every reader counted before the
    /// flip has left. The caller has swapped the value out before, and is
    /// the only writer doing this.
    pub(crate) async fn wait_for_readers(&self) {
        let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
        // Yield a few times (reads are short), then sleep between checks,
        // so a long outside read does not keep a worker spinning.
        for attempt in 0u32.. {
            if self.readers[old].load(Ordering::SeqCst) == 0 {
                return;
            }
            if attempt < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_micros(100)).await;
            }
        }
    }
}
