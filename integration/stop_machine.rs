//! Multi-worker stops: stop_machine, stop_cpus, try_stop_cpus, stop_two_cpus,
//! paused I/O, idle claims, hotplug and the typed errors.

mod common;

use common::{runtime, watchdog};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};
use stop_machine::{Handle, StopError, WorkerMask};
use tokio::io::AsyncReadExt;

#[test]
fn every_worker_runs_f_when_all_are_active() {
    watchdog("all_active", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let all = WorkerMask::full(3);
        let first = rt.block_on(async move {
            h.stop_machine(
                move |w| {
                    assert_eq!(stop_machine::current_worker(), Some(w));
                    s.fetch_add(1 << w, Ordering::SeqCst);
                    w
                },
                Some(&all),
            )
            .await
        });
        assert_eq!(
            first,
            Ok(0),
            "the caller gets f's value on the lowest active worker"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0b111);
    });
}

#[test]
fn no_task_of_any_kind_is_polled_while_f_runs() {
    watchdog("no_polls_in_run", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        let in_run = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicU64::new(0));
        let violations = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let probe = |in_run: Arc<AtomicBool>,
                     polls: Arc<AtomicU64>,
                     bad: Arc<AtomicU64>,
                     stop: Arc<AtomicBool>| async move {
            while !stop.load(Ordering::SeqCst) {
                polls.fetch_add(1, Ordering::Relaxed);
                if in_run.load(Ordering::SeqCst) {
                    bad.fetch_add(1, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
            }
        };
        let mut probes = Vec::new();
        for w in 0..3 {
            let args = (in_run.clone(), polls.clone(), violations.clone(), stop.clone());
            probes.push(h.spawn_on(w, probe(args.0, args.1, args.2, args.3)));
            // tokio::spawn'ed and spawn_local'ed probes on the same worker.
            let args = (in_run.clone(), polls.clone(), violations.clone(), stop.clone());
            probes.push(h.spawn_on(w, async move {
                let t = tokio::spawn(probe(args.0, args.1, args.2, args.3));
                t.await.unwrap()
            }));
            let args = (in_run.clone(), polls.clone(), violations.clone(), stop.clone());
            probes.push(h.spawn_on(w, async move {
                let (a, b, c, d) = args;
                stop_machine::spawn_local(async move {
                    let _not_send = std::rc::Rc::new(());
                    probe(a, b, c, d).await
                })
                .await
                .unwrap()
            }));
        }
        for _ in 0..50 {
            let before = polls.load(Ordering::SeqCst);
            let r = in_run.clone();
            let out = futures::executor::block_on(h.stop_machine(
                move |_| {
                    r.store(true, Ordering::SeqCst);
                    for _ in 0..2_000 {
                        std::hint::spin_loop();
                    }
                    r.store(false, Ordering::SeqCst);
                },
                None,
            ));
            out.unwrap();
            // Let the probes run between stops.
            while polls.load(Ordering::SeqCst) < before + 9 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::SeqCst);
        for p in probes {
            futures::executor::block_on(p).unwrap();
        }
        assert!(polls.load(Ordering::SeqCst) > 50 * 9);
        assert_eq!(
            violations.load(Ordering::SeqCst),
            0,
            "a task was polled during RUN"
        );
    });
}

