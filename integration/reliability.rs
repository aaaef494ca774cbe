//! Regression tests for the ways the runtime used to hang or die: each
//! test is one case of the reliability issue, and failed (hung, aborted or
//! broke the stopped-world guarantee) before its fix. Each runs under a
//! watchdog; the ones that could abort the process run in a child process.

mod common;

use common::{in_child, runtime, watchdog};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;
use stop_machine::{Handle, StopError, WorkerMask};

/// Runs `stop_cpus(&[worker])` with a function that holds the stop lock
/// (and the worker) until the returned sender is dropped or sent to.
fn hold_stop_lock(h: &Handle, worker: usize) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    let entered = Arc::new(Barrier::new(2));
    let (h2, e2) = (h.clone(), entered.clone());
    let holder = std::thread::spawn(move || {
        let r = futures::executor::block_on(h2.stop_cpus(&WorkerMask::of(worker), move |_| {
            e2.wait();
            let _ = release_rx.lock().unwrap().recv();
        }));
        assert!(r.is_ok(), "{r:?}");
    });
    entered.wait();
    (release_tx, holder)
}

/// A task that spins on `worker`, without yielding, until `release` is set.
fn hog(h: &Handle, worker: usize, release: &Arc<AtomicBool>) {
    let (started_tx, started_rx) = mpsc::channel();
    let release = release.clone();
    drop(h.spawn_on(worker, async move {
        started_tx.send(()).unwrap();
        while !release.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    }));
    started_rx.recv().unwrap();
}

/// Runs one poll of `length` on `worker` (a busy loop: a task that does
/// not yield for that long), returning once it has begun.
fn long_poll(h: &Handle, worker: usize, length: Duration) {
    let (started_tx, started_rx) = mpsc::channel();
    drop(h.spawn_on(worker, async move {
        started_tx.send(()).unwrap();
        let until = std::time::Instant::now() + length;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }));
    started_rx.recv().unwrap();
}

/// Case 1: `park_worker(1)` holds the stop lock and waits for worker 1,
/// whose task is blocked in `stop_machine_blocking` waiting for that lock.
/// The blocked worker now serves the park in place. The order is forced:
/// the park takes the lock while worker 1 is busy, and only then does the
/// task on worker 1 ask for it.
#[test]
fn case_1_park_against_a_blocking_stop_on_the_parked_worker() {
    watchdog("case_1", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        for _ in 0..10 {
            let go = Arc::new(AtomicBool::new(false));
            let (started_tx, started_rx) = mpsc::channel();
            let go2 = go.clone();
            let blocker = h.spawn_on(1, async move {
                started_tx.send(()).unwrap();
                while !go2.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                stop_machine::stop_machine_blocking(|w| w, Some(&WorkerMask::of(0)))
            });
            started_rx.recv().unwrap();
            let h2 = h.clone();
            let parker = std::thread::spawn(move || futures::executor::block_on(h2.park_worker(1)));
            // The park has taken the stop lock and waits for worker 1.
            while h.is_online(1) {
                std::thread::yield_now();
            }
            // Only now does worker 1's task block on that lock.
            go.store(true, Ordering::SeqCst);
            assert_eq!(parker.join().unwrap(), Ok(()));
            futures::executor::block_on(h.unpark_worker(1)).unwrap();
            assert_eq!(futures::executor::block_on(blocker).unwrap(), Ok(0));
        }
    });
}

/// Case 1, second form: a task awaits `park_worker(1)` while another task
/// on the same worker blocks in `stop_machine_blocking`. The lock is
/// released by worker 1's acknowledgement, not by the awaiting task.
#[test]
fn case_1_park_awaited_beside_a_blocking_stop_on_the_same_worker() {
    watchdog("case_1b", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        hog(&h, 1, &release);
        let h2 = h.clone();
        let parker = h.spawn_on(0, async move { h2.park_worker(1).await });
        // The park has been requested: worker 1 is no longer online.
        while h.is_online(1) {
            std::thread::yield_now();
        }
        let blocker = h.spawn_on(0, async { stop_machine::stop_machine_blocking(|w| w, None) });
        release.store(true, Ordering::SeqCst);
        assert_eq!(futures::executor::block_on(blocker).unwrap(), Ok(0));
        assert_eq!(futures::executor::block_on(parker).unwrap(), Ok(()));
        futures::executor::block_on(h.unpark_worker(1)).unwrap();
        assert_eq!(h.stop_machine_blocking(|w| w, Some(&WorkerMask::of(1))), Ok(1));
    });
}

