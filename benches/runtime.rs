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

mod common;

use common::{Group, floors, on_worker0, pin_to, runtime_of, timed, yield_until};
use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Samples per benchmark: keeps the whole run to a few minutes on two CPUs.
const SAMPLES: usize = 30;
/// Tasks spawned (and joined) per iteration of the spawn benchmarks.
const SPAWNS: u64 = 1_000;
/// `yield_now` calls per iteration of the yield benchmarks.
const YIELDS: u64 = 1_000;
/// Round trips per iteration of the cross-thread benchmarks.
const ROUND_TRIPS: u64 = 100;

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

/// `iters` times: spawns [`SPAWNS`] trivial tasks with `spawn`, then awaits
/// every handle.
async fn spawn_join_stop_machine(iters: u64, spawn: impl Fn(u64) -> stop_machine::JoinHandle<u64>) {
    for _ in 0..iters {
        let handles: Vec<_> = (0..SPAWNS).map(|i| spawn(black_box(i))).collect();
        for h in handles {
            black_box(h.await.expect("spawned task"));
        }
    }
}

/// The same with `tokio::spawn`.
async fn spawn_join_tokio(iters: u64) {
    for _ in 0..iters {
        let handles: Vec<_> = (0..SPAWNS)
            .map(|i| tokio::spawn(async move { black_box(i) }))
            .collect();
        for h in handles {
            black_box(h.await.expect("spawned task"));
        }
    }
}

