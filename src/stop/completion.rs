//! Completion counting for stop works, the kernel's `cpu_stop_done`.

use crate::runtime::context;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{AtomicWaker, Mutex};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Work to do exactly once when a stop ends.
type Finisher = Box<dyn FnOnce() + Send>;

/// Counts the stop works still to run and wakes the waiter when the last one
/// signals.
///
/// Shared by the works of one stop request, possibly on many workers. Work
/// that must happen exactly once when the stop ends (releasing claimed
/// workers, the serialization lock) is attached with [`on_complete`] and runs
/// on the thread of the last signaller, before the waiter is woken, so the
/// waiter never observes a half-finished stop.
///
/// [`on_complete`]: Completion::on_complete
pub(crate) struct Completion {
    todo: AtomicUsize,
    // Set after the finishers ran: what waiters test, so that they never
    // see the count at zero while a claimed worker is still held.
    finished: AtomicBool,
    waker: AtomicWaker,
    /// The finishers; `None` once they have been taken to run, after which
    /// a late `on_complete` runs its finisher at once.
    finish: Mutex<Option<Vec<Finisher>>>,
}

impl Completion {
    pub(crate) fn new(todo: usize) -> Completion {
        Completion {
            todo: AtomicUsize::new(todo),
            finished: AtomicBool::new(todo == 0),
            waker: AtomicWaker::new(),
            finish: Mutex::new(Some(Vec::new())),
        }
    }

    /// Runs `f` when the count reaches zero (at once if it already has).
    pub(crate) fn on_complete(&self, f: impl FnOnce() + Send + 'static) {
        let mut finish = self.finish.lock();
        match finish.as_mut() {
            // Checked under the lock that `end` takes the list under, so a
            // finisher is never added to a list already taken.
            Some(list) if self.todo.load(Ordering::Acquire) != 0 => list.push(Box::new(f)),
            _ => {
                drop(finish);
                f();
            }
        }
    }

    /// One work is done; the last one runs the finishers and wakes the waiter.
    pub(crate) fn signal(&self) {
        self.signal_n(1);
    }

    /// `n` works are done at once (e.g. they could not be queued).
    pub(crate) fn signal_n(&self, n: usize) {
        if n == 0 {
            return;
        }
        if self.todo.fetch_sub(n, Ordering::AcqRel) == n {
            self.end();
        }
    }

    /// Ends the wait before every work has signalled (an abandoned stop):
    /// runs the finishers now and wakes the waiter. The late works still
    /// signal; they find nothing left to do.
    pub(crate) fn finish_early(&self) {
        self.end();
    }

    /// Runs the finishers (once: whoever takes the list runs them), then
    /// lets the waiter go.
    fn end(&self) {
        // Only whoever takes the list lets the waiter go, after running it:
        // an early end racing the last signal must not release the waiter
        // while the other is still releasing claimed workers.
        let Some(finish) = self.finish.lock().take() else {
            return;
        };
        for f in finish {
            f();
        }
        self.finished.store(true, Ordering::Release);
        // The caller resumes ahead of its worker's queue.
        if let Some(waker) = self.waker.take() {
            context::wake_first(waker);
        }
    }

    /// Whether every work has signalled.
    pub(crate) fn is_done(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Resolves once every work has signalled.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { done: self }
    }
}

/// The future of [`Completion::wait`].
pub(crate) struct Wait<'a> {
    done: &'a Completion,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.is_done() {
            return Poll::Ready(());
        }
        self.done.waker.register(cx.waker());
        if self.done.is_done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
#[path = "tests/completion.rs"]
mod tests;