/// Case 2: panics while dropping a task's future or output used to abort
/// the process inside async-task. Now an aborted task reports the panic,
/// and the runtime goes on.
#[test]
fn case_2_a_panic_in_a_task_drop_is_a_join_error() {
    in_child("case_2_a_panic_in_a_task_drop_is_a_join_error", || {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("dropped");
            }
        }
        let rt = runtime(2);
        let h = rt.handle().clone();
        // An aborted task whose future holds the guard (polled or not).
        let guard = PanicOnDrop;
        let task = h.spawn_on(1, async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task.abort();
        let err = futures::executor::block_on(task).unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "dropped");
        // A detached task whose output panics on drop.
        drop(h.spawn_on(1, async { PanicOnDrop }));
        // A task still alive when the runtime is dropped.
        let guard = PanicOnDrop;
        drop(h.spawn_on(0, async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        // The runtime still works on both workers.
        for w in 0..2 {
            assert_eq!(
                futures::executor::block_on(h.spawn_on(w, async move { w })).unwrap(),
                w
            );
        }
        assert_eq!(h.stop_machine_blocking(|w| w, Some(&WorkerMask::of(1))), Ok(1));
        drop(rt);
    });
}

/// Case 3: the last reference to a stop function's captured state dropped
/// on a worker (the caller's future gone mid-RUN), with a `Drop` that
/// panics, used to kill the worker silently. Now it is contained.
#[test]
fn case_3_a_panic_in_captured_state_leaves_every_worker_running() {
    in_child(
        "case_3_a_panic_in_captured_state_leaves_every_worker_running",
        || {
            struct PanicOnDrop;
            impl Drop for PanicOnDrop {
                fn drop(&mut self) {
                    panic!("captured state dropped");
                }
            }
            let rt = runtime(2);
            let h = rt.handle().clone();
            let (in_f_tx, in_f_rx) = mpsc::channel::<()>();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let go_rx = std::sync::Mutex::new(go_rx);
            let state = PanicOnDrop;
            let mut stop = Box::pin(h.stop_machine(
                move |_| {
                    let _keep = &state;
                    in_f_tx.send(()).unwrap();
                    let _ = go_rx.lock().unwrap().recv();
                },
                Some(&WorkerMask::of(1)),
            ));
            let waker = futures::task::noop_waker();
            assert!(
                stop.as_mut()
                    .poll(&mut std::task::Context::from_waker(&waker))
                    .is_pending()
            );
            in_f_rx.recv().unwrap();
            // The caller goes away mid-RUN: the workers hold the last reference.
            drop(stop);
            drop(go_tx);
            for _ in 0..3 {
                assert_eq!(h.stop_machine_blocking(|w| w, Some(&WorkerMask::full(2))), Ok(0));
            }
            assert!(h.is_online(0) && h.is_online(1));
            drop(rt);
        },
    );
}

use std::future::Future;

/// A worker whose loop dies anyway (a bug of ours, injected here): its
/// queued works complete with `WorkerDied`, later stops that need it fail
/// at once, stops of the rest still work, and dropping the runtime reports
/// it.
#[test]
fn a_dead_worker_fails_its_stops_and_is_reported() {
    in_child("a_dead_worker_fails_its_stops_and_is_reported", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        hog(&h, 1, &release);
        assert!(h.inject_worker_death(1));
        // Queued behind the death: cancelled when the worker dies.
        let h2 = h.clone();
        let queued = std::thread::spawn(move || futures::executor::block_on(h2.stop_one_cpu(1, || 1)));
        while h.stopper_info(1).unwrap().queued < 2 {
            std::thread::yield_now();
        }
        release.store(true, Ordering::SeqCst);
        assert_eq!(queued.join().unwrap(), Err(StopError::WorkerDied));
        assert!(!h.is_online(1));
        assert_eq!(
            futures::executor::block_on(h.stop_one_cpu(1, || ())),
            Err(StopError::WorkerDied)
        );
        assert_eq!(
            futures::executor::block_on(h.stop_cpus(&WorkerMask::full(2), |w| w)),
            Err(StopError::WorkerDied)
        );
        // The world without the dead worker still stops.
        assert_eq!(h.stop_machine_blocking(|w| w, None), Ok(0));
        let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(rt)))
            .expect_err("dropping the runtime reports the dead worker");
        let msg = report.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("worker 1"), "{msg}");
    });
}

