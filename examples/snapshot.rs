//! Consistent snapshots of per-worker state with `stop_cpus`.
//!
//! Each worker owns a slot of plain counters, updated by that worker's
//! tasks with no atomic and no lock: tasks move tokens between the slot's
//! two fields `a` and `b` (so `a + b` stays `TOKENS`) and count each move in
//! a small histogram (so the histogram sums to `moves`). Both invariants
//! hold at every poll boundary, since a task finishes each update before it
//! yields; they may not hold in the middle of one.
//!
//! Reading a slot from another thread would be a data race and could catch
//! an update half done. `stop_cpus` instead runs the reader *on each
//! worker*, in its stopper: the function monopolizes the worker while it
//! runs, so no task of that worker is mid-poll, and since a slot is only ever
//! touched on its own worker's thread, nothing else can touch it. Every
//! snapshot therefore sees `a + b == TOKENS` and a histogram that sums to
//! `moves`, for every worker.
//!
//! Unlike `stop_machine`, `stop_cpus` does not stop the workers together:
//! each worker's slot is read at a poll boundary of that worker, at a
//! slightly different instant. Per-worker invariants hold; an invariant
//! across workers would need `stop_machine`.
//!
//! ```text
//! cargo run --release --example snapshot -- --snapshots 1000
//! ```

use std::cell::UnsafeCell;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stop_machine::{Runtime, WorkerMask};

/// Tokens per worker.
const TOKENS: u64 = 1_000_000;
/// Token-moving tasks per worker.
const TASKS: usize = 3;
/// Moves a task makes in one poll.
const BATCH: usize = 100;

/// One worker's counters.
#[derive(Clone, Copy, Debug)]
struct Slot {
    a: u64,
    b: u64,
    moves: u64,
    /// Moves by size class; sums to `moves`.
    sizes: [u64; 8],
}

impl Slot {
    fn consistent(&self) -> bool {
        self.a + self.b == TOKENS && self.sizes.iter().sum::<u64>() == self.moves
    }
}

/// A slot, alone on its cache line.
#[repr(align(128))]
struct Padded<T>(UnsafeCell<T>);

/// One slot per worker, touched only on that worker's thread.
struct PerWorker<T>(Box<[Padded<T>]>);

// SAFETY: slot `w` is only accessed through `with`, whose contract confines
// it to worker `w`'s thread; one thread never runs two accesses at once (the
// access is a synchronous closure that does not re-enter), so the slots are
// never shared. `T: Send` because each slot is created on the main thread
// and used on its worker's.
unsafe impl<T: Send> Sync for PerWorker<T> {}

impl<T> PerWorker<T> {
    fn new(n: usize, init: impl Fn() -> T) -> PerWorker<T> {
        PerWorker((0..n).map(|_| Padded(UnsafeCell::new(init()))).collect())
    }

    /// Runs `f` on the slot of the worker running the caller.
    ///
    /// # Safety
    ///
    /// Call only on a worker of the runtime these slots belong to (a task or
    /// a stop function), and not from inside `f`.
    unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let w = stop_machine::current_worker().expect("PerWorker::with off a worker thread");
        // SAFETY: only worker `w`'s thread reaches slot `w`, and it runs one
        // task poll or one stop function at a time; `f` is synchronous and
        // does not re-enter, so this is the only borrow of the slot.
        f(unsafe { &mut *self.0[w].0.get() })
    }
}

/// A token-moving task: batches of moves on its worker's slot.
async fn mover(slots: Arc<PerWorker<Slot>>, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        let moves = |slot: &mut Slot| {
            for _ in 0..BATCH {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let size = rng % 1000;
                // Take from one field, then give to the other: between the
                // two writes the slot is inconsistent, but never across an
                // .await.
                if rng & (1 << 40) == 0 && slot.a >= size {
                    slot.a -= size;
                    slot.b += size;
                } else if slot.b >= size {
                    slot.b -= size;
                    slot.a += size;
                }
                slot.sizes[(size / 125) as usize] += 1;
                slot.moves += 1;
            }
        };
        // SAFETY: a task of the runtime; the closure does not re-enter.
        unsafe { slots.with(moves) };
        tokio::task::yield_now().await;
    }
}

fn print_snapshot(i: usize, took: Duration, snapshot: &[(usize, Slot)]) {
    println!("snapshot {i} (took {}µs):", took.as_micros());
    println!(
        "  {:>6} {:>9} {:>9} {:>9} {:>11}  {:<10}",
        "worker", "a", "b", "a + b", "moves", "consistent"
    );
    for (w, s) in snapshot {
        println!(
            "  {w:>6} {:>9} {:>9} {:>9} {:>11}  {}",
            s.a,
            s.b,
            s.a + s.b,
            s.moves,
            if s.consistent() { "yes" } else { "NO" }
        );
    }
}

fn parse_args() -> Result<(usize, Option<usize>), String> {
    let (mut snapshots, mut workers) = (1000, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--snapshots" => snapshots = value()?.max(1),
            "--workers" => workers = Some(value()?.max(1)),
            "-h" | "--help" => return Err("usage: snapshot [--snapshots N] [--workers N]".into()),
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok((snapshots, workers))
}

fn main() -> ExitCode {
    let (snapshots, workers) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Runtime::builder();
    if let Some(n) = workers {
        builder.workers(n);
    }
    let rt = builder.build().expect("runtime");
    let n = rt.handle().num_workers();
    let slots = Arc::new(PerWorker::new(n, || Slot {
        a: TOKENS,
        b: 0,
        moves: 0,
        sizes: [0; 8],
    }));
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..n * TASKS {
        rt.handle().spawn_on(
            i % n,
            mover(slots.clone(), 0x9e37_79b9 * (i as u64 + 1), stop.clone()),
        );
    }
    println!("{n} workers x {TASKS} tasks moving {TOKENS} tokens each; {snapshots} snapshots");

    let (inconsistent, slowest) = rt.block_on(async move {
        let (mut inconsistent, mut slowest) = (0, Duration::ZERO);
        for i in 0..snapshots {
            let slots = slots.clone();
            let start = Instant::now();
            let snapshot = stop_machine::stop_cpus(&WorkerMask::full(n), move |_| {
                // SAFETY: a stop function on a worker of this runtime; the
                // closure does not re-enter.
                unsafe { slots.with(|slot| *slot) }
            })
            .await
            .expect("stop_cpus");
            let took = start.elapsed();
            slowest = slowest.max(took);
            inconsistent += snapshot.iter().filter(|(_, s)| !s.consistent()).count();
            if i % (snapshots / 4).max(1) == 0 || i == snapshots - 1 {
                print_snapshot(i, took, &snapshot);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        stop.store(true, Ordering::Relaxed);
        (inconsistent, slowest)
    });
    println!(
        "\n{snapshots} snapshots of {n} workers, slowest {}µs: {inconsistent} inconsistent",
        slowest.as_micros()
    );
    if inconsistent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