#[test]
fn tcp_bytes_written_during_a_stop_arrive_in_order_after_it() {
    watchdog("tcp_during_stop", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let in_stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let flag = in_stop.clone();
        let server = h.spawn_on(1, async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let mut read_during_stop = false;
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                read_during_stop |= flag.load(Ordering::SeqCst);
                got.extend_from_slice(&buf[..n]);
            }
            (got, read_during_stop)
        });
        let addr = addr_rx.recv().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let mut expected = Vec::new();
        for round in 0..5u8 {
            let chunk: Vec<u8> = (0..10_000u32).map(|i| (i as u8).wrapping_add(round)).collect();
            // Write while every worker is stopped.
            let (f, c, chunk2) = (in_stop.clone(), client.try_clone().unwrap(), chunk.clone());
            let c = std::sync::Mutex::new(c);
            futures::executor::block_on(h.stop_machine(
                move |_| {
                    f.store(true, Ordering::SeqCst);
                    c.lock().unwrap().write_all(&chunk2).unwrap();
                    f.store(false, Ordering::SeqCst);
                },
                None,
            ))
            .unwrap();
            expected.extend_from_slice(&chunk);
            // And some outside stops.
            client.write_all(&[round; 100]).unwrap();
            expected.extend_from_slice(&[round; 100]);
        }
        drop(client);
        let (got, read_during_stop) = futures::executor::block_on(server).unwrap();
        assert!(!read_during_stop, "the server read during a stop");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes lost or reordered");
    });
}

#[test]
fn a_timer_due_during_the_stop_fires_after_it() {
    // The risky case: worker 1 sleeps in its driver with a timer armed, a
    // stop that does not need it claims it without waking it, and the
    // timer falls due while the world is stopped. The claimed worker must
    // not run the timer's task until the stop is over.
    watchdog("timer_during_stop", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let mut claimed_once = false;
        for _ in 0..20 {
            let in_stop = Arc::new(AtomicBool::new(false));
            let (armed_tx, armed_rx) = mpsc::channel();
            let flag = in_stop.clone();
            let timer = h.spawn_on(1, async move {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
                armed_tx.send(deadline.into_std()).unwrap();
                tokio::time::sleep_until(deadline).await;
                flag.load(Ordering::SeqCst)
            });
            let deadline = armed_rx.recv().unwrap();
            while !h.stopper_info(1).unwrap().idle {
                std::thread::yield_now();
            }
            let claims = h.stats().worker(1).unwrap().claimed;
            let f = in_stop.clone();
            h.stop_machine_blocking(
                move |_| {
                    f.store(true, Ordering::SeqCst);
                    // Make the timer due while the world is stopped.
                    while Instant::now() < deadline + Duration::from_millis(1) {
                        std::thread::yield_now();
                    }
                    f.store(false, Ordering::SeqCst);
                },
                Some(&WorkerMask::of(0)),
            )
            .unwrap();
            let fired_during_stop = futures::executor::block_on(timer).unwrap();
            assert!(!fired_during_stop, "the timer's task ran during the stop");
            claimed_once |= h.stats().worker(1).unwrap().claimed > claims;
            if claimed_once {
                break;
            }
        }
        assert!(
            claimed_once,
            "worker 1 was never claimed asleep: the case was not exercised"
        );
    });
}

#[test]
fn an_idle_worker_is_not_woken_by_a_stop_that_does_not_need_it() {
    watchdog("idle_claim", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        while !h.stopper_info(1).unwrap().idle {
            std::thread::yield_now();
        }
        let before = h.stopper_info(1).unwrap().wakeups;
        for _ in 0..20 {
            let on = futures::executor::block_on(h.stop_machine(|w| w, Some(&WorkerMask::of(0))));
            assert_eq!(on, Ok(0));
        }
        let after = h.stopper_info(1).unwrap().wakeups;
        // Without the claim, each stop would wake it: 20 wake-ups.
        assert!(
            after - before <= 1,
            "worker 1 woke {} times for 20 stops",
            after - before
        );
        // It still runs tasks afterwards.
        assert_eq!(
            futures::executor::block_on(h.spawn_on(1, async { 1 })).unwrap(),
            1
        );
    });
}

#[test]
fn blocking_variant_from_a_thread_and_inline_on_a_worker() {
    watchdog("blocking", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let all = WorkerMask::full(2);
        assert_eq!(h.stop_machine_blocking(|w| w, Some(&all)), Ok(0));
        // Inside a task's poll: the worker takes part inline.
        let inline = rt.block_on(async {
            let all = WorkerMask::full(2);
            let me = stop_machine::current_worker().unwrap();
            let ran = stop_machine::stop_machine_blocking(move |w| w, Some(&WorkerMask::of(me)));
            let everyone = stop_machine::stop_machine_blocking(|w| w, Some(&all));
            (me, ran, everyone)
        });
        assert_eq!(inline.1, Ok(inline.0));
        assert_eq!(inline.2, Ok(0));
    });
}

