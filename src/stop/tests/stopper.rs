//! Models of the stopper's queue and lifecycle: queueing against a worker
//! going offline and against shutdown, and the queueing order that
//! requests sharing workers must agree on.
//!
//! The worker's side is replicated from `runtime/service.rs` (`serve`,
//! `go_offline`) and `runtime/scheduler.rs` (`shut_down`); the `Stopper`,
//! its works and completions are the production ones.

use super::{HOTPLUG, Life, SHUTDOWN, Stopper, WORK};
use crate::error::StopError;
use crate::stats::StopKind;
use crate::stop::completion::Completion;
use crate::stop::work::{Go, StopWork};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::model::{model, thread};
use crate::sync::{Arc, Mutex};
use std::panic::Location;

/// A stop work whose job is `f`.
fn work(f: impl FnOnce(Go) + Send + 'static) -> StopWork {
    StopWork::new(StopKind::One, Location::caller(), f)
}

/// The worker's side, as `serve` runs it: works first, then the lifecycle,
/// parking whenever nothing is pending. Returns when the worker is closing.
fn worker_loop(stopper: &Stopper) {
    loop {
        let pending = stopper.pending();
        if pending & WORK != 0 {
            stopper.run_pending();
            continue;
        }
        if pending & SHUTDOWN != 0 {
            stopper.run_pending();
            stopper.end(false);
            return;
        }
        if pending & HOTPLUG != 0 || stopper.life() == Life::Offline {
            stopper.run_pending();
            match stopper.ack_offline() {
                Life::GoingOffline => continue,
                Life::Closing => continue,
                _ => {}
            }
        }
        crate::sync::thread::park();
    }
}

/// A stop queues a work while hotplug parks the worker and then the
/// runtime shuts down: the work is either run (queued while online) or
/// cancelled with a typed error, exactly once, never lost; the park is
/// acknowledged whatever happens; and once the worker has ended, every
/// work is refused with `Shutdown`.
#[test]
fn model_stopper_queue_vs_park_and_shutdown() {
    model(3, || {
        let stopper = Arc::new(Stopper::new());
        let ran = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(Mutex::new(None::<StopError>));

        let worker = {
            let stopper = stopper.clone();
            thread::spawn(move || worker_loop(&stopper))
        };

        let queuer = {
            let (stopper, ran, cancelled, w) = (
                stopper.clone(),
                ran.clone(),
                cancelled.clone(),
                worker.thread().clone(),
            );
            thread::spawn(move || {
                let queued = stopper.queue(work(move |go| match go {
                    Ok(()) => {
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => *cancelled.lock() = Some(why),
                }));
                w.unpark();
                queued
            })
        };

        // Hotplug (`park_worker`), then shutdown (`Runtime::drop`).
        let ack = Arc::new(Completion::new(1));
        let parked = stopper.request_offline(&ack);
        worker.thread().unpark();
        stopper.close();
        worker.thread().unpark();

        let queued = queuer.join().unwrap();
        worker.join().unwrap();
        assert!(parked.is_ok(), "a park before shutdown is taken");
        assert!(ack.is_done(), "the park was never acknowledged");
        let ran = ran.load(Ordering::Relaxed);
        let cancelled = cancelled.lock().take();
        match queued {
            Ok(_) => assert_eq!((ran, &cancelled), (1, &None), "a queued work runs once"),
            Err(why) => {
                assert_eq!(ran, 0);
                assert_eq!(
                    cancelled.as_ref(),
                    Some(&why),
                    "a refused work is cancelled with its reason"
                );
                assert!(matches!(why, StopError::Offline | StopError::Shutdown));
            }
        }
        assert_eq!(stopper.life(), Life::Closed);
        assert_eq!(stopper.pending(), 0);
        assert_eq!(stopper.queued(), 0, "a work left on an ended stopper");
        assert_eq!(stopper.queue(work(|_| ())), Err(StopError::Shutdown));
    });
}

/// Park and unpark race a queueing: the work runs exactly once or is
/// refused with `Offline`; the worker ends online with nothing queued.
#[test]
fn model_stopper_park_unpark_vs_queue() {
    model(3, || {
        let stopper = Arc::new(Stopper::new());
        let ran = Arc::new(AtomicUsize::new(0));

        let worker = {
            let stopper = stopper.clone();
            thread::spawn(move || worker_loop(&stopper))
        };
        let queuer = {
            let (stopper, ran, w) = (stopper.clone(), ran.clone(), worker.thread().clone());
            thread::spawn(move || {
                let queued = stopper.queue(work(move |go| {
                    if go.is_ok() {
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                }));
                w.unpark();
                queued
            })
        };

        let ack = Arc::new(Completion::new(1));
        stopper.request_offline(&ack).unwrap();
        worker.thread().unpark();
        // Spin rather than block on the completion's waker: loom's
        // `AtomicWaker` mock trips over a wake racing a registration here.
        while !ack.is_done() {
            thread::yield_now();
        }
        assert_eq!(stopper.life(), Life::Offline);
        assert_eq!(stopper.request_online(), Ok(true));
        worker.thread().unpark();

        let queued = queuer.join().unwrap();
        // Whatever the queuer saw, the worker runs what it took.
        stopper.close();
        worker.thread().unpark();
        worker.join().unwrap();
        let ran = ran.load(Ordering::Relaxed);
        match queued {
            Ok(_) => assert_eq!(ran, 1),
            Err(why) => {
                assert_eq!(why, StopError::Offline);
                assert_eq!(ran, 0);
            }
        }
    });
}

/// Two multi-worker requests queue on the same two stoppers, each under the
/// queue lock (`queue_on`), one in ascending and one in descending worker
/// order (as `stop_two_cpus` and `stop_cpus` may), while worker 0 drains
/// its stopper: both stoppers run the two requests in the same order, so
/// no two workers can each wait in a different stop for the other.
#[test]
fn model_stopper_queueing_order() {
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
                    let _order = order.lock();
                    for w in workers {
                        let ran = ran.clone();
                        let queued = stoppers[w].queue(work(move |_| ran.lock().unwrap()[w].push(name)));
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
                s.pending() & WORK != 0,
                s.queued() > 0,
                "pending bit out of step with the queue"
            );
            s.run_pending();
        }
        let ran = ran.lock().unwrap();
        assert_eq!(ran[0].len(), 2);
        assert_eq!(ran[0], ran[1], "the stoppers disagree on the queueing order");
    });
}

/// Case 7 of the reliability issue, at the stopper: a park (`park_worker`
/// on a plain thread) races the shutdown (`Runtime::drop`) instead of
/// preceding it. The park is either refused with `Shutdown` or
/// acknowledged; it is never taken and left unacknowledged.
#[test]
fn model_stopper_park_racing_shutdown() {
    model(3, || {
        let stopper = Arc::new(Stopper::new());
        let worker = {
            let stopper = stopper.clone();
            thread::spawn(move || worker_loop(&stopper))
        };
        let parker = {
            let (stopper, w) = (stopper.clone(), worker.thread().clone());
            thread::spawn(move || {
                let ack = Arc::new(Completion::new(1));
                let parked = stopper.request_offline(&ack);
                w.unpark();
                (parked, ack)
            })
        };
        stopper.close();
        worker.thread().unpark();
        let (parked, ack) = parker.join().unwrap();
        worker.join().unwrap();
        match parked {
            Ok(()) => assert!(
                ack.is_done(),
                "a park taken before shutdown was never acknowledged"
            ),
            Err(why) => assert_eq!(why, StopError::Shutdown),
        }
        assert_eq!(stopper.life(), Life::Closed);
    });
}
