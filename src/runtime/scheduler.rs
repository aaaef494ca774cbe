//! A worker's thread: a tokio `current_thread` runtime as its I/O and timer
//! driver, and our scheduler loop running as one tokio task on it.
//!
//! The loop is a tokio task, not the `block_on` future, because tokio wakes
//! its own tasks from the driver's thread without a syscall, whereas a
//! `block_on` wake-up always writes the driver's eventfd.

use super::context::{self, LocalWorker};
use super::handle::Handle;
use super::priority::Cause;
use super::service::{self, Flow};
use super::shared::Shared;
use super::worker::Worker;
use crate::error::panic_message;
use crate::stop::stopper::{HINTS, QUIESCE, RESUME};
use crate::sync::Arc;
use crate::sync::atomic::Ordering;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};

/// Builds the worker's tokio driver runtime with the park hooks that make
/// the idle-claim handshake work.
pub(crate) fn driver(shared: &Arc<Shared>, worker: &Arc<Worker>) -> std::io::Result<tokio::runtime::Runtime> {
    // Weak: the driver's hooks live as long as any tokio handle to it, and
    // `Shared` keeps those.
    let (on_park, grace, weak) = (worker.clone(), shared.grace.clone(), Arc::downgrade(shared));
    let on_unpark = worker.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(shared.config.event_interval)
        .on_thread_park(move || {
            // Idle first, then the grace-period check: the Dekker pair of
            // `rcu/grace.rs`. From here to the unpark the thread is not the
            // worker for reads: wakers run meanwhile.
            context::quiesce();
            on_park.before_park();
            // Asleep, it cannot drop back at the end of their raise window
            // the workers it raised, nor itself once passed.
            match grace.parking(on_park.index).then(|| weak.upgrade()).flatten() {
                Some(shared) => shared.lower_grace_raises(),
                None => on_park.priority.restore_if_raised(Cause::Grace),
            }
        })
        .on_thread_unpark(move || {
            on_unpark.after_unpark();
            context::unquiesce();
        })
        .build()
}

/// The body of a worker thread, from its first tick to its last drop.
///
/// The loop only ends by returning once the worker is closing. If it ends
/// any other way (a panic that escaped: a bug of ours), the worker is
/// declared dead: its stopper cancels its works with
/// [`StopError::WorkerDied`](crate::StopError::WorkerDied) and refuses
/// later ones, its tasks are dropped, and dropping the runtime reports it.
pub(crate) fn run(shared: Arc<Shared>, worker: Arc<Worker>, rt: tokio::runtime::Runtime) {
    let config = &shared.config;
    let looping = WorkerLoop {
        worker: worker.clone(),
        event_interval: config.event_interval,
        stop_a_lot: config.stop_a_lot,
        since_stop: 0,
    };
    let local = Rc::new(LocalWorker::new(shared.clone(), worker.clone()));
    context::set(Some(local.clone()));
    let ended = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async move { tokio::spawn(looping).await })
    }));
    let died = match ended {
        Ok(Ok(())) => None,
        Ok(Err(e)) if e.is_panic() => Some(panic_message(&*e.into_panic())),
        Ok(Err(e)) => Some(e.to_string()),
        Err(payload) => Some(panic_message(&*payload)),
    };
    if let Some(why) = died {
        // Stops go on without it from here: its tasks' drops must not read
        // as the worker.
        context::quiesce();
        tracing::error!(worker = worker.index, %why, "a stop-machine worker died");
        worker.set_death(why);
        worker.stopper.end(true);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            worker.close_registry();
            drop_queued(&worker, &local);
        }));
    }
    // Tasks spawned with `tokio::spawn` are dropped here, on this thread.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    context::set(None);
    // Nothing of this worker can read any more: grace periods stop
    // waiting for it.
    shared.grace.set_away(worker.index, true);
    shared.lower_grace_raises();
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

