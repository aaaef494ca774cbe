//! Grace periods: waiting until every worker has passed a quiescent state,
//! without stopping any.
//!
//! # The protocol
//!
//! A read closure never spans a quiescent state: the points where a worker
//! thread is, by construction, outside every closure. They are the start
//! of each scheduler tick ([`GracePeriods::quiescent`], from the loop), the
//! moment the worker parks in its tokio driver (after it has marked itself
//! idle), going offline, and the end of its thread (both
//! [`GracePeriods::set_away`]). A grace period that began at time T is over
//! once each worker has passed one after T, or was idle, offline or gone at
//! some point after T: every read that began before T has ended by then.
//!
//! | state | written by | read by |
//! |---|---|---|
//! | `waiting` (how many periods are still waiting for a worker) | the waiter opening or dropping one, the worker ending one, under `inner` | every worker at every quiescent point, without the lock |
//! | `inner.periods[k].left` (workers still to pass) | the waiter (at open: idle and away ones cleared), workers (their own bit) | the waiter |
//! | `inner.away[w]` (offline or exited) | worker `w` alone | the waiter opening a period |
//! | a worker's idle flag ([`IdleState`](crate::runtime::idle)) | worker `w` | the waiter opening a period |
//!
//! Who wakes whom: the waiter opening a period asks every worker still
//! left for a quiescent state at its next poll boundary (the stopper's
//! `QUIESCE` bit, which the loop already loads before every poll, so the
//! fast path gains nothing) and notifies it (so that a loop waiting while
//! tokio runs other tasks runs soon);
//! the worker whose quiescent state clears a period's last bit wakes its
//! waiter (after releasing the lock), ahead of the tasks queued on the
//! waiter's worker ([`context::wake_first`]). Who raises whom: a worker at
//! a quiescent point asks [`GracePeriods::overdue`] which workers a period
//! has waited for too long, and raises or drops them back
//! ([`priority`](crate::runtime::priority), `scheduler::quiescent`).
//!
//! Wakers run on a worker's thread at its quiescent points (and tokio's
//! driver runs them while the worker is marked idle); user code in a waker
//! must not read as a worker then, so the worker's thread leaves its
//! worker identity (`context::quiesce`) before it parks or goes away and
//! takes it back after: a read there takes `Rcu`'s outside path, and
//! `StopCell`/`WorkerLocal` reads panic instead of racing.
//!
//! The idle check is a Dekker pair, each side a store, a `SeqCst` fence
//! and a load: the worker stores its idle flag and then loads `waiting`
//! ([`GracePeriods::parking`]); the waiter raises `waiting` and then loads
//! the idle flag. At least one sees the other's store: either the worker
//! takes the lock at its park and clears its bit, or the waiter finds it
//! idle and never sets it. In the second case nothing orders the waiter's
//! earlier swap before the worker's later reads but a second fence, on the
//! worker's side once it is awake ([`GracePeriods::woken`]): the waiter's
//! fence comes before it in the fences' total order (the waiter saw the
//! flag still set), so those reads see the swap. `away` needs none of
//! this: it is only read and written under `inner`'s lock.

use crate::runtime::context;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering, fence};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How long a grace period waits for a worker before the workers passing
/// their quiescent states raise it ([`priority`](crate::runtime::priority)):
/// several times a period's median under a real load, whose tail is a
/// worker the OS keeps off its CPU.
pub(crate) const GRACE_LATE: Duration = Duration::from_micros(100);

/// How long after [`GRACE_LATE`] a period keeps raising the workers it
/// waits for. Past it they are dropped back and no longer raised: a worker
/// still left by then is most likely in a poll that does not yield, and a
/// task that never yields must not run at a real-time priority.
pub(crate) const RAISE_FOR: Duration = Duration::from_millis(2);

/// Every grace period of one runtime.
#[derive(Debug)]
pub(crate) struct GracePeriods {
    /// How many periods are open: zero lets a quiescent point skip the lock.
    waiting: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Per worker: offline or exited, so quiescent until it says otherwise.
    away: Vec<bool>,
    periods: slab::Slab<Period>,
}

#[derive(Debug)]
struct Period {
    /// Per worker: not yet seen quiescent since the period began.
    left: Vec<bool>,
    /// How many of `left` are set.
    count: usize,
    waker: Option<Waker>,
    opened: Instant,
}

/// What a quiescent state did to one period.
enum Passed {
    /// Nothing: the worker had passed already, or others are still left.
    Nothing,
    /// It ended the period; wake its waiter, if it registered one.
    Ended(Option<Waker>),
}

/// What the open periods ask of the raise ([`GracePeriods::overdue`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Overdue {
    /// The workers left in a period inside its raise window
    /// ([`GRACE_LATE`] to [`GRACE_LATE`] + [`RAISE_FOR`] after it opened)
    /// and in none past it.
    pub(crate) raise: Vec<usize>,
    /// The workers left in a period past its window.
    pub(crate) lower: Vec<usize>,
    /// Some open period has not reached the end of its window yet.
    pub(crate) watch: bool,
}

impl Period {
    /// Worker `w` has passed a quiescent state.
    fn pass(&mut self, w: usize) -> Passed {
        if !std::mem::take(&mut self.left[w]) {
            return Passed::Nothing;
        }
        self.count -= 1;
        if self.count == 0 {
            Passed::Ended(self.waker.take())
        } else {
            Passed::Nothing
        }
    }
}

/// An open grace period, identified for [`GracePeriods::poll`].
#[derive(Debug)]
pub(crate) struct PeriodKey(usize);

