//! The per-seed deadline. One thread per child process; armed at the start
//! of each seed, disarmed at its end. When a seed overruns, it prints what
//! was still outstanding (ops in flight, contexts not ended, hogs, new
//! threads, each worker's stopper) and exits the child process, which the
//! parent reports as that seed's failure. A hang never hangs the suite.

use crate::census::{new_threads, thread_names};
use crate::exec::World;
use crate::invariants::{CtxState, OpState};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Armed {
    world: Arc<World>,
    threads_before: Vec<String>,
    deadline: Instant,
}

pub struct Watchdog {
    slot: Arc<(Mutex<Option<Armed>>, Condvar)>,
    limit: Duration,
}

/// The exit code of a child whose seed hung.
pub const HUNG: i32 = 3;

impl Watchdog {
    pub fn start(limit: Duration) -> Watchdog {
        let slot: Arc<(Mutex<Option<Armed>>, Condvar)> = Arc::default();
        let s = slot.clone();
        let (running_tx, running) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("torture-watchdog".into())
            .spawn(move || {
                // Named by now: the seeds' thread census must see it.
                running_tx.send(()).unwrap();
                let (lock, cv) = &*s;
                let mut armed = lock.lock().unwrap();
                loop {
                    let now = Instant::now();
                    let wait = match &*armed {
                        None => None,
                        Some(a) if now >= a.deadline => {
                            report(a, limit);
                            std::process::exit(HUNG);
                        }
                        Some(a) => Some(a.deadline - now),
                    };
                    armed = match wait {
                        None => cv.wait(armed).unwrap(),
                        Some(d) => cv.wait_timeout(armed, d).unwrap().0,
                    };
                }
            })
            .expect("spawn the watchdog");
        running.recv().unwrap();
        Watchdog { slot, limit }
    }

    pub fn arm(&self, world: Arc<World>, threads_before: Vec<String>) {
        let deadline = Instant::now() + self.limit;
        *self.slot.0.lock().unwrap() = Some(Armed {
            world,
            threads_before,
            deadline,
        });
        self.slot.1.notify_all();
    }

    pub fn disarm(&self) {
        *self.slot.0.lock().unwrap() = None;
        self.slot.1.notify_all();
    }
}

fn report(a: &Armed, limit: Duration) {
    let w = &a.world;
    let prog = &w.prog;
    eprintln!("@@fail {}", prog.seed);
    eprintln!("  HANG: seed {} did not finish within {limit:?}", prog.seed);
    // The books' lock is never held across a wait, so this cannot block
    // for long; a poisoned lock is read anyway.
    let b = w.ledger.books();
    eprintln!("  stage: {}", b.stage);
    for (ctx, op) in prog.ops() {
        if b.ops[op.id] == OpState::InFlight {
            eprintln!(
                "  outstanding: op {} {} from context {} ({:?}): {:?}",
                op.id,
                op.call.name(),
                ctx.id,
                ctx.origin,
                op.call
            );
        }
    }
    for ctx in &prog.contexts {
        if !matches!(b.ctxs[ctx.id], CtxState::Finished | CtxState::Cancelled) {
            eprintln!("  context {} ({:?}) is {:?}", ctx.id, ctx.origin, b.ctxs[ctx.id]);
        }
    }
    for v in &b.violations {
        eprintln!("  violation before the hang: {v}");
    }
    drop(b);
    let extra = new_threads(&a.threads_before, &thread_names());
    if !extra.is_empty() {
        eprintln!("  threads the child did not have before its first seed: {extra:?}");
    }
    // Stopper state, from a helper thread: it takes the runtime's locks,
    // and a hang may be holding one.
    let (tx, rx) = std::sync::mpsc::channel();
    let h = w.handle.clone();
    let n = prog.workers;
    std::thread::spawn(move || {
        for i in 0..n {
            let _ = tx.send(format!("  worker {i}: {:?}", h.stopper_info(i)));
        }
    });
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        eprintln!("{line}");
    }
    eprintln!("  program: {prog:#?}");
}