impl Future for WorkerLoop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.worker.begin_tick(cx.waker());
        context::with(|local| {
            let local = local.expect("invariant: the scheduler loop runs on its worker thread");
            // Between two ticks, no read closure is running on this thread.
            quiescent(&local.shared, &self.worker);
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
            let pending = worker.stopper.pending();
            if pending != 0 {
                worker.set_polling(None);
                // Between two polls no read closure runs here: a grace
                // period waiting for this worker need not wait for the tick.
                if pending & QUIESCE != 0 && worker.stopper.take_hint(QUIESCE) {
                    quiescent(&local.shared, worker);
                }
                // A task woken to resume first runs next, not next tick.
                if pending & RESUME != 0 && worker.stopper.take_hint(RESUME) {
                    worker.take_remote(&mut local.queue.borrow_mut());
                }
                if pending & !HINTS != 0 && service::serve(&local.shared, worker) == Flow::Exit {
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
            // An aborted task ends itself when run (see `task::Guarded`).
            worker.set_polling(Some(runnable.metadata()));
            local.in_poll.set(true);
            runnable.run();
            local.in_poll.set(false);
            if local.records_waiting.get() {
                local.records_waiting.set(false);
                local.shared.stats.run_waiting_on(worker.index);
            }
            polls += 1;
            if let Some(every) = *every_n {
                *since_stop += 1;
                if *since_stop >= every {
                    *since_stop = 0;
                    stop_a_lot(&local.shared);
                }
            }
        }
    }
}

/// A quiescent point of `worker` (no read closure runs on its thread): it
/// passes every open grace period, drops back if one had raised it, and
/// raises the workers a period has waited for past
/// [`GRACE_LATE`](crate::rcu::grace::GRACE_LATE), as a stop's participants
/// raise its stragglers (and drops them back once the period is past its
/// raise window). While a period is inside its window the worker asks
/// itself to check again at its next poll boundary: a busy worker's ticks
/// can be a millisecond apart.
#[inline]
fn quiescent(shared: &Shared, worker: &Worker) {
    let open = shared.grace.quiescent(worker.index);
    // Exact: a raiser shows its raise in the mirror before it checks,
    // under the periods' lock, that this worker is still left.
    worker.priority.restore_if_raised(Cause::Grace);
    if open && shared.boosting.load(Ordering::Relaxed) && tend_late(shared, worker.index) {
        worker.stopper.hint(QUIESCE);
    }
}

/// Raises the workers inside an open period's raise window and drops back
/// those past it. Returns whether a period is still before the end of its
/// window.
#[cold]
fn tend_late(shared: &Shared, here: usize) -> bool {
    let overdue = shared.grace.overdue();
    for w in overdue.raise.into_iter().filter(|w| *w != here) {
        let raised = shared.workers[w]
            .priority
            .boost(Cause::Grace, || shared.grace.is_left(w));
        if raised {
            shared.stats.count_boost();
        }
    }
    shared.lower_grace_raises_of(overdue.lower);
    overdue.watch
}

/// Stop-a-lot mode: requests an empty `stop_machine` from a task on this
/// worker, unless one is already on its way.
fn stop_a_lot(shared: &Arc<Shared>) {
    if shared.stop_a_lot_inflight.swap(true, Ordering::AcqRel) {
        return;
    }
    let h = Handle {
        shared: shared.clone(),
    };
    drop(h.clone().spawn(async move {
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

/// Drops every task of this worker on its own thread, the live ones woken
/// out of wherever they wait, and flushes the stopper so that no stop that
/// counted on this worker waits forever.
///
/// The drain ends when no task of the worker is alive, not when its queues
/// look empty: a task woken on another thread just before the registry
/// closed may still be on its way to the remote queue, and must be dropped
/// here (a `spawn_local` task cannot be dropped anywhere else).
fn shut_down(worker: &Worker, local: &LocalWorker) {
    service::run_works(worker);
    worker.close_registry();
    worker.blocking(|| {
        loop {
            drop_queued(worker, local);
            if worker.live_tasks() == 0 {
                break;
            }
            if !worker.has_remote() {
                std::thread::park();
            }
        }
    });
    service::run_works(worker);
    worker.stopper.end(false);
}

/// Drops every task queued to the worker, remote ones included.
fn drop_queued(worker: &Worker, local: &LocalWorker) {
    loop {
        worker.take_remote(&mut local.queue.borrow_mut());
        let next = local.queue.borrow_mut().pop_front();
        match next {
            // Dropping may wake other tasks: the queue must not be borrowed.
            Some(runnable) => drop(runnable),
            None => break,
        }
    }
}