/// Case 4: `park_worker` of the caller's own worker used to release the
/// stop lock at once, so a concurrent `stop_machine` could leave that
/// worker out and run `f` while the caller's task was still being polled.
#[test]
fn case_4_parking_the_callers_worker_keeps_the_world_stopped() {
    watchdog("case_4", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let in_poll = Arc::new(AtomicBool::new(false));
        let (go_tx, go_rx) = mpsc::channel();
        let flag = in_poll.clone();
        let h2 = h.clone();
        let parker = h.spawn_on(1, async move {
            h2.park_worker(1).await.unwrap();
            flag.store(true, Ordering::SeqCst);
            go_tx.send(()).unwrap();
            // The rest of this poll: no stop may run `f` meanwhile.
            let until = std::time::Instant::now() + Duration::from_millis(50);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            flag.store(false, Ordering::SeqCst);
        });
        go_rx.recv().unwrap();
        let seen = in_poll.clone();
        let during = h.stop_machine_blocking(move |_| seen.load(Ordering::SeqCst), Some(&WorkerMask::of(0)));
        assert_eq!(
            during,
            Ok(false),
            "f ran while a task on the parked worker was polled"
        );
        assert!(!h.is_online(1));
        futures::executor::block_on(h.unpark_worker(1)).unwrap();
        futures::executor::block_on(parker).unwrap();
    });
}

/// Case 5: the stop timeout bounds the wait for the stop lock too.
#[test]
fn case_5_the_timeout_bounds_the_wait_for_the_stop_lock() {
    watchdog("case_5", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let (release, holder) = hold_stop_lock(&h, 0);
        let out =
            futures::executor::block_on(h.stop_machine_timeout(|_| (), None, Duration::from_millis(50)));
        assert_eq!(
            out,
            Err(StopError::TimedOut {
                stragglers: Vec::new()
            })
        );
        // Only now is the lock released: before the fix, the call above
        // waited for this and the watchdog failed the test.
        drop(release);
        holder.join().unwrap();
        assert_eq!(h.stop_machine_blocking(|_| 3, None), Ok(3));
    });
}

/// Case 6: blocking a worker on a stop through a foreign `block_on` is
/// refused with a clear error instead of hanging.
#[test]
fn case_6_a_foreign_block_on_on_a_worker_is_refused() {
    watchdog("case_6", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let h2 = h.clone();
        let outcomes = futures::executor::block_on(h.spawn_on(1, async move {
            let own = futures::executor::block_on(h2.stop_one_cpu(1, || ()));
            let machine = futures::executor::block_on(h2.stop_machine(|_| (), None));
            let park = futures::executor::block_on(h2.park_worker(0));
            (own, machine, park)
        }))
        .unwrap();
        let refused = Err(StopError::WouldBlockWorker);
        assert_eq!(outcomes, (refused.clone(), refused.clone(), refused));
        // The crate's own blocking entry point is served.
        let served = futures::executor::block_on(h.spawn_on(1, async {
            stop_machine::stop_machine_blocking(|w| w, Some(&WorkerMask::of(1)))
        }));
        assert_eq!(served.unwrap(), Ok(1));
    });
}

/// One scheduler round trip: wakes itself and returns `Pending` once.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Case 7: `park_worker` from a plain thread racing the runtime's drop
/// returns, with `Ok` or `Shutdown`, instead of waiting forever. Worker 1
/// is kept hot (a task that yields in a loop, so it sees the shutdown at
/// once) and the thread parks and unparks it back to back until the
/// runtime is gone, so that the drop lands inside a park; the window is
/// narrow, hence the rounds.
#[test]
fn case_7_park_racing_shutdown_returns() {
    watchdog("case_7", || {
        for _ in 0..1500 {
            let rt = runtime(2);
            let h = rt.handle().clone();
            drop(h.spawn_on(1, async {
                loop {
                    yield_once().await;
                }
            }));
            let (running_tx, running_rx) = mpsc::channel();
            let parker = std::thread::spawn(move || {
                let mut running = Some(running_tx);
                for _ in 0..100_000 {
                    let parked = futures::executor::block_on(h.park_worker(1));
                    if let Some(tx) = running.take() {
                        tx.send(()).unwrap();
                    }
                    parked?;
                    futures::executor::block_on(h.unpark_worker(1))?;
                }
                Ok(())
            });
            running_rx.recv().unwrap();
            drop(rt);
            let out = parker.join().unwrap();
            assert!(matches!(out, Ok(()) | Err(StopError::Shutdown)), "{out:?}");
        }
    });
}

