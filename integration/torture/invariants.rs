//! What every run checks, and the bookkeeping it checks against:
//!
//! - [`Probe`]: per-worker "in user code" counters. The harness's tasks
//!   raise their worker's counter around their synchronous sections (never
//!   across an await, a `safepoint()` or a blocking stop call, where a stop
//!   may legitimately run), and so do single-worker stop functions. A stop
//!   function checks that every worker its stop has stopped reads zero.
//! - [`Live`]: counts of live task futures and live stop functions; both
//!   must be zero once the runtime is dropped.
//! - [`Ledger`]: the state of every op and context, and the violations
//!   found. The watchdog prints it when a seed hangs.
//! - [`check`]: the outcome a call may legitimately end with, given the
//!   program (`docs/torture.md` has the table).

use crate::program::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use stop_machine::StopError;

/// Who raised a probe counter, for the violation report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Op(usize),
    Child(usize),
    Hog(usize),
    Fn(usize),
}

impl Tag {
    fn encode(self) -> usize {
        match self {
            Tag::Op(n) => n << 2,
            Tag::Child(n) => n << 2 | 1,
            Tag::Hog(n) => n << 2 | 2,
            Tag::Fn(n) => n << 2 | 3,
        }
    }

    fn decode(v: usize) -> Tag {
        let n = v >> 2;
        [Tag::Op(n), Tag::Child(n), Tag::Hog(n), Tag::Fn(n)][v & 3]
    }
}

pub struct Probe {
    counts: Vec<AtomicUsize>,
    who: Vec<AtomicUsize>,
}

