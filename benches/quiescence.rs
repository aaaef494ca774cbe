//! Quiescence without stopping (issue 13): what a read costs on each kind
//! of shared cell, and what a grace period costs against a stop, in one
//! run so the figures are comparable.
//!
//! - `read`: one read of a two-word value, on a worker (inside a task): the
//!   crate's `Rcu`, `StopCell` and `WorkerLocal` against arc-swap's
//!   `ArcSwap::load`, `std::sync::RwLock::read`, an `Arc` clone (one
//!   reference-count write and its release), and the floor, a plain load
//!   through a reference; plus `Rcu::read` from a thread outside the
//!   runtime (its counted slow path).
//! - `read_contended`: the same reads while worker 1 reads the same cell
//!   in a loop;
//! - `counter`: a per-worker counter increment while worker 1 increments
//!   too: `WorkerLocal`, a sharded padded `AtomicU64`, `thread_local!`, one
//!   shared `AtomicU64`;
//! - `grace`: `synchronize_blocking` against `stop_machine_blocking` (empty
//!   function) from a thread outside a 2-worker runtime, with the workers
//!   idle, with both busy yielding, and with both reading an `Rcu` 1,000
//!   times between yields (liburcu's QSBR scenario, `scripts/urcu-anchor`
//!   is its C anchor); and `defer` of 1,000 values until
//!   the last is dropped (per value).
//!
//! Run: `cargo bench --bench quiescence`.

mod common;

use arc_swap::ArcSwap;
use common::{Background, Group, on_worker0, runtime_of, timed, yield_until};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stop_machine::{Rcu, StopCell, WorkerLocal};

const SAMPLES: usize = 30;
/// Reads per iteration of the read benchmarks.
const READS: u64 = 1_000;
/// Values deferred per iteration of the defer benchmark.
const DEFERS: u64 = 1_000;

type Pair = (u64, u64);

/// `iters * READS` calls of `read` in a task on worker 0.
fn on_worker(rt: &stop_machine::Runtime, iters: u64, read: impl Fn() -> u64 + Send + 'static) -> Duration {
    on_worker0(
        rt,
        timed(async move {
            for _ in 0..iters * READS {
                black_box(read());
            }
        }),
    )
}

fn read(c: &mut Criterion) {
    let rt = runtime_of(2);
    let h = rt.handle().clone();
    let mut g = Group::new(c, "read", SAMPLES, READS);

    // The floor: a load through a shared reference (what StopCell compiles to, minus its checks).
    let plain = Arc::new((1u64, 2u64));
    g.bench("plain_ref", |iters| {
        let p = plain.clone();
        on_worker(&rt, iters, move || black_box(&*p).0)
    });

    // Rcu::read on a worker: one atomic load and a thread-local read section.
    let rcu = Arc::new(Rcu::new(&h, (1u64, 2u64)));
    g.bench("rcu_worker", |iters| {
        let r = rcu.clone();
        on_worker(&rt, iters, move || r.read(|v: &Pair| v.0))
    });

    // StopCell::read on a worker: no atomic at all, a thread-local check.
    let cell = StopCell::new(&h, (1u64, 2u64));
    g.bench("stop_cell_worker", |iters| {
        let c = cell.clone();
        on_worker(&rt, iters, move || c.read(|v| v.0))
    });

    // WorkerLocal::with: the worker's own padded slot.
    let local = Arc::new(WorkerLocal::new(&h, |_| (1u64, 2u64)));
    g.bench("worker_local_with", |iters| {
        let l = local.clone();
        on_worker(&rt, iters, move || l.with(|v| v.0))
    });

    // arc-swap's load (a debt slot written and released per read).
    let swap = Arc::new(ArcSwap::from_pointee((1u64, 2u64)));
    g.bench("arc_swap_load", |iters| {
        let s = swap.clone();
        on_worker(&rt, iters, move || s.load().0)
    });

    // std's RwLock read guard: two atomic read-modify-writes on a shared line.
    let lock = Arc::new(RwLock::new((1u64, 2u64)));
    g.bench("rwlock_read", |iters| {
        let l = lock.clone();
        on_worker(&rt, iters, move || l.read().unwrap().0)
    });

    // An Arc clone and drop: the reference count written twice.
    let arc = Arc::new(Arc::new((1u64, 2u64)));
    g.bench("arc_clone", |iters| {
        let a = arc.clone();
        on_worker(&rt, iters, move || Arc::clone(&a).0)
    });

    // Rcu::read from a thread outside the runtime: the counted slow path.
    g.bench("rcu_outside", |iters| {
        let start = Instant::now();
        for _ in 0..iters * READS {
            black_box(rcu.read(|v: &Pair| v.0));
        }
        start.elapsed()
    });
    g.finish();
}

