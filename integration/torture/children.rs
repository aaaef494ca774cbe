//! Child tasks: spawned by an op onto a worker (`spawn_on`), the current
//! worker (`spawn_local`) or tokio (`tokio::spawn`), then awaited, detached
//! or aborted. They panic, drop a panicking guard inside their poll, and,
//! with known bug 2 allowed, panic in a `Drop` outside any poll.

use crate::exec::World;
use crate::invariants::{ChildEnd, Outcome, PanicOnDrop, Tag, Token};
use crate::program::{Child, ChildHandle, ChildPlace};
use std::future::Future;
use std::sync::Arc;

/// A child's output: a drop bomb for known bug 2's "detached output".
pub struct ChildOut(#[allow(dead_code)] Option<PanicOnDrop>);

fn body(world: &Arc<World>, op: usize, c: &Child) -> impl Future<Output = ChildOut> + Send + 'static {
    let token = Token::task(&world.live, format!("child of op {op}"));
    let (world, c) = (world.clone(), c.clone());
    async move {
        let _alive = token;
        world.probe.section(Tag::Child(op), c.spin);
        if c.bomb_held {
            // Known bug 2: dropped by an abort or the runtime's drop, off any poll.
            let _bomb = PanicOnDrop(format!("torture: drop bomb held by child of op {op}"));
            std::future::pending::<()>().await;
        }
        if c.yields {
            tokio::task::yield_now().await;
        }
        if c.bomb_in_poll {
            // Explodes at the end of this block, inside the poll: the task's panic.
            let _bomb = PanicOnDrop(format!("torture: expected panic: drop bomb in child of op {op}"));
        }
        if c.panic {
            panic!("torture: expected panic in child of op {op}");
        }
        ChildOut(
            c.bomb_output
                .then(|| PanicOnDrop(format!("torture: drop bomb in output of child of op {op}"))),
        )
    }
}

/// Either runtime's join handle.
enum Join {
    Ours(stop_machine::JoinHandle<ChildOut>),
    Tokio(tokio::task::JoinHandle<ChildOut>),
}

impl Join {
    fn abort(&self) {
        match self {
            Join::Ours(j) => j.abort(),
            Join::Tokio(j) => j.abort(),
        }
    }

    async fn end(self) -> ChildEnd {
        match self {
            Join::Ours(j) => match j.await {
                Ok(_) => ChildEnd::Value,
                Err(e) if e.is_panic() => ChildEnd::Panicked,
                Err(_) => ChildEnd::Cancelled,
            },
            Join::Tokio(j) => match j.await {
                Ok(_) => ChildEnd::Value,
                Err(e) if e.is_panic() => ChildEnd::Panicked,
                Err(_) => ChildEnd::Cancelled,
            },
        }
    }
}

async fn handle(how: ChildHandle, j: Join) -> Outcome {
    Outcome::Child(match how {
        ChildHandle::Await => j.end().await,
        ChildHandle::Detach => ChildEnd::Detached,
        ChildHandle::Abort => {
            j.abort();
            j.end().await
        }
    })
}

/// Spawns and handles a child from a task.
pub async fn run_async(world: &Arc<World>, op: usize, c: &Child) -> Outcome {
    let fut = body(world, op, c);
    let j = match c.place {
        ChildPlace::On(w) => Join::Ours(world.handle.spawn_on(w, fut)),
        ChildPlace::Local => Join::Ours(stop_machine::spawn_local(fut)),
        ChildPlace::Tokio => Join::Tokio(tokio::spawn(fut)),
    };
    handle(c.handle, j).await
}

/// Spawns and handles a child from a plain thread (`spawn_on` only).
pub fn run_sync(world: &Arc<World>, op: usize, c: &Child) -> Outcome {
    let ChildPlace::On(w) = c.place else {
        unreachable!("only spawn_on children from a thread")
    };
    let j = Join::Ours(world.handle.spawn_on(w, body(world, op, c)));
    futures::executor::block_on(handle(c.handle, j))
}