impl GracePeriods {
    pub(crate) fn new(workers: usize) -> GracePeriods {
        GracePeriods {
            waiting: AtomicUsize::new(0),
            inner: Mutex::new(Inner {
                away: vec![false; workers],
                periods: slab::Slab::new(),
            }),
        }
    }

    /// Opens a grace period now. `is_idle(w)` says whether worker `w` sleeps
    /// in its driver (then it is quiescent already); `notify(w)` makes a
    /// worker still left reach its next tick soon (its loop may be waiting
    /// while tokio runs other tasks that never let the driver park).
    /// Returns `None` when no worker needs to pass a quiescent state (all
    /// idle, offline or gone).
    pub(crate) fn open(&self, is_idle: impl Fn(usize) -> bool, notify: impl Fn(usize)) -> Option<PeriodKey> {
        let mut inner = self.inner.lock();
        let left: Vec<bool> = inner.away.iter().map(|away| !away).collect();
        let count = left.iter().filter(|l| **l).count();
        let key = inner.periods.insert(Period {
            left,
            count,
            waker: None,
            opened: Instant::now(),
        });
        // Before the idle loads (the Dekker pair in the module docs).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let period = &mut inner.periods[key];
        for w in 0..period.left.len() {
            if period.left[w] && is_idle(w) {
                period.pass(w);
            }
        }
        if period.count == 0 {
            inner.periods.remove(key);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let left: Vec<usize> = (0..period.left.len()).filter(|w| period.left[*w]).collect();
        drop(inner);
        left.into_iter().for_each(notify);
        Some(PeriodKey(key))
    }

    /// Whether the period is over; registers `waker` if not. An ended
    /// period is closed and its key spent.
    pub(crate) fn poll(&self, key: &PeriodKey, waker: &Waker) -> Poll<()> {
        let mut inner = self.inner.lock();
        let period = &mut inner.periods[key.0];
        if period.count == 0 {
            // `waiting` went down when its last worker passed.
            inner.periods.remove(key.0);
            return Poll::Ready(());
        }
        match &mut period.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Poll::Pending
    }

    /// Closes a period whose waiter has gone (its future dropped). Returns
    /// the workers it still waited for, which a raise may have left raised.
    pub(crate) fn close(&self, key: PeriodKey) -> Vec<usize> {
        let mut inner = self.inner.lock();
        let period = inner.periods.remove(key.0);
        if period.count != 0 {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        (0..period.left.len()).filter(|w| period.left[*w]).collect()
    }

    /// Worker `w` is at a quiescent point. One atomic load when no period
    /// is open.
    /// Returns whether one was (it passed `w` in each).
    #[inline]
    pub(crate) fn quiescent(&self, w: usize) -> bool {
        let open = self.waiting.load(Ordering::SeqCst) != 0;
        if open {
            self.pass(w);
        }
        open
    }

    /// Worker `w` is about to sleep in its driver and has marked itself
    /// idle: the worker's half of the Dekker pair. Returns what
    /// [`quiescent`](Self::quiescent) does.
    #[inline]
    pub(crate) fn parking(&self, w: usize) -> bool {
        fence(Ordering::SeqCst);
        self.quiescent(w)
    }

    /// Which workers the open periods want raised or dropped back now.
    pub(crate) fn overdue(&self) -> Overdue {
        let inner = self.inner.lock();
        let now = Instant::now();
        let mut overdue = Overdue::default();
        for (_, period) in inner.periods.iter().filter(|(_, p)| p.count != 0) {
            let age = now.duration_since(period.opened);
            overdue.watch |= age < GRACE_LATE + RAISE_FOR;
            let into = match age {
                _ if age < GRACE_LATE => continue,
                _ if age < GRACE_LATE + RAISE_FOR => &mut overdue.raise,
                _ => &mut overdue.lower,
            };
            for w in (0..period.left.len()).filter(|w| period.left[*w]) {
                if !into.contains(&w) {
                    into.push(w);
                }
            }
        }
        // A worker past the window of any period stays down: younger
        // periods opened meanwhile must not raise a poll that never yields
        // again and again.
        let lower = &overdue.lower;
        overdue.raise.retain(|w| !lower.contains(w));
        overdue
    }

    /// Whether some open period still waits for worker `w`.
    pub(crate) fn is_left(&self, w: usize) -> bool {
        self.inner.lock().periods.iter().any(|(_, period)| period.left[w])
    }

    /// Worker `w` is awake again (its idle flag cleared): later reads see
    /// every value swapped before a period that counted it idle.
    #[inline]
    pub(crate) fn woken() {
        fence(Ordering::SeqCst);
    }

    /// Worker `w` goes offline or exits (`true`), or comes back online
    /// (`false`, before it runs anything). Going away is a quiescent state
    /// that lasts: periods opened meanwhile do not wait for it.
    pub(crate) fn set_away(&self, w: usize, away: bool) {
        let wakers = {
            let mut inner = self.inner.lock();
            inner.away[w] = away;
            if !away {
                return;
            }
            self.pass_all(&mut inner, w)
        };
        wakers.into_iter().for_each(context::wake_first);
    }

    #[cold]
    fn pass(&self, w: usize) {
        let wakers = self.pass_all(&mut self.inner.lock(), w);
        wakers.into_iter().for_each(context::wake_first);
    }

    /// Passes `w` in every open period; a period it ends stops counting in
    /// `waiting` at once (its waiter may poll much later, or never), and
    /// its waker is returned, to be woken outside the lock.
    fn pass_all(&self, inner: &mut Inner, w: usize) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for (_, period) in inner.periods.iter_mut() {
            if let Passed::Ended(waker) = period.pass(w) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                wakers.extend(waker);
            }
        }
        wakers
    }
}

#[cfg(test)]
#[path = "tests/grace.rs"]
mod tests;
