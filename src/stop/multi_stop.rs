//! The ack-counted state machine that stops several workers together, the
//! kernel's `multi_cpu_stop`: PREPARE → DISABLE_IRQ → RUN → EXIT, the last
//! worker to acknowledge a state moving everyone to the next.

use super::completion::Completion;
use super::wait::Waiting;
use crate::cpumask::WorkerMask;
use crate::error::{StopError, run_caught};
use crate::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
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
    /// driver (our analogue of disabling interrupts). Passed through without
    /// acknowledgements: arriving was disabling.
    DisableIrq = 2,
    /// The active workers run the function and acknowledge; the others wait.
    Run = 3,
    /// Everyone leaves; the caller was released just before.
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
    /// Everyone had reached PREPARE, and RUN was published: the world is
    /// stopped.
    pub(crate) run_start: Option<Instant>,
    /// Every active worker acknowledged RUN (its `f` returned): EXIT.
    pub(crate) run_end: Option<Instant>,
    /// The last participant left its stopper.
    pub(crate) last_left: Option<Instant>,
    /// When each participant left its stopper.
    pub(crate) lefts: Vec<(usize, Instant)>,
}

/// One multi-worker stop: the kernel's `struct multi_stop_data`.
///
/// | field | written by | read by |
/// |---|---|---|
/// | `state` | the coordinator (`start`), the last acknowledger, `abandon` | every participant, the coordinator |
/// | `ack` | `start`, `publish`; then each participant once in PREPARE, each active one once in RUN | the same |
/// | `sleepers` | a participant about to park, and once it woke | whoever changes `state`, to skip the unparks when nobody sleeps |
/// | `arrived[w]`, `left[w]` | participant `w` only (`left` of the caller's worker: its work, once it has settled) | the stop's reports, a sibling deciding whether to yield its CPU |
///
/// A participant adds itself to `sleepers` before it checks `state` one
/// last time and parks, and a state change is published before `sleepers`
/// is read (by a read-modify-write), so either the sleeper sees the new
/// state or its waker sees the sleeper: the Dekker pair that lets the fast
/// path skip every unpark.
pub(crate) struct MultiStop<F, R> {
    f: F,
    active: WorkerMask,
    state: AtomicU8,
    ack: AtomicUsize,
    /// Participants parked (or about to park) in [`participate`](Self::participate).
    sleepers: AtomicUsize,
    /// The threads of participants that have slept in this stop, unparked
    /// at each state change while any sleeps.
    threads: Mutex<Vec<Thread>>,
    results: Mutex<Vec<(usize, R)>>,
    error: Mutex<Option<StopError>>,
    /// When each phase was reached, for the stop's statistics; the workers
    /// that reached PREPARE (the others are the stragglers).
    times: Times,
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
    /// The worker whose task asked for the stop and takes part in it
    /// inline, if any (see [`caller_on`](Self::caller_on)).
    caller: Option<usize>,
}

/// When a stop reached each phase, as offsets from its creation: one slot
/// per worker for its arrival and its leaving, each written by that worker
/// alone, so that recording a time takes no lock. 0 is "not yet".
struct Times {
    base: Instant,
    /// Each worker's arrival, then each worker's exit: one allocation.
    slots: Box<[AtomicU64]>,
    run_start: AtomicU64,
    run_end: AtomicU64,
}

impl Times {
    fn new(workers: usize) -> Times {
        Times {
            base: Instant::now(),
            slots: (0..2 * workers).map(|_| AtomicU64::new(0)).collect(),
            run_start: AtomicU64::new(0),
            run_end: AtomicU64::new(0),
        }
    }

    /// Each worker's arrival in PREPARE.
    fn arrived(&self) -> &[AtomicU64] {
        &self.slots[..self.slots.len() / 2]
    }

    /// Each worker's exit from its stopper.
    fn left(&self) -> &[AtomicU64] {
        &self.slots[self.slots.len() / 2..]
    }

    /// Records now in `slot`.
    fn mark(&self, slot: &AtomicU64) {
        let since = self.base.elapsed().as_nanos();
        slot.store(u64::try_from(since).unwrap_or(u64::MAX).max(1), Ordering::Release);
    }

