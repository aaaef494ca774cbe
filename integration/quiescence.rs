//! Quiescence without stopping: grace periods (`synchronize`, `defer`),
//! `Rcu`, `StopCell`, `WorkerLocal` and `stop_machine_once`.

mod common;

use common::{runtime, watchdog};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use stop_machine::{Rcu, StopCell, StopError, WorkerLocal};

const ALIVE: u64 = 0xA11CE;
const DEAD: u64 = 0xDEAD;

/// A value that poisons itself when dropped and counts its drops.
struct Canary {
    state: AtomicU64,
    serial: u64,
    drops: Arc<AtomicUsize>,
}

impl Canary {
    fn new(serial: u64, drops: &Arc<AtomicUsize>) -> Canary {
        Canary {
            state: AtomicU64::new(ALIVE),
            serial,
            drops: drops.clone(),
        }
    }

    fn check(&self) -> u64 {
        assert_eq!(
            self.state.load(SeqCst),
            ALIVE,
            "read a dropped value (serial {})",
            self.serial
        );
        self.serial
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.state.store(DEAD, SeqCst);
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A read closure of `cell` held open on worker 1: returns once it is
/// inside, with the task's handle (its output: `at_end` evaluated at the
/// closure's end) and the flag that lets it end.
fn hold_read_open<T, R>(
    rt: &stop_machine::Runtime,
    cell: &Arc<Rcu<T>>,
    at_end: impl FnOnce(&T) -> R + Send + 'static,
) -> (stop_machine::JoinHandle<R>, Arc<AtomicBool>)
where
    T: Send + Sync + 'static,
    R: Send + 'static,
{
    let (inside, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let reader = {
        let (cell, inside, release) = (cell.clone(), inside.clone(), release.clone());
        rt.handle().spawn_on(1, async move {
            cell.read(|v| {
                inside.store(true, SeqCst);
                while !release.load(SeqCst) {
                    std::hint::spin_loop();
                }
                at_end(v)
            })
        })
    };
    while !inside.load(SeqCst) {
        std::thread::yield_now();
    }
    (reader, release)
}

/// Lets a wrongly short grace period every chance to end before the
/// reader is released (no correct outcome depends on this).
fn give_it_time() {
    for _ in 0..10_000 {
        std::thread::yield_now();
    }
}

/// A read closure held open on worker 1 holds the grace period back: the
/// synchronizer has not returned when the reader leaves its closure, and
/// returns after.
#[test]
fn synchronize_waits_for_a_read_in_progress() {
    watchdog("synchronize waits for a reader", || {
        let rt = runtime(2);
        let cell = Arc::new(Rcu::new(rt.handle(), 1u32));
        let synced = Arc::new(AtomicBool::new(false));
        let s = synced.clone();
        let (reader, release) = hold_read_open(&rt, &cell, move |v| (*v, s.load(SeqCst)));
        let syncer = {
            let (h, synced) = (rt.handle().clone(), synced.clone());
            std::thread::spawn(move || {
                h.synchronize_blocking();
                synced.store(true, SeqCst);
            })
        };
        give_it_time();
        release.store(true, SeqCst);
        let (value, synced_inside) = rt.block_on(reader).unwrap();
        assert_eq!(value, 1);
        assert!(
            !synced_inside,
            "the grace period ended while a read was in progress"
        );
        syncer.join().unwrap();
        assert!(synced.load(SeqCst));
    });
}

/// Idle workers count as quiescent without being woken, and a parked
/// (offline) worker does not hold a grace period up.
#[test]
fn synchronize_with_idle_and_offline_workers() {
    watchdog("synchronize idle/offline", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        let before: Vec<u64> = (0..3).map(|w| h.stopper_info(w).unwrap().wakeups).collect();
        for _ in 0..100 {
            h.synchronize_blocking();
        }
        let after: Vec<u64> = (0..3).map(|w| h.stopper_info(w).unwrap().wakeups).collect();
        // 100 grace periods woke no idle worker (a stray timer may wake
        // one now and then, not a hundred times).
        for (b, a) in before.iter().zip(&after) {
            assert!(a - b < 50, "idle workers were woken: {before:?} -> {after:?}");
        }
        let hp = h.clone();
        rt.block_on(async move { hp.park_worker(2).await }).unwrap();
        h.synchronize_blocking();
        let hs = h.clone();
        rt.block_on(async move { hs.synchronize().await });
        let hu = h.clone();
        rt.block_on(async move { hu.unpark_worker(2).await }).unwrap();
        h.synchronize_blocking();
    });
}

/// Readers on every worker and on an outside thread, 2,000 values
/// published (from a task, then from a thread): no reader ever sees a
/// dropped value, each reader sees the serials in order, and every old
/// value is dropped exactly once.
#[test]
fn rcu_stress_readers_never_see_a_freed_value() {
    watchdog("rcu stress", || {
        let rt = runtime(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Rcu::new(rt.handle(), Canary::new(0, &drops)));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        for w in 0..2 {
            let (cell, stop, reads) = (cell.clone(), stop.clone(), reads.clone());
            readers.push(rt.handle().spawn_on(w, async move {
                let mut last = 0;
                while !stop.load(SeqCst) {
                    let serial = cell.read(|c| c.check());
                    assert!(serial >= last, "serials went back: {last} then {serial}");
                    last = serial;
                    reads.fetch_add(1, SeqCst);
                    tokio::task::yield_now().await;
                }
            }));
        }
        let outside = {
            let (cell, stop) = (cell.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(SeqCst) {
                    let serial = cell.read(|c| c.check());
                    assert!(serial >= last);
                    last = serial;
                }
            })
        };
        let writer = {
            let (cell, drops) = (cell.clone(), drops.clone());
            rt.handle().spawn_on(0, async move {
                for serial in 1..=1_000 {
                    cell.publish(Canary::new(serial, &drops)).await;
                }
            })
        };
        rt.block_on(writer).unwrap();
        // Then from this thread, outside the runtime.
        for serial in 1_001..=2_000 {
            cell.publish_blocking(Canary::new(serial, &drops));
        }
        stop.store(true, SeqCst);
        for r in readers {
            rt.block_on(r).unwrap();
        }
        outside.join().unwrap();
        assert_eq!(drops.load(SeqCst), 2_000, "every replaced value dropped once");
        assert!(reads.load(SeqCst) > 0);
        assert_eq!(
            cell.read(|c| c.check()),
            2_000,
            "the last value published is current"
        );
        drop(cell);
        assert_eq!(drops.load(SeqCst), 2_001);
    });
}

/// `replace` hands the old value back after the grace period; `defer`
/// drops a thousand values in batches, none while a read that began
/// before it is in progress.
#[test]
fn rcu_replace_and_defer() {
    watchdog("rcu replace and defer", || {
        let rt = runtime(2);
        let cell = Arc::new(Rcu::new(rt.handle(), String::from("v1")));
        let c = cell.clone();
        let old = rt.block_on(async move { c.replace(String::from("v2")).await });
        assert_eq!(old.unwrap(), "v1");
        assert_eq!(cell.read(|s| s.clone()), "v2");

        let drops = Arc::new(AtomicUsize::new(0));
        for serial in 0..1_000 {
            rt.handle().defer(Canary::new(serial, &drops));
        }
        while drops.load(SeqCst) < 1_000 {
            std::thread::yield_now();
        }
        assert_eq!(drops.load(SeqCst), 1_000);
    });
}

/// A deferred value is not dropped while a read that began before the
/// defer is in progress on a worker.
#[test]
fn defer_waits_for_a_read_in_progress() {
    watchdog("defer waits", || {
        let rt = runtime(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Rcu::new(rt.handle(), ()));
        let d = drops.clone();
        let (reader, release) = hold_read_open(&rt, &cell, move |_| d.load(SeqCst));
        rt.handle().defer(Canary::new(7, &drops));
        give_it_time();
        release.store(true, SeqCst);
        assert_eq!(
            rt.block_on(reader).unwrap(),
            0,
            "dropped during a read that began before the defer"
        );
        while drops.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
    });
}

/// Inside a read closure the worker serves no stop: `safepoint` does
/// nothing (the stop waits until the closure ends) and a blocking stop
/// call panics with a clear message.
#[test]
fn no_stop_inside_a_read_closure() {
    watchdog("no stop in a read", || {
        let rt = runtime(2);
        let cell = Arc::new(Rcu::new(rt.handle(), 0u8));
        let c = cell.clone();
        let msg = rt.block_on(async move {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                c.read(|_| stop_machine::stop_machine_blocking(|_| (), None))
            }));
            let p = caught.expect_err("a blocking stop inside a read must panic");
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        assert!(msg.contains("inside a read closure"), "{msg}");
        // The runtime still works.
        let h = rt.handle().clone();
        assert_eq!(
            rt.block_on(async move { h.stop_machine(|_| 5, None).await }),
            Ok(5)
        );
    });
}

