//! The handshake that lets a stop count a worker asleep in its driver as
//! stopped without waking it (as Go's runtime claims idle Ps).

use crate::sync::Backoff;
use crate::sync::atomic::{AtomicU8, Ordering};

/// The worker runs (tasks, stop works, or is between them).
const RUNNING: u8 = 0;
/// The worker sleeps in its tokio driver (from `on_thread_park`).
const PARKED: u8 = 1;
/// A stop counts the parked worker as stopped; it must not run anything,
/// not even turn its driver again, until the stop releases it.
const CLAIMED: u8 = 2;

/// A worker's side of the idle claim: RUNNING → PARKED around the driver's
/// sleep, PARKED → CLAIMED by a stop, CLAIMED → PARKED at its end.
///
/// Exactly one of the worker (waking: PARKED → RUNNING) and a stop
/// (claiming: PARKED → CLAIMED) wins each race, by compare-exchange; a
/// worker that wakes to find itself claimed waits in tokio's
/// `on_thread_unpark` hook, which runs after the driver returns and before
/// any task, so it runs nothing until released.
#[derive(Debug)]
pub(crate) struct IdleState {
    state: AtomicU8,
}

impl IdleState {
    pub(crate) fn new() -> IdleState {
        IdleState {
            state: AtomicU8::new(RUNNING),
        }
    }

    /// tokio's `on_thread_park`: the worker is about to sleep in its driver.
    pub(crate) fn before_park(&self) {
        self.state.store(PARKED, Ordering::SeqCst);
    }

    /// tokio's `on_thread_unpark`: returns once the worker may run, waiting
    /// (spin, yield, then `park`) while a stop holds it claimed. `park` is
    /// how the thread sleeps; [`release`](Self::release)'s caller wakes it.
    pub(crate) fn after_unpark(&self, park: impl Fn()) {
        let backoff = Backoff::new();
        loop {
            match self
                .state
                .compare_exchange(PARKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) | Err(RUNNING) => return,
                Err(_claimed) if backoff.is_completed() => park(),
                Err(_claimed) => backoff.snooze(),
            }
        }
    }

    /// Claims a worker asleep in its driver. The caller holds the stopper's
    /// lock and has checked that no stop work is queued.
    pub(crate) fn try_claim(&self) -> bool {
        self.state
            .compare_exchange(PARKED, CLAIMED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Ends a claim; the caller then unparks the worker's thread.
    pub(crate) fn release(&self) {
        let was = self
            .state
            .compare_exchange(CLAIMED, PARKED, Ordering::SeqCst, Ordering::SeqCst);
        debug_assert!(was.is_ok(), "released a worker that was not claimed");
    }

    /// Whether the worker sleeps in its driver, claimed or not.
    pub(crate) fn is_idle(&self) -> bool {
        self.state.load(Ordering::SeqCst) != RUNNING
    }
}

#[cfg(test)]
#[path = "tests/idle.rs"]
mod tests;