fn grace(c: &mut Criterion) {
    let rt = runtime_of(2);
    let h = rt.handle().clone();
    let mut g = Group::new(c, "grace", SAMPLES, 1);

    // A grace period with both workers idle: they count at once, unwoken.
    g.bench("synchronize_idle_2w", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            h.synchronize_blocking();
        }
        start.elapsed()
    });
    // The same caller stopping the world instead.
    g.bench("stop_machine_idle_2w", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            h.stop_machine_blocking(|_| (), None).expect("stop");
        }
        start.elapsed()
    });

    // Both workers busy with a task that yields in a loop.
    let busy = Background::start(&h, [0, 1], yield_until);
    g.bench("synchronize_busy_2w", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            h.synchronize_blocking();
        }
        start.elapsed()
    });
    g.bench("stop_machine_busy_2w", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            h.stop_machine_blocking(|_| (), None).expect("stop");
        }
        start.elapsed()
    });
    busy.end(&rt);

    // liburcu's QSBR scenario (scripts/urcu-anchor): both workers read an
    // Rcu in a loop, 1,000 reads between yields (a tick each).
    let cell = Arc::new(Rcu::new(&h, 1u64));
    let readers = Background::start(&h, [0, 1], |done| {
        let cell = cell.clone();
        async move {
            while !done.load(Ordering::Relaxed) {
                for _ in 0..1_000 {
                    black_box(cell.read(|v| *v));
                }
                tokio::task::yield_now().await;
            }
        }
    });
    g.bench("synchronize_readers_2w", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            h.synchronize_blocking();
        }
        start.elapsed()
    });
    readers.end(&rt);
    g.finish();

    // defer: 1,000 values, until the last one is dropped; per value.
    let mut g = Group::new(c, "defer", SAMPLES, DEFERS);
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    g.bench("defer_1000_idle_2w", |iters| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        for _ in 0..iters * DEFERS {
            h.defer(Counted(dropped.clone()));
        }
        while dropped.load(Ordering::Relaxed) < (iters * DEFERS) as usize {
            std::thread::yield_now();
        }
        start.elapsed()
    });
    g.finish();
}

/// One operation of the contended benchmarks.
type Op = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Benchmarks `op` on worker 0 while a task on worker 1 runs the same `op`
/// in a loop (yielding every [`READS`]).
fn beside_worker1(g: &mut Group<'_>, rt: &stop_machine::Runtime, name: &str, op: Op) {
    let other = op.clone();
    let busy = Background::start(rt.handle(), [1], move |done| {
        let other = other.clone();
        async move {
            while !done.load(Ordering::Relaxed) {
                for _ in 0..READS {
                    black_box(other());
                }
                tokio::task::yield_now().await;
            }
        }
    });
    g.bench(name, |iters| {
        let op = op.clone();
        on_worker(rt, iters, move || op())
    });
    busy.end(rt);
}

/// The same reads on worker 0 while a task on worker 1 reads the same
/// cell in a loop: what sharing a cache line between readers costs.
fn read_contended(c: &mut Criterion) {
    let rt = runtime_of(2);
    let h = rt.handle().clone();
    let mut g = Group::new(c, "read_contended", SAMPLES, READS);
    let mut contended = |name: &str, read: Op| beside_worker1(&mut g, &rt, name, read);
    let plain = Arc::new((1u64, 2u64));
    contended("plain_ref", Arc::new(move || black_box(&*plain).0));
    let rcu = Arc::new(Rcu::new(&h, (1u64, 2u64)));
    contended("rcu_worker", Arc::new(move || rcu.read(|v: &Pair| v.0)));
    let cell = StopCell::new(&h, (1u64, 2u64));
    contended("stop_cell_worker", Arc::new(move || cell.read(|v| v.0)));
    let swap = Arc::new(ArcSwap::from_pointee((1u64, 2u64)));
    contended("arc_swap_load", Arc::new(move || swap.load().0));
    let lock = Arc::new(RwLock::new((1u64, 2u64)));
    contended("rwlock_read", Arc::new(move || lock.read().unwrap().0));
    let arc = Arc::new((1u64, 2u64));
    contended("arc_clone", Arc::new(move || Arc::clone(&arc).0));
    g.finish();
}

/// A per-worker counter increment on worker 0 (worker 1 incrementing its
/// own meanwhile): `WorkerLocal` against a sharded `AtomicU64` (one padded
/// atomic per worker, `fetch_add`), a `thread_local!` cell, and one shared
/// `AtomicU64`.
fn counters(c: &mut Criterion) {
    use crossbeam_utils::CachePadded;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU64;
    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }
    let rt = runtime_of(2);
    let h = rt.handle().clone();
    let mut g = Group::new(c, "counter", SAMPLES, READS);
    let mut both = |name: &str, bump: Op| beside_worker1(&mut g, &rt, name, bump);
    let local = Arc::new(WorkerLocal::new(&h, |_| Cell::new(0u64)));
    both(
        "worker_local",
        Arc::new(move || {
            local.with(|c| {
                c.set(c.get() + 1);
                c.get()
            })
        }),
    );
    let sharded: Arc<Vec<CachePadded<AtomicU64>>> =
        Arc::new((0..2).map(|_| CachePadded::new(AtomicU64::new(0))).collect());
    both(
        "sharded_atomic",
        Arc::new(move || {
            let w = stop_machine::current_worker().unwrap_or(0);
            sharded[w].fetch_add(1, Ordering::Relaxed)
        }),
    );
    both(
        "thread_local",
        Arc::new(|| {
            COUNT.with(|c| {
                c.set(c.get() + 1);
                c.get()
            })
        }),
    );
    let shared = Arc::new(AtomicU64::new(0));
    both(
        "shared_atomic",
        Arc::new(move || shared.fetch_add(1, Ordering::Relaxed)),
    );
    g.finish();
}

criterion_group!(benches, read, read_contended, counters, grace);
criterion_main!(benches);
