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

/// A runtime of twice as many pinned workers as this machine has CPUs:
/// every worker shares its CPU with at least one other.
pub fn oversubscribed() -> stop_machine::Runtime {
    let cpus = stop_machine::Runtime::new()
        .expect("runtime")
        .handle()
        .num_workers();
    stop_machine::Runtime::builder()
        .workers(2 * cpus)
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

/// The environment variable that tells a re-executed test binary to run
/// the body of [`in_child`] instead of spawning it.
const CHILD: &str = "STOP_MACHINE_TEST_CHILD";

/// Runs `body` in a child process (this test binary, re-executed for the
/// test `name` alone), so that a body that aborts the process is reported
/// as this test's failure instead of killing the whole suite. In the child,
/// runs `body` under the [`watchdog`].
pub fn in_child(name: &str, body: impl FnOnce() + Send + 'static) {
    if std::env::var_os(CHILD).is_some() {
        watchdog(name, body);
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let child = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("re-exec the test binary");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(WATCHDOG + Duration::from_secs(10)) else {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        panic!("watchdog: the child process for {name} did not finish");
    };
    let out = out.expect("child output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child process for {name} failed ({}):\n{text}",
        out.status
    );
}
