//! Deadlines of timed stops: one watchdog thread per runtime, sleeping
//! until the earliest deadline of a heap.
//!
//! A tokio timer would not do: a caller on a worker that a stop holds
//! cannot have its timers fired (its driver does not turn), and a caller on
//! a plain thread or a foreign executor has no timer we may use. The
//! watchdog is started on the first timed stop and joined at shutdown.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The deadline `timeout` after `start`; `None` (no deadline) when it
/// would not fit in an `Instant`, e.g. for `Duration::MAX`.
pub(crate) fn deadline(start: Instant, timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| start.checked_add(t))
}

/// A runtime's watchdog thread and its deadline heap.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Pending deadlines, earliest first, by slot.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Each sleeper's waker, until it fires or the sleeper is dropped.
    sleepers: slab::Slab<Option<Waker>>,
    shutdown: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The watchdog thread: fires every deadline as it passes.
    fn run(&self) {
        let mut state = self.state();
        while !state.shutdown {
            let now = Instant::now();
            while let Some(&Reverse((at, slot))) = state.heap.peek() {
                if at > now {
                    break;
                }
                state.heap.pop();
                if let Some(waker) = state.sleepers.get_mut(slot).and_then(Option::take) {
                    waker.wake();
                }
            }
            state = match state.heap.peek() {
                Some(&Reverse((at, _))) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
        }
        // Shutdown: every sleeper resolves now rather than never.
        for (_, waker) in state.sleepers.iter_mut() {
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
    }
}

impl Watchdog {
    /// A future that resolves at `at`, or when the watchdog shuts down.
    pub(crate) fn sleep_until(&self, at: Instant) -> Sleep {
        self.start();
        Sleep {
            shared: self.shared.clone(),
            at,
            slot: None,
        }
    }

    /// Resolves to `fut`'s output, or to `Err(())` once `at` has passed.
    pub(crate) async fn within<F: Future>(&self, at: Option<Instant>, fut: F) -> Result<F::Output, ()> {
        let Some(at) = at else { return Ok(fut.await) };
        let fut = std::pin::pin!(fut);
        match futures::future::select(fut, self.sleep_until(at)).await {
            futures::future::Either::Left((out, _)) => Ok(out),
            futures::future::Either::Right(_) => Err(()),
        }
    }

    fn start(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_some() || self.shared.state().shutdown {
            return;
        }
        let shared = self.shared.clone();
        // Without a thread, sleepers never fire: the participants of a
        // stop still enforce its deadline once one of them has arrived.
        *thread = std::thread::Builder::new()
            .name("stop-machine-watchdog".into())
            .spawn(move || shared.run())
            .ok();
    }

    /// Stops the thread and waits for it; every sleeper resolves.
    pub(crate) fn shut_down(&self) {
        self.shared.state().shutdown = true;
        self.shared.changed.notify_all();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The future of [`Watchdog::sleep_until`].
#[derive(Debug)]
pub(crate) struct Sleep {
    shared: Arc<Shared>,
    at: Instant,
    slot: Option<usize>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let shared = self.shared.clone();
        let mut state = shared.state();
        if state.shutdown {
            return Poll::Ready(());
        }
        match self.slot {
            Some(slot) => state.sleepers[slot] = Some(cx.waker().clone()),
            None => {
                let slot = state.sleepers.insert(Some(cx.waker().clone()));
                let earliest = state.heap.peek().is_none_or(|Reverse((at, _))| self.at < *at);
                state.heap.push(Reverse((self.at, slot)));
                self.slot = Some(slot);
                if earliest {
                    shared.changed.notify_all();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut state = self.shared.state();
            state.sleepers.remove(slot);
            // Its heap entry stays until it passes; a slot reused meanwhile
            // may be woken early, and a woken sleeper re-checks its time.
        }
    }
}
