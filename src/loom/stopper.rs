//! loom models of the stopper queue: queueing against a worker going
//! offline (the `enabled` flag), and the queueing order that requests
//! sharing workers must agree on (`stop_two_cpus` against `stop_cpus`).
//!
//! The callers' side is replicated from `hotplug.rs` (`park_worker`),
//! `scheduler.rs` (`go_offline`) and `stop_machine.rs` (`queue_on` under
//! the queue lock); the `Stopper` is the production one.

use super::{Refused, StopWork, Stopper};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::loom_model::model;
use crate::sync::{Arc, Mutex, lock};
use loom::thread;
use std::panic::Location;

/// A stop work that runs `f`.
fn work(f: impl FnOnce() + Send + 'static) -> StopWork {
    StopWork::new("loom", Location::caller(), f)
}

/// A stop queues a work while hotplug disables the stopper and the worker
/// flushes it on its way offline: the work is either refused (and its owner
/// completes its share), or queued and run by a flush after the disable.
/// Never both, never lost in the queue of an offline worker.
#[test]
fn loom_stopper_queue_vs_offline() {
    model(3, || {
        let stopper = Arc::new(Stopper::new());
        let want_offline = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicUsize::new(0));

        // The worker: runs its stopper at poll boundaries; once asked to go
        // offline, flushes it (`go_offline`) and stays there.
        let worker = {
            let (stopper, want_offline) = (stopper.clone(), want_offline.clone());
            thread::spawn(move || {
                loop {
                    if stopper.is_pending() {
                        stopper.run_pending();
                    }
                    if want_offline.load(Ordering::SeqCst) {
                        stopper.run_pending();
                        return;
                    }
                    thread::park();
                }
            })
        };

        // A stop queueing a work, then notifying the worker.
        let queuer = {
            let (stopper, ran, w) = (stopper.clone(), ran.clone(), worker.thread().clone());
            thread::spawn(move || {
                let r = stopper.queue(work(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                }));
                match r {
                    Ok(()) => {
                        w.unpark();
                        false
                    }
                    Err((why, _work)) => {
                        assert_eq!(why, Refused::Offline);
                        true
                    }
                }
            })
        };

        // Hotplug (`park_worker`): disable, then ask the worker to go.
        stopper.set_enabled(false);
        want_offline.store(true, Ordering::SeqCst);
        stopper.poke();
        worker.thread().unpark();

        let refused = queuer.join().unwrap();
        worker.join().unwrap();
        let ran = ran.load(Ordering::Relaxed);
        assert!(refused != (ran == 1), "refused: {refused}, ran {ran} times");
        assert!(ran <= 1);
        assert_eq!(stopper.queued(), 0, "a work left on an offline stopper");
        assert!(!stopper.is_enabled());
        assert!(stopper.queue(work(|| ())).is_err());
    });
}

/// Two multi-worker requests queue on the same two stoppers, each under the
/// queue lock (`queue_on`), one in ascending and one in descending worker
/// order (as `stop_two_cpus` and `stop_cpus` may), while worker 0 drains
/// its stopper: both stoppers run the two requests in the same order, so
/// no two workers can each wait in a different stop for the other.
#[test]
fn loom_stopper_queueing_order() {
    model(3, || {
        let stoppers = Arc::new([Stopper::new(), Stopper::new()]);
        let order = Arc::new(Mutex::new(()));
        // What each stopper ran, in order (a std lock: no part of the model).
        let ran = Arc::new(std::sync::Mutex::new([Vec::new(), Vec::new()]));

        let queuers: Vec<_> = [('A', [0, 1]), ('B', [1, 0])]
            .into_iter()
            .map(|(name, workers)| {
                let (stoppers, order, ran) = (stoppers.clone(), order.clone(), ran.clone());
                thread::spawn(move || {
                    let _order = lock(&order);
                    for w in workers {
                        let ran = ran.clone();
                        let queued = stoppers[w].queue(work(move || ran.lock().unwrap()[w].push(name)));
                        assert!(queued.is_ok());
                    }
                })
            })
            .collect();
        let worker0 = {
            let stoppers = stoppers.clone();
            thread::spawn(move || stoppers[0].run_pending())
        };

        for q in queuers {
            q.join().unwrap();
        }
        worker0.join().unwrap();
        for s in stoppers.iter() {
            assert_eq!(
                s.is_pending(),
                s.queued() > 0,
                "pending flag out of step with the queue"
            );
            s.run_pending();
        }
        let ran = ran.lock().unwrap();
        assert_eq!(ran[0].len(), 2);
        assert_eq!(ran[0], ran[1], "the stoppers disagree on the queueing order");
    });
}
