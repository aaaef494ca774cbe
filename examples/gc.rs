//! A stop-the-world, parallel mark-sweep garbage collector on `stop_machine`.
//!
//! The heap is shared by mutator tasks on every worker. It is split into one
//! *partition* per worker (its slots, its free list and its root set); the
//! tasks of worker `w` allocate from, link and drop objects of partition `w`
//! only, with plain non-atomic writes and no lock. Objects still point
//! across partitions: each worker *exports* one of its objects (an atomic
//! slot, counted as a root) and others link to it, so the object graph spans
//! the whole heap.
//!
//! A collection is one `stop_machine` with every worker active. While it
//! runs no task is being polled anywhere, so the collector may read every
//! partition and rewrite them:
//!
//! 1. **mark** — each worker marks from its own roots, in parallel, following
//!    edges into every partition; an atomic test-and-set on each mark bit
//!    decides which worker visits an object;
//! 2. a `std::sync::Barrier` of all workers (sound here: every active worker
//!    runs the function at once, in the stop's RUN phase);
//! 3. **verify** (`--verify`) — worker 0 recomputes reachability with a
//!    sequential reference mark and checks that the parallel marking found
//!    exactly the reachable objects: nothing reachable is about to be freed;
//! 4. a second barrier, then **sweep** — each worker frees the unmarked
//!    objects of its own partition, in parallel.
//!
//! Why the unsynchronized accesses are sound: a partition is touched by the
//! tasks of its worker (never concurrently with each other: a worker polls
//! one task at a time, and each access is a synchronous closure, so it never
//! spans an `.await`) and by the collector, which only runs when no task runs
//! anywhere. Mutators dereference only their own partition's objects; a
//! foreign object's id is only ever stored. Within a collection, the mark
//! phase only reads partitions (and sets mark bits atomically), and each
//! partition is written only by its own worker, after the second barrier.
//!
//! Mutators trigger collections: by allocating a budget's worth of objects,
//! or by finding their partition full (they then drop some roots and wait
//! for the next collection). Every dereference checks the object's
//! generation and payload, so a use-after-free would panic a mutator even
//! without `--verify`.
//!
//! The heap, the mutators and the collector are in `gc/heap.rs`, which
//! `integration/gc.rs` tests; this file is the program around them.
//!
//! ```text
//! cargo run --release --example gc -- --duration 5 --verify
//! ```

#[path = "gc/heap.rs"]
mod heap;

use heap::{Collection, Control, Heap, INDEX_BITS, Marker, MutatorStats, collect, mutator};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use stop_machine::{Handle, Runtime};

/// Roots per worker.
const MAX_ROOTS: usize = 2048;

// ---------------------------------------------------------------------------
// The program.
// ---------------------------------------------------------------------------

struct Args {
    duration: Duration,
    workers: Option<usize>,
    slots: usize,
    tasks: usize,
    verify: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        duration: Duration::from_secs(5),
        workers: None,
        slots: 1 << 16,
        tasks: 4,
        verify: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--duration" => args.duration = Duration::from_secs(value()? as u64),
            "--workers" => args.workers = Some(value()?.max(1)),
            "--slots" => args.slots = value()?.clamp(64, (1 << INDEX_BITS) - 1),
            "--tasks" => args.tasks = value()?.max(1),
            "--verify" => args.verify = true,
            "-h" | "--help" => {
                return Err(
                    "usage: gc [--duration SECS] [--workers N] [--slots PER_WORKER] [--tasks PER_WORKER] [--verify]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok(args)
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    }
}

/// The `p`th percentile of sorted `samples` (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1]
}

fn print_header() {
    println!(
        "{:>5} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "time", "gcs", "live", "freed", "pause p50", "max", "mark", "verify", "sweep"
    );
}

/// A row of the live table for the collections of the last second.
fn print_row(secs: u64, window: &[Collection]) {
    let Some(last) = window.last() else {
        println!("{secs:>4}s {:>6}", 0);
        return;
    };
    let mut pauses: Vec<Duration> = window.iter().map(|c| c.pause).collect();
    pauses.sort();
    let max_of = |f: fn(&Collection) -> Duration| window.iter().map(f).max().unwrap_or_default();
    println!(
        "{secs:>4}s {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        window.len(),
        last.live,
        window.iter().map(|c| c.freed).sum::<usize>(),
        show(percentile(&pauses, 50)),
        show(max_of(|c| c.pause)),
        show(max_of(|c| c.mark)),
        show(max_of(|c| c.verify)),
        show(max_of(|c| c.sweep)),
    );
}

/// Runs the mutators and collects until `args.duration` has passed.
async fn run(args: Args) -> (Vec<Collection>, MutatorStats) {
    let handle = Handle::current();
    let n = handle.num_workers();
    let heap = Arc::new(Heap::new(n, args.slots, MAX_ROOTS));
    let control = Arc::new(Control::new((args.slots * n / 2) as u64));
    let mutators: Vec<_> = (0..n * args.tasks)
        .map(|i| {
            handle.spawn_on(
                i % n,
                mutator(heap.clone(), control.clone(), 0x1234_5678 * (i as u64 + 1)),
            )
        })
        .collect();

    let start = tokio::time::Instant::now();
    let deadline = start + args.duration;
    let (mut all, mut window, mut next_row) = (Vec::new(), Vec::new(), 1);
    print_header();
    loop {
        let row_at = start + Duration::from_secs(next_row);
        let wake = row_at.min(deadline);
        if tokio::time::timeout_at(wake, control.pressure.notified())
            .await
            .is_ok()
        {
            let c = collect(&handle, &heap, args.verify, Marker::Correct)
                .await
                .unwrap_or_else(|e| panic!("collection failed: {e}"));
            control.collected();
            window.push(c);
        }
        let now = tokio::time::Instant::now();
        if now >= row_at {
            print_row(next_row, &window);
            all.append(&mut window);
            next_row += 1;
        }
        if now >= deadline {
            break;
        }
    }
    all.append(&mut window);
    control.finish();
    let mut total = MutatorStats::default();
    for m in mutators {
        let s = m.await.expect("a mutator panicked");
        total.ops += s.ops;
        total.allocs += s.allocs;
        total.imports += s.imports;
        total.walked += s.walked;
    }
    (all, total)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Runtime::builder();
    if let Some(n) = args.workers {
        builder.workers(n);
    }
    let rt = builder.build().expect("runtime");
    let n = rt.handle().num_workers();
    println!(
        "{n} workers x {} mutator tasks, {} slots per worker, verify {}, for {:?}",
        args.tasks,
        args.slots,
        if args.verify { "on" } else { "off" },
        args.duration
    );
    let (collections, mutators) = rt.block_on(run(args));

    let mut pauses: Vec<Duration> = collections.iter().map(|c| c.pause).collect();
    pauses.sort();
    let freed: usize = collections.iter().map(|c| c.freed).sum();
    let cross: usize = collections.iter().map(|c| c.cross_edges).sum();
    let live = collections.last().map_or(0, |c| c.live);
    println!();
    println!(
        "{} collections: {freed} objects freed, {live} live after the last ({} marked)",
        collections.len(),
        collections.last().map_or(0, |c| c.marked)
    );
    println!(
        "pause p50 / p99 / max: {} / {} / {}",
        show(percentile(&pauses, 50)),
        show(percentile(&pauses, 99)),
        show(pauses.last().copied().unwrap_or_default())
    );
    println!(
        "mutators: {} ops, {} allocations, {} cross-worker links ({cross} cross-worker edges marked), {} objects checked",
        mutators.ops, mutators.allocs, mutators.imports, mutators.walked
    );
    ExitCode::SUCCESS
}
