//! Issuing one op: the stop functions the generator described, each call
//! as a future (awaited, or dropped at its fate) from a task, the same
//! through `futures::executor::block_on` from a thread, and the calls that
//! are not futures (`stop_machine_blocking`, `stop_one_cpu_nowait`, child
//! tasks).

use crate::exec::World;
use crate::invariants::{OpState, Outcome, PanicOnDrop, Tag, Token, Vals};
use crate::program::*;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context as TaskCx, Poll, Waker};
use stop_machine::{StopError, WorkerMask};

type StopResult = Result<Vals, StopError>;

/// Which workers a stop function may assume stopped while it runs.
#[derive(Clone)]
enum Scope {
    /// stop_machine: every worker (online ones are in their stoppers or
    /// claimed, offline ones run nothing).
    All,
    /// stop_two_cpus, stop_core, stop_node: their participants.
    Group(WorkerMask),
    /// stop_one_cpu(_nowait), stop_cpus: only the worker f runs on. Such a
    /// function is user code itself for every other stop.
    Single,
}

fn mask(ws: &[usize]) -> WorkerMask {
    ws.iter().copied().collect()
}

/// The stop function of `op`: checks the probe and where it runs, does the
/// body's workload, and returns the worker it ran on.
fn stop_fn(
    world: &Arc<World>,
    op: usize,
    body: &Body,
    scope: Scope,
) -> impl Fn(usize) -> usize + Send + Sync + 'static {
    let token = Token::new(&world.live.fns);
    let bomb = body
        .panicky_capture
        .then(|| PanicOnDrop(format!("torture: drop bomb in f of op {op}")));
    let (world, body) = (world.clone(), body.clone());
    move |arg| {
        let _alive = (&token, &bomb);
        world.ledger.update(|b| b.fn_runs[op] += 1);
        let here = stop_machine::current_worker();
        let Some(h) = here else {
            world.ledger.violation(format!("op {op}: f ran off the workers"));
            return usize::MAX;
        };
        if arg != usize::MAX && arg != h {
            world
                .ledger
                .violation(format!("op {op}: f({arg}) ran on worker {h}"));
        }
        let stopped: Vec<usize> = match &scope {
            Scope::All => (0..world.prog.workers).collect(),
            Scope::Group(m) => m.iter().collect(),
            Scope::Single => vec![h],
        };
        for w in stopped {
            // Found bug 11: once the drop has closed w's stopper, w may poll on
            // until it is poked; excused unless the switch asks for it.
            let excused =
                !world.prog.bugs.has(11) && world.shutting_down.load(SeqCst) && !world.handle.is_online(w);
            if let Some((count, who)) = world.probe.busy(w).filter(|_| !excused) {
                world.ledger.violation(format!(
                    "op {op}: f on worker {h} found worker {w} in user code ({count}x, last {who:?})"
                ));
            }
        }
        let raised = matches!(scope, Scope::Single)
            .then(|| world.probe.enter(Tag::Fn(op)))
            .flatten();
        if body.sleep_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(body.sleep_us.into()));
        }
        if let Some(nested) = body.nested {
            let got = nested_call(&world, nested);
            if got != Some(StopError::Nested) {
                world
                    .ledger
                    .violation(format!("op {op}: nested {nested:?} gave {got:?}"));
            }
        }
        if let Some(to) = body.nowait_to {
            side_nowait(&world, op, to);
        }
        world.probe.exit(raised);
        if body.panic {
            panic!("torture: expected panic in f of op {op}");
        }
        h
    }
}

/// A stop requested from inside a stop function.
fn nested_call(world: &World, nested: Nested) -> Option<StopError> {
    use futures::executor::block_on;
    let h = &world.handle;
    match nested {
        Nested::Machine => block_on(h.stop_machine(|_| (), None)).err(),
        Nested::Cpus => block_on(h.stop_cpus(&WorkerMask::of(0), |_| ())).err(),
        Nested::Two => block_on(h.stop_two_cpus(0, 1, || ())).err(),
        Nested::One => block_on(h.stop_one_cpu(0, || ())).err(),
        Nested::Park => block_on(h.park_worker(1)).err(),
        Nested::Blocking => h.stop_machine_blocking(|_| (), None).err(),
    }
}

