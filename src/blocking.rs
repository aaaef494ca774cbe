//! Waiting for a stop from a plain thread or, without deadlocking, from a
//! worker's own thread.

use crate::runtime::handle::Handle;
use crate::runtime::scheduler::run_stop_works;
use crate::sync::Arc;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

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
/// On one of `handle`'s worker threads, the worker keeps running the stop
/// works queued to it while it waits: a stop that needs this worker (the
/// one `fut` requested included) then takes part inline, right here, instead
/// of waiting for a poll boundary that would never come. That is the
/// analogue of the kernel's `stop_machine_from_inactive_cpu`.
pub(crate) fn block_on_servicing<F: Future>(handle: &Handle, fut: F) -> F::Output {
    let Some(index) = handle.current_index() else {
        return futures::executor::block_on(fut);
    };
    let worker = handle.shared.workers[index].clone();
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    worker.blocking(|| {
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            if worker.stopper.is_pending() {
                run_stop_works(&worker);
                continue;
            }
            std::thread::park();
        }
    })
}
