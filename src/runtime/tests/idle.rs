//! loom model of the idle claim: a stop claiming a worker asleep in its
//! driver (under the stopper's lock, as `Worker::try_claim` does) races the
//! worker waking up (`after_unpark`, tokio's `on_thread_unpark`) and another
//! stop queueing a work on it. The callers' side is replicated from
//! `runtime/worker.rs` and `stop_machine.rs`; `IdleState` and `Stopper` are
//! the production ones.

use super::IdleState;
use crate::stats::StopKind;
use crate::stop::stopper::Stopper;
use crate::stop::work::StopWork;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::model::thread;
use crate::sync::model::{Shared, model};
use crate::sync::thread::park;
use std::panic::Location;

/// Exactly one of the waking worker (PARKED → RUNNING) and the stop
/// (PARKED → CLAIMED) wins; a claimed worker does not return from
/// `after_unpark` (woken spuriously or not), so runs no task and no stop
/// work, until the stop releases it; a work queued meanwhile either
/// prevents the claim or runs after the release; and the stop sees what the
/// worker's tasks wrote before it went to sleep. loom reports any overlap or
/// missing order between the accesses to the shared cell.
#[test]
fn model_idle_claim_vs_wakeup() {
    model(3, || {
        let idle = Arc::new(IdleState::new());
        let stopper = Arc::new(Stopper::new());
        // What the worker's tasks, stop works and the stop function touch.
        let world = Arc::new(Shared::new(0u32));
        // Set while the stop holds the claim. Relaxed, so that only the
        // handshake orders what the worker sees.
        let in_stop = Arc::new(AtomicBool::new(false));

        // The worker: ran tasks, sleeps in its driver, wakes (for any
        // reason), then runs its stopper and tasks again.
        let worker = {
            let (idle, stopper, world, in_stop) =
                (idle.clone(), stopper.clone(), world.clone(), in_stop.clone());
            thread::spawn(move || {
                world.update(|w| *w += 1);
                idle.before_park();
                idle.after_unpark(park);
                assert!(!in_stop.load(Ordering::Relaxed), "ran while claimed by a stop");
                assert!(!idle.is_idle());
                if stopper.pending() != 0 {
                    stopper.run_pending();
                }
                world.update(|w| *w += 1);
            })
        };

        // Another stop queues a work on the worker and notifies it.
        let queuer = {
            let (stopper, world, w) = (stopper.clone(), world.clone(), worker.thread().clone());
            thread::spawn(move || {
                let work = StopWork::new(StopKind::One, Location::caller(), move |_| {
                    world.update(|w| *w += 100)
                });
                assert!(stopper.queue(work).is_ok());
                w.unpark();
            })
        };

        // This stop: claim under the stopper's lock, run, release, unpark.
        let claimed = stopper.if_idle(|| idle.try_claim().then_some(())).is_some();
        if claimed {
            in_stop.store(true, Ordering::Relaxed);
            world.update(|w| *w += 10);
            in_stop.store(false, Ordering::Relaxed);
            idle.release();
            // A scheduling point between the two halves of
            // `Worker::release`: loom's `unpark` orders everything before it
            // with the unparked thread at once, parked or not, which would
            // hide a release without the ordering the worker relies on.
            thread::yield_now();
            worker.thread().unpark();
        }

        queuer.join().unwrap();
        worker.join().unwrap();
        // A work the worker did not see is run at its next poll boundary.
        stopper.run_pending();
        let expected = if claimed { 112 } else { 102 };
        assert_eq!(world.get(), expected);
        assert!(!idle.try_claim(), "claimed a running worker");
    });
}
