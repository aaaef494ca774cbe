//! The runtime: placement, throughput, tokio compatibility, JoinHandle and
//! shutdown.

mod common;

use common::{runtime, watchdog};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use stop_machine::{Handle, Runtime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[test]
fn spawn_on_runs_on_that_workers_thread() {
    watchdog("spawn_on", || {
        let rt = Runtime::builder()
            .workers(3)
            .pin(false)
            .thread_name("place")
            .build()
            .unwrap();
        for w in 0..3 {
            let (name, cur) = rt.block_on(async move {
                stop_machine::spawn_on(w, async {
                    (
                        std::thread::current().name().unwrap().to_owned(),
                        stop_machine::current_worker(),
                    )
                })
                .await
                .unwrap()
            });
            assert_eq!(name, format!("place-{w}"));
            assert_eq!(cur, Some(w));
        }
    });
}

#[test]
fn pinned_workers_run_on_their_cpu() {
    watchdog("pinned", || {
        let rt = Runtime::builder().build().unwrap();
        let h = rt.handle().clone();
        for w in 0..h.num_workers() {
            let cpu = h.worker_cpu(w).expect("pinned by default");
            // SAFETY: sched_getcpu has no preconditions.
            let on = rt.block_on(async move {
                stop_machine::spawn_on(w, async { unsafe { libc::sched_getcpu() } })
                    .await
                    .unwrap()
            });
            assert_eq!(on as usize, cpu, "worker {w}");
        }
    });
}

#[test]
fn hundred_thousand_tasks_complete() {
    watchdog("100k", || {
        let rt = runtime(2);
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let sum = rt.block_on(async move {
            let handles: Vec<_> = (0..100_000u64)
                .map(|i| {
                    let d = d.clone();
                    stop_machine::spawn_on((i % 2) as usize, async move {
                        d.fetch_add(1, Ordering::Relaxed);
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(done.load(Ordering::Relaxed), 100_000);
        assert_eq!(sum, (0..100_000u64).sum::<u64>());
    });
}

#[test]
fn tcp_echo_spread_over_workers() {
    watchdog("tcp_echo", || {
        let rt = runtime(2);
        let served_on = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let n = Handle::current().num_workers();
            let server = stop_machine::spawn(async move {
                let mut workers = Vec::new();
                for i in 0..8 {
                    let (sock, _) = listener.accept().await.unwrap();
                    let std = sock.into_std().unwrap();
                    workers.push(stop_machine::spawn_on(i % n, async move {
                        let sock = tokio::net::TcpStream::from_std(std).unwrap();
                        let (r, mut w) = sock.into_split();
                        let mut lines = BufReader::new(r).lines();
                        while let Some(line) = lines.next_line().await.unwrap() {
                            w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
                        }
                        stop_machine::current_worker().unwrap()
                    }));
                }
                let mut on = Vec::new();
                for w in workers {
                    on.push(w.await.unwrap());
                }
                on
            });
            let clients: Vec<_> = (0..8)
                .map(|c| {
                    stop_machine::spawn(async move {
                        let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
                        let (r, mut w) = sock.into_split();
                        let mut lines = BufReader::new(r).lines();
                        for i in 0..50 {
                            w.write_all(format!("{c}:{i}\n").as_bytes()).await.unwrap();
                            assert_eq!(lines.next_line().await.unwrap().unwrap(), format!("{c}:{i}"));
                        }
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
            server.await.unwrap()
        });
        let mut seen = served_on.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            vec![0, 1],
            "connections served on both workers: {served_on:?}"
        );
    });
}

#[test]
fn tokio_timers_spawn_and_sync_inside_tasks() {
    watchdog("tokio_compat", || {
        let rt = runtime(2);
        let out = rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                tx.send(stop_machine::current_worker()).unwrap();
            });
            let start = tokio::time::Instant::now();
            let on = rx.await.unwrap();
            timer.await.unwrap();
            (on, start.elapsed() >= std::time::Duration::from_millis(5))
        });
        assert!(out.0.is_some(), "tokio::spawn runs on a worker");
        assert!(out.1, "the timer fired no earlier than asked");
    });
}

#[test]
fn join_handle_abort_panic_and_detach() {
    watchdog("join_handle", || {
        let rt = runtime(2);
        rt.block_on(async {
            let h = stop_machine::spawn(std::future::pending::<()>());
            h.abort();
            assert!(h.await.unwrap_err().is_cancelled());

            let h = stop_machine::spawn_on(1, async { panic!("task failed") });
            let err = h.await.unwrap_err();
            assert!(err.is_panic());
            assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "task failed");

            // The worker that ran the panicking task still runs tasks.
            assert_eq!(stop_machine::spawn_on(1, async { 1 }).await.unwrap(), 1);

            // A dropped handle detaches: the task still runs to the end.
            let (tx, rx) = tokio::sync::oneshot::channel();
            drop(stop_machine::spawn_on(1, async move {
                tokio::task::yield_now().await;
                tx.send(7).unwrap();
            }));
            assert_eq!(rx.await.unwrap(), 7);
        });
    });
}

/// An abort that lands while the worker is taking the task off its queue
/// (after the worker looked at the flag, before the poll began) must still
/// cancel it: the wake that carries the abort finds the task already
/// scheduled and adds nothing, so the poll itself has to see the flag.
#[test]
fn an_abort_racing_the_first_poll_still_cancels() {
    watchdog("abort_race", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        for i in 0..20_000u32 {
            let task = h.spawn_on(1, std::future::pending::<()>());
            // Vary where the abort lands against the worker's pop.
            for _ in 0..(i % 64) {
                std::hint::spin_loop();
            }
            task.abort();
            let err = rt.block_on(task).unwrap_err();
            assert!(err.is_cancelled(), "iteration {i}: {err:?}");
        }
    });
}

#[test]
fn spawn_local_runs_non_send_futures() {
    watchdog("spawn_local", || {
        let rt = runtime(2);
        let v = rt.block_on(async {
            let here = stop_machine::current_worker();
            stop_machine::spawn_local(async move {
                let rc = std::rc::Rc::new(std::cell::Cell::new(1));
                tokio::task::yield_now().await;
                rc.set(rc.get() + 1);
                (rc.get(), stop_machine::current_worker() == here)
            })
            .await
            .unwrap()
        });
        assert_eq!(v, (2, true));
    });
}

#[test]
fn shutdown_leaks_no_thread_and_no_task() {
    watchdog("shutdown", || {
        struct Tracked(Arc<AtomicUsize>);
        impl Drop for Tracked {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder()
            .workers(2)
            .pin(false)
            .thread_name("leakcheck")
            .build()
            .unwrap();
        assert_eq!(
            common::thread_names()
                .iter()
                .filter(|n| n.starts_with("leakcheck"))
                .count(),
            2
        );
        let mut handles = Vec::new();
        for i in 0..100 {
            let t = Tracked(dropped.clone());
            // Idle forever, in a tokio timer, queued, and tokio-spawned.
            handles.push(rt.handle().spawn_on(i % 2, async move {
                let _t = t;
                if i % 3 == 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
                std::future::pending::<()>().await
            }));
        }
        let t = Tracked(dropped.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                let _t = t;
                std::future::pending::<()>().await
            });
        });
        drop(rt);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            101,
            "every task's future was dropped"
        );
        // join() can return a moment before the kernel drops the exited
        // thread from /proc: wait for it; a leaked thread never goes and the
        // watchdog fails the test.
        while common::thread_names().iter().any(|n| n.starts_with("leakcheck")) {
            std::thread::yield_now();
        }
        for h in handles {
            assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn coop_budget_forces_an_always_ready_loop_to_yield() {
    watchdog("coop", || {
        let rt = runtime(1);
        let (seen_by_stop, total) = rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            for i in 0..10_000 {
                tx.send(i).unwrap();
            }
            drop(tx);
            let received = Arc::new(AtomicUsize::new(0));
            let (stop_tx, stop_rx) = std::sync::mpsc::channel();
            let r = received.clone();
            assert!(stop_machine::stop_one_cpu_nowait(0, move || {
                stop_tx.send(r.load(Ordering::SeqCst)).unwrap();
            }));
            // Never yields by itself: every recv is ready at once.
            while rx.recv().await.is_some() {
                received.fetch_add(1, Ordering::SeqCst);
            }
            (stop_rx.recv().unwrap(), received.load(Ordering::SeqCst))
        });
        assert_eq!(total, 10_000);
        assert!(
            seen_by_stop < 10_000,
            "the stop ran at a forced yield, not after the loop ({seen_by_stop})"
        );
    });
}

#[test]
fn handle_current_outside_a_runtime() {
    assert!(Handle::try_current().is_err());
    assert_eq!(stop_machine::current_worker(), None);
}

#[test]
fn block_on_borrows_locals_even_when_the_future_panics() {
    watchdog("block_on_borrows", || {
        let rt = runtime(2);
        let mut log = vec![String::from("start")];
        let total: usize = rt.block_on(async {
            let a = stop_machine::spawn_on(1, async { 20 }).await.unwrap();
            log.push(format!("got {a}"));
            a + log.len()
        });
        assert_eq!(total, 22);
        assert_eq!(log, ["start", "got 20"]);
        // A panic inside is resumed here, after the future (and its borrow)
        // has been dropped on the worker.
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                panic!("inside block_on");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The runtime goes on.
        assert_eq!(rt.block_on(async { log.len() }), 2);
    });
}

/// Where six tasks spawned from worker 0 of a 3-worker runtime land.
fn placements(policy: stop_machine::SpawnPolicy, hold_on_1: usize) -> Vec<usize> {
    let rt = Runtime::builder()
        .workers(3)
        .pin(false)
        .spawn_policy(policy)
        .build()
        .unwrap();
    assert_eq!(rt.handle().spawn_policy(), policy);
    rt.block_on(async move {
        // Tasks that stay alive on worker 1 until the placements are read.
        let (release, hold) = tokio::sync::watch::channel(false);
        let mut held = Vec::new();
        for _ in 0..hold_on_1 {
            let mut hold = hold.clone();
            held.push(stop_machine::spawn_on(1, async move {
                let _ = hold.wait_for(|go| *go).await;
            }));
        }
        let placed = stop_machine::spawn_on(0, async {
            let mut handles = Vec::new();
            for _ in 0..6 {
                handles.push(stop_machine::spawn(async {
                    stop_machine::current_worker().unwrap()
                }));
            }
            let mut placed = Vec::new();
            for h in handles {
                placed.push(h.await.unwrap());
            }
            placed
        })
        .await
        .unwrap();
        release.send(true).unwrap();
        for h in held {
            h.await.unwrap();
        }
        placed
    })
}

#[test]
fn spawn_policy_local_keeps_tasks_on_the_spawning_worker() {
    let placed = watchdog("local", || placements(stop_machine::SpawnPolicy::Local, 0));
    assert_eq!(placed, vec![0; 6]);
}

#[test]
fn spawn_policy_round_robin_spreads_over_every_worker() {
    let mut placed = watchdog("round robin", || {
        placements(stop_machine::SpawnPolicy::RoundRobin, 0)
    });
    placed.sort_unstable();
    assert_eq!(placed, vec![0, 0, 1, 1, 2, 2]);
}

#[test]
fn spawn_policy_least_loaded_avoids_the_busy_worker() {
    let placed = watchdog("least loaded", || {
        placements(stop_machine::SpawnPolicy::LeastLoaded, 50)
    });
    assert!(
        !placed.contains(&1),
        "worker 1 holds 50 live tasks, yet got some of {placed:?}"
    );
}

#[test]
fn thread_hooks_run_on_every_worker_first_and_last() {
    watchdog("thread hooks", || {
        use std::sync::Mutex;
        thread_local! {
            static SET_BY_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        struct Alive(Arc<[AtomicUsize; 2]>, usize);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0[self.1].fetch_sub(1, Ordering::SeqCst);
            }
        }
        let alive: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let started = Arc::new(Mutex::new(Vec::new()));
        // (worker, its futures still alive when its stop hook ran)
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let worker_of_thread = || -> usize {
            let name = std::thread::current().name().unwrap().to_owned();
            name.rsplit('-').next().unwrap().parse().unwrap()
        };
        let (s, st, a) = (started.clone(), stopped.clone(), alive.clone());
        let rt = Runtime::builder()
            .workers(2)
            .pin(false)
            .thread_name("hooked")
            .on_thread_start(move || {
                SET_BY_HOOK.with(|c| c.set(true));
                s.lock().unwrap().push(worker_of_thread());
            })
            .on_thread_stop(move || {
                let w = worker_of_thread();
                st.lock().unwrap().push((w, a[w].load(Ordering::SeqCst)));
            })
            .build()
            .unwrap();
        let mut seen = started.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, [0, 1], "build returns once every start hook has run");
        let (polled, saw_hook) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for i in 0..20 {
            let w = i % 2;
            alive[w].fetch_add(1, Ordering::SeqCst);
            let guard = Alive(alive.clone(), w);
            let (polled, saw_hook) = (polled.clone(), saw_hook.clone());
            drop(rt.handle().spawn_on(w, async move {
                if SET_BY_HOOK.with(|c| c.get()) {
                    saw_hook.fetch_add(1, Ordering::SeqCst);
                }
                polled.fetch_add(1, Ordering::SeqCst);
                if i % 4 == 0 {
                    // Lives in the worker's tokio driver, dropped with it.
                    drop(tokio::spawn(async move {
                        let _g = guard;
                        std::future::pending::<()>().await
                    }));
                } else {
                    let _g = guard;
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            }));
        }
        while polled.load(Ordering::SeqCst) < 20 {
            std::thread::yield_now();
        }
        assert_eq!(
            saw_hook.load(Ordering::SeqCst),
            20,
            "tasks see what the start hook set"
        );
        // Detaches the threads at once: the stop hooks run whenever each
        // worker has dropped its last future.
        rt.shutdown_timeout(std::time::Duration::ZERO);
        while stopped.lock().unwrap().len() < 2 {
            std::thread::yield_now();
        }
        let mut ends = stopped.lock().unwrap().clone();
        ends.sort();
        assert_eq!(
            ends,
            [(0, 0), (1, 0)],
            "no future of a worker outlives its stop hook"
        );
    });
}