/// `StopCell`: readers on both workers check a two-field invariant that a
/// torn write would break, while patches and replaces run; values move in
/// and out; a read off the workers panics.
#[test]
fn stop_cell_patches_are_never_torn() {
    watchdog("stop cell", || {
        let rt = runtime(2);
        let cell = StopCell::new(rt.handle(), (0u64, 0u64, String::from("v0")));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for w in 0..2 {
            let (cell, stop) = (cell.clone(), stop.clone());
            readers.push(rt.handle().spawn_on(w, async move {
                let mut seen = 0;
                loop {
                    cell.read(|(a, b, name)| {
                        assert_eq!(*b, a * 2, "torn read");
                        assert_eq!(*name, format!("v{a}"));
                    });
                    seen += 1;
                    if stop.load(SeqCst) {
                        break seen;
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for i in 1..=100u64 {
            if i % 2 == 0 {
                let old = cell.replace_blocking((i, i * 2, format!("v{i}"))).unwrap();
                assert_eq!(old.0, i - 1, "replace returns the value it replaced");
            } else {
                let n = cell
                    .patch_blocking(move |v| {
                        *v = (i, i * 2, format!("v{i}"));
                        v.0
                    })
                    .unwrap();
                assert_eq!(n, i);
            }
        }
        stop.store(true, SeqCst);
        for r in readers {
            assert!(rt.block_on(r).unwrap() > 0);
        }
        let c = cell.clone();
        assert_eq!(rt.block_on(async move { c.read(|v| v.0) }), 100);
        let off = catch_unwind(AssertUnwindSafe(|| cell.read(|v| v.0)));
        assert!(off.is_err(), "StopCell::read off the workers must panic");
    });
}

/// `stop_machine_once` runs its `FnOnce` exactly once, moves a non-`Copy`
/// value in and out, and reports `Nested` from inside a stop.
#[test]
fn stop_machine_once_runs_once_and_moves_values() {
    watchdog("stop_machine_once", || {
        let rt = runtime(3);
        let h = rt.handle().clone();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let table = vec![String::from("a"), String::from("b")];
        let out = h
            .stop_machine_once_blocking(move |world| {
                r.fetch_add(1, SeqCst);
                (world.num_workers(), table)
            })
            .unwrap();
        assert_eq!(out, (3, vec![String::from("a"), String::from("b")]));
        assert_eq!(runs.load(SeqCst), 1);
        let h2 = h.clone();
        let nested = h.stop_machine_blocking(move |_| h2.stop_machine_once_blocking(|_| ()), None);
        assert_eq!(nested, Ok(Err(StopError::Nested)));
    });
}

/// `WorkerLocal`: each task bumps two counters of its own worker's slot
/// together; a `stop_machine_once` reads every slot mid-run and never sees
/// them apart, and the final sum is every bump. `with` off the workers
/// panics, and so does a stopped world of another runtime.
#[test]
fn worker_local_counters_read_consistently() {
    watchdog("worker local", || {
        let rt = runtime(2);
        struct Pair {
            a: Cell<u64>,
            b: Cell<u64>,
        }
        let slots = Arc::new(WorkerLocal::new(rt.handle(), |_| Pair {
            a: Cell::new(0),
            b: Cell::new(0),
        }));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let slots = slots.clone();
                rt.handle().spawn_on(i % 2, async move {
                    for _ in 0..500 {
                        slots.with(|p| {
                            p.a.set(p.a.get() + 1);
                            stop_machine::safepoint(); // does nothing in here
                            p.b.set(p.b.get() + 1);
                        });
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let h = rt.handle().clone();
        for _ in 0..50 {
            let s = slots.clone();
            h.stop_machine_once_blocking(move |world| {
                for (w, p) in s.iter_mut(world) {
                    assert_eq!(p.a.get(), p.b.get(), "worker {w}'s slot seen mid-update");
                }
            })
            .unwrap();
        }
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        let s = slots.clone();
        let per_worker = h
            .stop_machine_once_blocking(move |world| {
                let mut v: Vec<u64> = s.iter_mut(world).map(|(_, p)| p.a.get()).collect();
                *s.get_mut(world, 0) = Pair {
                    a: Cell::new(0),
                    b: Cell::new(0),
                };
                v.push(s.get_mut(world, 0).a.get());
                v
            })
            .unwrap();
        assert_eq!(per_worker, [2_000, 2_000, 0]);
        assert!(catch_unwind(AssertUnwindSafe(|| slots.with(|_| ()))).is_err());
        let other = runtime(2);
        let s = slots.clone();
        let foreign = other.handle().stop_machine_once_blocking(move |world| {
            catch_unwind(AssertUnwindSafe(|| s.iter_mut(world).count())).is_err()
        });
        assert_eq!(
            foreign,
            Ok(true),
            "another runtime's StoppedWorld must be refused"
        );
    });
}

/// `WorkerLocal::stop_each`: each worker, stopped on its own, gets its own
/// slot mutably while the others run; what it leaves there is what tasks
/// on that worker read next; `with` inside it panics instead of aliasing.
#[test]
fn worker_local_stop_each_flushes_each_slot() {
    watchdog("stop_each", || {
        let rt = runtime(2);
        let caches = Arc::new(WorkerLocal::new(rt.handle(), |w| {
            std::cell::RefCell::new(vec![w as u64; 4])
        }));
        let c = caches.clone();
        let flushed = rt
            .block_on(async move {
                c.stop_each(|w, cache| (stop_machine::current_worker(), w, cache.take()))
                    .await
            })
            .unwrap();
        assert_eq!(
            flushed,
            [(0, (Some(0), 0, vec![0; 4])), (1, (Some(1), 1, vec![1; 4]))],
            "each f ran on its own worker with its own slot"
        );
        for w in 0..2 {
            let c = caches.clone();
            let len = rt.block_on(
                rt.handle()
                    .spawn_on(w, async move { c.with(|v| v.borrow().len()) }),
            );
            assert_eq!(len.unwrap(), 0, "worker {w} reads the flushed slot");
        }
        let c = caches.clone();
        let inner = caches.clone();
        let aliased = rt
            .block_on(async move {
                c.stop_each(move |_, _| catch_unwind(AssertUnwindSafe(|| inner.with(|_| ()))).is_err())
                    .await
            })
            .unwrap();
        assert!(
            aliased.iter().all(|(_, refused)| *refused),
            "with inside stop_each must panic"
        );
    });
}

/// Review finding 1: tokio's driver runs wakers while the worker is marked
/// idle (a grace period or a stop may count it as quiescent). Code in such
/// a waker does not read as the worker: a `StopCell` read there panics
/// instead of racing a patch (and an `Rcu` read takes the counted path).
#[test]
fn a_waker_run_by_the_parked_driver_does_not_read_as_the_worker() {
    watchdog("waker in park", || {
        use std::task::{Context, Wake, Waker};
        struct Probe {
            cell: StopCell<u32>,
            refused: Arc<AtomicUsize>,
            woken: Arc<AtomicBool>,
        }
        impl Wake for Probe {
            fn wake(self: Arc<Self>) {
                if catch_unwind(AssertUnwindSafe(|| self.cell.read(|v| *v))).is_err() {
                    self.refused.fetch_add(1, SeqCst);
                }
                self.woken.store(true, SeqCst);
            }
        }
        let rt = runtime(2);
        let (refused, woken) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let probe = Arc::new(Probe {
            cell: StopCell::new(rt.handle(), 1),
            refused: refused.clone(),
            woken: woken.clone(),
        });
        // A timer polled once with the probe's waker, then left to fire
        // while worker 0 sleeps in its driver.
        rt.block_on(rt.handle().spawn_on(0, async move {
            let mut sleep = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(20)));
            let waker = Waker::from(probe);
            assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            std::mem::forget(sleep);
        }))
        .unwrap();
        while !woken.load(SeqCst) {
            std::thread::yield_now();
        }
        assert_eq!(
            refused.load(SeqCst),
            1,
            "the waker read the StopCell as the worker"
        );
    });
}

/// Review finding 2: a worker woken from offline runs its queued stop works
/// as a reader, not while still counted away: a grace period begun then
/// waits for a read in such a work.
#[test]
fn a_read_in_a_work_run_on_coming_back_online_holds_the_grace_period() {
    watchdog("unpark then read", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Rcu::new(&h, Canary::new(0, &drops)));
        let saw_dead = Arc::new(AtomicUsize::new(0));
        for round in 1..=30 {
            let hp = h.clone();
            rt.block_on(async move { hp.park_worker(1).await }).unwrap();
            let hu = h.clone();
            rt.block_on(async move { hu.unpark_worker(1).await }).unwrap();
            let (c, dead) = (cell.clone(), saw_dead.clone());
            assert!(h.stop_one_cpu_nowait(1, move || {
                c.read(|v| {
                    for _ in 0..200_000 {
                        std::hint::spin_loop();
                    }
                    if v.state.load(SeqCst) != ALIVE {
                        dead.fetch_add(1, SeqCst);
                    }
                })
            }));
            cell.publish_blocking(Canary::new(round, &drops));
        }
        let hs = h.clone();
        rt.block_on(async move { hs.synchronize().await });
        assert_eq!(saw_dead.load(SeqCst), 0, "a read saw its value dropped");
    });
}

/// Review finding 3: a deferred value is not dropped when the runtime's
/// shutdown drops the task waiting for its grace period while another
/// worker is still in a poll that began before the defer; it is dropped
/// with the runtime's last handle.
#[test]
fn defer_survives_a_shutdown_during_its_grace_period() {
    watchdog("defer at shutdown", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let drops = Arc::new(AtomicUsize::new(0));
        let (inside, release, seen) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(usize::MAX)),
        );
        {
            let (inside, release, seen, drops) =
                (inside.clone(), release.clone(), seen.clone(), drops.clone());
            drop(h.spawn_on(1, async move {
                inside.store(true, SeqCst);
                while !release.load(SeqCst) {
                    std::hint::spin_loop();
                }
                seen.store(drops.load(SeqCst), SeqCst);
            }));
        }
        while !inside.load(SeqCst) {
            std::thread::yield_now();
        }
        h.defer(Canary::new(1, &drops));
        let dropper = std::thread::spawn(move || drop(rt));
        for _ in 0..10_000 {
            std::thread::yield_now();
        }
        release.store(true, SeqCst);
        dropper.join().unwrap();
        assert_eq!(
            seen.load(SeqCst),
            0,
            "dropped while a poll that began before the defer ran"
        );
        drop(h);
        assert_eq!(drops.load(SeqCst), 1, "dropped with the last handle");
    });
}

/// Review finding 4: a worker busy with a `tokio::spawn`ed task that
/// yields in a loop never parks and our loop has nothing queued; a grace
/// period notifies it instead of waiting forever.
#[test]
fn synchronize_with_a_tokio_task_yielding_forever() {
    watchdog("tokio yield loop", || {
        let rt = runtime(2);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        rt.block_on(rt.handle().spawn_on(1, async move {
            drop(tokio::spawn(async move {
                while !s.load(SeqCst) {
                    tokio::task::yield_now().await;
                }
            }));
        }))
        .unwrap();
        for _ in 0..20 {
            rt.handle().synchronize_blocking();
        }
        stop.store(true, SeqCst);
    });
}
