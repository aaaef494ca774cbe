//! Running one program: build the runtime, walk the controller's timeline
//! (start contexts and hogs, release hogs, abort contexts, shut down), wait
//! for every context, drop the runtime, then check what only the end can
//! show: no live future, no thread left, every queued function run.

use crate::census::{new_threads, thread_names};
use crate::contexts;
use crate::invariants::*;
use crate::program::*;
use crate::watchdog::Watchdog;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stop_machine::{Handle, Runtime};

type Aborter = Box<dyn Fn() + Send>;

/// Everything one run shares between the controller, its contexts and
/// the stop functions.
pub struct World {
    pub prog: Program,
    pub handle: Handle,
    pub probe: Probe,
    pub live: Live,
    pub ledger: Ledger,
    pub released: Vec<AtomicBool>,
    /// Set just before the harness shuts the runtime down.
    pub shutting_down: AtomicBool,

    /// How to abort each task context, once it exists.
    aborters: Mutex<Vec<Option<Aborter>>>,
}

impl World {
    pub fn set_aborter(&self, ctx: usize, f: impl Fn() + Send + 'static) {
        self.aborters.lock().unwrap()[ctx] = Some(Box::new(f));
    }

    pub fn release(&self, hog: usize) {
        self.released[hog].store(true, SeqCst);
    }
}

fn drop_runtime(world: &World, rt: Runtime, timeout: Option<Duration>) {
    world.shutting_down.store(true, SeqCst);
    // Wakes the ledger's waiters that also end on the shutdown.
    world.ledger.update(|_| {});
    let shut = move || match timeout {
        None => drop(rt),
        Some(t) => rt.shutdown_timeout(t),
    };
    if let Err(p) = catch_unwind(AssertUnwindSafe(shut)) {
        world.ledger.violation(format!(
            "shutting the runtime down panicked: {}",
            panic_message(&*p)
        ));
    }
}

/// Drops the runtime on a thread of its own, so that the controller goes
/// on releasing hogs (a worker stuck in a hog cannot be joined).
fn spawn_dropper(world: &Arc<World>, rt: Runtime, timeout: Option<Duration>) -> JoinHandle<()> {
    let w = world.clone();
    let t = std::thread::Builder::new().name("torture-dropper".into());
    t.spawn(move || {
        if !w.prog.bugs.has(7) {
            // Known bug 7: hotplug racing the runtime's drop.
            let hotplug: Vec<usize> = w
                .prog
                .contexts
                .iter()
                .filter(|c| c.hotplug)
                .map(|c| c.id)
                .collect();
            w.ledger.wait_until(|b| {
                hotplug
                    .iter()
                    .all(|c| matches!(b.ctxs[*c], CtxState::Finished | CtxState::Cancelled))
            });
        }
        drop_runtime(&w, rt, timeout);
    })
    .expect("spawn the dropper")
}

fn spin_for(us: u32) {
    let end = Instant::now() + Duration::from_micros(us.into());
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into())
}

