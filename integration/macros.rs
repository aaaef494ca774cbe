//! `#[stop_machine::main]` and `#[stop_machine::test]`: each argument
//! reaches the runtime, bodies run on its workers, return types and panics
//! come back to the caller. (The argument parser's errors are unit-tested in
//! the macro crate, `macros/src/args.rs` and `macros/src/expand.rs`.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stop_machine::{Handle, StopError, StopKind};

/// The name of the thread running the caller.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or_default().to_owned()
}

#[stop_machine::test]
async fn a_test_runs_on_two_unpinned_workers() {
    let h = Handle::current();
    assert_eq!(h.num_workers(), 2);
    assert_eq!((h.worker_cpu(0), h.worker_cpu(1)), (None, None));
    // On a worker, not on the harness's thread, named by the Builder's default.
    assert!(stop_machine::current_worker().is_some());
    assert!(
        thread_name().starts_with("stop-machine-worker-"),
        "{}",
        thread_name()
    );
}

#[stop_machine::test(workers = 3, thread_name = "macro-test")]
async fn workers_and_thread_name_reach_the_builder() {
    assert_eq!(Handle::current().num_workers(), 3);
    let me = stop_machine::current_worker().unwrap();
    assert_eq!(thread_name(), format!("macro-test-{me}"));
    let on_2 = stop_machine::spawn_on(2, async { thread_name() }).await.unwrap();
    assert_eq!(on_2, "macro-test-2");
}

#[stop_machine::test(workers = 1, pin = true)]
async fn pin_reaches_the_builder() {
    assert!(Handle::current().worker_cpu(0).is_some(), "pinned to a CPU");
}

#[stop_machine::test(per_core = true)]
async fn per_core_runs_a_worker_per_core() {
    let h = Handle::current();
    assert_eq!(h.num_workers(), h.topology().topology().num_cores());
}

#[stop_machine::test(workers = 2)]
async fn a_test_may_return_a_result() -> Result<(), StopError> {
    let ran = stop_machine::stop_one_cpu(1, stop_machine::current_worker).await?;
    assert_eq!(ran, Some(1));
    let all = stop_machine::stop_machine(|w| w, None).await?;
    assert!(all < 2);
    Ok(())
}

#[stop_machine::test]
#[should_panic(expected = "from the body")]
async fn a_panic_in_the_body_fails_the_test() {
    tokio::task::yield_now().await;
    panic!("from the body");
}

#[stop_machine::test(stop_a_lot = 10)]
async fn stop_a_lot_stops_the_machine() {
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    let stops = Handle::current().stats().kind(StopKind::Machine).count;
    assert!(stops > 0, "no stop-a-lot stop in 1000 polls");
}

/// `0` is off, even when `STOP_MACHINE_STOP_A_LOT` (as in the CI's
/// stop-a-lot pass) turns it on for every other runtime.
#[stop_machine::test(stop_a_lot = 0)]
async fn stop_a_lot_zero_is_off() {
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(Handle::current().stats().kind(StopKind::Machine).count, 0);
}

/// A task that never yields holds a stop up; `stop_timeout_ms` bounds the
/// wait, as `Builder::stop_timeout` does.
#[stop_machine::test(workers = 2, stop_timeout_ms = 100, stop_a_lot = 0)]
async fn stop_timeout_ms_bounds_the_stop() {
    let other = 1 - stop_machine::current_worker().unwrap();
    let (started, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (s, r) = (started.clone(), release.clone());
    let hog = stop_machine::spawn_on(other, async move {
        s.store(true, Ordering::SeqCst);
        while !r.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    });
    while !started.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    let out = stop_machine::stop_machine(|_| (), None).await;
    release.store(true, Ordering::SeqCst);
    let Err(StopError::TimedOut { stragglers }) = out else {
        panic!("expected TimedOut, got {out:?}")
    };
    assert_eq!(stragglers.iter().map(|s| s.worker).collect::<Vec<_>>(), [other]);
    hog.await.unwrap();
}

#[stop_machine::test(event_interval = 1, slow_stop_warning_ms = 0)]
async fn the_other_arguments_build_a_working_runtime() {
    let sleep = tokio::time::sleep(Duration::from_millis(1));
    sleep.await;
    assert_eq!(
        stop_machine::stop_machine(|w| w, None).await.map(|w| w < 2),
        Ok(true)
    );
}

#[stop_machine::test(boost_stragglers = false)]
async fn boost_stragglers_reaches_the_builder() {
    assert!(!Handle::current().boosting());
}

/// `crate = path` names the crate through a re-export, as tokio's does.
mod reexport {
    pub use stop_machine as sm;
}

#[stop_machine::test(crate = reexport::sm, workers = 1)]
async fn crate_renames_the_path() {
    assert_eq!(reexport::sm::Handle::current().num_workers(), 1);
}

#[stop_machine::test(crate = "reexport::sm", workers = 1)]
async fn crate_as_a_string_as_tokio_spells_it() {
    assert_eq!(Handle::current().num_workers(), 1);
}

/// A program's `main`, in a module so that the harness keeps its own.
mod program {
    use super::*;

    #[stop_machine::main(workers = 3, pin = false, thread_name = "macro-main")]
    pub async fn main() -> Result<(usize, String), StopError> {
        let n = Handle::current().num_workers();
        // `?` converts as in any `async fn` returning a `Result`.
        stop_machine::stop_one_cpu(0, || ()).await?;
        Ok((n, thread_name()))
    }

    #[stop_machine::main(workers = 2, pin = false)]
    pub async fn failing() -> Result<(), StopError> {
        stop_machine::stop_one_cpu(7, || ()).await?;
        unreachable!("there is no worker 7");
    }

    /// Another entry point may take arguments: they move into the body.
    #[stop_machine::main(workers = 2, pin = false)]
    pub async fn serve(requests: Vec<u32>) -> u32 {
        let mut total = 0;
        for r in requests {
            total += stop_machine::spawn(async move { r * 2 }).await.unwrap();
        }
        total
    }
}

#[test]
fn main_builds_the_runtime_and_returns_the_body_s_value() {
    common::watchdog("macro_main", || {
        let (workers, name) = program::main().expect("main's body");
        assert_eq!(workers, 3);
        assert!(name.starts_with("macro-main-"), "{name}");
        // The runtime is gone with the call: none of its threads is left.
        // join() can return a moment before the kernel drops the exited
        // thread from /proc: wait for it; a leaked thread never goes and
        // the watchdog fails the test.
        while common::thread_names()
            .iter()
            .any(|n| n.starts_with("macro-main-"))
        {
            std::thread::yield_now();
        }
    });
}

#[test]
fn main_returns_the_body_s_error() {
    assert_eq!(program::failing(), Err(StopError::InvalidWorker));
}

#[test]
fn main_moves_its_arguments_into_the_body() {
    assert_eq!(program::serve(vec![1, 2, 3]), 12);
}
