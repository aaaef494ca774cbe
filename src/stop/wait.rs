//! How a stop's participants wait for one another.
//!
//! A participant yields its CPU only when another participant may need
//! that CPU. On a CPU it has to itself (pinned, no other worker pinned
//! there), yielding would hand the CPU to whatever else the OS runs there
//! (on a loaded machine, the load itself, for a whole time slice) while
//! the stop waits for this participant to come back: so it spins, as the
//! kernel's stoppers do, for up to [`SPIN_FOR`], and only then parks (and
//! raises the stragglers, if it waits in PREPARE). Elsewhere (unpinned, or
//! sharing its CPU with other workers) it waits as crossbeam's `Backoff`
//! does: spin a little, yield a few times, then park.
//!
//! Measured under the HTTP load (docs/benchmarks.md, "Participants alone
//! on their CPU spin"): yielding made a stop's median bimodal (14–220 µs
//! from run to run), and raising stragglers after a few microseconds made
//! its p99 worse, not better (1.4–4.3 ms against 0.25–0.4 ms): on that
//! machine `sched_setscheduler` itself took 9 µs at the median and 2.5 ms
//! at p99 under the load.
//!
//! Under the model checker every wait parks at once, as the `Backoff` of
//! the sync shim does.

use crate::sync::Backoff;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a participant alone on its CPU spins before it parks: under a
/// real load almost every stop is over well within it (p99 0.2–0.4 ms),
/// and a parked participant costs each later phase a wake-up.
pub(crate) const SPIN_FOR: Duration = Duration::from_millis(1);

/// One participant's wait for the next state of its stop.
#[derive(Debug)]
pub(crate) struct Waiting {
    backoff: Backoff,
    /// The participant has its CPU to itself: spin, never yield.
    alone: bool,
    /// When the current wait began, once asked.
    since: Cell<Option<Instant>>,
}

impl Waiting {
    /// A wait for a participant that has its CPU to itself (`alone`), or not.
    pub(crate) fn new(alone: bool) -> Waiting {
        Waiting {
            backoff: Backoff::new(),
            alone: alone && cfg!(not(stop_machine_loom)),
            since: Cell::new(None),
        }
    }

    /// Starts a new wait: the state moved on.
    pub(crate) fn reset(&self) {
        self.backoff.reset();
        self.since.set(None);
    }

    /// Whether it has waited long enough to park.
    pub(crate) fn is_completed(&self) -> bool {
        if !self.alone {
            return self.backoff.is_completed();
        }
        match self.since.get() {
            Some(since) => since.elapsed() >= SPIN_FOR,
            None => {
                self.since.set(Some(Instant::now()));
                false
            }
        }
    }

    /// Waits a moment before the next look.
    pub(crate) fn snooze(&self) {
        match self.alone {
            true => self.backoff.spin(),
            false => self.backoff.snooze(),
        }
    }
}

#[cfg(all(test, not(stop_machine_loom)))]
mod tests {
    use super::*;

    /// Alone, a wait never yields and completes only after `SPIN_FOR`;
    /// shared, it completes after crossbeam's few yields.
    #[test]
    fn alone_spins_for_its_time_and_shared_backs_off() {
        let alone = Waiting::new(true);
        let start = Instant::now();
        while !alone.is_completed() {
            alone.snooze();
        }
        assert!(start.elapsed() >= SPIN_FOR, "parked before its spin time");
        alone.reset();
        assert!(!alone.is_completed(), "a reset starts a new wait");

        let shared = Waiting::new(false);
        let mut snoozes = 0;
        while !shared.is_completed() {
            shared.snooze();
            snoozes += 1;
        }
        assert!(
            snoozes <= 11,
            "crossbeam's Backoff completes after its yield limit"
        );
    }
}
