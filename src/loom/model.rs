//! What the loom models share. The models sit beside the code they check
//! (`src/loom/<module>.rs`, each a `loom_tests` module of its file) and run
//! only with `--cfg stop_machine_loom`: see `.ci/loom`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` under loom with at most `bound` preemptions per execution unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise, and reports how many executions
/// it explored (with `--nocapture`).
pub(crate) fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
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

/// A `loom::cell::UnsafeCell` that may be shared: loom's checked accessors
/// report unsynchronized use instead of allowing it.
pub(crate) struct Shared<T>(pub(crate) loom::cell::UnsafeCell<T>);

// SAFETY: every access goes through `UnsafeCell::with`/`with_mut`, which
// loom tracks; a racy access fails the model.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn new(v: T) -> Shared<T> {
        Shared(loom::cell::UnsafeCell::new(v))
    }

    /// Reads the value (a tracked read).
    pub(crate) fn get(&self) -> T
    where
        T: Copy,
    {
        self.0.with(|p| unsafe { *p })
    }

    /// Updates the value (a tracked write).
    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        self.0.with_mut(|p| f(unsafe { &mut *p }))
    }
}
