//! Raising a late worker's OS priority while a stop or a grace period
//! waits for it.
//!
//! The kernel's stoppers are threads of the highest scheduling class, so a
//! CPU asked to stop switches to its stopper at once. A worker here is an
//! ordinary thread: on a loaded machine the OS may leave it off its CPU for
//! a whole time slice while the rest of the world waits for it. Two waits
//! raise such a worker to `SCHED_FIFO` (the lowest real-time priority), so
//! that the OS runs it next:
//!
//! - a stop ([`Cause::Stop`]): a participant that has waited past its spin
//!   phase for others to arrive raises the stragglers; each drops back as
//!   soon as its stopper has nothing left to run;
//! - a grace period ([`Cause::Grace`]): a worker at a quiescent point raises
//!   the workers a period has waited for longer than
//!   [`GRACE_LATE`](crate::rcu::grace::GRACE_LATE); each drops back at its
//!   own next quiescent point, and is dropped back by the others once the
//!   period is past its raise window
//!   ([`RAISE_FOR`](crate::rcu::grace::RAISE_FOR)), or by a worker that
//!   raised it before that worker parks, goes offline or exits.
//!
//! Only late workers are raised, and only for as long as a wait needs them.
//! Each cause is raised and restored on its own; the thread runs at its own
//! policy again once no cause holds it.
//!
//! It needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` above zero, detected when
//! each worker starts; without it, it is off and everything else works as
//! before. A worker that already runs under a real-time policy (a process
//! started with `chrt`) is never changed.
//!
//! # Protocol
//!
//! A raise is decided under the worker's `state` lock, and only while the
//! wait still needs the worker (`late()`, checked under that lock). For a
//! stop: the stop still waits in PREPARE and its work on that worker has not
//! ended (its queue sequence number is above the stopper's `done_seq`); the
//! worker restores itself under the same lock whenever its stopper queue is
//! empty, and the stop's end restores every participant it could have
//! raised. For a grace period: the worker is still left in an open period.
//! The raiser shows the raise in the `raised` mirror *before* it checks
//! that (under the periods' lock), and the worker reads the mirror at every
//! quiescent point after passing (under the same lock): either the raiser
//! finds it passed and raises nothing, or the worker sees the bit and takes
//! the state lock, which waits for the raise and then undoes it. The same
//! holds for a dropped waiter's future, which drops back the workers its
//! period still waited for. So a raise can never land after the wait that
//! asked for it no longer needs the worker, and is always undone: a stop's
//! before the worker polls a task again; a grace period's at the worker's
//! next quiescent point, or when its window ends or its waiter goes, even
//! in a poll that never yields.

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU8, Ordering};

/// Why a worker is raised: each is restored on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A stop waits for it to arrive.
    Stop = 1,
    /// A grace period waits for its quiescent state.
    Grace = 2,
}

/// A worker's thread as the OS scheduler sees it.
#[derive(Debug)]
pub(crate) struct Priority {
    state: Mutex<State>,
    /// A copy of `State::raised`, written under the lock, read without it.
    raised: AtomicU8,
}