/// Runs `prog` and returns the violations found (none: the seed passed).
///
/// `baseline` is the child process's threads before its first seed: every
/// seed waits until it is back to them, so that a worker thread still
/// exiting (detached by `shutdown_timeout`, or joined but not yet gone from
/// `/proc`) is never mistaken for one of the next seed's.
pub fn run(prog: Program, watchdog: &Watchdog, baseline: &[String], verbose: bool) -> Vec<String> {
    let before = baseline.to_vec();
    // Counted by each worker thread as the last thing it does, once all of
    // its futures are gone: the thread census alone can miss a live thread
    // while others exit (a `/proc/self/task` listing taken mid-exit skips
    // entries), which once passed for finding 13.
    let finished = Arc::new(AtomicUsize::new(0));
    let mut b = Runtime::builder();
    let count = finished.clone();
    b.workers(prog.workers)
        .pin(false)
        .event_interval(prog.event_interval)
        .on_thread_stop(move || {
            count.fetch_add(1, SeqCst);
        });
    if let Some(t) = prog.stop_timeout {
        b.stop_timeout(t);
    }
    let rt = match catch_unwind(AssertUnwindSafe(|| b.build())) {
        Ok(Ok(rt)) => rt,
        Ok(Err(e)) => return vec![format!("Builder::build failed: {e}")],
        Err(p) => return vec![format!("Builder::build panicked: {}", panic_message(&*p))],
    };
    let world = Arc::new(World {
        handle: rt.handle().clone(),
        probe: Probe::new(prog.workers),
        live: Live::default(),
        ledger: Ledger::new(&prog),
        released: prog.hogs.iter().map(|_| AtomicBool::new(false)).collect(),
        shutting_down: AtomicBool::new(false),
        aborters: Mutex::new(prog.contexts.iter().map(|_| None).collect()),
        prog,
    });
    watchdog.arm(world.clone(), before.clone());
    let mut rt = Some(rt);
    let (mut threads, mut dropper) = (Vec::new(), None);
    world.ledger.stage("walking the timeline");
    for step in &world.prog.timeline {
        match step {
            Step::Start(c) => contexts::start_context(&world, *c, &mut threads),
            Step::StartHog(h) => contexts::start_hog(&world, *h),
            Step::Release(h) => world.release(*h),
            Step::Abort(c) => {
                if let Some(abort) = &world.aborters.lock().unwrap()[*c] {
                    abort();
                }
            }
            Step::Shutdown(how) => dropper = rt.take().map(|rt| spawn_dropper(&world, rt, *how)),
            Step::Spin(us) => spin_for(*us),
        }
    }
    for h in world.prog.hogs.iter().filter(|h| h.after_op.is_none()) {
        world.release(h.id);
    }
    let join = |t: JoinHandle<()>| {
        if t.join().is_err() {
            world.ledger.violation("a harness thread panicked".into());
        }
    };
    if let Some(dropper) = dropper {
        // The runtime is gone once the dropper is done and its threads have
        // exited; a task context that has not ended by then never will, so
        // wait for threads, not for contexts (a stranded one is a violation).
        world.ledger.stage("joining the dropper and the context threads");
        std::iter::once(dropper).chain(threads).for_each(join);
    } else {
        world.ledger.stage("waiting for every context to end");
        world.ledger.wait_until(|b| {
            b.ctxs
                .iter()
                .all(|c| matches!(c, CtxState::Finished | CtxState::Cancelled))
        });
        world.ledger.stage("dropping the runtime");
        if let Some(rt) = rt.take() {
            drop_runtime(&world, rt, None);
        }
        world.ledger.stage("joining the context threads");
        threads.into_iter().for_each(join);
    }
    world.ledger.stage("waiting for the runtime's threads to exit");
    while finished.load(SeqCst) < world.prog.workers || !new_threads(&before, &thread_names()).is_empty() {
        std::thread::yield_now();
    }
    final_checks(&world);
    watchdog.disarm();
    let failed = !world.ledger.books().violations.is_empty();
    if verbose || failed {
        let b = world.ledger.books();
        for (ctx, op) in world.prog.ops() {
            let (id, name, state) = (op.id, op.call.name(), &b.ops[op.id]);
            eprintln!(
                "  op {id} {name} from context {} ({:?}): {state:?}",
                ctx.id, ctx.origin
            );
        }
        for (c, state) in b.ctxs.iter().enumerate() {
            eprintln!("  context {c}: {state:?}");
        }
    }
    std::mem::take(&mut world.ledger.books().violations)
}

/// What holds only once everything is over.
fn final_checks(world: &World) {
    let prog = &world.prog;
    let b = world.ledger.books();
    let mut v = Vec::new();
    for (what, n) in [
        ("task futures", &world.live.tasks),
        ("stop functions", &world.live.fns),
    ] {
        match n.load(SeqCst) {
            0 => {}
            n => v.push(format!("{n} {what} still alive after the runtime was dropped")),
        }
    }
    if world.live.tasks.load(SeqCst) != 0 {
        let names: Vec<String> = lock(&world.live.task_names).values().cloned().collect();
        v.push(format!("the live task futures: {names:?}"));
    }
    for id in &b.nowaits_queued {
        if b.fn_runs[*id] == 0 {
            v.push(format!(
                "op {id}: stop_one_cpu_nowait returned true but f never ran"
            ));
        }
    }
    if b.side_ran != b.side_queued {
        v.push(format!(
            "{} of {} nowaits queued from stop functions ran",
            b.side_ran, b.side_queued
        ));
    }
    for ctx in &prog.contexts {
        let state = b.ctxs[ctx.id];
        if matches!(state, CtxState::Running | CtxState::NotStarted) {
            // Every runtime thread is gone: this context's task was neither
            // finished nor dropped.
            v.push(format!(
                "context {} ({:?}) stranded: {state:?} after the runtime's threads exited",
                ctx.id, ctx.origin
            ));
            continue;
        }
        let excused = prog.has_shutdown() || prog.aborted(ctx.id);
        if state == CtxState::Cancelled && !excused {
            v.push(format!(
                "context {} was cancelled without an abort or a shutdown",
                ctx.id
            ));
        }
        for op in &ctx.ops {
            let ok = match &b.ops[op.id] {
                OpState::Ended(_) => true,
                OpState::Pending | OpState::Cancelled => state == CtxState::Cancelled,
                OpState::InFlight => false,
            };
            if !ok {
                let (id, name, op_state) = (op.id, op.call.name(), &b.ops[op.id]);
                v.push(format!(
                    "op {id} {name} ended {op_state:?} in context {} ({state:?})",
                    ctx.id
                ));
            }
        }
    }
    drop(b);
    for x in v {
        world.ledger.violation(x);
    }
}
