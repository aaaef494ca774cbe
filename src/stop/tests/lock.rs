//! loom model of the stop lock: mutual exclusion, and no lost wake-up when
//! the holder releases while others are registering as waiters.

use super::StopLock;
use crate::sync::Arc;
use crate::sync::model::thread;
use crate::sync::model::{Shared, model};

/// The main thread holds the lock while two tasks wait for it, then drops
/// its guard: both get it in turn (a lost wake-up is a loom deadlock), never
/// together (loom reports overlapping accesses to the guarded cell).
#[test]
fn model_stop_lock_two_waiters() {
    model(3, || {
        let lock = Arc::new(StopLock::new());
        // What the lock protects: a counter the holders increment.
        let data = Arc::new(Shared::new(0u32));
        let held = lock.try_lock().expect("a fresh lock is free");
        let lockers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, data) = (lock.clone(), data.clone());
                thread::spawn(move || {
                    let guard = crate::sync::model::block_on(lock.lock());
                    data.update(|d| *d += 1);
                    drop(guard);
                })
            })
            .collect();
        data.update(|d| *d += 1);
        drop(held);
        for l in lockers {
            l.join().unwrap();
        }
        assert_eq!(data.get(), 3);
        assert!(lock.try_lock().is_some(), "left locked");
    });
}
