//! The ack-counted state machine that stops several workers together, the
//! kernel's `multi_cpu_stop`: PREPARE → DISABLE_IRQ → RUN → EXIT, the last
//! worker to acknowledge a state moving everyone to the next.

use crate::cpumask::CpuMask;
use crate::error::StopError;
use crate::stop_one::run_caught;
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use crate::sync::{Mutex, lock};
use crossbeam_utils::Backoff;
use std::thread::Thread;

/// The phases of a multi-worker stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum State {
    /// Queued; the coordinator has not published the participant count yet.
    None = 0,
    /// Waiting for every participant to reach its stopper.
    Prepare = 1,
    /// Every participant is in its stopper; from here on no worker turns its
    /// driver (our analogue of disabling interrupts).
    DisableIrq = 2,
    /// The active workers run the function; the others wait.
    Run = 3,
    /// Everyone leaves.
    Exit = 4,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::None,
            1 => State::Prepare,
            2 => State::DisableIrq,
            3 => State::Run,
            _ => State::Exit,
        }
    }
}

/// One multi-worker stop: the kernel's `struct multi_stop_data`.
pub(crate) struct MultiStop<F, R> {
    f: F,
    active: CpuMask,
    state: AtomicU8,
    ack: AtomicUsize,
    num_threads: AtomicUsize,
    /// Participant threads, unparked at each state change.
    threads: Mutex<Vec<Thread>>,
    results: Mutex<Vec<(usize, R)>>,
    error: Mutex<Option<StopError>>,
}

impl<F, R> MultiStop<F, R>
where
    F: Fn(usize) -> R,
{
    pub(crate) fn new(f: F, active: CpuMask) -> MultiStop<F, R> {
        MultiStop {
            f,
            active,
            state: AtomicU8::new(State::None as u8),
            ack: AtomicUsize::new(0),
            num_threads: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        }
    }

    /// Publishes the number of participants and enters PREPARE. Works that
    /// started early wait in `None` until this.
    pub(crate) fn start(&self, num_threads: usize, threads: Vec<Thread>) {
        self.num_threads.store(num_threads, Ordering::Relaxed);
        *lock(&self.threads) = threads;
        self.set_state(State::Prepare);
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, next: State) {
        // The count is reset before the new state is published (Release), so
        // whoever sees the state sees the fresh count: the kernel's smp_wmb.
        self.ack
            .store(self.num_threads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.state.store(next as u8, Ordering::Release);
        for t in lock(&self.threads).iter() {
            t.unpark();
        }
    }

    /// The last participant to acknowledge `state` moves all to the next.
    fn ack_state(&self, state: State) {
        if self.ack.fetch_sub(1, Ordering::AcqRel) == 1 && state != State::Exit {
            self.set_state(State::from_u8(state as u8 + 1));
        }
    }

    /// A participant's side: follow the states to EXIT, running `f` in RUN
    /// when `worker` is active. Waits spin, then yield, then park, so that it
    /// stays correct and fast when workers outnumber CPUs.
    pub(crate) fn participate(&self, worker: usize) {
        let mut current = State::None;
        let backoff = Backoff::new();
        loop {
            let state = self.state();
            if state != current {
                current = state;
                if state == State::Run && self.active.contains(worker) {
                    match run_caught(|| (self.f)(worker)) {
                        Ok(r) => lock(&self.results).push((worker, r)),
                        Err(e) => {
                            lock(&self.error).get_or_insert(e);
                        }
                    }
                }
                if state != State::None {
                    self.ack_state(state);
                }
                if state == State::Exit {
                    return;
                }
                backoff.reset();
            } else if backoff.is_completed() {
                std::thread::park();
            } else {
                backoff.snooze();
            }
        }
    }

    /// The values of `f`, by worker, or the first error.
    pub(crate) fn take_results(&self) -> Result<Vec<(usize, R)>, StopError> {
        if let Some(e) = lock(&self.error).take() {
            return Err(e);
        }
        let mut results = std::mem::take(&mut *lock(&self.results));
        results.sort_by_key(|(w, _)| *w);
        Ok(results)
    }
}