/// Case 8: a timeout too large for an `Instant` means no deadline.
#[test]
fn case_8_a_huge_stop_timeout_means_none() {
    watchdog("case_8", || {
        let rt = stop_machine::Runtime::builder()
            .workers(2)
            .pin(false)
            .stop_timeout(Duration::MAX)
            .build()
            .unwrap();
        let h = rt.handle().clone();
        assert_eq!(h.stop_machine_blocking(|w| w, Some(&WorkerMask::of(1))), Ok(1));
        let out = futures::executor::block_on(h.stop_machine_timeout(|_| 2, None, Duration::MAX));
        assert_eq!(out, Ok(2));
        assert_eq!(futures::executor::block_on(h.stop_two_cpus(0, 1, || 4)), Ok(4));
    });
}

/// Case 9: a worker running a stop work reports no task as being polled,
/// even when the work was queued by the task it polled last.
#[test]
fn case_9_a_worker_in_its_stopper_names_no_task() {
    watchdog("case_9", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let (in_f_tx, in_f_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let h2 = h.clone();
        let queuer = h.spawn_on(1, async move {
            // Queued from this task's poll: the worker runs it right after.
            assert!(h2.stop_one_cpu_nowait(1, move || {
                in_f_tx.send(()).unwrap();
                let _ = go_rx.recv();
            }));
        });
        in_f_rx.recv().unwrap();
        let info = h.stopper_info(1).unwrap();
        assert_eq!(info.running.map(|r| r.kind), Some(stop_machine::StopKind::Nowait));
        assert_eq!(info.polling, None, "a finished task named as being polled");
        drop(go_tx);
        futures::executor::block_on(queuer).unwrap();
    });
}

/// Case 10: tasks woken from other threads while the runtime shuts down,
/// `spawn_local` ones included, are all dropped on their own worker: no
/// abort, no leak. Two feeders are known to be waking tasks when the drop
/// starts and go on until it has returned; the window (a wake between its
/// state change and its push to the remote queue) is narrow, hence the
/// rounds.
#[test]
fn case_10_wakes_racing_the_shutdown_drain() {
    in_child("case_10_wakes_racing_the_shutdown_drain", || {
        struct Alive(Arc<AtomicUsize>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        for round in 0..200 {
            let rt = runtime(2);
            let h = rt.handle().clone();
            let alive = Arc::new(AtomicUsize::new(0));
            let mut senders = Vec::new();
            for i in 0..32 {
                let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
                senders.push(tx);
                let (ready_tx, ready_rx) = mpsc::channel();
                alive.fetch_add(1, Ordering::SeqCst);
                let guard = Alive(alive.clone());
                drop(h.spawn_on(i % 2, async move {
                    // A local task, waiting on a channel fed from outside.
                    let local = stop_machine::spawn_local(async move {
                        let _alive = guard;
                        use futures::StreamExt;
                        let mut rx = rx;
                        while rx.next().await.is_some() {}
                    });
                    ready_tx.send(()).unwrap();
                    drop(local);
                }));
                ready_rx.recv().unwrap();
            }
            let senders = Arc::new(senders);
            let done = Arc::new(AtomicBool::new(false));
            let (running_tx, running_rx) = mpsc::channel();
            let feeders: Vec<_> = (0..2)
                .map(|k| {
                    let (senders, done, running_tx) = (senders.clone(), done.clone(), running_tx.clone());
                    std::thread::spawn(move || {
                        let n = senders.len();
                        for pass in 0..20_000 {
                            if done.load(Ordering::SeqCst) {
                                break;
                            }
                            // Each feeder walks the tasks in its own order.
                            for j in 0..n {
                                let _ = senders[if k == 0 { j } else { n - 1 - j }].unbounded_send(());
                            }
                            if pass == 0 {
                                running_tx.send(()).unwrap();
                            }
                        }
                    })
                })
                .collect();
            drop(running_tx);
            for _ in 0..2 {
                running_rx.recv().unwrap();
            }
            drop(rt);
            done.store(true, Ordering::SeqCst);
            for f in feeders {
                f.join().unwrap();
            }
            assert_eq!(
                alive.load(Ordering::SeqCst),
                0,
                "round {round}: a task outlived its runtime"
            );
        }
    });
}

/// The OS thread id of this process's thread called `name`.
fn thread_id(name: &str) -> libc::pid_t {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .expect("the worker's thread")
}

/// Whether thread `tid` runs under a normal (not real-time) policy.
fn normal(tid: libc::pid_t) -> bool {
    // SAFETY: sched_getscheduler only reads the policy of `tid`.
    let policy = unsafe { libc::sched_getscheduler(tid) };
    policy != libc::SCHED_FIFO && policy != libc::SCHED_RR
}

/// Waits (yielding; the watchdog bounds it) until `done()`.
fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        std::thread::yield_now();
    }
}

