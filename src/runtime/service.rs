//! The worker's side of its stopper: running the queued works and acting
//! on park and shutdown requests, wherever the worker happens to be: at a
//! poll boundary, at a [`safepoint`], or blocked in a stop call.
//!
//! The pending bits of the stopper say what is asked; [`serve`] does all of
//! it, in order: the works first (they were queued before the state
//! change), then the lifecycle. Inside a task's poll the worker cannot exit,
//! so a shutdown request is left for the next poll boundary; everything
//! else is served on the spot.

use super::context::{self, StopperGuard};
use super::priority::Cause;
use super::shared::Shared;
use super::worker::Worker;
use crate::rcu::read_section;
use crate::stop::stopper::{HOTPLUG, Life, WORK};
use crate::sync::Arc;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

/// What serving the stopper tells the scheduler loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The worker is closing: drop its tasks and exit.
    Exit,
}

/// The requests a worker can serve inside a poll (all but shutdown).
const INLINE: u8 = WORK | HOTPLUG;

/// Serves everything pending on `worker`'s stopper: runs its works, goes
/// offline and comes back when asked. Returns [`Flow::Exit`] when the
/// worker is closing.
///
/// Only outside read closures (`rcu/read_section.rs`): its callers inside a
/// poll check that first.
pub(crate) fn serve(shared: &Shared, worker: &Worker) -> Flow {
    debug_assert!(
        !read_section::reading(),
        "a worker served its stopper inside a read closure"
    );
    loop {
        run_works(worker);
        match worker.stopper.life() {
            Life::GoingOffline | Life::Offline => go_offline(shared, worker),
            Life::Closing => return Flow::Exit,
            Life::Online | Life::Closed | Life::Dead => return Flow::Continue,
        }
    }
}

/// Runs every stop work queued to `worker`, marked as a stopper context.
pub(crate) fn run_works(worker: &Worker) {
    let _stopper = StopperGuard::enter();
    worker.stopper.run_pending();
    // Nothing left to run: a stop that raised this worker is over for it.
    worker.priority.restore(Cause::Stop);
}

/// Hotplug: flushes what was queued before the park, acknowledges, and
/// sleeps until brought back online or shut down. No task and no driver
/// turn happens meanwhile: the thread is the stopped CPU.
///
/// Flushing and acknowledging happen on every wake-up, not once: an
/// `unpark_worker` followed by another `park_worker` can both land before
/// this thread runs again, and that second park must be acknowledged too.
///
/// Offline, the worker is quiescent for grace periods (it reads nothing)
/// until it comes back, and says so before it runs anything again.
fn go_offline(shared: &Shared, worker: &Worker) {
    worker.blocking(|| {
        loop {
            run_works(worker);
            match worker.stopper.ack_offline() {
                Life::Offline => {
                    // Away only while it sleeps: the works it runs on waking
                    // are reads like any other. The wakers `set_away` calls
                    // run with the thread out of its worker identity.
                    context::quiesce();
                    shared.grace.set_away(worker.index, true);
                    shared.lower_grace_raises();
                    std::thread::park();
                    shared.grace.set_away(worker.index, false);
                    context::unquiesce();
                }
                // Works arrived before the park took effect: run them first.
                Life::GoingOffline => {}
                Life::Online | Life::Closing | Life::Closed | Life::Dead => return,
            }
        }
    });
}

/// Lets a stop that is waiting for this worker take it right here, inside a
/// long-running poll: a *safepoint* for CPU-bound code that cannot yield.
///
/// If a stop work is queued to the calling worker, it runs now, on this
/// thread; for a multi-worker stop, the worker takes part in the whole state
/// machine and this returns after EXIT. A `park_worker` of the calling
/// worker takes effect here too: the call returns once the worker is back
/// online. Otherwise it returns at once (one atomic load). Off a worker
/// thread, inside a stop function, or inside a read closure
/// ([`Rcu::read`](crate::Rcu::read), [`StopCell::read`](crate::StopCell::read),
/// [`WorkerLocal::with`](crate::WorkerLocal::with)), it does nothing.
///
/// CONTEXT: only where the calling task holds no state that a stop function
/// may touch: a stop runs *inside* this call, in the middle of the task's
/// poll, so the task's invariants must hold here as at an `.await`. Never
/// call it while holding a lock that a stop function takes (it would
/// deadlock) or half-way through an update that the stop function reads.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let sum = rt.block_on(async {
///     let mut sum = 0u64;
///     for i in 0..1_000_000u64 {
///         sum = sum.wrapping_add(i * i);
///         if i % 1024 == 0 {
///             stop_machine::safepoint();
///         }
///     }
///     sum
/// });
/// assert!(sum > 0);
/// ```
pub fn safepoint() {
    if context::in_stopper() || read_section::reading() {
        return;
    }
    context::with(|local| {
        if let Some(local) = local
            && local.worker.stopper.pending() & INLINE != 0
        {
            serve(&local.shared, &local.worker);
        }
    });
}

/// The caller of a stop, on one of `shared`'s workers, serves its own
/// worker's stopper right where it awaits the stop, instead of returning
/// `Pending` and waiting for its worker's next poll boundary: its work (and
/// any queued before it) runs now, inside the caller's poll, which is
/// suspended at that `.await` as it would be at a boundary. For a
/// multi-worker stop that includes the caller's worker, the caller's poll
/// takes part in the whole state machine and resumes the moment the stop
/// is over: the caller is the first task its worker runs afterwards, not
/// one queued behind the others.
pub(crate) fn serve_here(shared: &Shared) {
    if context::in_stopper() || read_section::reading() {
        return;
    }
    if let Some(worker) = context::current_worker_of(shared)
        && worker.stopper.pending() & INLINE != 0
    {
        serve(shared, &worker);
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Blocks the calling thread on `fut`.
///
/// On one of `shared`'s worker threads, the worker keeps serving its
/// stopper while it waits: a stop that needs this worker (the one `fut`
/// requested included) takes part inline, right here, instead of waiting
/// for a poll boundary that would never come, and a park of this worker
/// takes effect here. That is the analogue of the kernel's
/// `stop_machine_from_inactive_cpu`.
pub(crate) fn block_on_servicing<F: Future>(shared: &Arc<Shared>, fut: F) -> F::Output {
    let Some(worker) = context::current_worker_of(shared) else {
        return futures::executor::block_on(fut);
    };
    assert!(
        !read_section::reading(),
        "a blocking stop call inside a read closure (Rcu::read, StopCell::read, WorkerLocal::with): \
         the stop could change what the closure reads"
    );
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    worker.blocking(|| {
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            if worker.stopper.pending() & INLINE != 0 {
                serve(shared, &worker);
                continue;
            }
            // Blocked, it cannot drop back at the end of their window the
            // workers it raised for a grace period.
            shared.lower_grace_raises();
            std::thread::park();
        }
    })
}
