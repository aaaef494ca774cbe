//! What the protocol models share. Each model sits beside the code it
//! checks (`src/stop/tests/*.rs`, `src/runtime/tests/*.rs`) and runs two
//! ways:
//!
//! - under `--cfg stop_machine_loom` (`.ci/loom`): loom explores every
//!   interleaving up to a preemption bound;
//! - in plain `cargo test`: the same body runs [`STD_RUNS`] times on std
//!   threads, a stress test of the production code with the same
//!   assertions.

/// Threads for a model: loom's or std's.
pub(crate) mod thread {
    #[cfg(stop_machine_loom)]
    pub(crate) use loom::thread::{spawn, yield_now};
    #[cfg(not(stop_machine_loom))]
    pub(crate) use std::thread::{spawn, yield_now};
}

/// How often a model's body runs on std threads (`STOP_MACHINE_MODEL_RUNS`
/// overrides it).
#[cfg(not(stop_machine_loom))]
pub(crate) const STD_RUNS: usize = 200;

/// Runs `f` under loom with at most `bound` preemptions per execution unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise, and reports how many executions
/// it explored (with `--nocapture`).
#[cfg(stop_machine_loom)]
pub(crate) fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut builder = loom::model::Builder::new();
    let bound = *builder.preemption_bound.get_or_insert(bound);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} executions, preemption bound {bound}, {:.1?}",
        std::thread::current().name().unwrap_or("loom model"),
        runs.load(Ordering::Relaxed),
        start.elapsed(),
    );
}

/// Runs `f` [`STD_RUNS`] times on std threads.
#[cfg(not(stop_machine_loom))]
pub(crate) fn model(_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::env::var("STOP_MACHINE_MODEL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STD_RUNS);
    for _ in 0..runs {
        f();
    }
}

#[cfg(not(stop_machine_loom))]
pub(crate) use futures::executor::block_on;
/// Blocks the model thread on a future.
#[cfg(stop_machine_loom)]
pub(crate) use loom::future::block_on;

/// A cell the model's threads share, whose accesses the protocol under test
/// must order. Under loom the accesses are tracked and a racy one fails the
/// model; on std threads a lock keeps them sound (the stress run checks the
/// values, loom checks the ordering).
#[cfg(stop_machine_loom)]
pub(crate) struct Shared<T>(loom::cell::UnsafeCell<T>);

// SAFETY: every access goes through `UnsafeCell::with`/`with_mut`, which
// loom tracks; a racy access fails the model.
#[cfg(stop_machine_loom)]
unsafe impl<T: Send> Sync for Shared<T> {}

#[cfg(stop_machine_loom)]
impl<T> Shared<T> {
    pub(crate) fn new(v: T) -> Shared<T> {
        Shared(loom::cell::UnsafeCell::new(v))
    }

    /// Reads the value (a tracked read).
    pub(crate) fn get(&self) -> T
    where
        T: Copy,
    {
        // SAFETY: loom tracks the access and fails the model on a race.
        self.0.with(|p| unsafe { *p })
    }

    /// Updates the value (a tracked write).
    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        // SAFETY: loom tracks the access and fails the model on a race.
        self.0.with_mut(|p| f(unsafe { &mut *p }))
    }
}

#[cfg(not(stop_machine_loom))]
pub(crate) struct Shared<T>(std::sync::Mutex<T>);

#[cfg(not(stop_machine_loom))]
impl<T> Shared<T> {
    pub(crate) fn new(v: T) -> Shared<T> {
        Shared(std::sync::Mutex::new(v))
    }

    pub(crate) fn get(&self) -> T
    where
        T: Copy,
    {
        *self.0.lock().unwrap()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.0.lock().unwrap())
    }
}
