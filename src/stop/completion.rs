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
/// signals, or earlier, once the stop [releases](Completion::release) it.
///
/// Shared by the works of one stop request, possibly on many workers. Work
/// that must happen exactly once when the stop ends is attached in two
/// stages, each run on the thread that ends it, before the waiter is woken:
///
/// - [`on_release`]: when the waiter may go on, which a multi-worker stop
///   decides at EXIT, before its last participants have left their
///   stoppers (releasing claimed workers and the serialization lock,
///   dropping raised priorities back);
/// - [`on_complete`]: when the last work has signalled (recording the
///   stop, with every participant's exit).
///
/// A stop that nobody releases is released when it completes, after its
/// `on_complete` finishers, so the waiter never observes a half-finished
/// stop.
///
/// [`on_release`]: Completion::on_release
/// [`on_complete`]: Completion::on_complete
pub(crate) struct Completion {
    todo: AtomicUsize,
    // Set after the release stage ran: what waiters test, so that they
    // never go on while a claimed worker is still held.
    released: AtomicBool,
    waker: AtomicWaker,
    /// The stages' finishers; `None` once taken to run, after which a late
    /// registration runs its finisher at once.
    release: Mutex<Option<Finishers>>,
    finish: Mutex<Option<Finishers>>,
}

/// A stage's finishers, in the order attached: the first one (most stages
/// have one) without a list to allocate.
#[derive(Default)]
struct Finishers {
    first: Option<Finisher>,
    more: Vec<Finisher>,
}

impl Finishers {
    fn push(&mut self, f: Finisher) {
        match self.first {
            None => self.first = Some(f),
            Some(_) => self.more.push(f),
        }
    }

    fn run(self) {
        for f in self.first.into_iter().chain(self.more) {
            f();
        }
    }
}

impl Completion {
    pub(crate) fn new(todo: usize) -> Completion {
        let stage = || Mutex::new((todo != 0).then(Finishers::default));
        Completion {
            todo: AtomicUsize::new(todo),
            released: AtomicBool::new(todo == 0),
            waker: AtomicWaker::new(),
            release: stage(),
            finish: stage(),
        }
    }

    /// Runs `f` once, when the waiter is released (at once if it was).
    pub(crate) fn on_release(&self, f: impl FnOnce() + Send + 'static) {
        Completion::attach(&self.release, f);
    }

    /// Runs `f` once, when every work has signalled or the stop ended
    /// early (at once if that has happened).
    pub(crate) fn on_complete(&self, f: impl FnOnce() + Send + 'static) {
        Completion::attach(&self.finish, f);
    }

    fn attach(stage: &Mutex<Option<Finishers>>, f: impl FnOnce() + Send + 'static) {
        let mut list = stage.lock();
        match list.as_mut() {
            // Checked under the lock the stage is taken under, so a
            // finisher is never added to a list already taken.
            Some(list) => list.push(Box::new(f)),
            None => {
                drop(list);
                f();
            }
        }
    }

    pub(crate) fn signal(&self) {
        self.signal_n(1);
    }

    pub(crate) fn signal_n(&self, n: usize) {
        if n == 0 {
            return;
        }
        if self.todo.fetch_sub(n, Ordering::AcqRel) == n {
            self.end();
        }
    }

    /// Ends the stop before every work has signalled (it was abandoned).
    pub(crate) fn finish_early(&self) {
        self.end();
    }

    /// Lets the waiter go on before the last works have signalled: runs the
    /// release stage, then wakes the waiter. Only the first call does
    /// anything.
    pub(crate) fn release(&self) {
        // Only whoever takes the list lets the waiter go, after running it.
        let Some(release) = self.release.lock().take() else {
            return;
        };
        release.run();
        self.released.store(true, Ordering::Release);
        // The caller resumes ahead of its worker's queue.
        if let Some(waker) = self.waker.take() {
            context::wake_first(waker);
        }
    }

    fn end(&self) {
        // Only whoever takes the list runs it: an early end racing the last
        // signal must not run the finishers twice, nor release the waiter
        // while the other still runs them.
        let Some(finish) = self.finish.lock().take() else {
            return;
        };
        finish.run();
        self.release();
    }

    /// Whether the waiter may go on.
    pub(crate) fn is_done(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { done: self }
    }
}

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
