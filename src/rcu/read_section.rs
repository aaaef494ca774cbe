//! The read-side critical section: how deep the current thread is inside
//! read closures ([`Rcu::read`](crate::Rcu::read),
//! [`StopCell::read`](crate::StopCell::read),
//! [`WorkerLocal::with`](crate::WorkerLocal::with)).
//!
//! A worker serves its stopper inside a poll (at a [`safepoint`], or in a
//! blocking stop call) only outside every read section: a stop run in
//! the middle of a read would write what the reader holds a reference to,
//! or count the worker quiescent while it still reads an old value. A plain
//! thread-local counter: only its own thread touches it.
//!
//! [`safepoint`]: crate::safepoint

use std::cell::Cell;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as inside a read closure until dropped.
pub(crate) struct ReadSection(());

impl ReadSection {
    #[inline]
    pub(crate) fn enter() -> ReadSection {
        DEPTH.with(|d| d.set(d.get() + 1));
        ReadSection(())
    }
}

impl Drop for ReadSection {
    #[inline]
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Whether the current thread is inside a read closure.
#[inline]
pub(crate) fn reading() -> bool {
    DEPTH.try_with(|d| d.get() != 0).unwrap_or(false)
}
