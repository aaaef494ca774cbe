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
use common::{
    Background, Group, Recorder, floors, note, on_worker0, runtime, runtime_of, timed, write_report,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stop_machine::Handle;

/// Samples per benchmark.
const SAMPLES: usize = 25;
/// Config reads per iteration (and per reader chunk, after which a reader
/// task yields).
const READS: u64 = 1_000;
/// Task polls per iteration of the poll-overhead benchmarks.
const POLLS: u64 = 1_000;
/// Pauses per iteration of the pause benchmarks.
const PAUSES: u64 = 10;
/// How often the writer updates the config.
const WRITE_EVERY: Duration = Duration::from_millis(1);
/// `black_box` steps of a task's work in one poll.
const WORK: u64 = 32;

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
    let mut g = Group::new(c, "config_read", SAMPLES, READS);
    for shared in Shared::all() {
        // One read of the config through `shared`, alone on the machine.
        g.bench(shared.name(), |iters| {
            let start = Instant::now();
            shared.read_n(iters * READS);
            start.elapsed()
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
    let rt = runtime();
    let h = rt.handle().clone();
    let mut g = Group::new(c, "config_read_writer", SAMPLES, READS);
    for shared in Shared::all() {
        for writer in [false, true] {
            let id = format!(
                "{}_{}",
                shared.name(),
                if writer { "writer" } else { "no_writer" }
            );
            // Background readers on the other workers, as a runtime that reads its config everywhere.
            let others = Background::start(&h, 1..h.num_workers(), |done| {
                let shared = shared.clone();
                async move {
                    while !done.load(Ordering::Relaxed) {
                        shared.read_n(READS);
                        tokio::task::yield_now().await;
                    }
                }
            });
            let writer = writer.then(|| {
                let recorder = Recorder::new(&format!("config_write/{}", shared.writer_name()));
                Writer::start(shared.clone(), h.clone(), recorder)
            });
            // Reader chunks: READS reads and one yield, timed on their own for the tail a writer adds.
            let recorder = g.recorder(&id);
            // One read on worker 0, the yield after every READS reads included, while readers run on every worker.
            g.bench(&id, |iters| {
                let (shared, recorder) = (shared.clone(), recorder.clone());
                on_worker0(&rt, async move {
                    let chunk = || {
                        shared.read_n(READS);
                        tokio::task::yield_now()
                    };
                    recorder.time_each_async(iters, chunk).await
                })
            });
            if let Some(w) = writer {
                w.end();
            }
            others.end(&rt);
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
    let rt = runtime_of(1);
    let mut g = Group::new(c, "world_lock_poll", SAMPLES, POLLS);
    let world = Arc::new(tokio::sync::RwLock::new(()));

    // One poll that works, then yields: all that stop_machine asks of a task.
    g.bench("work_yield", |iters| {
        rt.block_on(timed(async move {
            for _ in 0..iters * POLLS {
                work();
                tokio::task::yield_now().await;
            }
        }))
    });
    // The same poll holding the world lock's read guard while it works: the world lock's price on every poll.
    g.bench("read_guard_work_yield", |iters| {
        let world = world.clone();
        rt.block_on(timed(async move {
            for _ in 0..iters * POLLS {
                let guard = world.read().await;
                work();
                drop(guard);
                tokio::task::yield_now().await;
            }
        }))
    });
    // The read guard's acquire and release alone, uncontended.
    g.bench("read_guard", |iters| {
        let world = world.clone();
        rt.block_on(timed(async move {
            for _ in 0..iters * POLLS {
                drop(black_box(world.read().await));
            }
        }))
    });
    g.finish();
}

/// Pause round trips from a task on worker 0 while `n` tasks per worker
/// work and yield: the world lock against `stop_machine`.
fn pause(c: &mut Criterion) {
    let rt = runtime();
    let h = rt.handle().clone();
    let mut g = Group::new(c, "pause", SAMPLES, PAUSES);
    for n in [1, 10, 100] {
        for world_lock in [true, false] {
            let id = format!(
                "{}_{n}_tasks",
                if world_lock { "world_lock" } else { "stop_machine" }
            );
            let world = Arc::new(tokio::sync::RwLock::new(()));
            let polls = Arc::new(AtomicU64::new(0));
            let n_per_worker = (0..h.num_workers()).flat_map(|w| (0..n).map(move |_| w));
            let tasks = Background::start(&h, n_per_worker, |done| {
                let (world, polls) = (world.clone(), polls.clone());
                async move {
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
                }
            });
            let recorder = g.recorder(&id);
            let started = Instant::now();
            let workers = h.num_workers();
            g.bench(&id, |iters| {
                let (world, recorder, h) = (world.clone(), recorder.clone(), h.clone());
                on_worker0(&rt, async move {
                    if world_lock {
                        // The pauser takes the world lock for writing: every task is out of its work.
                        let pause = || async {
                            drop(world.write().await);
                        };
                        recorder.time_each_async(iters * PAUSES, pause).await
                    } else {
                        // stop_machine(noop, None): every worker is in its stopper.
                        let pause = || async {
                            h.stop_machine(|_| (), None).await.expect("stop_machine");
                        };
                        recorder.time_each_async(iters * PAUSES, pause).await
                    }
                })
            });
            tasks.end(&rt);
            let rate =
                polls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64() / workers as f64;
            note(&format!("task_polls_per_s_per_worker_{id}"), format!("{rate:.0}"));
        }
    }
    g.finish();
}

fn floors_first(c: &mut Criterion) {
    floors(c, "compare_floor", SAMPLES);
}

fn floors_last(c: &mut Criterion) {
    floors(c, "compare_floor_last", SAMPLES);
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
