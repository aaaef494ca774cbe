//! stop_one_cpu: priority over queued tasks, poll-boundary latency on a
//! busy worker, waking a parked worker, and the typed errors.

mod common;

use common::{runtime, watchdog};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use stop_machine::{Handle, StopError};

#[test]
fn runs_before_tasks_already_queued() {
    watchdog("before_queued", || {
        let rt = runtime(2);
        let order = rt.block_on(async {
            stop_machine::spawn_on(1, async {
                let order = Arc::new(Mutex::new(Vec::new()));
                // Queued on this worker, not yet run: we hold the worker.
                let tasks: Vec<_> = (0..3)
                    .map(|i| {
                        let o = order.clone();
                        stop_machine::spawn(async move { o.lock().unwrap().push(format!("task{i}")) })
                    })
                    .collect();
                let o = order.clone();
                let stop = stop_machine::stop_one_cpu(1, move || o.lock().unwrap().push("stop".into()));
                stop.await.unwrap();
                for t in tasks {
                    t.await.unwrap();
                }
                Arc::try_unwrap(order).unwrap().into_inner().unwrap()
            })
            .await
            .unwrap()
        });
        assert_eq!(order, ["stop", "task0", "task1", "task2"]);
    });
}

#[test]
fn the_caller_resumes_ahead_of_its_workers_queue() {
    watchdog("resume_first", || {
        let rt = runtime(2);
        let order = rt.block_on(async {
            stop_machine::spawn_on(0, async {
                let order = Arc::new(Mutex::new(Vec::new()));
                let (f_done, f_ended) = tokio::sync::oneshot::channel::<()>();
                let after_stop = Arc::new(AtomicBool::new(false));
                // On worker 1, woken by `f`: polled once the stop work, and
                // with it the caller's wake, is over.
                let a = after_stop.clone();
                let witness = stop_machine::spawn_on(1, async move {
                    f_ended.await.unwrap();
                    a.store(true, Ordering::SeqCst);
                });
                // Queued behind this task on worker 0. The first holds the
                // worker until the caller has been woken, so the others are
                // all still queued when the wake arrives.
                let tasks: Vec<_> = (0..10)
                    .map(|i| {
                        let (o, a) = (order.clone(), after_stop.clone());
                        stop_machine::spawn(async move {
                            while i == 0 && !a.load(Ordering::SeqCst) {
                                std::hint::spin_loop();
                            }
                            o.lock().unwrap().push(format!("task{i}"));
                        })
                    })
                    .collect();
                stop_machine::stop_one_cpu(1, move || f_done.send(()).unwrap())
                    .await
                    .unwrap();
                order.lock().unwrap().push("caller".into());
                for t in tasks {
                    t.await.unwrap();
                }
                witness.await.unwrap();
                Arc::try_unwrap(order).unwrap().into_inner().unwrap()
            })
            .await
            .unwrap()
        });
        // The stop may even end before task0 starts; either way the caller
        // runs before the nine tasks still queued when it was woken.
        let mut tasks: Vec<String> = (0..10).map(|i| format!("task{i}")).collect();
        let caller_at = order.iter().position(|e| e == "caller");
        assert!(
            caller_at <= Some(1),
            "the caller resumed behind its worker's queue: {order:?}"
        );
        tasks.insert(caller_at.unwrap(), "caller".into());
        assert_eq!(order, tasks);
    });
}

#[test]
fn busy_worker_stops_at_the_next_poll_boundary() {
    watchdog("busy", || {
        let rt = runtime(2);
        let polls = Arc::new(AtomicUsize::new(0));
        let (in_poll_tx, in_poll_rx) = std::sync::mpsc::channel::<()>();
        let (queued_tx, queued_rx) = std::sync::mpsc::channel::<()>();
        let p = polls.clone();
        let busy = rt.handle().spawn_on(1, async move {
            loop {
                let n = p.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 100 {
                    // Hold poll 100 until the stop is queued.
                    in_poll_tx.send(()).unwrap();
                    queued_rx.recv().unwrap();
                }
                tokio::task::yield_now().await;
            }
        });
        in_poll_rx.recv().unwrap();
        let p = polls.clone();
        let stop = rt.handle().stop_one_cpu(1, move || p.load(Ordering::SeqCst));
        let seen = futures::executor::block_on(async {
            let mut stop = std::pin::pin!(stop);
            // The first poll queues the work.
            assert!(futures::poll!(stop.as_mut()).is_pending());
            queued_tx.send(()).unwrap();
            stop.await
        });
        assert_eq!(seen, Ok(100), "no further poll of the busy task before the stop");
        busy.abort();
    });
}

#[test]
fn parked_worker_is_woken_to_run_it() {
    watchdog("parked", || {
        let rt = runtime(2);
        // Nothing runs on worker 1: it sleeps in its driver.
        let h = rt.handle().clone();
        for _ in 0..100 {
            let on = futures::executor::block_on(h.stop_one_cpu(1, stop_machine::current_worker));
            assert_eq!(on, Ok(Some(1)));
        }
    });
}

#[test]
fn typed_errors_and_the_worker_goes_on() {
    watchdog("errors", || {
        let rt = runtime(2);
        let h: Handle = rt.handle().clone();
        use futures::executor::block_on as b;
        assert_eq!(b(h.stop_one_cpu(2, || ())), Err(StopError::InvalidWorker));
        assert_eq!(
            b(h.stop_one_cpu(usize::MAX, || ())),
            Err(StopError::InvalidWorker)
        );
        assert!(!h.stop_one_cpu_nowait(9, || ()));
        let err = b(h.stop_one_cpu(1, || -> () { panic!("stop fn failed") }));
        assert_eq!(err, Err(StopError::Panicked("stop fn failed".into())));
        // The worker survives and keeps running tasks and stops.
        assert_eq!(b(h.stop_one_cpu(1, || 3)), Ok(3));
        assert_eq!(b(h.spawn_on(1, async { 4 })).unwrap(), 4);
        assert!(h.stop_one_cpu_nowait(1, || panic!("nowait panic is caught")));
        assert_eq!(b(h.stop_one_cpu(1, || 5)), Ok(5));
    });
}

#[test]
fn nested_stop_from_a_stop_function_is_refused() {
    watchdog("nested", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let inner = h.clone();
        let out = futures::executor::block_on(h.stop_one_cpu(0, move || {
            futures::executor::block_on(inner.stop_one_cpu(1, || ()))
        }));
        assert_eq!(out, Ok(Err(StopError::Nested)));
    });
}
