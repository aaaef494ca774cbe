//! What users pick instead of `stop_machine` (issue 7), measured against it
//! in one run:
//!
//! - reading hot-patched configuration: a plain read (what `stop_machine`
//!   allows, since no reader runs while it writes), `arc_swap::ArcSwap::load`
//!   and `std::sync::RwLock::read`, alone and with a writer updating every
//!   ~1 ms;
//! - pausing the world: a `tokio::sync::RwLock<()>` "world lock" that every
//!   task holds for reading while it works and the pauser takes for writing,
//!   against `stop_machine`: the cost on every task poll, and the pause round
//!   trip on a busy runtime.
//!
//! As in `benches/stops.rs`, criterion reports means per operation and the
//! binary also times each pause, each writer update and each reader chunk on
//! its own, writing p50/p99/max to `$CARGO_TARGET_DIR/compare-latency.json`.
//!
//! Run: `cargo bench --bench compare`.

mod common;

use arc_swap::ArcSwap;
use common::{Recorder, bench_floors, note, time_each_async, watched, write_report};
use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stop_machine::{Handle, JoinHandle, Runtime};

/// Config reads per iteration (and per reader chunk, after which a reader
/// task yields).
const READS: u64 = 1_000;
/// Task polls per iteration of the poll-overhead benchmarks.
const POLLS: u64 = 1_000;
/// Pauses per iteration of the pause benchmarks.
const PAUSES: u64 = 10;
/// Round trips per iteration of the floors.
const ROUND_TRIPS: u64 = 100;
/// How often the writer updates the config.
const WRITE_EVERY: Duration = Duration::from_millis(1);
/// `black_box` steps of a task's work in one poll.
const WORK: u64 = 32;

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(25)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .throughput(Throughput::Elements(elements));
    g
}

/// The configuration being hot-patched.
#[derive(Clone, Copy, Debug, Default)]
struct Config {
    generation: u64,
    limit: u64,
    timeout_ms: u64,
}

impl Config {
    fn next(&self) -> Config {
        Config {
            generation: self.generation + 1,
            limit: self.limit + 2,
            timeout_ms: self.timeout_ms + 3,
        }
    }
}

/// What a reader does with the config: reads every field.
#[inline(always)]
fn read(c: &Config) -> u64 {
    c.generation ^ c.limit ^ c.timeout_ms
}

/// A value only ever written inside a `stop_machine`: readers read it
/// plainly, with no atomic, lock or reference count.
struct Patchable<T>(UnsafeCell<T>);

// SAFETY: writes go through `patch`, whose contract is that no reader runs;
// readers are tasks of the stopped runtime that hold no reference across a
// poll boundary, and the stop's state machine orders the write before the
// next reads.
unsafe impl<T: Send + Sync> Sync for Patchable<T> {}

impl<T> Patchable<T> {
    const fn new(value: T) -> Patchable<T> {
        Patchable(UnsafeCell::new(value))
    }

    /// A plain read. Callers must not hold the reference across an await.
    fn get(&self) -> &T {
        // SAFETY: see the `Sync` impl: no write overlaps a read.
        unsafe { &*self.0.get() }
    }

    /// # Safety
    ///
    /// Only from a `stop_machine` function, while every reader is stopped.
    unsafe fn patch(&self, value: T) {
        // SAFETY: the caller guarantees that no reader runs.
        unsafe { *self.0.get() = value }
    }
}

static PLAIN: Patchable<Config> = Patchable::new(Config {
    generation: 0,
    limit: 0,
    timeout_ms: 0,
});

/// The three ways to share the config.
#[derive(Clone)]
enum Shared {
    Plain,
    ArcSwap(Arc<ArcSwap<Config>>),
    RwLock(Arc<RwLock<Config>>),
}