fn spawn_join(c: &mut Criterion) {
    let mut g = Group::new(c, "spawn_join", SAMPLES, SPAWNS);

    // Per-task cost of spawn+join on one worker (allocation, queueing, join wake-up): the throughput target.
    let sm1 = runtime_of(1);
    g.bench("stop_machine_1w", |iters| {
        sm1.block_on(timed(spawn_join_stop_machine(iters, |i| {
            stop_machine::spawn(async move { i })
        })))
    });
    drop(sm1);

    let sm2 = runtime_of(2);
    // Same on 2 workers: `spawn` stays on the caller's worker, so this shows what an idle sibling costs.
    g.bench("stop_machine_2w", |iters| {
        sm2.block_on(timed(spawn_join_stop_machine(iters, |i| {
            stop_machine::spawn(async move { i })
        })))
    });
    // Spawns spread with `spawn_on(i % 2)`: half cross workers, as tokio's work stealing would make them.
    g.bench("stop_machine_2w_spread", |iters| {
        sm2.block_on(timed(spawn_join_stop_machine(iters, |i| {
            stop_machine::spawn_on((i % 2) as usize, async move { i })
        })))
    });
    drop(sm2);

    // Baseline of the throughput target: tokio's single-threaded scheduler, spawning from a task.
    let ct = tokio_current_thread();
    g.bench("tokio_current_thread", |iters| {
        tokio_task(&ct, timed(spawn_join_tokio(iters)))
    });
    drop(ct);

    // tokio's work-stealing scheduler with 2 workers, the common default, spawning from a task.
    let mt = tokio_multi_thread();
    g.bench("tokio_multi_thread", |iters| {
        tokio_task(&mt, timed(spawn_join_tokio(iters)))
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
    let mut g = Group::new(c, "yield", SAMPLES, YIELDS);

    // One scheduler round per yield (re-queue, stopper check, driver turn, re-poll): the throughput target.
    let sm1 = runtime_of(1);
    g.bench("stop_machine_1w", |iters| {
        sm1.block_on(timed(yield_loop(iters * YIELDS)))
    });
    drop(sm1);

    // Baseline of the throughput target: the same yield loop on tokio's single-threaded scheduler.
    let ct = tokio_current_thread();
    g.bench("tokio_current_thread", |iters| {
        tokio_task(&ct, timed(yield_loop(iters * YIELDS)))
    });
    drop(ct);

    // The same in a process of more than one thread, as every program on
    // stop-machine is (its main thread and a worker): the fair baseline. The
    // kernel skips the reference count on the epoll file at each driver turn
    // only while a process has a single thread (see `epoll_wait_*` below).
    let ct = tokio_current_thread();
    let beside = SecondThread::start();
    g.bench("tokio_current_thread_beside_a_thread", |iters| {
        tokio_task(&ct, timed(yield_loop(iters * YIELDS)))
    });
    drop(beside);
    drop(ct);

    // The physical floor of each yield on either runtime: one driver turn,
    // an `epoll_wait` with a zero timeout, in a single-threaded process and
    // beside a second thread.
    g.bench("epoll_wait_zero_timeout", |iters| epoll_waits(iters * YIELDS));
    let beside = SecondThread::start();
    g.bench("epoll_wait_zero_timeout_beside_a_thread", |iters| {
        epoll_waits(iters * YIELDS)
    });
    drop(beside);

    // The same yield loop on tokio's work-stealing scheduler (its other worker idles).
    let mt = tokio_multi_thread();
    g.bench("tokio_multi_thread", |iters| {
        tokio_task(&mt, timed(yield_loop(iters * YIELDS)))
    });
    drop(mt);

    // Two-level scheduling inside tokio itself: a `LocalSet` (one future that
    // polls its own tasks) on the current_thread runtime, as our loop task
    // polls ours.
    let ct = tokio_current_thread();
    g.bench("tokio_local_set", |iters| {
        let local = tokio::task::LocalSet::new();
        ct.block_on(local.run_until(async move {
            tokio::task::spawn_local(timed(yield_loop(iters * YIELDS)))
                .await
                .expect("bench task")
        }))
    });
    drop(ct);

    // The one-level alternative: our stopper check as tokio's own hook before
    // every task poll, no second scheduler. It needs `--cfg tokio_unstable`
    // (`RUSTFLAGS="--cfg tokio_unstable" cargo bench --bench runtime -- yield`),
    // which a library cannot ask of every program that uses it.
    #[cfg(tokio_unstable)]
    {
        let pending = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let hook = pending.clone();
        let hooked = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_before_task_poll(move |_| {
                if hook.load(Ordering::Acquire) != 0 {
                    unreachable!("no stop is ever requested here");
                }
            })
            .build()
            .expect("tokio current_thread runtime with a poll hook");
        g.bench("tokio_current_thread_poll_hook", |iters| {
            tokio_task(&hooked, timed(yield_loop(iters * YIELDS)))
        });
        drop(hooked);
        drop(pending);
    }
    g.finish();
}

/// A second thread in the process, asleep until dropped.
struct SecondThread(Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>);

impl SecondThread {
    fn start() -> SecondThread {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || while rx.recv().is_ok() {});
        SecondThread(Some((tx, thread)))
    }
}

impl Drop for SecondThread {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.0.take() {
            drop(tx);
            thread.join().expect("the second thread");
        }
    }
}

/// `n` zero-timeout `epoll_wait`s on an empty epoll instance.
fn epoll_waits(n: u64) -> Duration {
    // SAFETY: no preconditions; the fd is closed below.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(fd >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    // SAFETY: an all-zero epoll_event is a valid value.
    let mut events: [libc::epoll_event; 4] = unsafe { std::mem::zeroed() };
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: `fd` is an epoll instance, `events` a writable array of 4.
        black_box(unsafe { libc::epoll_wait(fd, events.as_mut_ptr(), 4, 0) });
    }
    let took = start.elapsed();
    // SAFETY: `fd` is ours and not used after this.
    unsafe { libc::close(fd) };
    took
}

/// The ping and pong signals of a Notify ping-pong.
fn notify_pair() -> (Arc<Notify>, Arc<Notify>) {
    (Arc::new(Notify::new()), Arc::new(Notify::new()))
}

/// Answers `n` pings.
async fn serve(ping: Arc<Notify>, pong: Arc<Notify>, n: u64) {
    for _ in 0..n {
        ping.notified().await;
        pong.notify_one();
    }
}

