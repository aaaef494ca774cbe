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
        if let Some(key) = self.grace.open(None, is_idle, |_| {}) {
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
/// a period still waits for, `late` those of periods open past
/// `GRACE_LATE`, and a worker that passes leaves both.
#[cfg(not(stop_machine_loom))]
#[test]
fn late_and_is_left_follow_the_open_periods() {
    let grace = GracePeriods::new(3);
    let key = grace.open(Some(0), |w| w == 2, |_| {}).expect("workers 0 and 1 are busy");
    assert!(grace.is_left(0) && grace.is_left(1));
    assert!(!grace.is_left(2), "an idle worker counts as passed at once");
    let opened = std::time::Instant::now();
    while opened.elapsed() < super::GRACE_LATE {
        std::hint::spin_loop();
    }
    assert_eq!(grace.late(), vec![0, 1]);
    let passed = grace.quiescent(1);
    assert!(passed.open && passed.woke_on.is_empty(), "worker 0 is still left");
    assert!(!grace.is_left(1));
    assert_eq!(grace.late(), vec![0]);
    let waker = futures::task::noop_waker();
    assert!(grace.poll(&key, &waker).is_pending());
    let passed = grace.quiescent(0);
    assert_eq!(passed.woke_on, vec![0], "the last worker wakes the waiter, on worker 0");
    assert!(grace.late().is_empty() && !grace.is_left(0));
    assert!(grace.poll(&key, &waker).is_ready());
    assert!(!grace.quiescent(0).open, "no period is open any more");
}
