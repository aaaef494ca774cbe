//! Fault behaviour: every failure mode ends in a typed error with the world
//! running again, and nothing hangs.

mod common;

use common::{runtime, watchdog};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;
use stop_machine::{StopError, WorkerMask};

/// A task on `worker` that never yields until `release` is set.
fn hog(
    h: &stop_machine::Handle,
    worker: usize,
    release: Arc<AtomicBool>,
    safepoints: bool,
) -> (stop_machine::TaskId, u32) {
    let (started_tx, started_rx) = mpsc::channel();
    let task = h.spawn_on(worker, async move {
        started_tx.send(()).unwrap();
        while !release.load(Ordering::SeqCst) {
            std::hint::spin_loop();
            if safepoints {
                stop_machine::safepoint();
            }
        }
    });
    started_rx.recv().unwrap();
    let id = task.id();
    drop(task);
    (id, line!() - 12)
}

#[test]
fn a_task_that_never_yields_times_the_stop_out_and_is_named() {
    watchdog("never_yields", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        let (hog_id, spawn_line) = hog(&h, 1, release.clone(), false);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let out = futures::executor::block_on(h.stop_machine_timeout(
            move |_| r.store(true, Ordering::SeqCst),
            None,
            Duration::from_millis(100),
        ));
        let Err(StopError::TimedOut { stragglers }) = out else {
            panic!("expected TimedOut, got {out:?}")
        };
        let culprit = stragglers.iter().find(|s| s.worker == 1).expect("worker 1 named");
        assert_eq!(culprit.task, Some(hog_id));
        assert_eq!(
            culprit.spawned_at.map(|l| (l.file(), l.line())),
            Some((file!(), spawn_line))
        );
        assert!(
            culprit.polling_for.is_some(),
            "the same poll spanned the whole wait"
        );
        assert!(!ran.load(Ordering::SeqCst), "nobody ran f in an abandoned stop");
        // The worker that had arrived went back to its tasks.
        assert_eq!(
            futures::executor::block_on(h.spawn_on(0, async { 5 })).unwrap(),
            5
        );
        release.store(true, Ordering::SeqCst);
        // And the machine stops fine once the hog is gone.
        assert_eq!(
            futures::executor::block_on(h.stop_machine(|w| w, Some(&WorkerMask::full(2)))),
            Ok(0)
        );
    });
}

#[test]
fn a_task_that_calls_safepoint_lets_the_stop_through() {
    watchdog("safepoint", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        hog(&h, 1, release.clone(), true);
        let out = futures::executor::block_on(h.stop_machine_timeout(
            |w| w,
            Some(&WorkerMask::full(2)),
            Duration::from_secs(60),
        ));
        assert_eq!(out, Ok(0));
        release.store(true, Ordering::SeqCst);
    });
}

#[test]
fn a_panic_on_one_of_several_active_workers() {
    watchdog("panic_one", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        let out = futures::executor::block_on(h.stop_machine(
            move |w| {
                if w == 2 {
                    panic!("collector bug on {w}");
                }
                f.fetch_add(1, Ordering::SeqCst);
            },
            Some(&WorkerMask::full(3)),
        ));
        assert_eq!(out, Err(StopError::Panicked("collector bug on 2".into())));
        assert_eq!(
            finished.load(Ordering::SeqCst),
            2,
            "the other active workers finished f"
        );
        for w in 0..3 {
            assert_eq!(
                futures::executor::block_on(h.spawn_on(w, async move { w })).unwrap(),
                w
            );
        }
    });
}

#[test]
fn the_callers_future_dropped_mid_stop() {
    watchdog("dropped_future", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        // Dropped after queueing, while f is held in RUN.
        let barrier = Arc::new(Barrier::new(2));
        let (in_run_tx, in_run_rx) = mpsc::channel();
        let b = barrier.clone();
        let mut stop = Box::pin(h.stop_machine(
            move |_| {
                in_run_tx.send(()).unwrap();
                b.wait();
            },
            None,
        ));
        assert!(futures::executor::block_on(async { futures::poll!(stop.as_mut()) }).is_pending());
        in_run_rx.recv().unwrap();
        drop(stop);
        barrier.wait();
        // The stop finished on its own and released the facility.
        assert_eq!(
            futures::executor::block_on(h.stop_machine(|w| w, Some(&WorkerMask::full(2)))),
            Ok(0)
        );

        // Dropped while still in PREPARE (a worker is busy), then abandoned by
        // nobody: it completes once the worker arrives.
        let release = Arc::new(AtomicBool::new(false));
        hog(&h, 1, release.clone(), false);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut stop =
            Box::pin(h.stop_machine(move |_| r.store(true, Ordering::SeqCst), Some(&WorkerMask::of(0))));
        assert!(futures::executor::block_on(async { futures::poll!(stop.as_mut()) }).is_pending());
        drop(stop);
        release.store(true, Ordering::SeqCst);
        assert_eq!(futures::executor::block_on(h.stop_machine(|_| 1, None)), Ok(1));
        assert!(
            ran.load(Ordering::SeqCst),
            "the dropped stop still ran to completion"
        );
    });
}

