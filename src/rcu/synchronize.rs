//! `synchronize`: the RCU grace period as a future, and its blocking form.

use super::grace::PeriodKey;
use crate::rcu::read_section;
use crate::runtime::context;
use crate::runtime::handle::Handle;
use crate::runtime::shared::Shared;
use crate::stop::stopper::QUIESCE;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of [`Handle::synchronize`].
struct Synchronize {
    shared: Arc<Shared>,
    state: State,
}

enum State {
    Start,
    Open(PeriodKey),
    Done,
}

impl Future for Synchronize {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let State::Start = this.state {
            let shared = &this.shared;
            // The caller's own worker is quiescent right now, unless this
            // poll runs inside a read closure (a nested `block_on`): the
            // kernel's "a CPU calling synchronize_rcu is in a quiescent
            // state". It then need not wait for that worker's next poll.
            let here = context::worker_index_of(shared).filter(|_| !read_section::reading());
            let idle = |w: usize| Some(w) == here || shared.workers[w].is_idle();
            // At its next poll boundary, not just its next tick.
            let notify = |w: usize| {
                shared.workers[w].stopper.hint(QUIESCE);
                shared.workers[w].notify();
            };
            this.state = match shared.grace.open(idle, notify) {
                Some(key) => State::Open(key),
                None => State::Done,
            };
        }
        let ready = match &this.state {
            State::Open(key) => this.shared.grace.poll(key, cx.waker()),
            _ => Poll::Ready(()),
        };
        if ready.is_ready() {
            this.state = State::Done;
        }
        ready
    }
}

impl Drop for Synchronize {
    fn drop(&mut self) {
        if let State::Open(key) = std::mem::replace(&mut self.state, State::Done) {
            // A worker raised for this period, still in a poll, would not
            // drop back by itself until that poll ends.
            self.shared.lower_grace_raises_of(self.shared.grace.close(key));
        }
    }
}

impl Handle {
    /// Waits for an RCU grace period: returns once every online worker has
    /// passed a quiescent state (the start of a scheduler tick, or sleeping
    /// in its driver) since the call, so that every read closure on a
    /// worker ([`Rcu::read`](crate::Rcu::read) and the others) that began
    /// before it has ended. Readers off the workers are not covered: `Rcu`
    /// counts those itself and its writers wait for them too.
    /// Nobody is stopped: busy workers go on with their tasks, idle and
    /// parked ones count at once without being woken, offline ones do not
    /// hold it up. The kernel's `synchronize_rcu` (the flavour whose
    /// quiescent states are context switches, as in `synchronize_sched`).
    ///
    /// A task that never yields holds its worker's quiescent state back, and
    /// with it every grace period, as a CPU stuck in a read-side critical
    /// section does in the kernel.
    ///
    /// CONTEXT: any task, of this runtime or another; it does not block. A
    /// task of this runtime counts its own worker as quiescent at once (it
    /// is between read closures), as a CPU calling `synchronize_rcu` is.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// rt.block_on(async move { h.synchronize().await });
    /// ```
    pub fn synchronize(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        Synchronize {
            shared: self.shared.clone(),
            state: State::Start,
        }
    }

    /// [`synchronize`](Handle::synchronize) for threads outside the runtime:
    /// blocks until the grace period is over.
    ///
    /// CONTEXT: a thread that is not one of this runtime's workers.
    ///
    /// # Panics
    ///
    /// On one of this runtime's worker threads: the worker would wait for
    /// its own quiescent state, which cannot come while it blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// rt.handle().synchronize_blocking();
    /// ```
    #[track_caller]
    pub fn synchronize_blocking(&self) {
        assert!(
            !context::is_worker_of(&self.shared),
            "synchronize_blocking called on a worker of the same runtime: it would wait for itself; \
             await Handle::synchronize instead"
        );
        futures::executor::block_on(self.synchronize());
    }
}

/// [`Handle::synchronize`] on the runtime of the task that polls it.
///
/// # Panics
///
/// When polled outside a task of a runtime (see [`Handle::current`]).
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// rt.block_on(stop_machine::synchronize());
/// ```
pub async fn synchronize() {
    Handle::current().synchronize().await
}