impl Shared {
    fn name(&self) -> &'static str {
        match self {
            Shared::Plain => "plain",
            Shared::ArcSwap(_) => "arc_swap_load",
            Shared::RwLock(_) => "rwlock_read",
        }
    }

    fn writer_name(&self) -> &'static str {
        match self {
            Shared::Plain => "stop_machine_blocking",
            Shared::ArcSwap(_) => "arc_swap_store",
            Shared::RwLock(_) => "rwlock_write",
        }
    }

    fn all() -> [Shared; 3] {
        [
            Shared::Plain,
            Shared::ArcSwap(Arc::new(ArcSwap::from_pointee(Config::default()))),
            Shared::RwLock(Arc::new(RwLock::new(Config::default()))),
        ]
    }

    /// `n` reads, each through the sharing mechanism from scratch.
    #[inline(always)]
    fn read_n(&self, n: u64) {
        match self {
            Shared::Plain => {
                for _ in 0..n {
                    black_box(read(black_box(&PLAIN).get()));
                }
            }
            Shared::ArcSwap(s) => {
                for _ in 0..n {
                    black_box(read(&black_box(s).load()));
                }
            }
            Shared::RwLock(l) => {
                for _ in 0..n {
                    black_box(read(&black_box(l).read().expect("config lock")));
                }
            }
        }
    }

    /// One update, as each mechanism's writer does it.
    fn write(&self, h: &Handle) {
        match self {
            Shared::Plain => {
                h.stop_machine_blocking(
                    // SAFETY: inside stop_machine: every task, every reader included, is stopped.
                    |_| unsafe { PLAIN.patch(PLAIN.get().next()) },
                    None,
                )
                .expect("stop_machine");
            }
            Shared::ArcSwap(s) => s.store(Arc::new(s.load().next())),
            Shared::RwLock(l) => {
                let mut c = l.write().expect("config lock");
                *c = c.next();
            }
        }
    }
}

/// Single-threaded read cost: the benchmark thread reads, nobody writes.
fn config_read(c: &mut Criterion) {
    let mut g = group(c, "config_read", READS);
    for shared in Shared::all() {
        // One read of the config through `shared`, alone on the machine.
        watched(&format!("config_read/{}", shared.name()), || {
            g.bench_function(shared.name(), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    shared.read_n(iters * READS);
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// A thread that updates the config every [`WRITE_EVERY`], timing each update.
struct Writer {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    fn start(shared: Shared, h: Handle, recorder: Recorder) -> Writer {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::Builder::new()
            .name("config-writer".into())
            .spawn(move || {
                let mut ops = Vec::new();
                while !d.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    shared.write(&h);
                    ops.push(t.elapsed().as_nanos() as u64);
                    std::thread::sleep(WRITE_EVERY);
                }
                recorder.add(&ops);
            })
            .expect("writer thread");
        Writer { done, thread }
    }

    fn end(self) {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("writer thread");
    }
}

/// Readers on every worker (each reads [`READS`] times, then yields), the
/// one on worker 0 measured, with and without a writer.
fn config_read_writer(c: &mut Criterion) {
    let rt = Runtime::builder().build().expect("stop-machine runtime");
    let h = rt.handle().clone();
    let mut g = group(c, "config_read_writer", READS);
    for shared in Shared::all() {
        for writer in [false, true] {
            let id = format!(
                "{}_{}",
                shared.name(),
                if writer { "writer" } else { "no_writer" }
            );
            // Background readers on the other workers, as a runtime that reads its config everywhere.
            let done = Arc::new(AtomicBool::new(false));
            let others: Vec<JoinHandle<()>> = (1..h.num_workers())
                .map(|w| {
                    let (shared, done) = (shared.clone(), done.clone());
                    h.spawn_on(w, async move {
                        while !done.load(Ordering::Relaxed) {
                            shared.read_n(READS);
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let writer = writer.then(|| {
                let recorder = Recorder::new(&format!("config_write/{}", shared.writer_name()));
                Writer::start(shared.clone(), h.clone(), recorder)
            });
            // Reader chunks: READS reads and one yield, timed on their own for the tail a writer adds.
            let recorder = Recorder::new(&format!("config_read_writer/{id}"));
            // One read on worker 0, the yield after every READS reads included, while readers run on every worker.
            watched(&format!("config_read_writer/{}", id), || {
                g.bench_function(&id, |b| {
                    b.iter_custom(|iters| {
                        let (shared, recorder) = (shared.clone(), recorder.clone());
                        rt.block_on(async move {
                            stop_machine::spawn_on(0, async move {
                                let mut ops = Vec::new();
                                let d = time_each_async(iters, &mut ops, || {
                                    shared.read_n(READS);
                                    tokio::task::yield_now()
                                })
                                .await;
                                recorder.add(&ops);
                                d
                            })
                            .await
                            .expect("reader task")
                        })
                    })
                })
            });
            if let Some(w) = writer {
                w.end();
            }
            done.store(true, Ordering::Relaxed);
            rt.block_on(async move {
                for t in others {
                    t.await.expect("reader task");
                }
            });
        }
    }
    g.finish();
}

/// A task's work in one poll.
#[inline(always)]
fn work() {
    for i in 0..WORK {
        black_box(i);
    }
}

/// The hot-path cost of the world lock: a task's poll with and without
/// holding the read guard while it works.
fn world_lock_poll(c: &mut Criterion) {
    let rt = Runtime::builder()
        .workers(1)
        .build()
        .expect("stop-machine runtime");
    let mut g = group(c, "world_lock_poll", POLLS);
    let world = Arc::new(tokio::sync::RwLock::new(()));

    // One poll that works, then yields: all that stop_machine asks of a task.
    watched("world_lock_poll/work_yield", || {
        g.bench_function("work_yield", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters * POLLS {
                        work();
                        tokio::task::yield_now().await;
                    }
                    start.elapsed()
                })
            })
        })
    });
    // The same poll holding the world lock's read guard while it works: the world lock's price on every poll.
    watched("world_lock_poll/read_guard_work_yield", || {
        g.bench_function("read_guard_work_yield", |b| {
            b.iter_custom(|iters| {
                let world = world.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters * POLLS {
                        let guard = world.read().await;
                        work();
                        drop(guard);
                        tokio::task::yield_now().await;
                    }
                    start.elapsed()
                })
            })
        })
    });
    // The read guard's acquire and release alone, uncontended.
    watched("world_lock_poll/read_guard", || {
        g.bench_function("read_guard", |b| {
            b.iter_custom(|iters| {
                let world = world.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters * POLLS {
                        drop(black_box(world.read().await));
                    }
                    start.elapsed()
                })
            })
        })
    });
    g.finish();
}

