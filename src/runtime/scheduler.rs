//! A worker's thread: a tokio `current_thread` runtime as its I/O and timer
//! driver, and our scheduler loop running as one tokio task on it.
//!
//! The loop is a tokio task, not the `block_on` future, because tokio wakes
//! its own tasks from the driver's thread without a syscall, whereas a
//! `block_on` wake-up always writes the driver's eventfd.

use super::context::{self, LocalWorker};
use super::handle::Handle;
use super::worker::Worker;
use crate::sync::Arc;
use crate::sync::atomic::Ordering;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};

/// Builds the worker's tokio driver runtime with the park hooks that make
/// the idle-claim handshake work.
pub(crate) fn driver(worker: &Arc<Worker>, event_interval: u32) -> std::io::Result<tokio::runtime::Runtime> {
    let on_park = worker.clone();
    let on_unpark = worker.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(event_interval)
        .on_thread_park(move || on_park.before_park())
        .on_thread_unpark(move || on_unpark.after_unpark())
        .build()
}

/// The body of a worker thread, from its first tick to its last drop.
pub(crate) fn run(handle: Handle, worker: Arc<Worker>, rt: tokio::runtime::Runtime) {
    let event_interval = handle.shared.config.event_interval;
    let stop_a_lot = handle.shared.config.stop_a_lot;
    context::set(Some(Rc::new(LocalWorker {
        handle,
        worker: worker.clone(),
        queue: RefCell::new(VecDeque::new()),
        in_tick: Cell::new(false),
    })));
    let looping = WorkerLoop {
        worker: worker.clone(),
        event_interval,
        stop_a_lot,
        since_stop: 0,
    };
    rt.block_on(async move {
        // The loop only ends by returning; a panic in it is a bug of ours
        // and ends the worker, which the join in `Runtime::drop` reports.
        let _ = tokio::spawn(looping).await;
    });
    // Tasks spawned with `tokio::spawn` are dropped here, on this thread.
    drop(rt);
    context::set(None);
}

/// The scheduler: runs up to `event_interval` task polls per tick, checking
/// the stopper before each, then yields to tokio so it turns the driver.
struct WorkerLoop {
    worker: Arc<Worker>,
    event_interval: u32,
    /// Stop-a-lot mode: request a stop every this many polls.
    stop_a_lot: Option<u32>,
    since_stop: u32,
}

/// What the stopper's slow path tells the loop.
enum Flow {
    Continue,
    Exit,
}

impl Future for WorkerLoop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.worker.begin_tick(cx.waker());
        context::with(|local| {
            let local = local.expect("scheduler loop off its worker thread");
            local.in_tick.set(true);
            let out = self.tick(local, cx);
            local.in_tick.set(false);
            out
        })
    }
}

impl WorkerLoop {
    fn tick(&mut self, local: &LocalWorker, cx: &mut Context<'_>) -> Poll<()> {
        let WorkerLoop {
            worker,
            event_interval,
            stop_a_lot: every_n,
            since_stop,
        } = self;
        let worker = &**worker;
        worker.take_remote(&mut local.queue.borrow_mut());
        let mut polls = 0;
        loop {
            if worker.stopper.is_pending() {
                if let Flow::Exit = service(worker) {
                    shut_down(worker, local);
                    return Poll::Ready(());
                }
            }
            if polls == *event_interval || !tokio::task::coop::has_budget_remaining() {
                worker.set_polling(None);
                yield_to_driver(cx);
                return Poll::Pending;
            }
            let next = local.queue.borrow_mut().pop_front();
            let runnable = match next {
                Some(r) => r,
                None if worker.has_remote() => {
                    worker.take_remote(&mut local.queue.borrow_mut());
                    continue;
                }
                // Idle: anything scheduled from now on notifies the loop.
                None => {
                    worker.set_polling(None);
                    return Poll::Pending;
                }
            };
            if runnable.metadata().is_aborted() {
                // Dropping the runnable cancels the task: its handle resolves
                // to a cancelled JoinError.
                drop(runnable);
                continue;
            }
            worker.set_polling(Some(runnable.metadata()));
            runnable.run();
            polls += 1;
            if let Some(every) = *every_n {
                *since_stop += 1;
                if *since_stop >= every {
                    *since_stop = 0;
                    stop_a_lot(&local.handle);
                }
            }
        }
    }
}

