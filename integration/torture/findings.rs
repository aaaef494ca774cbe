//! Minimal reproductions of the failures the harness found beyond the
//! issue's list (docs/torture.md, "Findings"). Each failed on the code it
//! was found on (`4ad2729`'s base) and passes since its fix: bug 9 by the
//! shutdown re-check after the stop lock (`stop/plan.rs`), bug 10 by the
//! park's lock being released from the worker's acknowledgement. Their
//! seeds replay with `TORTURE_KNOWN_BUGS=N,N`.

use crate::common::watchdog;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Waker};
use stop_machine::{Runtime, StopError};

fn runtime(n: usize) -> Runtime {
    Runtime::builder().workers(n).pin(false).build().unwrap()
}

/// Found bug 9: a stop that passed its shutdown check before the runtime's
/// drop began, and then waited for the stop lock, fails with `Offline`
/// (every stopper is closed, so no worker is "online") instead of
/// `Shutdown`. Torture seed 86 (debug build) shows it.
#[test]
fn finding_09_a_stop_waiting_for_the_lock_during_shutdown_says_offline() {
    watchdog("finding_09", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        // S1 holds the stop lock: its f waits until we say.
        let (in_f_tx, in_f) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let s1 = std::thread::spawn({
            let h = h.clone();
            move || {
                h.stop_machine_blocking(
                    move |_| {
                        in_f_tx.send(()).unwrap();
                        go_rx.lock().unwrap().recv().unwrap();
                    },
                    None,
                )
            }
        });
        in_f.recv().unwrap();
        // S2 passes its checks and waits for the lock.
        let mut s2 = pin!(h.stop_machine(|_| (), None));
        assert!(
            s2.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        // The runtime's drop begins (it closes every stopper first).
        let dropper = std::thread::spawn(move || drop(rt));
        while h.is_online(0) || h.is_online(1) {
            std::thread::yield_now();
        }
        go.send(()).unwrap();
        assert_eq!(s1.join().unwrap(), Ok(()));
        let out = futures::executor::block_on(s2);
        dropper.join().unwrap();
        assert_eq!(out, Err(StopError::Shutdown));
    });
}

/// Found bug 10: `park_worker` keeps the stop lock in the caller's future.
/// Polled once (it takes the lock, disables the worker's stopper and waits
/// for the worker to acknowledge) and then dropped, it releases the lock
/// while the worker is still inside a task's poll. A `stop_machine` then
/// counts that worker as offline and runs `f` while the task runs: the
/// same breach as known bug 4, through cancellation instead of parking
/// one's own worker. Torture seeds 535, 2750, 2871, 2963 (debug build).
#[test]
fn finding_10_a_dropped_park_worker_future_lets_f_run_beside_a_task() {
    watchdog("finding_10", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let in_poll = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = mpsc::channel();
        let flag = in_poll.clone();
        // A long poll on worker 1 (workload: a bounded spin; a correct
        // runtime makes the stop wait for it, whatever its length).
        drop(h.spawn_on(1, async move {
            flag.store(true, SeqCst);
            started_tx.send(()).unwrap();
            for _ in 0..20_000_000u64 {
                std::hint::spin_loop();
            }
            flag.store(false, SeqCst);
        }));
        started.recv().unwrap();
        {
            let mut park = pin!(h.park_worker(1));
            assert!(
                park.as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
        } // dropped: the lock is free again, worker 1 still polls the task
        let saw = in_poll.clone();
        let out = futures::executor::block_on(h.stop_machine(move |_| saw.load(SeqCst), None));
        futures::executor::block_on(h.unpark_worker(1)).unwrap();
        assert_eq!(out, Ok(false), "f ran while worker 1 was polling a task");
    });
}
