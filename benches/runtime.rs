//! Runtime benchmarks (issue 2): stop-machine against tokio's schedulers and
//! against the machine's physical floors, all in one run so the figures are
//! comparable.
//!
//! Every benchmark reports the time of one operation through
//! `Throughput::Elements`: divide criterion's `time` by the element count,
//! or read `thrpt`. `scripts/criterion_table.py` turns the saved samples into
//! the table of `docs/benchmarks.md`.
//!
//! Run: `cargo bench --bench runtime`.

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};
use stop_machine::Runtime;
use tokio::sync::Notify;

/// Tasks spawned (and joined) per iteration of the spawn benchmarks.
const SPAWNS: u64 = 1_000;
/// `yield_now` calls per iteration of the yield benchmarks.
const YIELDS: u64 = 1_000;
/// Round trips per iteration of the cross-thread benchmarks.
const ROUND_TRIPS: u64 = 100;

/// The settings every group shares: keeps the whole run to a few minutes on
/// two CPUs.
fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .throughput(Throughput::Elements(elements));
    g
}

/// A pinned stop-machine runtime with `workers` workers (the default build).
fn stop_machine(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("stop-machine runtime")
}

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current_thread runtime")
}

fn tokio_multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio multi_thread runtime")
}

/// Runs `body` as a task (not as the `block_on` future, which on tokio is
/// polled outside the scheduler) and returns the duration it measured.
fn tokio_task<F>(rt: &tokio::runtime::Runtime, body: F) -> Duration
where
    F: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(async { tokio::spawn(body).await.expect("bench task") })
}

/// Pins the calling thread to `cpu`; silently does nothing where that CPU is
/// not allowed (the floors are then unpinned).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, `cpu` is checked
    // against CPU_SETSIZE, and the set outlives the call.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Spawns `n` trivial tasks with `spawn`, then awaits every handle.
async fn spawn_join_stop_machine(n: u64, spawn: impl Fn(u64) -> stop_machine::JoinHandle<u64>) {
    let handles: Vec<_> = (0..n).map(|i| spawn(black_box(i))).collect();
    for h in handles {
        black_box(h.await.expect("spawned task"));
    }
}

async fn spawn_join_tokio(n: u64) {
    let handles: Vec<_> = (0..n)
        .map(|i| tokio::spawn(async move { black_box(i) }))
        .collect();
    for h in handles {
        black_box(h.await.expect("spawned task"));
    }
}

fn spawn_join(c: &mut Criterion) {
    let mut g = group(c, "spawn_join", SPAWNS);

    // Per-task cost of spawn+join on one worker (allocation, queueing, join wake-up): the throughput target.
    let sm1 = stop_machine(1);
    g.bench_function("stop_machine_1w", |b| {
        b.iter_custom(|iters| {
            sm1.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    spawn_join_stop_machine(SPAWNS, |i| stop_machine::spawn(async move { i })).await;
                }
                start.elapsed()
            })
        })
    });
    drop(sm1);

    let sm2 = stop_machine(2);
    // Same on 2 workers: `spawn` stays on the caller's worker, so this shows what an idle sibling costs.
    g.bench_function("stop_machine_2w", |b| {
        b.iter_custom(|iters| {
            sm2.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    spawn_join_stop_machine(SPAWNS, |i| stop_machine::spawn(async move { i })).await;
                }
                start.elapsed()
            })
        })
    });
    // Spawns spread with `spawn_on(i % 2)`: half cross workers, as tokio's work stealing would make them.
    g.bench_function("stop_machine_2w_spread", |b| {
        b.iter_custom(|iters| {
            sm2.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    spawn_join_stop_machine(SPAWNS, |i| {
                        stop_machine::spawn_on((i % 2) as usize, async move { i })
                    })
                    .await;
                }
                start.elapsed()
            })
        })
    });
    drop(sm2);

    // Baseline of the throughput target: tokio's single-threaded scheduler, spawning from a task.
    let ct = tokio_current_thread();
    g.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            tokio_task(&ct, async move {
                let start = Instant::now();
                for _ in 0..iters {
                    spawn_join_tokio(SPAWNS).await;
                }
                start.elapsed()
            })
        })
    });
    drop(ct);

    // tokio's work-stealing scheduler with 2 workers, the common default, spawning from a task.
    let mt = tokio_multi_thread();
    g.bench_function("tokio_multi_thread", |b| {
        b.iter_custom(|iters| {
            tokio_task(&mt, async move {
                let start = Instant::now();
                for _ in 0..iters {
                    spawn_join_tokio(SPAWNS).await;
                }
                start.elapsed()
            })
        })
    });
    drop(mt);
    g.finish();
}

/// Yields `n` times: each yield is a full trip through the scheduler.
async fn yield_loop(n: u64) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

