//! The contexts that issue a program's calls (a thread, or a task of one of
//! three kinds), the guards that record each op's and context's fate, and
//! the hogs: tasks that never yield until released.

use crate::exec::{World, panic_message};
use crate::invariants::*;
use crate::ops;
use crate::program::*;
use futures::FutureExt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::thread::JoinHandle;

/// Marks an op in flight; records its outcome, or its cancellation when the
/// context's future is dropped mid-call.
struct OpGuard<'a> {
    world: &'a World,
    ctx: &'a Context,
    op: &'a Op,
    ended: bool,
}

impl<'a> OpGuard<'a> {
    fn start(world: &'a World, ctx: &'a Context, op: &'a Op) -> OpGuard<'a> {
        world.ledger.update(|b| b.ops[op.id] = OpState::InFlight);
        OpGuard {
            world,
            ctx,
            op,
            ended: false,
        }
    }

    fn end(mut self, out: Outcome) {
        if let Err(why) = check(&self.world.prog, self.ctx, self.op, &out) {
            self.violation(&why);
        }
        let nowait_queued = matches!(
            (&self.op.call, &out),
            (Call::Nowait { .. }, Outcome::Queued(true))
        );
        self.settle(OpState::Ended(format!("{out:?}")), nowait_queued);
    }

    /// The call panicked into its caller: legitimate only for a drop bomb
    /// whose last owner the caller was (known bugs 2 and 3's patterns).
    fn end_panicked(mut self, msg: String) {
        let id = self.op.id;
        let captured = self.op.call.body().is_some_and(|b| b.panicky_capture)
            && msg == format!("torture: drop bomb in f of op {id}");
        // Known bug 2's detached output: dropped by the caller when the
        // child had already finished.
        let output = matches!(&self.op.call, Call::Child(c) if c.bomb_output)
            && msg == format!("torture: drop bomb in output of child of op {id}");
        if !(captured || output) {
            self.violation(&format!("the call panicked: {msg}"));
        }
        self.settle(OpState::Ended(format!("panicked: {msg}")), false);
    }

    fn violation(&self, why: &str) {
        let (op, ctx) = (self.op, self.ctx);
        let msg = format!(
            "op {} {} from context {} ({:?}): {why}\n      call: {:?}",
            op.id,
            op.call.name(),
            ctx.id,
            ctx.origin,
            op.call
        );
        self.world.ledger.violation(msg);
    }

    fn settle(&mut self, state: OpState, nowait_queued: bool) {
        self.ended = true;
        let id = self.op.id;
        self.world.ledger.update(|b| {
            b.ops[id] = state;
            if nowait_queued {
                b.nowaits_queued.push(id);
            }
        });
        // Known bug 5's hog waits for this op.
        for h in self.world.prog.hogs.iter().filter(|h| h.after_op == Some(id)) {
            self.world.release(h.id);
        }
    }
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // A future dropped mid-call panics only through a drop bomb of
            // its own, as any Rust value would.
            if std::thread::panicking() && !self.op.call.may_bomb_when_cancelled() {
                self.violation("the call panicked");
            }
            self.settle(OpState::Cancelled, false);
        }
    }
}

/// A context's life: running until `finish`, cancelled if dropped before.
struct CtxGuard {
    world: Arc<World>,
    id: usize,
    finished: bool,
}

impl CtxGuard {
    fn start(world: &Arc<World>, id: usize) -> CtxGuard {
        world.ledger.update(|b| b.ctxs[id] = CtxState::Running);
        CtxGuard {
            world: world.clone(),
            id,
            finished: false,
        }
    }

    fn finish(mut self) {
        self.finished = true;
        let id = self.id;
        self.world.ledger.update(|b| b.ctxs[id] = CtxState::Finished);
    }
}

impl Drop for CtxGuard {
    fn drop(&mut self) {
        if !self.finished {
            let ops = &self.world.prog.contexts[self.id].ops;
            if std::thread::panicking() && !ops.iter().any(|op| op.call.may_bomb_when_cancelled()) {
                self.world
                    .ledger
                    .violation(format!("context {} panicked", self.id));
            }
            let id = self.id;
            self.world.ledger.update(|b| b.ctxs[id] = CtxState::Cancelled);
        }
    }
}