#[test]
fn runtime_dropped_while_a_stop_is_queued() {
    watchdog("drop_queued", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        hog(&h, 1, release.clone(), false);
        let caller = std::thread::spawn({
            let h = h.clone();
            move || futures::executor::block_on(h.stop_machine(|_| (), Some(&WorkerMask::of(0))))
        });
        while h.stopper_info(1).unwrap().queued == 0 {
            std::thread::yield_now();
        }
        let dropper = std::thread::spawn(move || drop(rt));
        release.store(true, Ordering::SeqCst);
        dropper.join().unwrap();
        let out = caller.join().unwrap();
        assert!(matches!(out, Ok(()) | Err(StopError::Shutdown)), "{out:?}");
        assert_eq!(
            futures::executor::block_on(h.stop_machine(|_| (), None)),
            Err(StopError::Shutdown)
        );
    });
}

#[test]
fn runtime_dropped_while_a_stop_runs() {
    watchdog("drop_running", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let (in_run_tx, in_run_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = std::sync::Mutex::new(go_rx);
        let caller = std::thread::spawn({
            let h = h.clone();
            move || {
                futures::executor::block_on(h.stop_machine(
                    move |_| {
                        in_run_tx.send(()).unwrap();
                        go_rx.lock().unwrap().recv().unwrap();
                    },
                    None,
                ))
            }
        });
        in_run_rx.recv().unwrap();
        let dropper = std::thread::spawn(move || drop(rt));
        go_tx.send(()).unwrap();
        dropper.join().unwrap();
        assert_eq!(caller.join().unwrap(), Ok(()));
    });
}

#[test]
fn nested_stops_from_every_primitive() {
    watchdog("nested", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let inner = h.clone();
        let out = futures::executor::block_on(h.stop_cpus(&WorkerMask::full(2), move |_| {
            use futures::executor::block_on as b;
            [
                b(inner.stop_machine(|_| (), None)).err(),
                b(inner.stop_cpus(&WorkerMask::of(0), |_| ())).err(),
                b(inner.stop_two_cpus(0, 1, || ())).err(),
                b(inner.stop_one_cpu(0, || ())).err(),
                b(inner.park_worker(1)).err(),
                inner.stop_machine_blocking(|_| (), None).err(),
            ]
        }))
        .unwrap();
        for (_, errs) in out {
            assert!(errs.iter().all(|e| *e == Some(StopError::Nested)), "{errs:?}");
        }
    });
}

#[test]
fn park_unpark_torture_during_stops() {
    watchdog("torture", || {
        let rt = runtime(4);
        let h = rt.handle().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let cycles = Arc::new(AtomicUsize::new(0));
        let onoff = std::thread::spawn({
            let (h, stop, cycles) = (h.clone(), stop.clone(), cycles.clone());
            move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let w = 1 + i % 3;
                    futures::executor::block_on(h.park_worker(w)).unwrap();
                    futures::executor::block_on(h.unpark_worker(w)).unwrap();
                    cycles.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            }
        });
        let stoppers: Vec<_> = (0..2)
            .map(|t| {
                let (h, cycles, stop) = (h.clone(), cycles.clone(), stop.clone());
                std::thread::spawn(move || {
                    // 150 stops, then on until parks and unparks have raced
                    // them a few times: the lock is not fair, and fast stops
                    // back to back may all end before the first park gets it.
                    // Past 150, each stop waits for a park cycle first.
                    for i in (0..).take_while(|i| *i < 150 || cycles.load(Ordering::SeqCst) < 3) {
                        if i >= 150 {
                            let seen = cycles.load(Ordering::SeqCst);
                            while cycles.load(Ordering::SeqCst) == seen && !stop.load(Ordering::SeqCst) {
                                std::thread::yield_now();
                            }
                        }
                        let out = if (i + t) % 2 == 0 {
                            h.stop_machine_blocking(|_| (), Some(&WorkerMask::full(4)))
                                .map(drop)
                        } else {
                            futures::executor::block_on(h.stop_cpus(&WorkerMask::full(4), |_| ())).map(drop)
                        };
                        assert!(matches!(out, Ok(()) | Err(StopError::Offline)), "{out:?}");
                    }
                })
            })
            .collect();
        for s in stoppers {
            s.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        onoff.join().unwrap();
        assert!(cycles.load(Ordering::SeqCst) >= 3);
        for w in 0..4 {
            assert!(h.is_online(w));
        }
        assert_eq!(
            futures::executor::block_on(h.stop_cpus(&WorkerMask::full(4), |w| w))
                .unwrap()
                .len(),
            4
        );
    });
}
