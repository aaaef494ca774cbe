//! Raising a late participant's OS priority for the rest of a stop.
//!
//! The kernel's stoppers are threads of the highest scheduling class, so a
//! CPU asked to stop switches to its stopper at once. A worker here is an
//! ordinary thread: on a loaded machine the OS may leave it off its CPU for
//! a whole time slice while the rest of the world waits in the stop. When a
//! participant has waited past its spin phase for others to arrive, it
//! raises the stragglers to `SCHED_FIFO` (the lowest real-time priority),
//! so the OS runs them next; each worker drops back to its own policy as
//! soon as its stopper has nothing left to run. Only the stop's stragglers
//! are raised, and only for as long as a stop needs them.
//!
//! It needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` above zero, detected when
//! each worker starts; without it, it is off and everything else works as
//! before. A worker that already runs under a real-time policy (a process
//! started with `chrt`) is never changed.
//!
//! # Protocol
//!
//! A boost is decided under the worker's `state` lock, and only while the
//! stop still waits in PREPARE and its work on that worker has not ended
//! (its queue sequence number is above the stopper's `done_seq`). The
//! worker restores itself under the same lock whenever its stopper queue is
//! empty, and the stop's end restores every participant it could have
//! raised. So a boost can never land after the stop that asked for it has
//! ended or after the worker has left it, and is always undone before the
//! worker polls a task again, whether the stop ran, failed or was
//! abandoned, and whether or not its caller is still there.

use crate::sync::Mutex;

/// A worker's thread as the OS scheduler sees it.
#[derive(Debug)]
pub(crate) struct Priority {
    state: Mutex<State>,
}

impl Default for Priority {
    fn default() -> Priority {
        Priority {
            state: Mutex::new(State::default()),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The worker's thread id, once it runs and may be boosted.
    tid: Option<libc::pid_t>,
    /// The policy and priority it had at start, restored after a boost.
    original: Option<(libc::c_int, libc::c_int)>,
    boosted: bool,
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

    /// Raises the worker if `late()` still holds, checked under the lock
    /// that [`restore`](Self::restore) takes: the stop still waits for it
    /// and its work there has not ended. Returns whether it raised it now.
    pub(crate) fn boost(&self, late: impl Fn() -> bool) -> bool {
        let mut state = self.state.lock();
        let Some(tid) = state.tid else { return false };
        if state.boosted || !late() {
            return false;
        }
        state.boosted = set(tid, libc::SCHED_FIFO, fifo_min());
        state.boosted
    }

    /// Drops the worker back to its own policy if a stop raised it: called
    /// by the worker whenever its stopper queue is empty, and by the end of
    /// every stop that could have raised it (an abandoned stop's straggler
    /// goes back to its task without reaching its stopper).
    pub(crate) fn restore(&self) {
        let mut state = self.state.lock();
        if !state.boosted {
            return;
        }
        if let (Some(tid), Some((policy, priority))) = (state.tid, state.original) {
            // Restoring to a normal policy needs no privilege: this cannot
            // fail short of a bug, and leaves the flag set if it did.
            state.boosted = !set(tid, policy, priority);
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
            assert!(!p.boost(|| true), "boosted without the privilege");
            return;
        }
        assert_eq!(policy(), before, "the start-up check must put the policy back");
        assert!(!p.boost(|| false), "boosted a worker that was not late");
        assert_eq!(policy(), before);
        assert!(p.boost(|| true));
        assert_eq!(policy(), libc::SCHED_FIFO);
        assert!(!p.boost(|| true), "a second raise while raised");
        p.restore();
        assert_eq!(policy(), before);
        p.restore();
        assert_eq!(policy(), before, "restore is idempotent");
    }

    #[test]
    fn disabled_never_raises() {
        let p = Priority::default();
        assert!(!p.init_current(false));
        assert!(!p.boost(|| true));
    }
}