#[test]
fn stop_cpus_and_stop_two_cpus() {
    watchdog("cpus_two", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        use futures::executor::block_on as b;
        let mask: WorkerMask = [0, 2].into_iter().collect();
        assert_eq!(b(h.stop_cpus(&mask, |w| w * 2)), Ok(vec![(0, 0), (2, 4)]));
        assert_eq!(b(h.try_stop_cpus(&mask, |w| w)), Ok(vec![(0, 0), (2, 2)]));
        assert_eq!(
            b(h.stop_two_cpus(2, 1, stop_machine::current_worker)),
            Ok(Some(2))
        );
        assert_eq!(b(h.stop_two_cpus(1, 1, || 5)), Ok(5));
    });
}

#[test]
fn typed_errors() {
    watchdog("errors", || {
        let rt = runtime(3);
        let h: Handle = rt.handle().clone();
        use futures::executor::block_on as b;
        let bad: WorkerMask = [0, 9].into_iter().collect();
        assert_eq!(
            b(h.stop_cpus(&WorkerMask::new(), |_| ())),
            Err(StopError::EmptyMask)
        );
        assert_eq!(b(h.stop_cpus(&bad, |_| ())), Err(StopError::InvalidWorker));
        assert_eq!(
            b(h.stop_machine(|_| (), Some(&WorkerMask::new()))),
            Err(StopError::EmptyMask)
        );
        assert_eq!(
            b(h.stop_machine(|_| (), Some(&bad))),
            Err(StopError::InvalidWorker)
        );
        assert_eq!(b(h.stop_two_cpus(0, 9, || ())), Err(StopError::InvalidWorker));

        // Offline.
        b(h.park_worker(1)).unwrap();
        assert_eq!(
            b(h.stop_cpus(&WorkerMask::of(1), |_| ())),
            Err(StopError::Offline)
        );
        assert_eq!(b(h.stop_two_cpus(0, 1, || ())), Err(StopError::Offline));
        assert_eq!(
            b(h.stop_machine(|_| (), Some(&WorkerMask::of(1)))),
            Err(StopError::Offline)
        );
        assert_eq!(
            b(h.stop_cpus(&WorkerMask::full(3), |w| w)),
            Ok(vec![(0, 0), (2, 2)])
        );
        b(h.unpark_worker(1)).unwrap();

        // Busy: a stop_cpus holds the facility while f waits on a barrier.
        let barrier = Arc::new(Barrier::new(2));
        let bar = barrier.clone();
        let (entered_tx, entered_rx) = mpsc::channel();
        let holder = std::thread::spawn({
            let h = h.clone();
            move || {
                b(h.stop_cpus(&WorkerMask::of(2), move |_| {
                    entered_tx.send(()).unwrap();
                    bar.wait();
                }))
            }
        });
        entered_rx.recv().unwrap();
        assert_eq!(
            b(h.try_stop_cpus(&WorkerMask::of(0), |_| ())),
            Err(StopError::Busy)
        );
        barrier.wait();
        holder.join().unwrap().unwrap();

        // Panicked on one of several active workers: all leave, the caller learns.
        let all = WorkerMask::full(3);
        let r = b(h.stop_machine(
            |w| {
                if w == 1 {
                    panic!("f failed on 1")
                }
            },
            Some(&all),
        ));
        assert_eq!(r, Err(StopError::Panicked("f failed on 1".into())));
        assert_eq!(b(h.stop_machine(|w| w, Some(&all))), Ok(0), "the world resumed");

        // Nested.
        let inner = h.clone();
        let r = b(h.stop_machine(move |_| inner.stop_machine_blocking(|_| (), None), None));
        assert_eq!(r, Ok(Err(StopError::Nested)));

        // Shutdown.
        drop(rt);
        assert_eq!(b(h.stop_machine(|_| (), None)), Err(StopError::Shutdown));
        assert_eq!(b(h.stop_one_cpu(0, || ())), Err(StopError::Shutdown));
    });
}