/// Pinned workers alone on their CPUs wait for a stop by spinning, then
/// parking: a stop whose straggler arrives long after that spin still ends
/// with every value, and one whose straggler never arrives still times out,
/// and the runtime goes on working (`stop/wait.rs`).
#[test]
fn pinned_participants_spin_then_park_and_every_stop_still_ends() {
    watchdog("pinned_wait", || {
        let rt = stop_machine::Runtime::builder().workers(2).build().unwrap();
        let h = rt.handle().clone();
        for _ in 0..3 {
            // Never arrives: worker 1 spins in one poll until released.
            let release = Arc::new(AtomicBool::new(false));
            hog(&h, 1, &release);
            let h2 = h.clone();
            let out = futures::executor::block_on(h.spawn_on(0, async move {
                h2.stop_machine_timeout(|w| w, None, Duration::from_millis(20))
                    .await
            }))
            .unwrap();
            release.store(true, Ordering::SeqCst);
            assert!(matches!(out, Err(StopError::TimedOut { .. })), "{out:?}");
            // Arrives late: a 10 ms poll on worker 1, ten times the spin.
            long_poll(&h, 1, Duration::from_millis(10));
            let h2 = h.clone();
            let out = futures::executor::block_on(h.spawn_on(0, async move {
                h2.stop_cpus(&WorkerMask::full(2), |w| w * 10).await
            }))
            .unwrap();
            assert_eq!(out, Ok(vec![(0, 0), (1, 10)]));
        }
    });
}

/// A stop may raise a late participant's OS priority (where the process
/// may), and always drops it back, whatever the outcome: after an abandoned
/// stop, while the straggler is still in the poll that held the stop up;
/// and after a stop that ran. (Whether a raise happens at all depends on
/// timing; the unit tests of `runtime/priority.rs` check the raise itself.)
#[test]
fn a_raised_straggler_is_never_left_raised() {
    watchdog("boost", || {
        let rt = stop_machine::Runtime::builder()
            .workers(2)
            .pin(false)
            .thread_name("boost-test")
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let (w0, w1) = (thread_id("boost-test-0"), thread_id("boost-test-1"));
        for _ in 0..3 {
            // Abandoned: worker 1 never arrives.
            let release = Arc::new(AtomicBool::new(false));
            hog(&h, 1, &release);
            let out =
                futures::executor::block_on(h.stop_machine_timeout(|_| (), None, Duration::from_millis(100)));
            let still_polling = normal(w1);
            release.store(true, Ordering::SeqCst);
            assert!(matches!(out, Err(StopError::TimedOut { .. })), "{out:?}");
            assert!(
                still_polling,
                "the straggler runs its task raised after the stop was abandoned"
            );
            // Ran: worker 1 arrives late, after a long poll.
            long_poll(&h, 1, Duration::from_millis(50));
            assert_eq!(h.stop_machine_blocking(|w| w, Some(&WorkerMask::of(0))), Ok(0));
            assert!(normal(w0) && normal(w1), "a worker left raised after a stop");
        }
    });
}