/// Pause round trips from a task on worker 0 while `n` tasks per worker
/// work and yield: the world lock against `stop_machine`.
fn pause(c: &mut Criterion) {
    let rt = Runtime::builder().build().expect("stop-machine runtime");
    let h = rt.handle().clone();
    let mut g = group(c, "pause", PAUSES);
    for n in [1, 10, 100] {
        for world_lock in [true, false] {
            let id = format!(
                "{}_{n}_tasks",
                if world_lock { "world_lock" } else { "stop_machine" }
            );
            let world = Arc::new(tokio::sync::RwLock::new(()));
            let done = Arc::new(AtomicBool::new(false));
            let polls = Arc::new(AtomicU64::new(0));
            let tasks: Vec<JoinHandle<()>> = (0..h.num_workers())
                .flat_map(|w| (0..n).map(move |_| w))
                .map(|w| {
                    let (world, done, polls) = (world.clone(), done.clone(), polls.clone());
                    h.spawn_on(w, async move {
                        let mut mine = 0;
                        while !done.load(Ordering::Relaxed) {
                            if world_lock {
                                let guard = world.read().await;
                                work();
                                drop(guard);
                            } else {
                                work();
                            }
                            mine += 1;
                            tokio::task::yield_now().await;
                        }
                        polls.fetch_add(mine, Ordering::Relaxed);
                    })
                })
                .collect();
            let recorder = Recorder::new(&format!("pause/{id}"));
            let started = Instant::now();
            let workers = h.num_workers();
            watched(&format!("pause/{}", id), || {
                g.bench_function(&id, |b| {
                    b.iter_custom(|iters| {
                        let (world, recorder, h) = (world.clone(), recorder.clone(), h.clone());
                        rt.block_on(async move {
                            stop_machine::spawn_on(0, async move {
                                let mut ops = Vec::new();
                                let d = if world_lock {
                                    // The pauser takes the world lock for writing: every task is out of its work.
                                    time_each_async(iters * PAUSES, &mut ops, || async {
                                        drop(world.write().await);
                                    })
                                    .await
                                } else {
                                    // stop_machine(noop, None): every worker is in its stopper.
                                    time_each_async(iters * PAUSES, &mut ops, || async {
                                        h.stop_machine(|_| (), None).await.expect("stop_machine");
                                    })
                                    .await
                                };
                                recorder.add(&ops);
                                d
                            })
                            .await
                            .expect("pausing task")
                        })
                    })
                })
            });
            done.store(true, Ordering::Relaxed);
            rt.block_on(async move {
                for t in tasks {
                    t.await.expect("working task");
                }
            });
            let rate =
                polls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64() / workers as f64;
            note(&format!("task_polls_per_s_per_worker_{id}"), format!("{rate:.0}"));
        }
    }
    g.finish();
}

/// The floors, measured first and again last: a difference between the two
/// shows that something else ran on the machine meanwhile.
fn floors(c: &mut Criterion, name: &str) {
    let mut g = group(c, name, ROUND_TRIPS);
    watched(name, || bench_floors(&mut g, ROUND_TRIPS));
    g.finish();
}

fn floors_first(c: &mut Criterion) {
    floors(c, "compare_floor");
}

fn floors_last(c: &mut Criterion) {
    floors(c, "compare_floor_last");
}

/// Prints and saves the per-operation percentiles of the whole run.
fn report(_: &mut Criterion) {
    write_report("compare-latency.json");
}

criterion_group!(
    benches,
    floors_first,
    config_read,
    config_read_writer,
    world_lock_poll,
    pause,
    floors_last,
    report
);
criterion_main!(benches);