#[test]
fn hotplug_parks_tasks_and_stops_count_only_online_workers() {
    watchdog("hotplug", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        use futures::executor::block_on as b;
        b(h.park_worker(2)).unwrap();
        assert!(!h.is_online(2));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let task = h.spawn_on(2, async move { r.store(true, Ordering::SeqCst) });
        // stop_machine runs with only the online workers.
        assert_eq!(
            b(h.stop_cpus(&WorkerMask::full(3), |w| w)),
            Ok(vec![(0, 0), (1, 1)])
        );
        assert_eq!(b(h.stop_machine(|w| w, Some(&WorkerMask::full(3)))), Ok(0));
        assert!(!ran.load(Ordering::SeqCst), "a task ran on an offline worker");
        // Spawning from outside skips the offline worker: block_on completes.
        for _ in 0..6 {
            assert_ne!(rt.block_on(async { stop_machine::current_worker() }), Some(2));
        }
        b(h.unpark_worker(2)).unwrap();
        b(task).unwrap();
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(
            b(h.stop_cpus(&WorkerMask::full(3), |w| w)),
            Ok(vec![(0, 0), (1, 1), (2, 2)])
        );
    });
}

/// A tiny deterministic generator, so the storm is reproducible.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn storm_of_concurrent_stops_and_hotplug_does_not_deadlock() {
    watchdog("storm", || {
        let rt = runtime(4);
        let h = rt.handle().clone();
        let ops = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..6u64 {
            let (h, ops) = (h.clone(), ops.clone());
            tasks.push(h.clone().spawn_on((t % 4) as usize, async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
                for _ in 0..60 {
                    let r = xorshift(&mut seed);
                    let (a, b) = ((r % 4) as usize, ((r >> 8) % 4) as usize);
                    let out = match r % 5 {
                        0 | 1 => h.stop_two_cpus(a, b, || ()).await,
                        2 => h.stop_cpus(&[a, b].into_iter().collect(), |_| ()).await.map(drop),
                        3 => match h.try_stop_cpus(&WorkerMask::of(a), |_| ()).await {
                            Err(StopError::Busy) => Ok(()),
                            other => other.map(drop),
                        },
                        _ => h.stop_machine(|_| (), Some(&WorkerMask::of(a))).await,
                    };
                    match out {
                        Ok(()) | Err(StopError::Offline) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    let mut seed = 0xDEAD_BEEF ^ t;
                    for i in 0..40 {
                        let r = xorshift(&mut seed);
                        if t == 1 && i % 4 == 0 {
                            // Hotplug churn on worker 3.
                            futures::executor::block_on(h.park_worker(3)).unwrap();
                            futures::executor::block_on(h.unpark_worker(3)).unwrap();
                            continue;
                        }
                        let (a, b) = ((r % 4) as usize, ((r >> 8) % 4) as usize);
                        let out = futures::executor::block_on(h.stop_two_cpus(b, a, || ()))
                            .and_then(|()| h.stop_machine_blocking(|_| (), None));
                        assert!(matches!(out, Ok(()) | Err(StopError::Offline)), "{out:?}");
                    }
                })
            })
            .collect();
        for t in tasks {
            futures::executor::block_on(t).unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ops.load(Ordering::Relaxed), 6 * 60);
        assert_eq!(
            futures::executor::block_on(h.stop_cpus(&WorkerMask::full(4), |w| w))
                .unwrap()
                .len(),
            4
        );
    });
}

