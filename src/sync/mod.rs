//! The synchronization primitives the stop protocols are built from.
//!
//! Every protocol type imports its atomics, locks, thread parking, spin
//! backoff and waker slot from here, never from `std` directly, so that
//! `RUSTFLAGS="--cfg stop_machine_loom"` swaps in loom's model-checked
//! versions and the very same code is explored by the model checker (the
//! same arrangement as tokio's `loom` shim; a crate-specific cfg because
//! `--cfg loom` would switch tokio to its own loom paths). `.ci/loom` runs
//! the models; [`model`] lets them run as plain tests too.

#[cfg(stop_machine_loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(stop_machine_loom))]
pub(crate) use std::sync::atomic;
// `Arc` stays std's under loom too: its count is no part of any protocol
// here, and loom's cannot be a method receiver (`self: &Arc<Self>`) nor
// become a `Waker`.
pub(crate) use std::sync::Arc;

#[cfg(stop_machine_loom)]
pub(crate) use self::loom_shim::AtomicWaker;
#[cfg(not(stop_machine_loom))]
pub(crate) use futures::task::AtomicWaker;

#[cfg(stop_machine_loom)]
pub(crate) use self::loom_shim::Backoff;
#[cfg(not(stop_machine_loom))]
pub(crate) use crossbeam_utils::Backoff;

#[cfg(stop_machine_loom)]
use loom::sync as inner;
#[cfg(not(stop_machine_loom))]
use std::sync as inner;

/// A mutex whose [`lock`](Mutex::lock) ignores poisoning.
///
/// The protocol locks guard plain queues and flags whose invariants hold
/// between statements, and user code (stop functions, task drops) never
/// runs under them, so a panic cannot leave their data half-updated:
/// recovering the guard is always sound.
pub(crate) struct Mutex<T>(inner::Mutex<T>);

impl<T> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mutex { .. }")
    }
}

/// The guard of a [`Mutex`].
pub(crate) type MutexGuard<'a, T> = inner::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(inner::Mutex::new(value))
    }

    /// Locks the mutex, ignoring poisoning.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Threads as the protocols see them: who to unpark, and how to sleep.
pub(crate) mod thread {
    #[cfg(stop_machine_loom)]
    pub(crate) use loom::thread::{Thread, current, park};
    #[cfg(not(stop_machine_loom))]
    pub(crate) use std::thread::{Thread, current, park, park_timeout};

    /// Under loom a timed park is a yield: `park_timeout` may return at any
    /// moment (spuriously or at the deadline), and loom has no clock.
    #[cfg(stop_machine_loom)]
    pub(crate) fn park_timeout(_dur: std::time::Duration) {
        loom::thread::yield_now();
    }
}

/// What loom lacks or spells differently.
#[cfg(stop_machine_loom)]
mod loom_shim {
    use std::task::Waker;

    /// futures' `AtomicWaker` (`register` by reference) over loom's.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> AtomicWaker {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn take(&self) -> Option<Waker> {
            self.0.take_waker()
        }
    }

    /// crossbeam's `Backoff` for the model checker: the spin phase is over
    /// at once, so every wait goes straight to the `park` that follows it,
    /// where a lost wake-up shows as a deadlock. Spinning only re-reads what
    /// the wait loops re-check anyway, and would multiply the executions to
    /// explore; a waiter that sees the change without sleeping is still
    /// explored, as a `park` returning at once on an earlier unpark's token.
    #[derive(Debug)]
    pub(crate) struct Backoff(());

    impl Backoff {
        pub(crate) fn new() -> Backoff {
            Backoff(())
        }

        pub(crate) fn reset(&self) {}

        pub(crate) fn snooze(&self) {
            loom::thread::yield_now();
        }

        pub(crate) fn spin(&self) {
            loom::thread::yield_now();
        }

        pub(crate) fn is_completed(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
pub(crate) mod model;
