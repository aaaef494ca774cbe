//! One unit of work for a stopper: the kernel's `struct cpu_stop_work`.

use crate::error::StopError;
use crate::stats::StopKind;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};

/// What a work's job is told: run now, or the reason it never will.
pub(crate) type Go = Result<(), StopError>;

type Job = Box<dyn FnOnce(Go) + Send>;

/// A stop work: a job that a stopper runs with `Ok(())`, or cancels with
/// the reason it cannot run (the worker went offline, shut down or died).
///
/// Every work ends exactly once, run or cancelled, so whoever waits for it
/// (a [`Completion`](super::Completion)) is never left waiting: a work that
/// is dropped without either is cancelled with [`StopError::Shutdown`]. The
/// job owns everything it needs, so a caller that drops its future mid-stop
/// cannot leave a worker holding a dangling request.
pub(crate) struct StopWork {
    job: Option<Job>,
    /// What and who queued it, for [`StopperInfo`](crate::StopperInfo).
    pub(crate) kind: StopKind,
    pub(crate) caller: &'static Location<'static>,
}

impl StopWork {
    pub(crate) fn new(
        kind: StopKind,
        caller: &'static Location<'static>,
        job: impl FnOnce(Go) + Send + 'static,
    ) -> StopWork {
        StopWork {
            job: Some(Box::new(job)),
            kind,
            caller,
        }
    }

    /// Runs the job on the calling thread.
    pub(crate) fn run(mut self) {
        self.end(Ok(()));
    }

    /// Tells the job it will not run, and why.
    pub(crate) fn cancel(mut self, why: StopError) {
        self.end(Err(why));
    }

    /// Ends the job, containing any panic that escapes it: the stop
    /// function's own panics are caught inside the job, so what arrives
    /// here comes from dropping what it captured, and must not take the
    /// worker down.
    fn end(&mut self, go: Go) {
        let Some(job) = self.job.take() else { return };
        let (kind, caller) = (self.kind, self.caller);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || job(go))) {
            if payload.is::<InjectedDeath>() {
                std::panic::resume_unwind(payload);
            }
            tracing::error!(
                kind = kind.name(),
                %caller,
                "a value captured by a stop function panicked when dropped; the worker goes on"
            );
        }
    }
}

impl Drop for StopWork {
    fn drop(&mut self) {
        self.end(Err(StopError::Shutdown));
    }
}

impl std::fmt::Debug for StopWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopWork")
            .field("kind", &self.kind)
            .field("caller", &self.caller)
            .finish()
    }
}

/// The panic payload of [`Handle::inject_worker_death`]: the one panic a
/// stop work lets through, so that tests can exercise the path of a worker
/// loop that dies.
///
/// [`Handle::inject_worker_death`]: crate::Handle::inject_worker_death
#[derive(Debug)]
pub(crate) struct InjectedDeath;