/// A stop returns to its caller at EXIT, before every participant has
/// left, and is recorded by the last one out; the statistics still count
/// every stop that has returned, for its kind and for each worker (taking
/// part or claimed), whoever the caller is: a task taking part inline, an
/// outside thread, and with workers sharing a CPU.
#[test]
fn the_statistics_hold_every_stop_that_has_returned() {
    watchdog("stats_after_return", || {
        for (workers, pin) in [(2, false), (4, true)] {
            // Exact counts: no stops but the test's (CI sets STOP_MACHINE_STOP_A_LOT).
            let rt = stop_machine::Runtime::builder()
                .workers(workers)
                .pin(pin)
                .stop_a_lot(0)
                .build()
                .unwrap();
            let h = rt.handle().clone();
            let busy = Arc::new(AtomicBool::new(true));
            // Worker 1 always takes part; the others may be claimed idle.
            let b = busy.clone();
            h.spawn_on(1, async move {
                while b.load(Ordering::Relaxed) {
                    tokio::task::yield_now().await;
                }
            });
            for i in 1..=100u64 {
                let got = if i % 2 == 0 {
                    h.stop_machine_blocking(|w| w, None)
                } else {
                    let h2 = h.clone();
                    futures::executor::block_on(h.spawn_on(0, async move {
                        let out = h2.stop_machine(|w| w, None).await;
                        // Read from the caller's own task, right as it resumes.
                        (out, h2.stats().kind(stop_machine::StopKind::Machine).count)
                    }))
                    .map(|(out, count)| {
                        assert_eq!(count, i, "stop {i} not counted as its caller resumed");
                        out
                    })
                    .unwrap()
                };
                assert!(got.is_ok(), "stop {i}: {got:?}");
                let stats = h.stats();
                assert_eq!(stats.kind(stop_machine::StopKind::Machine).count, i);
                for w in 0..workers {
                    let ws = stats.worker(w).unwrap();
                    assert_eq!(ws.stops, i, "worker {w} after stop {i}");
                    assert_eq!(
                        ws.time_to_restart.count(),
                        ws.stops - ws.claimed,
                        "worker {w}: one restart per stop it took part in"
                    );
                }
            }
            busy.store(false, Ordering::Relaxed);
        }
    });
}

/// A task that stops the world again and again within one poll (its worker
/// may hold back the record of a stop it called inline until the poll
/// returns) finds every stop in the statistics, each worker's included.
#[test]
fn stops_called_within_one_poll_are_all_recorded() {
    watchdog("stops_within_one_poll", || {
        let rt = quiet_runtime(2);
        let h = rt.handle().clone();
        let (values, stats) = futures::executor::block_on(rt.handle().spawn_on(0, async move {
            let mut values = Vec::new();
            for _ in 0..50 {
                values.push(h.stop_machine(|w| w * 10 + 1, None).await.unwrap());
            }
            (values, h.stats())
        }))
        .unwrap();
        assert!(
            values.iter().all(|v| *v == 1),
            "f runs on the caller's worker 0: {values:?}"
        );
        assert_eq!(stats.kind(stop_machine::StopKind::Machine).count, 50);
        for w in 0..2 {
            assert_eq!(stats.worker(w).unwrap().stops, 50, "worker {w}");
        }
    });
}

/// A worker that serves a stop at a safepoint, inside a poll that goes on,
/// is the last one out of it: the stop is in its caller's statistics as
/// soon as the stop has returned, not once that poll ends.
#[test]
fn a_stop_served_inside_a_long_poll_is_in_its_callers_statistics() {
    watchdog("stop_served_in_long_poll", || {
        let rt = quiet_runtime(2);
        let h = rt.handle().clone();
        let spinner = SafepointLoop::start(&h, 1);
        let h2 = h.clone();
        let (out, count) = futures::executor::block_on(h.spawn_on(0, async move {
            // Worker 1 is the only participant, and serves it mid-poll.
            let out = h2.stop_core(1, |w| w * 10).await;
            (out, h2.stats().kind(stop_machine::StopKind::Core).count)
        }))
        .unwrap();
        spinner.end();
        assert_eq!(out, Ok(vec![(1, 10)]));
        assert_eq!(
            count, 1,
            "the returned stop is missing from its caller's statistics"
        );
    });
}