#[test]
fn serve_per_worker_spreads_connections_and_serves_them_where_accepted() {
    watchdog("serve_per_worker", || {
        let rt = runtime(2);
        let served = rt
            .handle()
            .serve_per_worker("127.0.0.1:0", |listener| async move {
                let accepted_on = stop_machine::current_worker().unwrap();
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        continue;
                    };
                    // The plain `spawn` a tokio user writes: it stays here.
                    drop(stop_machine::spawn(async move {
                        let served_on = stop_machine::current_worker().unwrap();
                        let _ = conn.write_all(&[accepted_on as u8, served_on as u8]).await;
                    }));
                }
            })
            .unwrap();
        let addr = served.local_addr();
        let mut per_worker = [0usize; 2];
        for _ in 0..64 {
            use std::io::Read;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut reply = [0u8; 2];
            c.read_exact(&mut reply).unwrap();
            assert_eq!(
                reply[0], reply[1],
                "a connection was served off the worker that accepted it"
            );
            per_worker[reply[0] as usize] += 1;
        }
        // The kernel hashes each connection to a listener: with 64
        // connections, both get some unless the hash is broken (2^-63).
        assert!(
            per_worker.iter().all(|n| *n > 0),
            "one listener got every connection: {per_worker:?}"
        );
        served.abort();
        // A port held without SO_REUSEPORT is refused with the OS's error.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap();
        let err = rt.handle().serve_per_worker(taken, |_l| async {}).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    });
}