fn yield_ping_pong(c: &mut Criterion) {
    let mut g = group(c, "yield", YIELDS);

    // One scheduler round per yield (re-queue, stopper check, driver turn, re-poll): the throughput target.
    let sm1 = stop_machine(1);
    g.bench_function("stop_machine_1w", |b| {
        b.iter_custom(|iters| {
            sm1.block_on(async move {
                let start = Instant::now();
                yield_loop(iters * YIELDS).await;
                start.elapsed()
            })
        })
    });
    drop(sm1);

    // Baseline of the throughput target: the same yield loop on tokio's single-threaded scheduler.
    let ct = tokio_current_thread();
    g.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            tokio_task(&ct, async move {
                let start = Instant::now();
                yield_loop(iters * YIELDS).await;
                start.elapsed()
            })
        })
    });
    drop(ct);

    // The same yield loop on tokio's work-stealing scheduler (its other worker idles).
    let mt = tokio_multi_thread();
    g.bench_function("tokio_multi_thread", |b| {
        b.iter_custom(|iters| {
            tokio_task(&mt, async move {
                let start = Instant::now();
                yield_loop(iters * YIELDS).await;
                start.elapsed()
            })
        })
    });
    drop(mt);
    g.finish();
}

/// The two halves of a Notify ping-pong: `serve` answers `n` pings,
/// `ping` sends `n` and returns how long the round trips took.
fn notify_pair() -> (Arc<Notify>, Arc<Notify>) {
    (Arc::new(Notify::new()), Arc::new(Notify::new()))
}

async fn serve(ping: Arc<Notify>, pong: Arc<Notify>, n: u64) {
    for _ in 0..n {
        ping.notified().await;
        pong.notify_one();
    }
}

async fn ping(ping: Arc<Notify>, pong: Arc<Notify>, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        ping.notify_one();
        pong.notified().await;
    }
    start.elapsed()
}

fn cross_worker_wake(c: &mut Criterion) {
    let mut g = group(c, "cross_worker_wake", ROUND_TRIPS);

    // Notify ping-pong between tasks on workers 0 and 1: two cross-worker wake-ups, any message's path.
    let sm2 = stop_machine(2);
    g.bench_function("stop_machine_2w", |b| {
        b.iter_custom(|iters| {
            sm2.block_on(async move {
                let (p, q) = notify_pair();
                let n = iters * ROUND_TRIPS;
                let server = stop_machine::spawn_on(1, serve(p.clone(), q.clone(), n));
                let d = stop_machine::spawn_on(0, ping(p, q, n)).await.expect("ping");
                server.await.expect("serve");
                d
            })
        })
    });
    drop(sm2);

    // The same between two tokio current_thread runtimes on threads pinned to CPUs 0 and 1: tokio's cost.
    let (ct0, ct1) = (tokio_current_thread(), tokio_current_thread());
    g.bench_function("tokio_current_thread_x2", |b| {
        b.iter_custom(|iters| {
            let (p, q) = notify_pair();
            let n = iters * ROUND_TRIPS;
            std::thread::scope(|s| {
                let (p1, q1) = (p.clone(), q.clone());
                let ct1 = &ct1;
                let server = s.spawn(move || {
                    pin_to(1);
                    ct1.block_on(serve(p1, q1, n))
                });
                let ct0 = &ct0;
                let d = s
                    .spawn(move || {
                        pin_to(0);
                        ct0.block_on(ping(p, q, n))
                    })
                    .join()
                    .expect("ping thread");
                server.join().expect("serve thread");
                d
            })
        })
    });
    drop((ct0, ct1));

    // The same on tokio's work-stealing pool; the LIFO slot may keep both tasks on one thread (no wake-up).
    let mt = tokio_multi_thread();
    g.bench_function("tokio_multi_thread", |b| {
        b.iter_custom(|iters| {
            tokio_task(&mt, async move {
                let (p, q) = notify_pair();
                let n = iters * ROUND_TRIPS;
                let server = tokio::spawn(serve(p.clone(), q.clone(), n));
                let d = tokio::spawn(ping(p, q, n)).await.expect("ping");
                server.await.expect("serve");
                d
            })
        })
    });
    drop(mt);
    g.finish();
}

