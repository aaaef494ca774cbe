//! loom models of the ack-counted state machine (`MultiStop`), driven as
//! `stop_machine.rs` drives it: the participants' works may start before
//! the coordinator publishes the count (`start`), each signals the stop's
//! `Completion` when `participate` returns, and the coordinator waits on it.
//!
//! Deadlines are absent (loom has no clock, and a model must be
//! deterministic); the abandonment they lead to is modelled by calling
//! `abandon()` from the coordinator's thread while the participants run.
//!
//! The data the workers and the stop function share are loom cells: each
//! participant writes its own before it reaches its stopper and after it
//! leaves, every `f` reads them all; each `f` writes its own result, every
//! participant reads them all once it has left, and so does the coordinator
//! once the stop is done. loom reports any of those accesses that the state
//! machine does not order, i.e. `f` running while a participant is not yet
//! (or no longer) stopped.

use super::{MultiStop, State};
use crate::cpumask::WorkerMask;
use crate::stop::completion::Completion;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::model::thread;
use crate::sync::model::{Shared, model};
use std::sync::OnceLock;

/// What the stop function and the participants share.
struct World {
    /// One per participant, written by it: 1 before the stop, 2 after.
    tasks: Vec<Shared<u8>>,
    /// One per participant, written by its `f`.
    results: Vec<Shared<u8>>,
    /// `f`'s calls, by worker.
    calls: Vec<AtomicUsize>,
    /// Whether every participant reached PREPARE (set once the stop exists).
    all_arrived: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

/// One stop: `n` participants (workers `0..n`), `active` of them running
/// `f`; with `abandon`, the coordinator tries to abandon the stop right
/// after starting it, racing the participants' way out of PREPARE.
fn run(n: usize, active: WorkerMask, abandon: bool) {
    let world = Arc::new(World {
        tasks: (0..n).map(|_| Shared::new(0)).collect(),
        results: (0..n).map(|_| Shared::new(0)).collect(),
        calls: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        all_arrived: OnceLock::new(),
    });
    let done = Arc::new(Completion::new(n));
    let w = world.clone();
    let ms = Arc::new(MultiStop::new(
        move |worker: usize| {
            // Everyone reached PREPARE before anyone runs `f`, and sits in
            // its stopper: what its tasks wrote is visible, and they write
            // no more.
            assert!((w.all_arrived.get().unwrap())(), "f ran before all arrived");
            for t in &w.tasks {
                assert_eq!(t.get(), 1);
            }
            w.results[worker].update(|r| *r = 1);
            w.calls[worker].fetch_add(1, Ordering::Relaxed);
            worker * 10
        },
        active.clone(),
        n,
        None,
        done.clone(),
    ));
    let weak = Arc::downgrade(&ms);
    let everyone = WorkerMask::from(0..n);
    let _ = world.all_arrived.set(Box::new(move || {
        weak.upgrade().unwrap().stragglers(&everyone).is_empty()
    }));

    // The participants' stop works, queued before the count is published.
    let participants: Vec<_> = (0..n)
        .map(|worker| {
            let (ms, done, world) = (ms.clone(), done.clone(), world.clone());
            thread::spawn(move || {
                world.tasks[worker].update(|t| *t = 1);
                ms.participate(worker, false);
                done.signal();
                // Its tasks run again, and see what every `f` wrote.
                let left = ms.state();
                if left == State::Exit {
                    for r in &world.results {
                        r.get();
                    }
                    world.tasks[worker].update(|t| *t = 2);
                }
                left
            })
        })
        .collect();

    // The coordinator.
    ms.start(n);
    let abandoned = abandon && ms.abandon();
    crate::sync::model::block_on(done.wait());
    if !abandoned {
        for (worker, r) in world.results.iter().enumerate() {
            assert_eq!(
                r.get(),
                u8::from(active.contains(worker)),
                "done before f returned"
            );
        }
    }

    let left: Vec<State> = participants.into_iter().map(|h| h.join().unwrap()).collect();
    let calls: Vec<usize> = world.calls.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    if abandoned {
        // Abandoned in PREPARE: nobody ran `f`, everyone left.
        assert_eq!(ms.state(), State::Abandoned);
        assert!(left.iter().all(|s| *s == State::Abandoned), "{left:?}");
        assert!(
            calls.iter().all(|c| *c == 0),
            "f ran in an abandoned stop: {calls:?}"
        );
    } else {
        // Ran to EXIT: `f` once on each active worker, everyone passed EXIT.
        assert_eq!(ms.state(), State::Exit);
        assert!(left.iter().all(|s| *s == State::Exit), "{left:?}");
        for (worker, c) in calls.iter().enumerate() {
            assert_eq!(
                *c,
                usize::from(active.contains(worker)),
                "f calls on {worker}: {calls:?}"
            );
        }
        let expected: Vec<(usize, usize)> = active.iter().map(|w| (w, w * 10)).collect();
        assert_eq!(ms.take_results().unwrap(), expected);
    }
}

#[test]
fn model_multi_stop_two_workers() {
    model(3, || run(2, WorkerMask::from(0..2), false));
}

#[test]
fn model_multi_stop_two_workers_abandon() {
    model(3, || run(2, WorkerMask::from(0..2), true));
}

#[test]
fn model_multi_stop_three_workers_one_active() {
    model(2, || run(3, WorkerMask::of(1), false));
}

#[test]
fn model_multi_stop_three_workers_all_active() {
    model(2, || run(3, WorkerMask::from(0..3), false));
}

#[test]
fn model_multi_stop_three_workers_abandon() {
    model(2, || run(3, WorkerMask::of(1), true));
}

/// A participant's work is refused (its worker shut down or died between
/// the online check and the queueing) while another participant's work has
/// already started and waits in `None`: the stop is abandoned with the
/// refusal's error, the early participant leaves without running `f`, and
/// the coordinator's wait ends. `start` after the abandonment publishes
/// nothing but still wakes the early one.
#[test]
fn model_multi_stop_cancelled_participant() {
    model(3, || {
        let done = Arc::new(Completion::new(2));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let ms = Arc::new(MultiStop::new(
            move |_| {
                r.fetch_add(1, Ordering::Relaxed);
            },
            WorkerMask::from(0..2),
            2,
            None,
            done.clone(),
        ));
        let early = {
            let (ms, done) = (ms.clone(), done.clone());
            thread::spawn(move || {
                ms.participate(0, false);
                done.signal();
            })
        };
        let refused = {
            let (ms, done) = (ms.clone(), done.clone());
            thread::spawn(move || {
                ms.cancelled(crate::error::StopError::Shutdown);
                done.signal();
            })
        };
        refused.join().unwrap();
        ms.start(1);
        crate::sync::model::block_on(done.wait());
        early.join().unwrap();
        assert_eq!(ms.state(), State::Abandoned);
        assert_eq!(ms.cancellation(), Some(crate::error::StopError::Shutdown));
        assert_eq!(
            ran.load(Ordering::Relaxed),
            0,
            "f ran in a stop missing a participant"
        );
    });
}