    fn at(&self, slot: &AtomicU64) -> Option<Instant> {
        match slot.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.base + std::time::Duration::from_nanos(ns)),
        }
    }

    fn has(slots: &[AtomicU64], w: usize) -> bool {
        slots.get(w).is_some_and(|s| s.load(Ordering::Acquire) != 0)
    }

    /// The workers that have a time in `slots`, in the order of their times.
    fn events(&self, slots: &[AtomicU64]) -> Vec<(usize, Instant)> {
        let mut events: Vec<(usize, Instant)> = slots
            .iter()
            .enumerate()
            .filter_map(|(w, s)| self.at(s).map(|at| (w, at)))
            .collect();
        events.sort_by_key(|(_, at)| *at);
        events
    }

    fn arrived_mask(&self) -> WorkerMask {
        (0..self.arrived().len())
            .filter(|w| Times::has(self.arrived(), *w))
            .collect()
    }
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
    /// A stop among workers `0..workers` (the participants are a subset).
    pub(crate) fn new(
        f: F,
        active: WorkerMask,
        workers: usize,
        deadline: Option<Instant>,
        done: Arc<Completion>,
    ) -> MultiStop<F, R> {
        MultiStop {
            f,
            active,
            state: AtomicU8::new(State::None as u8),
            ack: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            times: Times::new(workers),
            span: tracing::Span::none(),
            deadline,
            done,
            straggle: std::sync::OnceLock::new(),
            straggled: AtomicBool::new(false),
            caller: None,
        }
    }

    /// The stop's caller is a task on `worker`, which takes part inline.
    /// That worker counts as inside the stop until its caller has resumed
    /// ([`caller_left`](Self::caller_left)), not only until it saw EXIT: a
    /// sibling sharing its CPU, leaving, then yields the CPU to it instead
    /// of running tasks over the caller until the OS's next tick.
    pub(crate) fn caller_on(&mut self, worker: usize) {
        self.caller = Some(worker);
    }

    /// The caller's worker is out of the stop: called once, by its work,
    /// after it settled.
    pub(crate) fn caller_left(&self) {
        if let Some(w) = self.caller {
            self.times.mark(&self.times.left()[w]);
        }
    }

    /// Participant `worker`, which had arrived, is out of its stopper;
    /// the caller's worker counts as out only once its caller has settled
    /// ([`caller_left`](Self::caller_left)).
    fn leave(&self, worker: usize) {
        if self.caller != Some(worker) {
            self.times.mark(&self.times.left()[worker]);
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
        f(&self.times.arrived_mask(), &|| self.state() == State::Prepare);
    }

    /// Publishes the number of participants and enters PREPARE, unless a
    /// participant was refused meanwhile (the stop is then abandoned).
    /// Works that started early wait in `None` until this.
    pub(crate) fn start(&self, participants: usize) {
        self.ack.store(participants, Ordering::Relaxed);
        self.reached(State::Prepare);
        // Whoever sees PREPARE sees the count.
        let _ = self.state.compare_exchange(
            State::None as u8,
            State::Prepare as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // Either way: a participant that started early may be parked in
        // `None`, and an abandonment before this had no thread to wake.
        self.wake_all();
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Records and publishes `next`, with `acks` acknowledgements to wait
    /// for in it.
    fn set_state(&self, next: State, acks: usize) {
        self.reached(next);
        self.publish(next, acks);
    }

    fn publish(&self, next: State, acks: usize) {
        // The count is reset before the new state is published, so whoever
        // sees the state sees the fresh count: the kernel's smp_wmb.
        self.ack.store(acks, Ordering::Relaxed);
        self.state.store(next as u8, Ordering::SeqCst);
        self.wake_all();
    }

    /// Unparks every participant, if any may be parked: called after each
    /// change of `state`.
    fn wake_all(&self) {
        // A read-modify-write, not a load: it reads the latest count, so
        // the pair is sound under acquire/release alone (loom models
        // `SeqCst` loads as acquire loads, and would not prove it else).
        if self.sleepers.fetch_add(0, Ordering::SeqCst) == 0 {
            return;
        }
        for t in self.threads.lock().iter() {
            t.unpark();
        }
    }

    /// The last participant to acknowledge a state moves all to the next.
    /// Only two states are acknowledged: PREPARE by everyone, RUN by the
    /// active workers.
    fn ack_state(&self, state: State) {
        if self.ack.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        match state {
            State::Prepare => self.all_arrived(),
            State::Run => self.exit(),
            _ => {}
        }
    }

    /// The last participant to reach PREPARE stops the world. Leaving
    /// PREPARE races [`abandon`](Self::abandon): a compare-exchange decides,
    /// so a stop is either abandoned before anyone disabled its driver or
    /// runs to EXIT, never both.
    ///
    /// DISABLE_IRQ is passed through without a round of acknowledgements:
    /// the kernel's CPUs disable their interrupts on seeing it, but a
    /// worker stopped turning its driver when it reached its stopper, so by
    /// now every participant has. What is left is RUN, acknowledged only by
    /// the workers that run `f`: the others have nothing to report.
    fn all_arrived(&self) {
        let advanced = self.state.compare_exchange(
            State::Prepare as u8,
            State::DisableIrq as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if advanced.is_err() {
            return;
        }
        self.reached(State::DisableIrq);
        match self.active.weight() {
            0 => self.exit(),
            runners => self.set_state(State::Run, runners),
        }
    }

    /// Every `f` has returned: the caller may go on at once, while the
    /// participants leave their stoppers on seeing EXIT. Released first, so
    /// that a caller taking part itself (the inline caller) finds itself
    /// released as soon as it sees EXIT and never waits for a wake-up.
    fn exit(&self) {
        self.reached(State::Exit);
        self.done.release();
        self.publish(State::Exit, 0);
    }

    /// Records when `state` was reached, and says so at `trace` level.
    fn reached(&self, state: State) {
        match state {
            State::Run => self.times.mark(&self.times.run_start),
            State::Exit => self.times.mark(&self.times.run_end),
            _ => {}
        }
        tracing::trace!(parent: &self.span, phase = ?state, "stop phase");
    }

    /// Makes `span` the parent of the phase events.
    pub(crate) fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// When each phase was reached.
    pub(crate) fn timeline(&self) -> Timeline {
        let t = &self.times;
        let lefts = t.events(t.left());
        Timeline {
            arrivals: t.events(t.arrived()),
            run_start: t.at(&t.run_start),
            run_end: t.at(&t.run_end),
            last_left: lefts.last().map(|(_, at)| *at),
            lefts,
        }
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
                    Ordering::SeqCst,
                    Ordering::SeqCst,
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
        let t = &self.times;
        workers
            .iter()
            .any(|w| Times::has(t.arrived(), *w) && !Times::has(t.left(), *w))
    }

    /// Whether every participant but the caller's worker that arrived has
    /// left the stop.
    pub(crate) fn others_left(&self) -> bool {
        let t = &self.times;
        (0..t.arrived().len())
            .filter(|w| self.caller != Some(*w))
            .all(|w| !Times::has(t.arrived(), w) || Times::has(t.left(), w))
    }

    /// The participants that had not reached PREPARE.
    pub(crate) fn stragglers(&self, participants: &WorkerMask) -> WorkerMask {
        participants - &self.times.arrived_mask()
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
                // Out, so that a sibling waiting for it (`still_inside`,
                // `others_left`) does not wait on.
                if current != State::None {
                    self.leave(worker);
                }
                return;
            }
            if state != current {
                current = state;
                if state == State::Prepare {
                    self.times.mark(&self.times.arrived()[worker]);
                }
                if state == State::Run && self.active.contains(worker) {
                    match run_caught(|| (self.f)(worker)) {
                        Ok(r) => self.results.lock().push((worker, r)),
                        Err(e) => {
                            self.error.lock().get_or_insert(e);
                        }
                    }
                }
                if state == State::Prepare || (state == State::Run && self.active.contains(worker)) {
                    self.ack_state(state);
                }
                if state == State::Exit {
                    self.leave(worker);
                    return;
                }
                wait.reset();
            } else if wait.is_completed() {
                if current == State::Prepare {
                    self.straggling();
                }
                self.sleep_unless_left(current);
            } else {
                wait.snooze();
            }
        }
    }

    /// Parks until the state leaves `current` (or, in PREPARE, until the
    /// deadline, which abandons the stop); may return early.
    fn sleep_unless_left(&self, current: State) {
        let deadline = self.deadline.filter(|_| current == State::Prepare);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.abandon();
            return;
        }
        // Listed before counted: a waker that sees the count finds the thread.
        let me = thread::current();
        let mut threads = self.threads.lock();
        if !threads.iter().any(|t| t.id() == me.id()) {
            threads.push(me);
        }
        drop(threads);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if self.state() == current {
            match deadline {
                Some(d) => thread::park_timeout(d.saturating_duration_since(Instant::now())),
                None => thread::park(),
            }
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// The values of `f`, by worker, or the first error.
    pub(crate) fn take_results(&self) -> Result<Vec<(usize, R)>, StopError> {
        if let Some(e) = self.error.lock().clone() {
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