/// A caller whose own worker ends its stop (the only worker), and whose
/// poll goes on after it: another thread told that the stop returned finds
/// it in the statistics, each time.
#[test]
fn a_stop_whose_callers_poll_goes_on_is_in_everyones_statistics() {
    watchdog("callers_poll_goes_on", || {
        let rt = quiet_runtime(1);
        let h = rt.handle().clone();
        for i in 1..=5u64 {
            let (returned, told) = std::sync::mpsc::channel();
            let (go_on, wait) = std::sync::mpsc::channel::<()>();
            let h2 = h.clone();
            let task = h.spawn_on(0, async move {
                let out = h2.stop_machine(|w| w + 7, None).await;
                returned.send(out).unwrap();
                // The poll goes on: blocked until the reader is done.
                wait.recv().unwrap();
            });
            assert_eq!(told.recv().unwrap(), Ok(7));
            assert_eq!(
                h.stats().kind(stop_machine::StopKind::Machine).count,
                i,
                "stop {i}"
            );
            go_on.send(()).unwrap();
            futures::executor::block_on(task).unwrap();
        }
    });
}

/// A stop function whose drop reads the statistics, dropped with the
/// record of its stop while a second stop of the same poll is on its way:
/// both stops are recorded, and the reader inside the drop sees the first.
#[test]
fn a_stop_functions_drop_may_read_the_statistics() {
    struct ReadsOnDrop(stop_machine::Handle, Arc<std::sync::Mutex<Option<u64>>>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            let count = self.0.stats().kind(stop_machine::StopKind::Machine).count;
            *self.1.lock().unwrap() = Some(count);
        }
    }
    watchdog("drop_reads_stats", || {
        let rt = quiet_runtime(1);
        let h = rt.handle().clone();
        let seen = Arc::new(std::sync::Mutex::new(None));
        let (h2, s) = (h.clone(), seen.clone());
        let count = futures::executor::block_on(h.spawn_on(0, async move {
            let guard = ReadsOnDrop(h2.clone(), s);
            h2.stop_machine(move |w| (&guard, w).1, None).await.unwrap();
            h2.stop_machine(|w| w, None).await.unwrap();
            h2.stats().kind(stop_machine::StopKind::Machine).count
        }))
        .unwrap();
        assert_eq!(count, 2);
        assert!(
            matches!(*seen.lock().unwrap(), Some(n) if n >= 1),
            "the drop read {:?}",
            seen.lock().unwrap()
        );
    });
}

/// A stop function whose captured value stops the world when dropped, in a
/// task that stops twice within one poll: the drop runs when the first
/// stop's record is made, before the second stop takes the stop lock, so
/// nothing waits on a lock its own thread holds.
#[test]
fn a_stop_functions_drop_may_stop_the_world() {
    struct StopsOnDrop(stop_machine::Handle, Arc<std::sync::Mutex<Option<bool>>>);
    impl Drop for StopsOnDrop {
        fn drop(&mut self) {
            let stopped = self.0.stop_machine_blocking(|w| w, None).is_ok();
            *self.1.lock().unwrap() = Some(stopped);
        }
    }
    watchdog("drop_stops_the_world", || {
        let rt = quiet_runtime(2);
        let h = rt.handle().clone();
        let dropped = Arc::new(std::sync::Mutex::new(None));
        let (h2, d) = (h.clone(), dropped.clone());
        let (first, second) = futures::executor::block_on(h.spawn_on(0, async move {
            let guard = StopsOnDrop(h2.clone(), d);
            let first = h2.stop_machine(move |w| (&guard, w + 1).1, None).await;
            let second = h2.stop_machine(|w| w + 2, None).await;
            (first, second)
        }))
        .unwrap();
        assert_eq!((first, second), (Ok(1), Ok(2)));
        assert_eq!(*dropped.lock().unwrap(), Some(true), "the drop's own stop");
        assert_eq!(h.stats().kind(stop_machine::StopKind::Machine).count, 3);
        // The runtime still stops.
        assert_eq!(h.stop_machine_blocking(|w| w, None), Ok(0));
    });
}