/// Sends `n` pings, each awaiting its pong; returns how long the round trips took.
async fn ping(ping: Arc<Notify>, pong: Arc<Notify>, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        ping.notify_one();
        pong.notified().await;
    }
    start.elapsed()
}

fn cross_worker_wake(c: &mut Criterion) {
    let mut g = Group::new(c, "cross_worker_wake", SAMPLES, ROUND_TRIPS);

    // Notify ping-pong between tasks on workers 0 and 1: two cross-worker wake-ups, any message's path.
    let sm2 = runtime_of(2);
    g.bench("stop_machine_2w", |iters| {
        sm2.block_on(async move {
            let (p, q) = notify_pair();
            let n = iters * ROUND_TRIPS;
            let server = stop_machine::spawn_on(1, serve(p.clone(), q.clone(), n));
            let d = stop_machine::spawn_on(0, ping(p, q, n)).await.expect("ping");
            server.await.expect("serve");
            d
        })
    });
    drop(sm2);

    // The same between two tokio current_thread runtimes on threads pinned to CPUs 0 and 1: tokio's cost.
    let (ct0, ct1) = (tokio_current_thread(), tokio_current_thread());
    g.bench("tokio_current_thread_x2", |iters| {
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
    });
    drop((ct0, ct1));

    // The same on tokio's work-stealing pool; the LIFO slot may keep both tasks on one thread (no wake-up).
    let mt = tokio_multi_thread();
    g.bench("tokio_multi_thread", |iters| {
        tokio_task(&mt, async move {
            let (p, q) = notify_pair();
            let n = iters * ROUND_TRIPS;
            let server = tokio::spawn(serve(p.clone(), q.clone(), n));
            let d = tokio::spawn(ping(p, q, n)).await.expect("ping");
            server.await.expect("serve");
            d
        })
    });
    drop(mt);
    g.finish();
}

fn stop_one_cpu(c: &mut Criterion) {
    let mut g = Group::new(c, "stop_one_cpu", SAMPLES, ROUND_TRIPS);
    let sm2 = runtime_of(2);

    // stop_one_cpu from worker 0 to an idle worker 1: queue, wake it from its driver, run, wake the caller.
    g.bench("task_to_idle_worker", |iters| {
        on_worker0(&sm2, timed(stops_of_worker_1(iters * ROUND_TRIPS)))
    });

    // The same while worker 1 runs a `yield_now` loop: the stop must cut in at its next poll boundary.
    g.bench("task_to_busy_worker", |iters| {
        sm2.block_on(async move {
            let done = Arc::new(AtomicBool::new(false));
            let busy = stop_machine::spawn_on(1, yield_until(done.clone()));
            let d = stop_machine::spawn_on(0, timed(stops_of_worker_1(iters * ROUND_TRIPS)))
                .await
                .expect("stopping task");
            done.store(true, Ordering::Relaxed);
            busy.await.expect("busy task");
            d
        })
    });

    // From a plain thread via `futures::executor::block_on` to idle worker 1: the non-async caller's path.
    let handle = sm2.handle().clone();
    g.bench("thread_to_idle_worker", |iters| {
        let start = Instant::now();
        for _ in 0..iters * ROUND_TRIPS {
            futures::executor::block_on(handle.stop_one_cpu(1, || ())).expect("stop_one_cpu");
        }
        start.elapsed()
    });
    drop(sm2);
    g.finish();
}

/// `n` no-op `stop_one_cpu`s of worker 1, one after the other.
async fn stops_of_worker_1(n: u64) {
    for _ in 0..n {
        stop_machine::stop_one_cpu(1, || ()).await.expect("stop_one_cpu");
    }
}

fn floor(c: &mut Criterion) {
    floors(c, "floor", SAMPLES);
}

criterion_group!(
    benches,
    spawn_join,
    yield_ping_pong,
    cross_worker_wake,
    stop_one_cpu,
    floor
);
criterion_main!(benches);