impl Probe {
    pub fn new(workers: usize) -> Probe {
        Probe {
            counts: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            who: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Marks the current worker as running user code; `None` off the workers.
    pub fn enter(&self, tag: Tag) -> Option<usize> {
        let w = stop_machine::current_worker()?;
        self.counts[w].fetch_add(1, SeqCst);
        self.who[w].store(tag.encode(), SeqCst);
        Some(w)
    }

    pub fn exit(&self, w: Option<usize>) {
        if let Some(w) = w {
            self.counts[w].fetch_sub(1, SeqCst);
        }
    }

    /// A synchronous section of `spin` iterations of user code.
    pub fn section(&self, tag: Tag, spin: u32) {
        let w = self.enter(tag);
        for _ in 0..spin {
            std::hint::spin_loop();
        }
        self.exit(w);
    }

    /// `Some((count, last entrant))` when worker `w` is in user code.
    pub fn busy(&self, w: usize) -> Option<(usize, Tag)> {
        let c = self.counts.get(w)?.load(SeqCst);
        (c != 0).then(|| (c, Tag::decode(self.who[w].load(SeqCst))))
    }
}

/// Counts of live things; a [`Token`] is one of them. Task futures are
/// also named, so that a leak report says which.
#[derive(Default)]
pub struct Live {
    pub tasks: Arc<AtomicIsize>,
    pub task_names: Arc<Mutex<BTreeMap<u64, String>>>,
    next_task: AtomicU64,
    pub fns: Arc<AtomicIsize>,
}

type Names = Arc<Mutex<BTreeMap<u64, String>>>;

/// Decrements its counter (and forgets its name) when dropped.
pub struct Token(Arc<AtomicIsize>, Option<(Names, u64)>);

impl Token {
    pub fn new(counter: &Arc<AtomicIsize>) -> Token {
        counter.fetch_add(1, SeqCst);
        Token(counter.clone(), None)
    }

    /// A task future's token, named `what`.
    pub fn task(live: &Live, what: String) -> Token {
        let key = live.next_task.fetch_add(1, SeqCst);
        lock(&live.task_names).insert(key, what);
        let mut t = Token::new(&live.tasks);
        t.1 = Some((live.task_names.clone(), key));
        t
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some((names, key)) = &self.1 {
            lock(names).remove(key);
        }
        self.0.fetch_sub(1, SeqCst);
    }
}

/// A lock that a panic elsewhere never makes unusable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value whose `Drop` panics (unless already unwinding): known bugs 2 and
/// 3, and the safe "drop bomb inside a poll".
pub struct PanicOnDrop(pub String);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

pub type Vals = Vec<(usize, usize)>;

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// A stop or hotplug call's result; values are `(worker, worker f ran on)`.
    Stop(Result<Vals, StopError>),
    /// `stop_one_cpu_nowait`'s answer.
    Queued(bool),
    Child(ChildEnd),
    Unit,
    /// The caller dropped the future before it completed (its fate).
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Value,
    Panicked,
    Cancelled,
    Detached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpState {
    Pending,
    InFlight,
    Ended(String),
    /// Its context's future was dropped mid-call (abort or shutdown).
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxState {
    NotStarted,
    Running,
    Finished,
    Cancelled,
}

pub struct Books {
    pub ops: Vec<OpState>,
    pub ctxs: Vec<CtxState>,
    pub violations: Vec<String>,
    pub stage: &'static str,
    /// Per op: how often its stop function ran.
    pub fn_runs: Vec<usize>,
    /// `stop_one_cpu_nowait`s queued from inside stop functions, and runs.
    pub side_queued: usize,
    pub side_ran: usize,
    /// Ops whose `stop_one_cpu_nowait` returned true: their f must run.
    pub nowaits_queued: Vec<usize>,
}

pub struct Ledger {
    books: Mutex<Books>,
    changed: Condvar,
}

impl Ledger {
    pub fn new(prog: &Program) -> Ledger {
        let ops = prog.ops().count();
        Ledger {
            books: Mutex::new(Books {
                ops: vec![OpState::Pending; ops],
                ctxs: vec![CtxState::NotStarted; prog.contexts.len()],
                violations: Vec::new(),
                stage: "starting",
                fn_runs: vec![0; ops],
                side_queued: 0,
                side_ran: 0,
                nowaits_queued: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// The books; a panic elsewhere never makes them unreadable.
    pub fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update(&self, f: impl FnOnce(&mut Books)) {
        f(&mut self.books());
        self.changed.notify_all();
    }

    pub fn violation(&self, v: String) {
        self.update(|b| b.violations.push(v));
    }

    pub fn stage(&self, stage: &'static str) {
        self.update(|b| b.stage = stage);
    }

    /// Blocks until `done` holds (the watchdog bounds the wait).
    pub fn wait_until(&self, mut done: impl FnMut(&Books) -> bool) {
        let mut b = self.books();
        while !done(&b) {
            b = self.changed.wait(b).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Checks the outcome of `op`, issued from `ctx`, against `prog`.
pub fn check(prog: &Program, ctx: &Context, op: &Op, out: &Outcome) -> Result<(), String> {
    let n = prog.workers;
    match (&op.call, out) {
        (_, Outcome::Dropped) => Ok(()),
        (Call::Nowait { worker, .. }, Outcome::Queued(q)) => {
            let must = *worker < n && !prog.parkable(*worker) && !prog.has_shutdown();
            match (*q, *worker < n) {
                (true, false) => Err("queued to a worker out of range".into()),
                (false, _) if must => Err("refused on an online worker".into()),
                _ => Ok(()),
            }
        }
        (Call::Child(c), Outcome::Child(end)) => check_child(prog, c, *end),
        (Call::Yield, Outcome::Unit) => Ok(()),
        (call, Outcome::Stop(res)) => check_stop(prog, ctx, call, res),
        _ => Err(format!("an outcome of the wrong kind: {out:?}")),
    }
}

fn check_child(prog: &Program, c: &Child, end: ChildEnd) -> Result<(), String> {
    // A held bomb goes off when the child is cancelled: tokio's rule, a
    // panic while dropping the future is the task's panic.
    let panics = c.panic || c.bomb_in_poll || c.bomb_held;
    let ok = match (c.handle, end) {
        (ChildHandle::Detach, ChildEnd::Detached) => true,
        (ChildHandle::Detach, _) | (_, ChildEnd::Detached) => false,
        (_, ChildEnd::Value) => !panics,
        (_, ChildEnd::Panicked) => panics,
        (ChildHandle::Abort, ChildEnd::Cancelled) => true,
        (ChildHandle::Await, ChildEnd::Cancelled) => prog.has_shutdown(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("child ended {end:?}"))
    }
}

/// The error a call must fail with before anything runs, for bad arguments.
fn bad_args(n: usize, call: &Call) -> Option<StopError> {
    let mask_error = |m: &[usize]| match () {
        _ if m.is_empty() => Some(StopError::EmptyMask),
        _ if m.iter().any(|w| *w >= n) => Some(StopError::InvalidWorker),
        _ => None,
    };
    match call {
        Call::One { worker, .. } | Call::Core { worker, .. } => {
            (*worker >= n).then_some(StopError::InvalidWorker)
        }
        Call::Two { a, b, .. } => (*a >= n || *b >= n).then_some(StopError::InvalidWorker),
        Call::Cpus { mask, .. } => mask_error(mask),
        Call::Machine { active: Some(m), .. } | Call::Blocking { active: Some(m), .. } => mask_error(m),
        // Unpinned workers belong to no NUMA node.
        Call::Node { .. } => Some(StopError::EmptyMask),
        _ => None,
    }
}

/// Whether the call may find every worker it needs offline.
fn may_be_offline(prog: &Program, call: &Call) -> bool {
    let all = |m: &[usize]| m.iter().all(|w| prog.parkable(*w));
    match call {
        Call::One { worker, .. } | Call::Core { worker, .. } => prog.parkable(*worker),
        Call::Two { a, b, .. } => prog.parkable(*a) || prog.parkable(*b),
        Call::Cpus { mask, .. } => all(mask),
        Call::Machine { active: Some(m), .. } | Call::Blocking { active: Some(m), .. } => all(m),
        _ => false,
    }
}

fn check_stop(
    prog: &Program,
    ctx: &Context,
    call: &Call,
    res: &Result<Vals, StopError>,
) -> Result<(), String> {
    let n = prog.workers;
    let shutdown = prog.has_shutdown();
    if let Call::BlockOnOwn { .. } = call {
        return Ok(()); // Known bug 6: the check is that it returns at all.
    }
    let bad = bad_args(n, call);
    let body = call.body();
    let panics = body.is_some_and(|b| b.panic);
    // Known bug 3's drop bomb may go off inside the stop, where it is caught.
    let bomb = body.is_some_and(|b| b.panicky_capture);
    let allowed = match res {
        Err(StopError::Shutdown) => shutdown,
        Err(e) if bad.is_some() => Some(e) == bad.as_ref(),
        Ok(_) if bad.is_some() => false,
        // Found bug 9, fixed: a stop racing the runtime's drop says
        // Shutdown, never Offline, unless hotplug made a worker offline.
        Err(StopError::Offline) => may_be_offline(prog, call),
        Err(StopError::TimedOut { .. }) => prog.timed(call),
        Err(StopError::Busy) => matches!(call, Call::Cpus { try_only: true, .. }),
        Err(StopError::Panicked(m)) => {
            (panics && m.starts_with("torture: expected panic in f of op"))
                || (bomb && m.starts_with("torture: drop bomb in f of op"))
        }
        Err(_) => false,
        Ok(_) if panics => false,
        Ok(vals) => return check_values(prog, ctx, call, vals),
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("not a legitimate outcome: {res:?}"))
    }
}

/// The values of a successful call: `(worker, worker f ran on)` pairs.
fn check_values(prog: &Program, ctx: &Context, call: &Call, vals: &Vals) -> Result<(), String> {
    let exact = prog.parkable.is_empty() && !prog.has_shutdown();
    let ok = match call {
        Call::One { worker, .. } | Call::Core { worker, .. } => vals == &[(*worker, *worker)],
        Call::Two { a, .. } => vals == &[(*a, *a)],
        Call::Cpus { mask, .. } => {
            let ascending = vals.windows(2).all(|p| p[0].0 < p[1].0);
            let mut want = mask.clone();
            want.sort_unstable();
            want.dedup();
            let keys: Vec<usize> = vals.iter().map(|v| v.0).collect();
            ascending
                && !vals.is_empty()
                && vals.iter().all(|(k, v)| k == v && mask.contains(k))
                && (!exact || keys == want)
        }
        Call::Machine { active, .. } | Call::Blocking { active, .. } => match (vals.as_slice(), active) {
            ([(v, r)], _) if v != r => false,
            ([(v, _)], Some(m)) => m.contains(v) && (!exact || Some(v) == m.iter().min()),
            ([(v, _)], None) => {
                // On the caller's worker, or else the first online one.
                let home = ctx.origin.worker().unwrap_or(0);
                *v < prog.workers && (prog.has_shutdown() || prog.parkable(home) || *v == home)
            }
            _ => false,
        },
        Call::Park(_) | Call::Unpark(_) | Call::ParkOwn | Call::UnparkAfter { .. } => vals.is_empty(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("wrong values: {vals:?}"))
    }
}
