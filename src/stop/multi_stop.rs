//! The ack-counted state machine that stops several workers together, the
//! kernel's `multi_cpu_stop`: PREPARE → DISABLE_IRQ → RUN → EXIT, the last
//! worker to acknowledge a state moving everyone to the next.

use super::completion::Completion;
use super::wait::Waiting;
use crate::cpumask::WorkerMask;
use crate::error::{StopError, run_caught};
use crate::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// The deadline passed before everyone reached PREPARE: nobody ran `f`,
    /// everyone who arrived leaves, late works do nothing.
    Abandoned = 5,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::None,
            1 => State::Prepare,
            2 => State::DisableIrq,
            3 => State::Run,
            4 => State::Exit,
            _ => State::Abandoned,
        }
    }
}

/// When a stop reached each phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    /// Each participant's arrival in PREPARE.
    pub(crate) arrivals: Vec<(usize, Instant)>,
    /// Everyone acknowledged DISABLE_IRQ: the world is stopped.
    pub(crate) run_start: Option<Instant>,
    /// Everyone acknowledged RUN.
    pub(crate) run_end: Option<Instant>,
    /// The last participant left its stopper.
    pub(crate) last_left: Option<Instant>,
    /// When each participant left its stopper.
    pub(crate) lefts: Vec<(usize, Instant)>,
}

/// One multi-worker stop: the kernel's `struct multi_stop_data`.
pub(crate) struct MultiStop<F, R> {
    f: F,
    active: WorkerMask,
    state: AtomicU8,
    ack: AtomicUsize,
    num_threads: AtomicUsize,
    /// Participant threads, unparked at each state change.
    threads: Mutex<Vec<Thread>>,
    results: Mutex<Vec<(usize, R)>>,
    error: Mutex<Option<StopError>>,
    /// When each phase was reached, for the stop's statistics; the workers
    /// that reached PREPARE (the others are the stragglers).
    timeline: Mutex<Timeline>,
    /// The stop's tracing span: phase events are its children.
    span: tracing::Span,
    /// When waiting participants give up on the stragglers.
    deadline: Option<Instant>,
    /// Ended early when the stop is abandoned, so the caller returns then.
    done: Arc<Completion>,
    /// Called once, by the first participant that has waited in PREPARE
    /// past its spin phase, with the participants arrived so far (the
    /// others are late: their OS priority may be raised).
    straggle: std::sync::OnceLock<Straggle>,
    straggled: AtomicBool,
}

/// What a participant that waits too long does about the stragglers.
/// It gets the workers arrived so far, and a check that the stop still
/// waits in PREPARE (to be made under whatever lock orders it with the
/// stop's end).
pub(crate) type Straggle = Box<dyn Fn(&WorkerMask, &dyn Fn() -> bool) + Send + Sync>;