/// A grace period raises a worker it has waited for too long (where the
/// process may), and the worker always drops back: when it passes its
/// quiescent state and ends the period, when the period's waiter is
/// dropped first, and, while it stays in a poll that does not yield, once
/// the period is past its raise window. Worker 0 is kept busy, so it
/// reaches the poll boundaries where late workers are raised and dropped
/// back; worker 1 is held in one long poll. (Whether a raise happens at
/// all depends on timing; the unit tests check the raise itself.)
#[test]
fn a_worker_raised_for_a_grace_period_drops_back() {
    watchdog("grace_boost", || {
        let rt = stop_machine::Runtime::builder()
            .workers(2)
            .pin(false)
            .thread_name("grace-boost")
            // A stop from stop-a-lot mode would wait for the held worker,
            // and raise it for as long, which is not this test's subject.
            .stop_a_lot(0)
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let (w0, w1) = (thread_id("grace-boost-0"), thread_id("grace-boost-1"));
        let busy = Arc::new(AtomicBool::new(true));
        let b = busy.clone();
        drop(h.spawn_on(0, async move {
            while b.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        }));
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum End {
            Passes,
            WaiterDropped,
            PastTheWindow,
        }
        for end in [End::Passes, End::WaiterDropped, End::PastTheWindow] {
            let release = Arc::new(AtomicBool::new(false));
            hog(&h, 1, &release);
            let (done_tx, done_rx) = mpsc::channel();
            let h2 = h.clone();
            let boosts = h.stats().boosts();
            let began = std::time::Instant::now();
            let waiter = h.spawn_on(0, async move {
                h2.synchronize().await;
                done_tx.send(()).unwrap();
            });
            // Give the raise its chance (a few times its window).
            wait_until(|| h.stats().boosts() > boosts || began.elapsed() > Duration::from_millis(20));
            assert!(
                done_rx.try_recv().is_err(),
                "{end:?}: the grace period ended while worker 1 was inside a poll"
            );
            match end {
                End::Passes => {
                    release.store(true, Ordering::SeqCst);
                    done_rx.recv().unwrap();
                    assert!(futures::executor::block_on(waiter).is_ok());
                }
                End::WaiterDropped => {
                    waiter.abort();
                    release.store(true, Ordering::SeqCst);
                    let joined = futures::executor::block_on(waiter);
                    assert!(joined.is_err_and(|e| e.is_cancelled()), "the waiter was aborted");
                }
                End::PastTheWindow => {
                    // Still in its poll: dropped back by worker 0.
                    wait_until(|| began.elapsed() > Duration::from_millis(20) && normal(w1));
                    release.store(true, Ordering::SeqCst);
                    done_rx.recv().unwrap();
                    assert!(futures::executor::block_on(waiter).is_ok());
                }
            }
            wait_until(|| normal(w0) && normal(w1));
        }
        busy.store(false, Ordering::SeqCst);
    });
}

/// More workers than CPUs, pinned: the caller's worker shares its CPU with
/// a sibling that reaches the stop, while a worker elsewhere never does.
/// The stop times out, the caller (which lets its siblings out before it
/// resumes) gets `TimedOut` naming the straggler, and the next stop runs
/// everywhere with every value.
#[test]
fn a_timed_out_stop_lets_a_caller_on_a_shared_cpu_go() {
    watchdog("shared_cpu_timeout", || {
        let rt = common::oversubscribed();
        let h = rt.handle().clone();
        let n = h.num_workers();
        assert!(h.topology().core_mask_of(0).weight() >= 2);
        // A straggler off the caller's core where there is one.
        let late = (1..n)
            .find(|w| !h.topology().core_mask_of(0).contains(*w))
            .unwrap_or(1);
        for _ in 0..3 {
            let release = Arc::new(AtomicBool::new(false));
            hog(&h, late, &release);
            let h2 = h.clone();
            let out = futures::executor::block_on(h.spawn_on(0, async move {
                // Every worker active: none is counted as stopped asleep,
                // so the caller's siblings take part and arrive.
                let all = WorkerMask::full(n);
                h2.stop_machine_timeout(|w| w, Some(&all), Duration::from_millis(20))
                    .await
            }))
            .unwrap();
            release.store(true, Ordering::SeqCst);
            match out {
                Err(StopError::TimedOut { stragglers }) => {
                    let named: Vec<usize> = stragglers.iter().map(|s| s.worker).collect();
                    // A sibling of the hog's CPU may be late too; the
                    // caller's worker, which was there, never is.
                    assert!(named.contains(&late) && !named.contains(&0), "{named:?}");
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
            let h2 = h.clone();
            let out = futures::executor::block_on(h.spawn_on(0, async move {
                h2.stop_cpus(&WorkerMask::full(n), |w| w + 1).await
            }))
            .unwrap();
            assert_eq!(out, Ok((0..n).map(|w| (w, w + 1)).collect()));
        }
    });
}
