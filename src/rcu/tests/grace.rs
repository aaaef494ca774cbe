//! loom models of the grace-period protocol (`GracePeriods`), driven as
//! `Rcu` and the workers drive it: a writer swaps the current value, waits
//! for a grace period and then frees the old value (a write to its cell);
//! each worker reads the current value inside a "closure", passes a
//! quiescent state, goes idle (its idle flag, then the park-time check),
//! wakes and reads again, or goes away (offline) and comes back.
//!
//! The values are loom cells: loom reports a free that is not ordered
//! after every read of the freed value, i.e. a grace period that ended
//! while a reader could still hold the old value.

use super::GracePeriods;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::model::thread;
use crate::sync::model::{Shared, block_on, model};
use std::future::poll_fn;

/// Two values, the index of the current one, and each worker's idle flag.
struct World {
    values: [Shared<u8>; 2],
    current: AtomicUsize,
    idle: [AtomicBool; 2],
    grace: GracePeriods,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            values: [Shared::new(1), Shared::new(1)],
            current: AtomicUsize::new(0),
            idle: [AtomicBool::new(false), AtomicBool::new(false)],
            grace: GracePeriods::new(2),
        })
    }

    /// A read closure: the value it loads is alive (not freed) throughout.
    fn read(&self) {
        let i = self.current.load(Ordering::SeqCst);
        assert_eq!(self.values[i].get(), 1, "a reader saw a freed value");
    }

    /// Worker `w` sleeps in its driver from now on (its last state in a
    /// model: a worker always either ticks again or sleeps).
    fn sleep(&self, w: usize) {
        self.idle[w].store(true, Ordering::SeqCst);
        self.grace.parking(w);
    }

    /// The writer: publish value 1, wait for a grace period, free value 0.
    fn publish(&self) {
        self.publish_with(|w| self.idle[w].load(Ordering::SeqCst));
    }

    /// `publish`, with `is_idle` as the period's idle check.
    fn publish_with(&self, is_idle: impl Fn(usize) -> bool) {
        self.current.store(1, Ordering::SeqCst);
        if let Some(key) = self.grace.open(is_idle, |_| {}) {
            block_on(poll_fn(|cx| self.grace.poll(&key, cx.waker())));
        }
        self.values[0].update(|v| *v = 0);
    }

    /// Runs `worker0` and `worker1` on their own threads while this thread
    /// publishes, then joins them.
    fn race(
        self: &Arc<World>,
        worker0: impl FnOnce(&World) + Send + 'static,
        worker1: impl FnOnce(&World) + Send + 'static,
    ) {
        let spawn = |f: Box<dyn FnOnce(&World) + Send>| {
            let world = self.clone();
            thread::spawn(move || f(&world))
        };
        let (a, b) = (spawn(Box::new(worker0)), spawn(Box::new(worker1)));
        self.publish();
        a.join().unwrap();
        b.join().unwrap();
    }
}

/// Worker 0 reads, ticks and reads again; worker 1 reads, goes idle (flag,
/// then the park-time check, as `on_thread_park` does), wakes and reads.
/// Whatever the interleaving, the free of the old value comes after every
/// read that could see it, and the writer is woken.
#[test]
fn model_grace_period_busy_and_idle_workers() {
    model(3, || {
        World::new().race(
            |world| {
                world.read();
                world.grace.quiescent(0);
                world.read();
                world.sleep(0);
            },
            |world| {
                world.read();
                world.idle[1].store(true, Ordering::SeqCst);
                world.grace.parking(1);
                // Wakes (`after_unpark`): reads after this must see the new
                // value.
                world.idle[1].store(false, Ordering::SeqCst);
                GracePeriods::woken();
                world.read();
                world.sleep(1);
            },
        );
    });
}

/// Worker 1 goes offline and comes back (`set_away`) while worker 0 reads
/// and ticks: a period opened while it is away does not wait for it, and
/// its reads after coming back are covered.
#[test]
fn model_grace_period_offline_worker() {
    model(3, || {
        World::new().race(
            |world| {
                world.read();
                world.sleep(0);
            },
            |world| {
                world.read();
                world.grace.set_away(1, true);
                world.grace.set_away(1, false);
                world.read();
                world.sleep(1);
            },
        );
    });
}