impl<F, R> MultiStop<F, R>
where
    F: Fn(usize) -> R,
{
    pub(crate) fn new(
        f: F,
        active: WorkerMask,
        deadline: Option<Instant>,
        done: Arc<Completion>,
    ) -> MultiStop<F, R> {
        MultiStop {
            f,
            active,
            state: AtomicU8::new(State::None as u8),
            ack: AtomicUsize::new(0),
            num_threads: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            timeline: Mutex::new(Timeline::default()),
            span: tracing::Span::none(),
            deadline,
            done,
            straggle: std::sync::OnceLock::new(),
            straggled: AtomicBool::new(false),
        }
    }

    /// Sets what to do about stragglers (before [`start`](Self::start)).
    pub(crate) fn on_straggle(&self, f: Straggle) {
        let _ = self.straggle.set(f);
    }

    /// The first participant to wait past its spin phase in PREPARE calls
    /// the straggle hook with the workers arrived so far.
    fn straggling(&self) {
        let Some(f) = self.straggle.get() else { return };
        if self.straggled.swap(true, Ordering::AcqRel) {
            return;
        }
        let arrived: WorkerMask = self.timeline.lock().arrivals.iter().map(|(w, _)| *w).collect();
        f(&arrived, &|| self.state() == State::Prepare);
    }

    /// Publishes the number of participants and enters PREPARE, unless a
    /// participant was refused meanwhile (the stop is then abandoned).
    /// Works that started early wait in `None` until this.
    pub(crate) fn start(&self, num_threads: usize, threads: Vec<Thread>) {
        self.num_threads.store(num_threads, Ordering::Relaxed);
        self.ack.store(num_threads, Ordering::Relaxed);
        *self.threads.lock() = threads;
        self.reached(State::Prepare);
        // Release: whoever sees PREPARE sees the count and the threads.
        let _ = self.state.compare_exchange(
            State::None as u8,
            State::Prepare as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        // Either way: a participant that started early may be parked in
        // `None`, and an abandonment before this had no thread to wake.
        self.wake_all();
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, next: State) {
        self.reached(next);
        // The count is reset before the new state is published (Release), so
        // whoever sees the state sees the fresh count: the kernel's smp_wmb.
        self.ack
            .store(self.num_threads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.state.store(next as u8, Ordering::Release);
        self.wake_all();
    }

    fn wake_all(&self) {
        for t in self.threads.lock().iter() {
            t.unpark();
        }
    }

    /// The last participant to acknowledge `state` moves all to the next.
    /// Leaving PREPARE races [`abandon`](Self::abandon): a compare-exchange
    /// decides, so a stop is either abandoned before anyone disabled its
    /// driver or runs to EXIT, never both.
    fn ack_state(&self, state: State) {
        if self.ack.fetch_sub(1, Ordering::AcqRel) != 1 || state == State::Exit {
            return;
        }
        if state != State::Prepare {
            self.set_state(State::from_u8(state as u8 + 1));
            return;
        }
        self.ack
            .store(self.num_threads.load(Ordering::Relaxed), Ordering::Relaxed);
        let advanced = self.state.compare_exchange(
            State::Prepare as u8,
            State::DisableIrq as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if advanced.is_ok() {
            self.wake_all();
            self.reached(State::DisableIrq);
        }
    }

    /// Records when `state` was reached, and says so at `trace` level.
    fn reached(&self, state: State) {
        let now = Instant::now();
        let mut timeline = self.timeline.lock();
        match state {
            State::Run => timeline.run_start = Some(now),
            State::Exit => timeline.run_end = Some(now),
            _ => {}
        }
        drop(timeline);
        tracing::trace!(parent: &self.span, phase = ?state, "stop phase");
    }

    /// Makes `span` the parent of the phase events.
    pub(crate) fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// When each phase was reached.
    pub(crate) fn timeline(&self) -> Timeline {
        self.timeline.lock().clone()
    }

    /// Gives up on the stragglers if the stop has not left PREPARE: nobody
    /// has run `f` and everyone who arrived leaves. Returns whether this call
    /// abandoned it.
    pub(crate) fn abandon(&self) -> bool {
        let abandoned = [State::None, State::Prepare].into_iter().any(|from| {
            self.state
                .compare_exchange(
                    from as u8,
                    State::Abandoned as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        });
        if abandoned {
            self.wake_all();
            self.done.finish_early();
        }
        abandoned
    }

    /// A participant's work was cancelled (its worker went away before it
    /// ran): the stop cannot gather everyone, so it is abandoned with `why`.
    /// A stop past PREPARE has every participant already inside it, so this
    /// only ever meets `None` or `Prepare`.
    pub(crate) fn cancelled(&self, why: StopError) {
        self.error.lock().get_or_insert(why);
        self.abandon();
    }

    /// The error of a cancelled participant, if any.
    pub(crate) fn cancellation(&self) -> Option<StopError> {
        self.error.lock().clone()
    }

    /// Whether any of `workers` has arrived in this stop and not left it
    /// yet (a participant the OS may have to schedule before it is over).
    pub(crate) fn still_inside(&self, workers: &[usize]) -> bool {
        if workers.is_empty() {
            return false;
        }
        let t = self.timeline.lock();
        workers
            .iter()
            .any(|w| t.arrivals.iter().any(|(a, _)| a == w) && !t.lefts.iter().any(|(l, _)| l == w))
    }

    /// The participants that had not reached PREPARE.
    pub(crate) fn stragglers(&self, participants: &WorkerMask) -> WorkerMask {
        let arrived: WorkerMask = self.timeline.lock().arrivals.iter().map(|(w, _)| *w).collect();
        participants - &arrived
    }

    /// A participant's side: follow the states to EXIT, running `f` in RUN
    /// when `worker` is active. Waits spin, then yield where the CPU may be
    /// shared with another participant (`alone`: it is not), then park, so
    /// that it stays correct and fast when workers outnumber CPUs
    /// ([`Waiting`]). A participant waiting in PREPARE past the deadline
    /// abandons the stop itself.
    pub(crate) fn participate(&self, worker: usize, alone: bool) {
        let mut current = State::None;
        let wait = Waiting::new(alone);
        loop {
            let state = self.state();
            if state == State::Abandoned {
                return;
            }
            if state != current {
                current = state;
                if state == State::Prepare {
                    self.timeline.lock().arrivals.push((worker, Instant::now()));
                }
                if state == State::Run && self.active.contains(worker) {
                    match run_caught(|| (self.f)(worker)) {
                        Ok(r) => self.results.lock().push((worker, r)),
                        Err(e) => {
                            self.error.lock().get_or_insert(e);
                        }
                    }
                }
                if state != State::None {
                    self.ack_state(state);
                }
                if state == State::Exit {
                    let left = Instant::now();
                    let mut timeline = self.timeline.lock();
                    timeline.last_left = timeline.last_left.max(Some(left));
                    timeline.lefts.push((worker, left));
                    return;
                }
                wait.reset();
            } else if wait.is_completed() {
                if current == State::Prepare {
                    self.straggling();
                }
                match self.deadline {
                    Some(deadline) if current == State::Prepare => {
                        let now = Instant::now();
                        if now >= deadline {
                            self.abandon();
                        } else {
                            thread::park_timeout(deadline - now);
                        }
                    }
                    _ => thread::park(),
                }
            } else {
                wait.snooze();
            }
        }
    }

    /// The values of `f`, by worker, or the first error.
    pub(crate) fn take_results(&self) -> Result<Vec<(usize, R)>, StopError> {
        if let Some(e) = self.error.lock().take() {
            return Err(e);
        }
        let mut results = std::mem::take(&mut *self.results.lock());
        results.sort_by_key(|(w, _)| *w);
        Ok(results)
    }
}

#[cfg(test)]
#[path = "tests/multi_stop.rs"]
mod tests;