/// Stop-a-lot mode: requests an empty `stop_machine` from a task on this
/// worker, unless one is already on its way.
fn stop_a_lot(handle: &Handle) {
    if handle.shared.stop_a_lot_inflight.swap(true, Ordering::AcqRel) {
        return;
    }
    let h = handle.clone();
    drop(handle.spawn(async move {
        let _ = h.stop_machine(|_| (), None).await;
        h.shared.stop_a_lot_inflight.store(false, Ordering::Release);
    }));
}

/// Lets tokio turn the driver (zero timeout) before polling the loop again:
/// `yield_now` defers the wake-up until after the driver turn.
fn yield_to_driver(cx: &mut Context<'_>) {
    let yielded = pin!(tokio::task::yield_now());
    let _ = yielded.poll(cx);
}

/// The stopper's slow path: run the queued stop works, then act on hotplug
/// and shutdown requests.
fn service(worker: &Worker) -> Flow {
    run_stop_works(worker);
    if worker.shutdown.load(Ordering::SeqCst) {
        return Flow::Exit;
    }
    if worker.want_offline.load(Ordering::SeqCst) {
        go_offline(worker);
        if worker.shutdown.load(Ordering::SeqCst) {
            return Flow::Exit;
        }
    }
    Flow::Continue
}

/// Runs every stop work queued to `worker`, marked as a stopper context.
/// Draining the queue clears the pending flag; a hotplug or shutdown request
/// that poked it must stay visible to the scheduler loop, so it is re-poked.
pub(crate) fn run_stop_works(worker: &Worker) {
    let _stopper = context::StopperGuard::enter();
    worker.stopper.run_pending();
    if worker.shutdown.load(Ordering::SeqCst) || worker.want_offline.load(Ordering::SeqCst) {
        worker.stopper.poke();
    }
}

/// Lets a stop that is waiting for this worker take it right here, inside a
/// long-running poll: a *safepoint* for CPU-bound code that cannot yield.
///
/// If a stop work is queued to the calling worker, it runs now, on this
/// thread; for a multi-worker stop, the worker takes part in the whole state
/// machine and this returns after EXIT. Otherwise it returns at once (one
/// atomic load). Off a worker thread, or inside a stop function, it does
/// nothing.
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
    if context::in_stopper() {
        return;
    }
    context::with(|local| {
        if let Some(local) = local
            && local.worker.stopper.is_pending()
        {
            run_stop_works(&local.worker);
        }
    });
}

/// Hotplug: the stopper is already disabled; flush what was queued before
/// that, acknowledge, and sleep until brought back online or shut down. No
/// task and no driver turn happens meanwhile: the thread is the stopped CPU.
///
/// Flushing and acknowledging happen on every wake-up, not once: an
/// `unpark_worker` followed by another `park_worker` can both land before
/// this thread runs again, and that second park must be acknowledged too.
fn go_offline(worker: &Worker) {
    worker.blocking(|| {
        while worker.want_offline.load(Ordering::SeqCst) && !worker.shutdown.load(Ordering::SeqCst) {
            run_stop_works(worker);
            if let Some(ack) = crate::sync::lock(&worker.offline_ack).take() {
                ack.signal();
            }
            std::thread::park();
        }
    });
}

/// Drops every task of this worker on its own thread, the live ones woken
/// out of wherever they wait, and flushes the stopper so that no stop that
/// counted on this worker waits forever.
fn shut_down(worker: &Worker, local: &LocalWorker) {
    run_stop_works(worker);
    if let Some(ack) = crate::sync::lock(&worker.offline_ack).take() {
        ack.signal();
    }
    worker.close_registry();
    loop {
        worker.take_remote(&mut local.queue.borrow_mut());
        let next = local.queue.borrow_mut().pop_front();
        match next {
            // Dropping may wake other tasks: the queue must not be borrowed.
            Some(runnable) => drop(runnable),
            None => break,
        }
    }
    run_stop_works(worker);
}