/// `stop_one_cpu_nowait` from inside a stop function (allowed there); the
/// queued function must run by the end of the run.
fn side_nowait(world: &Arc<World>, op: usize, to: usize) {
    let w = world.clone();
    let token = Token::new(&world.live.fns);
    let queued = world.handle.stop_one_cpu_nowait(to, move || {
        let _alive = &token;
        let here = stop_machine::current_worker();
        if let Some((count, who)) = here.and_then(|h| w.probe.busy(h)) {
            w.ledger.violation(format!(
                "op {op}: nowait from f found its worker in user code ({count}x, {who:?})"
            ));
        }
        w.ledger.update(|b| b.side_ran += 1);
    });
    if queued {
        world.ledger.update(|b| b.side_queued += 1);
    }
}

/// The future of a call that returns one, built on the calling thread
/// (`stop_machine` notes the caller's worker when it is created).
fn stop_future(world: &Arc<World>, op: &Op) -> Option<BoxFuture<'static, StopResult>> {
    let h = world.handle.clone();
    let free = op.free_fn;
    let id = op.id;
    let fut: BoxFuture<'static, StopResult> = match &op.call {
        Call::One { worker, f } => {
            let (w, f) = (*worker, stop_fn(world, id, f, Scope::Single));
            let g = move || f(usize::MAX);
            let fut = if free {
                stop_machine::stop_one_cpu(w, g).boxed()
            } else {
                h.stop_one_cpu(w, g).boxed()
            };
            fut.map(move |r| r.map(|v| vec![(w, v)])).boxed()
        }
        Call::Two { a, b, f } => {
            let (a, b) = (*a, *b);
            let scope = Scope::Group([a, b].into_iter().filter(|w| *w < world.prog.workers).collect());
            let f = stop_fn(world, id, f, scope);
            let g = move || f(usize::MAX);
            let fut = if free {
                stop_machine::stop_two_cpus(a, b, g).boxed()
            } else {
                h.stop_two_cpus(a, b, g).boxed()
            };
            fut.map(move |r| r.map(|v| vec![(a, v)])).boxed()
        }
        Call::Cpus { mask: m, try_only, f } => {
            let (m, f) = (mask(m), stop_fn(world, id, f, Scope::Single));
            match (*try_only, free) {
                (false, false) => h.stop_cpus(&m, f).boxed(),
                (false, true) => stop_machine::stop_cpus(&m, f).boxed(),
                (true, false) => h.try_stop_cpus(&m, f).boxed(),
                (true, true) => stop_machine::try_stop_cpus(&m, f).boxed(),
            }
        }
        Call::Machine { active, timeout, f } => {
            let (active, f) = (active.as_deref().map(mask), stop_fn(world, id, f, Scope::All));
            let fut = match (timeout, free) {
                (Some(t), _) => h.stop_machine_timeout(f, active.as_ref(), *t).boxed(),
                (None, true) => stop_machine::stop_machine(f, active.as_ref()).boxed(),
                (None, false) => h.stop_machine(f, active.as_ref()).boxed(),
            };
            fut.map(|r| r.map(|v| vec![(v, v)])).boxed()
        }
        Call::Core { worker, f } => {
            let scope = Scope::Group(world.handle.topology().core_mask_of(*worker));
            let (w, f) = (*worker, stop_fn(world, id, f, scope));
            if free {
                stop_machine::stop_core(w, f).boxed()
            } else {
                h.stop_core(w, f).boxed()
            }
        }
        Call::Node { node, f } => {
            let scope = Scope::Group(world.handle.topology().node_mask(*node));
            h.stop_node(*node, stop_fn(world, id, f, scope)).boxed()
        }
        Call::Park(w) => {
            let w = *w;
            async move { h.park_worker(w).await.map(|()| vec![]) }.boxed()
        }
        Call::Unpark(w) => {
            let w = *w;
            async move { h.unpark_worker(w).await.map(|()| vec![]) }.boxed()
        }
        _ => return None,
    };
    Some(fut)
}

