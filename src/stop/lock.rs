//! The lock that serializes stops and hotplug: the kernel's
//! `stop_cpus_mutex` and `cpus_read_lock` in one.

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex};
use std::future::Future;
use std::task::{Poll, Waker};

/// An async lock that wakes *every* waiter when released.
///
/// A lock that wakes one waiter (futures' `Mutex`) or hands itself to the
/// first (tokio's) can stall forever here: the chosen waiter may be a task
/// on a worker that has just been parked, which will not run until someone
/// unparks it, and unparking needs this very lock. Waking all waiters lets
/// whichever can run take it; stops are rare, so the herd is cheap.
#[derive(Debug)]
pub(crate) struct StopLock {
    locked: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

/// Holds the [`StopLock`]; releases it when dropped, wherever that happens
/// (the last worker leaving a stop drops it even if the caller is gone).
pub(crate) struct StopGuard {
    lock: Arc<StopLock>,
}

impl StopLock {
    pub(crate) fn new() -> StopLock {
        StopLock {
            locked: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Takes the lock if it is free.
    pub(crate) fn try_lock(self: &Arc<Self>) -> Option<StopGuard> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| StopGuard { lock: self.clone() })
    }

    /// Waits for the lock.
    pub(crate) fn lock(self: &Arc<Self>) -> impl Future<Output = StopGuard> + use<> {
        let this = self.clone();
        std::future::poll_fn(move |cx| {
            if let Some(g) = this.try_lock() {
                return Poll::Ready(g);
            }
            let mut waiters = this.waiters.lock();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            drop(waiters);
            // A release between the first try and the registration took the
            // waiter list before we were on it: try again.
            match this.try_lock() {
                Some(g) => Poll::Ready(g),
                None => Poll::Pending,
            }
        })
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        let waiters = std::mem::take(&mut *self.lock.waiters.lock());
        for w in waiters {
            w.wake();
        }
    }
}

#[cfg(test)]
#[path = "tests/lock.rs"]
mod tests;
