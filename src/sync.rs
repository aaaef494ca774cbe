//! The synchronization primitives the stop protocols are built from.
//!
//! Every protocol type imports its atomics, locks and `Arc` from here, never
//! from `std` directly, so that `RUSTFLAGS="--cfg loom"` swaps in loom's
//! model-checked versions and the very same code is explored by the model
//! checker (the same arrangement as tokio's `loom` shim).

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic};

/// Locks `m`, ignoring poisoning.
///
/// The protocol locks guard plain queues and flags whose invariants hold
/// between statements, and stop functions run outside them, so a panic can
/// never leave their data half-updated: recovering the guard is always sound.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
