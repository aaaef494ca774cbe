//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// How long any one test may take before its watchdog fails it. Generous:
/// the suite must pass on a loaded 2-CPU machine; this only turns a hang
/// into a failure.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread and fails the test if it has not finished
/// within [`WATCHDOG`], instead of hanging the suite.
pub fn watchdog<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::Builder::new()
        .name(format!("test-{name}"))
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(out);
        })
        .unwrap();
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => {
            body.join().unwrap();
            v
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("watchdog: test {name} did not finish within {WATCHDOG:?}"),
    }
}

/// A runtime of `n` unpinned workers: tests must not depend on the machine.
pub fn runtime(n: usize) -> stop_machine::Runtime {
    stop_machine::Runtime::builder()
        .workers(n)
        .pin(false)
        .build()
        .expect("runtime")
}

/// The names of this process's threads.
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