impl Default for Priority {
    fn default() -> Priority {
        Priority {
            state: Mutex::new(State::default()),
            raised: AtomicU8::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The worker's thread id, once it runs and may be boosted.
    tid: Option<libc::pid_t>,
    /// The policy and priority it had at start, restored after a boost.
    original: Option<(libc::c_int, libc::c_int)>,
    /// The [`Cause`]s holding it raised, as bits.
    raised: u8,
}

impl Priority {
    /// Called on the worker's own thread at start: records its thread id
    /// and policy, and checks that the process may raise it. Returns
    /// whether boosting is possible for this worker.
    pub(crate) fn init_current(&self, enabled: bool) -> bool {
        if !enabled {
            return false;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        // SAFETY: a zeroed sched_param is a valid value to be filled in.
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        // SAFETY: `param` is a valid, writable sched_param; 0 is this thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        // SAFETY: as above.
        if policy < 0 || unsafe { libc::sched_getparam(0, &mut param) } != 0 {
            return false;
        }
        if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
            return false;
        }
        // Try it on ourselves, and put it back at once.
        if !set(tid, libc::SCHED_FIFO, fifo_min()) || !set(tid, policy, param.sched_priority) {
            return false;
        }
        let mut state = self.state.lock();
        state.tid = Some(tid);
        state.original = Some((policy, param.sched_priority));
        true
    }

    /// Raises the worker for `cause` if `late()` still holds, checked under
    /// the lock that [`restore`](Self::restore) takes. Returns whether it
    /// raised it now (not when already raised for that cause).
    pub(crate) fn boost(&self, cause: Cause, late: impl FnOnce() -> bool) -> bool {
        let mut state = self.state.lock();
        let Some(tid) = state.tid else { return false };
        if state.raised & cause as u8 != 0 {
            return false;
        }
        // The mirror shows the raise before `late()` is checked: whoever
        // then sees the wait over (a dropped grace period's waiter, a
        // worker that passed) sees the bit too, and takes the lock, which
        // waits for this raise to finish.
        self.raised.store(state.raised | cause as u8, Ordering::SeqCst);
        if !late() || (state.raised == 0 && !set(tid, libc::SCHED_FIFO, fifo_min())) {
            self.raised.store(state.raised, Ordering::SeqCst);
            return false;
        }
        state.raised |= cause as u8;
        true
    }

    /// Ends `cause`'s hold on the worker, and drops it back to its own
    /// policy once nothing holds it. Called by the worker when its wait is
    /// over for it, and by the end of every stop that could have raised it
    /// (an abandoned stop's straggler goes back to its task without
    /// reaching its stopper).
    pub(crate) fn restore(&self, cause: Cause) {
        let mut state = self.state.lock();
        if state.raised & cause as u8 == 0 {
            return;
        }
        if state.raised == cause as u8
            && let (Some(tid), Some((policy, priority))) = (state.tid, state.original)
            && !set(tid, policy, priority)
        {
            // Restoring to a normal policy needs no privilege: this cannot
            // fail short of a bug, and leaves the cause set if it did.
            return;
        }
        state.raised &= !(cause as u8);
        self.raised.store(state.raised, Ordering::SeqCst);
    }

    /// [`restore`](Self::restore) without the lock when `cause` does not
    /// hold the worker, as far as this thread has seen.
    #[inline]
    pub(crate) fn restore_if_raised(&self, cause: Cause) {
        if self.raised.load(Ordering::SeqCst) & cause as u8 != 0 {
            self.restore(cause);
        }
    }
}

fn fifo_min() -> libc::c_int {
    // SAFETY: no preconditions.
    unsafe { libc::sched_get_priority_min(libc::SCHED_FIFO) }
}

/// Sets thread `tid`'s policy; returns whether the OS allowed it.
fn set(tid: libc::pid_t, policy: libc::c_int, priority: libc::c_int) -> bool {
    // SAFETY: a zeroed sched_param is valid; we set its one field.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    // SAFETY: `param` is a valid sched_param that outlives the call.
    unsafe { libc::sched_setscheduler(tid, policy, &param) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: reads this thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// The raise and the restore themselves, on this thread. Where the
    /// process may not raise threads, `init_current` says so and nothing
    /// changes.
    #[test]
    fn boost_raises_and_restore_drops_back() {
        let p = Priority::default();
        let before = policy();
        if !p.init_current(true) {
            assert_eq!(policy(), before, "a failed check changed the policy");
            assert!(!p.boost(Cause::Stop, || true), "boosted without the privilege");
            return;
        }
        assert_eq!(policy(), before, "the start-up check must put the policy back");
        assert!(
            !p.boost(Cause::Stop, || false),
            "boosted a worker that was not late"
        );
        assert_eq!(policy(), before);
        assert!(p.boost(Cause::Stop, || true));
        assert_eq!(policy(), libc::SCHED_FIFO);
        assert!(!p.boost(Cause::Stop, || true), "a second raise while raised");
        p.restore(Cause::Stop);
        assert_eq!(policy(), before);
        p.restore(Cause::Stop);
        assert_eq!(policy(), before, "restore is idempotent");
    }

    /// Two causes hold the worker up independently: it drops back only
    /// when both have let go, in either order.
    #[test]
    fn each_cause_is_restored_on_its_own() {
        let p = Priority::default();
        let before = policy();
        if !p.init_current(true) {
            return;
        }
        for (first, second) in [(Cause::Stop, Cause::Grace), (Cause::Grace, Cause::Stop)] {
            assert!(p.boost(first, || true));
            assert!(p.boost(second, || true), "a second cause must be recorded");
            p.restore_if_raised(first);
            assert_eq!(
                policy(),
                libc::SCHED_FIFO,
                "{first:?} let go, {second:?} still holds"
            );
            p.restore(first);
            assert_eq!(
                policy(),
                libc::SCHED_FIFO,
                "restoring {first:?} twice must not drop {second:?}"
            );
            p.restore_if_raised(second);
            assert_eq!(policy(), before, "nothing holds it any more");
        }
    }

    #[test]
    fn disabled_never_raises() {
        let p = Priority::default();
        assert!(!p.init_current(false));
        assert!(!p.boost(Cause::Stop, || true));
        assert!(!p.boost(Cause::Grace, || true));
    }
}