fn stop_one_cpu(c: &mut Criterion) {
    let mut g = group(c, "stop_one_cpu", ROUND_TRIPS);
    let sm2 = stop_machine(2);

    // stop_one_cpu from worker 0 to an idle worker 1: queue, wake it from its driver, run, wake the caller.
    g.bench_function("task_to_idle_worker", |b| {
        b.iter_custom(|iters| {
            sm2.block_on(async move {
                stop_machine::spawn_on(0, async move {
                    let start = Instant::now();
                    for _ in 0..iters * ROUND_TRIPS {
                        stop_machine::stop_one_cpu(1, || ()).await.expect("stop_one_cpu");
                    }
                    start.elapsed()
                })
                .await
                .expect("stopping task")
            })
        })
    });

    // The same while worker 1 runs a `yield_now` loop: the stop must cut in at its next poll boundary.
    g.bench_function("task_to_busy_worker", |b| {
        b.iter_custom(|iters| {
            sm2.block_on(async move {
                let done = Arc::new(AtomicBool::new(false));
                let flag = done.clone();
                let busy = stop_machine::spawn_on(1, async move {
                    while !flag.load(Ordering::Relaxed) {
                        tokio::task::yield_now().await;
                    }
                });
                let d = stop_machine::spawn_on(0, async move {
                    let start = Instant::now();
                    for _ in 0..iters * ROUND_TRIPS {
                        stop_machine::stop_one_cpu(1, || ()).await.expect("stop_one_cpu");
                    }
                    start.elapsed()
                })
                .await
                .expect("stopping task");
                done.store(true, Ordering::Relaxed);
                busy.await.expect("busy task");
                d
            })
        })
    });

    // From a plain thread via `futures::executor::block_on` to idle worker 1: the non-async caller's path.
    let handle = sm2.handle().clone();
    g.bench_function("thread_to_idle_worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters * ROUND_TRIPS {
                futures::executor::block_on(handle.stop_one_cpu(1, || ())).expect("stop_one_cpu");
            }
            start.elapsed()
        })
    });
    drop(sm2);
    g.finish();
}

/// The other thread's handle, once it has published it.
fn wait_for(slot: &OnceLock<Thread>) -> &Thread {
    loop {
        if let Some(t) = slot.get() {
            return t;
        }
        std::thread::yield_now();
    }
}

/// Runs `a` on a thread pinned to CPU 0 and `b` on one pinned to CPU 1 and
/// returns what `a` measured; thread creation is not timed.
fn on_two_cpus(a: impl FnOnce() -> Duration + Send, b: impl FnOnce() + Send) -> Duration {
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            pin_to(1);
            b()
        });
        let d = s
            .spawn(move || {
                pin_to(0);
                a()
            })
            .join()
            .expect("floor thread");
        other.join().expect("floor thread");
        d
    })
}

fn floors(c: &mut Criterion) {
    let mut g = group(c, "floor", ROUND_TRIPS);

    // Two spinning threads on CPUs 0 and 1 bouncing one cache line: the fastest cross-CPU round trip.
    g.bench_function("cache_line_round_trip", |b| {
        b.iter_custom(|iters| {
            let n = iters * ROUND_TRIPS;
            let line = AtomicU64::new(0);
            let line = &line;
            on_two_cpus(
                move || {
                    let start = Instant::now();
                    for i in 0..n {
                        line.store(2 * i + 1, Ordering::Release);
                        while line.load(Ordering::Acquire) != 2 * i + 2 {
                            std::hint::spin_loop();
                        }
                    }
                    start.elapsed()
                },
                move || {
                    for i in 0..n {
                        while line.load(Ordering::Acquire) != 2 * i + 1 {
                            std::hint::spin_loop();
                        }
                        line.store(2 * i + 2, Ordering::Release);
                    }
                },
            )
        })
    });

    // Two threads on CPUs 0 and 1 trading park/unpark: the floor of any round trip that wakes a sleeper.
    g.bench_function("park_unpark_round_trip", |b| {
        b.iter_custom(|iters| {
            let n = iters * ROUND_TRIPS;
            let turn = AtomicU64::new(0);
            let (a_thread, b_thread) = (OnceLock::new(), OnceLock::new());
            let (turn, a_thread, b_thread) = (&turn, &a_thread, &b_thread);
            on_two_cpus(
                move || {
                    let _ = a_thread.set(std::thread::current());
                    let other = wait_for(b_thread);
                    let start = Instant::now();
                    for i in 0..n {
                        turn.store(2 * i + 1, Ordering::Release);
                        other.unpark();
                        while turn.load(Ordering::Acquire) != 2 * i + 2 {
                            std::thread::park();
                        }
                    }
                    start.elapsed()
                },
                move || {
                    let _ = b_thread.set(std::thread::current());
                    let other = wait_for(a_thread);
                    for i in 0..n {
                        while turn.load(Ordering::Acquire) != 2 * i + 1 {
                            std::thread::park();
                        }
                        turn.store(2 * i + 2, Ordering::Release);
                        other.unpark();
                    }
                },
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    spawn_join,
    yield_ping_pong,
    cross_worker_wake,
    stop_one_cpu,
    floors
);
criterion_main!(benches);