/// A task future counted in [`Live::tasks`] until it is dropped.
fn tracked<F: Future>(world: &World, what: String, fut: F) -> impl Future<Output = F::Output> + use<F> {
    let token = Token::task(&world.live, what);
    async move {
        let _alive = token;
        fut.await
    }
}

async fn run_task_ctx(world: &Arc<World>, guard: CtxGuard) {
    let guard = guard; // a local, so that an unwinding poll drops it
    let ctx = &world.prog.contexts[guard.id];
    for op in &ctx.ops {
        world.probe.section(Tag::Op(op.id), op.spin);
        let g = OpGuard::start(world, ctx, op);
        match AssertUnwindSafe(ops::run_async(world, op)).catch_unwind().await {
            Ok(out) => g.end(out),
            Err(p) => g.end_panicked(panic_message(&*p)),
        }
    }
    guard.finish();
}

fn run_thread_ctx(world: &Arc<World>, guard: CtxGuard) {
    let ctx = &world.prog.contexts[guard.id];
    for op in &ctx.ops {
        let g = OpGuard::start(world, ctx, op);
        match catch_unwind(AssertUnwindSafe(|| ops::run_sync(world, op))) {
            Ok(out) => g.end(out),
            Err(p) => g.end_panicked(panic_message(&*p)),
        }
    }
    guard.finish();
}

pub fn start_context(world: &Arc<World>, c: usize, threads: &mut Vec<JoinHandle<()>>) {
    let guard = CtxGuard::start(world, c);
    let w = world.clone();
    let h = &world.handle;
    match world.prog.contexts[c].origin {
        Origin::Thread => {
            let t = std::thread::Builder::new().name(format!("torture-ctx-{c}"));
            threads.push(
                t.spawn(move || run_thread_ctx(&w, guard))
                    .expect("spawn a context thread"),
            );
        }
        Origin::SpawnOn(on) => {
            let j = h.spawn_on(
                on,
                tracked(world, format!("context {c}"), async move {
                    run_task_ctx(&w, guard).await
                }),
            );
            world.set_aborter(c, move || j.abort());
        }
        Origin::Local(on) => {
            drop(h.spawn_on(
                on,
                tracked(world, format!("context {c}'s parent"), async move {
                    let inner = {
                        let w = w.clone();
                        async move {
                            let _not_send = std::rc::Rc::new(());
                            run_task_ctx(&w, guard).await;
                        }
                    };
                    let j = stop_machine::spawn_local(tracked(&w, format!("context {c}"), inner));
                    w.set_aborter(c, move || j.abort());
                }),
            ));
        }
        Origin::Tokio(on) => {
            drop(h.spawn_on(
                on,
                tracked(world, format!("context {c}'s parent"), async move {
                    let j = tokio::spawn(tracked(
                        &w,
                        format!("context {c}"),
                        run_task_ctx_owned(w.clone(), guard),
                    ));
                    let abort = j.abort_handle();
                    w.set_aborter(c, move || abort.abort());
                    let _ = j.await;
                }),
            ));
        }
    }
}

async fn run_task_ctx_owned(world: Arc<World>, guard: CtxGuard) {
    run_task_ctx(&world, guard).await
}

/// A task that never yields until released (with `safepoint()` calls, if
/// asked, where it lowers the probe).
fn hog_loop(world: &World, id: usize) {
    let hog = &world.prog.hogs[id];
    let mut w = world.probe.enter(Tag::Hog(id));
    while !world.released[id].load(SeqCst) {
        std::hint::spin_loop();
        if hog.safepoints {
            world.probe.exit(w);
            stop_machine::safepoint();
            w = world.probe.enter(Tag::Hog(id));
        }
    }
    world.probe.exit(w);
}

pub fn start_hog(world: &Arc<World>, id: usize) {
    let hog = &world.prog.hogs[id];
    let w = world.clone();
    let spin = tracked(world, format!("hog {id}"), async move { hog_loop(&w, id) });
    let h = &world.handle;
    if hog.tokio {
        drop(h.spawn_on(
            hog.worker,
            tracked(world, format!("hog {id}'s parent"), async move {
                drop(tokio::spawn(spin).await)
            }),
        ));
    } else {
        drop(h.spawn_on(hog.worker, spin));
    }
}