/// With the production idle handshake (`IdleState`): worker 0 reads,
/// parks (PARKED, then the park-time check), may be claimed by a stop and
/// released, wakes (`after_unpark`, then the wake fence) and reads again,
/// while a writer publishes and a stop claims and releases it. A claimed
/// worker counts as idle for the grace period, and its reads after the
/// claim see the new value.
#[test]
fn model_grace_period_worker_claimed_by_a_stop() {
    use crate::runtime::idle::IdleState;
    model(3, || {
        let world = World::new();
        let idle = Arc::new(IdleState::new());
        let worker = {
            let (world, idle) = (world.clone(), idle.clone());
            thread::spawn(move || {
                world.read();
                idle.before_park();
                world.grace.parking(0);
                idle.after_unpark(thread::yield_now);
                GracePeriods::woken();
                world.read();
                // Back to sleep in its driver for good.
                idle.before_park();
                world.grace.parking(0);
            })
        };
        let stop = {
            let idle = idle.clone();
            thread::spawn(move || {
                if idle.try_claim() {
                    idle.release();
                }
            })
        };
        // Worker 1 is idle throughout; the writer's idle check for worker 0
        // is the production one.
        world.idle[1].store(true, Ordering::SeqCst);
        world.publish_with(|w| {
            if w == 0 {
                idle.is_idle()
            } else {
                world.idle[1].load(Ordering::SeqCst)
            }
        });
        worker.join().unwrap();
        stop.join().unwrap();
    });
}

/// The straggler raise's view of the periods: `is_left` names the workers
/// a period still waits for, `overdue` those to raise once it is past
/// `GRACE_LATE` (and to drop back past its window), and a worker that
/// passes leaves both; `close` names the workers a dropped waiter's period
/// still waited for.
#[cfg(not(stop_machine_loom))]
#[test]
fn overdue_and_is_left_follow_the_open_periods() {
    use super::{GRACE_LATE, Overdue, RAISE_FOR};
    let wait_past = |opened: std::time::Instant, d| {
        while opened.elapsed() < d {
            std::hint::spin_loop();
        }
    };
    let grace = GracePeriods::new(3);
    // The period opens between `before` and `after`.
    let before = std::time::Instant::now();
    let key = grace.open(|w| w == 2, |_| {}).expect("workers 0 and 1 are busy");
    let after = std::time::Instant::now();
    assert!(grace.is_left(0) && grace.is_left(1));
    assert!(!grace.is_left(2), "an idle worker counts as passed at once");
    wait_past(after, GRACE_LATE);
    let window = grace.overdue();
    if before.elapsed() < GRACE_LATE + RAISE_FOR {
        assert_eq!((window.raise, window.lower), (vec![0, 1], vec![]));
    }
    assert!(grace.quiescent(1), "a period was open");
    assert!(!grace.is_left(1));
    wait_past(after, GRACE_LATE + RAISE_FOR);
    let past = grace.overdue();
    assert_eq!(
        past,
        Overdue {
            raise: vec![],
            lower: vec![0],
            watch: false
        },
        "past its window the period asks to drop back the worker still left"
    );
    // A younger period inside its window does not raise again a worker
    // that an older one has waited for past its window.
    let after2 = std::time::Instant::now();
    let key2 = grace.open(|w| w != 0, |_| {}).expect("worker 0 is busy");
    wait_past(after2, GRACE_LATE);
    let both = grace.overdue();
    assert_eq!((both.raise, both.lower, both.watch), (vec![], vec![0], true));
    assert_eq!(grace.close(key2), vec![0]);
    assert_eq!(grace.close(key), vec![0], "worker 0 was still left");
    assert_eq!(grace.overdue(), Overdue::default());
    assert!(
        !grace.is_left(0) && !grace.quiescent(0),
        "no period is open any more"
    );
}