/// A stop function's captured value that panics when dropped, with its
/// stop's record made after the caller's poll or by a reader of the
/// statistics: the worker goes on, the reader gets its snapshot.
#[test]
fn a_stop_functions_panicking_drop_takes_nobody_down() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("PanicsOnDrop");
        }
    }
    watchdog("drop_panics", || {
        let rt = quiet_runtime(1);
        let h = rt.handle().clone();
        for i in 1..=2u64 {
            let (returned, told) = std::sync::mpsc::channel();
            let (go_on, wait) = std::sync::mpsc::channel::<()>();
            let h2 = h.clone();
            let task = h.spawn_on(0, async move {
                let guard = PanicsOnDrop;
                let out = h2.stop_machine(move |w| (&guard, w + 5).1, None).await;
                returned.send(out).unwrap();
                if i == 2 {
                    // The record waits for this poll: the reader makes it.
                    wait.recv().unwrap();
                }
            });
            assert_eq!(told.recv().unwrap(), Ok(5));
            assert_eq!(h.stats().kind(stop_machine::StopKind::Machine).count, i);
            // (Gone already when the task did not wait.)
            let _ = go_on.send(());
            futures::executor::block_on(task).unwrap();
            // Worker 0 still runs tasks.
            assert_eq!(
                futures::executor::block_on(h.spawn_on(0, async { 42 })).unwrap(),
                42
            );
        }
    });
}

/// Stops that a worker serves at safepoints inside a poll that goes on
/// leave their records waiting; each later stop makes them first, so the
/// values their functions captured are freed while that poll still runs.
#[test]
fn records_left_inside_a_long_poll_do_not_pile_up() {
    struct Token(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Token {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    watchdog("records_do_not_pile_up", || {
        let rt = quiet_runtime(2);
        let h = rt.handle().clone();
        let spinner = SafepointLoop::start(&h, 1);
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 0..50 {
            live.fetch_add(1, Ordering::SeqCst);
            let token = Token(live.clone());
            // Worker 1 alone takes part, and serves it inside its poll.
            let out = futures::executor::block_on(h.stop_core(1, move |w| (&token, w + i).1));
            assert_eq!(out, Ok(vec![(1, 1 + i)]));
        }
        let alive = live.load(Ordering::SeqCst);
        spinner.end();
        assert!(
            alive <= 2,
            "{alive} of 50 stop functions still alive while the poll ran"
        );
        assert_eq!(h.stats().kind(stop_machine::StopKind::Core).count, 50);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

/// A runtime of `workers` unpinned workers that makes no stops of its own
/// (CI sets `STOP_MACHINE_STOP_A_LOT`), for exact counts.
fn quiet_runtime(workers: usize) -> stop_machine::Runtime {
    stop_machine::Runtime::builder()
        .workers(workers)
        .pin(false)
        .stop_a_lot(0)
        .build()
        .unwrap()
}

/// A task on one worker that loops on `safepoint()` in a single poll
/// until [`end`](Self::end): its worker serves stops inside that poll.
struct SafepointLoop {
    release: Arc<AtomicBool>,
    task: stop_machine::JoinHandle<()>,
}

impl SafepointLoop {
    /// Starts the loop on `worker` and returns once it runs.
    fn start(h: &Handle, worker: usize) -> SafepointLoop {
        let (started, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (s, r) = (started.clone(), release.clone());
        let task = h.spawn_on(worker, async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                stop_machine::safepoint();
                std::hint::spin_loop();
            }
        });
        while !started.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        SafepointLoop { release, task }
    }

    fn end(self) {
        self.release.store(true, Ordering::SeqCst);
        futures::executor::block_on(self.task).unwrap();
    }
}