/// Polls `fut` once with a no-op waker.
fn poll_once<T>(fut: &mut BoxFuture<'static, T>) -> Option<T> {
    match fut.as_mut().poll(&mut TaskCx::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Awaits `fut`, or drops it at its fate; `None` when dropped unfinished.
async fn fate_async<T>(fate: Fate, mut fut: BoxFuture<'static, T>) -> Option<T> {
    match fate {
        Fate::Await => Some(fut.await),
        Fate::SelectReady => match futures::future::select(fut, std::future::ready(())).await {
            futures::future::Either::Left((v, _)) => Some(v),
            futures::future::Either::Right(_) => None,
        },
        Fate::PollOnce => poll_once(&mut fut),
        Fate::Timeout(d) => tokio::time::timeout(d, fut).await.ok(),
    }
}

fn fate_sync<T>(fate: Fate, mut fut: BoxFuture<'static, T>) -> Option<T> {
    match fate {
        Fate::PollOnce => poll_once(&mut fut),
        Fate::SelectReady => {
            match futures::executor::block_on(futures::future::select(fut, std::future::ready(()))) {
                futures::future::Either::Left((v, _)) => Some(v),
                futures::future::Either::Right(_) => None,
            }
        }
        Fate::Await | Fate::Timeout(_) => Some(futures::executor::block_on(fut)),
    }
}

fn stop_outcome(r: Option<StopResult>) -> Outcome {
    r.map_or(Outcome::Dropped, Outcome::Stop)
}

/// Runs `op` from a task.
pub async fn run_async(world: &Arc<World>, op: &Op) -> Outcome {
    if let Some(fut) = stop_future(world, op) {
        return stop_outcome(fate_async(op.fate, fut).await);
    }
    let h = &world.handle;
    match &op.call {
        Call::Blocking { active, f } => {
            // Not user code: a stop runs inside this call.
            let (active, f) = (active.as_deref().map(mask), stop_fn(world, op.id, f, Scope::All));
            let r = match op.free_fn {
                true => stop_machine::stop_machine_blocking(f, active.as_ref()),
                false => h.stop_machine_blocking(f, active.as_ref()),
            };
            Outcome::Stop(r.map(|v| vec![(v, v)]))
        }
        Call::Nowait { worker, f } => {
            let f = stop_fn(world, op.id, f, Scope::Single);
            let g = move || {
                f(usize::MAX);
            };
            Outcome::Queued(match op.free_fn {
                true => stop_machine::stop_one_cpu_nowait(*worker, g),
                false => h.stop_one_cpu_nowait(*worker, g),
            })
        }
        Call::Child(c) => crate::children::run_async(world, op.id, c).await,
        Call::Yield => {
            tokio::task::yield_now().await;
            Outcome::Unit
        }
        Call::ParkOwn => {
            let own = stop_machine::current_worker().expect("a task");
            let r = h.park_worker(own).await;
            // Known bug 4: the lock is free again while this worker still
            // runs this poll; a stop_machine may run f right now.
            world.probe.section(Tag::Op(op.id), 2_000_000);
            Outcome::Stop(r.map(|()| vec![]))
        }
        Call::BlockOnOwn { f } => {
            let own = stop_machine::current_worker().expect("a task");
            let f = stop_fn(world, op.id, f, Scope::Single);
            let r = futures::executor::block_on(h.stop_one_cpu(own, move || f(usize::MAX)));
            Outcome::Stop(r.map(|v| vec![(own, v)]))
        }
        call => unreachable!("{} from a task", call.name()),
    }
}

/// Runs `op` from a plain thread.
pub fn run_sync(world: &Arc<World>, op: &Op) -> Outcome {
    if let Some(fut) = stop_future(world, op) {
        return stop_outcome(fate_sync(op.fate, fut));
    }
    let h = &world.handle;
    match &op.call {
        Call::Blocking { active, f } => {
            let (active, f) = (active.as_deref().map(mask), stop_fn(world, op.id, f, Scope::All));
            Outcome::Stop(h.stop_machine_blocking(f, active.as_ref()).map(|v| vec![(v, v)]))
        }
        Call::Nowait { worker, f } => {
            let f = stop_fn(world, op.id, f, Scope::Single);
            Outcome::Queued(h.stop_one_cpu_nowait(*worker, move || {
                f(usize::MAX);
            }))
        }
        Call::Child(c) => crate::children::run_sync(world, op.id, c),
        Call::UnparkAfter { worker, after } => {
            let after = *after;
            // The park's task may never run when the runtime shuts down
            // first; the unpark then meets the shutdown.
            world.ledger.wait_until(|b| {
                !matches!(b.ops[after], OpState::Pending | OpState::InFlight)
                    || world.shutting_down.load(SeqCst)
            });
            let r = futures::executor::block_on(h.unpark_worker(*worker));
            Outcome::Stop(r.map(|()| vec![]))
        }
        call => unreachable!("{} from a thread", call.name()),
    }
}
