//! What a torture program is: the runtime's configuration, the contexts that
//! issue calls (tasks of three kinds and plain threads), the never-yielding
//! hogs, and the controller's timeline (start, abort, release, shut down).
//!
//! A program is plain data, generated from a seed by [`crate::generate`]
//! and printed with `{:#?}` when a seed fails. [`Program`]'s helper methods
//! answer what the outcome checks need to know about it ("can this call
//! legitimately see an offline worker?").

use crate::bugs::Bugs;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Program {
    pub seed: u64,
    pub workers: usize,
    /// `Builder::stop_timeout`.
    pub stop_timeout: Option<Duration>,
    pub event_interval: u32,
    /// Workers that hotplug contexts may park (never worker 0).
    pub parkable: Vec<usize>,
    pub contexts: Vec<Context>,
    pub hogs: Vec<Hog>,
    pub timeline: Vec<Step>,
    /// The known-bug patterns this program was allowed to use.
    pub bugs: Bugs,
}

/// Where a context's calls are issued from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A task spawned with `Handle::spawn_on(worker, ..)`.
    SpawnOn(usize),
    /// A `spawn_local` task, spawned by a task on `worker`.
    Local(usize),
    /// A `tokio::spawn`ed task, spawned by a task on `worker`.
    Tokio(usize),
    /// A plain std thread outside the runtime.
    Thread,
}

impl Origin {
    /// The worker a task context runs on.
    pub fn worker(self) -> Option<usize> {
        match self {
            Origin::SpawnOn(w) | Origin::Local(w) | Origin::Tokio(w) => Some(w),
            Origin::Thread => None,
        }
    }
}

/// A sequence of calls issued one after another from one origin.
#[derive(Debug, Clone)]
pub struct Context {
    pub id: usize,
    pub origin: Origin,
    pub ops: Vec<Op>,
    /// Parks and unparks workers; the default-mode shutdown waits for it.
    pub hotplug: bool,
}

#[derive(Debug, Clone)]
pub struct Op {
    /// Unique in the program: names the op in reports.
    pub id: usize,
    pub call: Call,
    pub fate: Fate,
    /// Spin iterations of "user code" (probe raised) before the call.
    pub spin: u32,
    /// Use the free function (`stop_machine::stop_one_cpu`) rather than the
    /// `Handle` method; tasks only.
    pub free_fn: bool,
}

#[derive(Debug, Clone)]
pub enum Call {
    One {
        worker: usize,
        f: Body,
    },
    Nowait {
        worker: usize,
        f: Body,
    },
    Two {
        a: usize,
        b: usize,
        f: Body,
    },
    Cpus {
        mask: Vec<usize>,
        try_only: bool,
        f: Body,
    },
    Machine {
        active: Option<Vec<usize>>,
        timeout: Option<Duration>,
        f: Body,
    },
    /// `stop_machine_blocking`: from a thread, or inline in a task's poll.
    Blocking {
        active: Option<Vec<usize>>,
        f: Body,
    },
    Core {
        worker: usize,
        f: Body,
    },
    Node {
        node: usize,
        f: Body,
    },
    Park(usize),
    Unpark(usize),
    Child(Child),
    Yield,
    /// Known bug 4: `park_worker` on the caller's own worker, then a long
    /// synchronous section; a helper context unparks it.
    ParkOwn,
    /// Known bug 4's helper: waits until op `after` has parked `worker`.
    UnparkAfter {
        worker: usize,
        after: usize,
    },
    /// Known bug 6: `futures::executor::block_on(stop_one_cpu(own, f))` in a task.
    BlockOnOwn {
        f: Body,
    },
}

/// What a stop function does besides checking the probe.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// Panics after its checks (the call must report `Panicked`).
    pub panic: bool,
    /// Sleeps this long inside the stop, to widen race windows (workload).
    pub sleep_us: u32,
    /// Requests a stop from inside the stop: must fail with `Nested`.
    pub nested: Option<Nested>,
    /// Queues a `stop_one_cpu_nowait` to this worker from inside the stop.
    pub nowait_to: Option<usize>,
    /// Known bug 3: captures a value whose `Drop` panics.
    pub panicky_capture: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Nested {
    Machine,
    Cpus,
    Two,
    One,
    Park,
    Blocking,
}

/// How the caller treats the future of its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Await,
    /// `futures::future::select` against a ready future: one poll, then drop.
    SelectReady,
    /// One poll with a no-op waker, then drop.
    PollOnce,
    /// `tokio::time::timeout` (tasks only).
    Timeout(Duration),
}

/// A child task spawned by an op, and what its parent does with it.
#[derive(Debug, Clone)]
pub struct Child {
    pub place: ChildPlace,
    pub spin: u32,
    pub yields: bool,
    pub panic: bool,
    /// Drops a guard whose `Drop` panics inside the task's poll (caught as
    /// the task's panic); safe by construction.
    pub bomb_in_poll: bool,
    /// Known bug 2: holds a panicking guard across an await that never ends.
    pub bomb_held: bool,
    /// Known bug 2: returns a value whose `Drop` panics.
    pub bomb_output: bool,
    pub handle: ChildHandle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildPlace {
    On(usize),
    Local,
    Tokio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildHandle {
    Await,
    Detach,
    Abort,
}

/// A task that never yields until released.
#[derive(Debug, Clone)]
pub struct Hog {
    pub id: usize,
    pub worker: usize,
    /// Calls `safepoint()` in its loop.
    pub safepoints: bool,
    /// A `tokio::spawn`ed task rather than one of ours.
    pub tokio: bool,
    /// Known bug 5: released only once op `n` has ended (instead of by the
    /// controller's timeline).
    pub after_op: Option<usize>,
}

/// The controller's timeline. The controller never waits on the runtime
/// while it walks it, so every hog is released whatever the runtime does.
#[derive(Debug, Clone)]
pub enum Step {
    Start(usize),
    StartHog(usize),
    Release(usize),
    Abort(usize),
    /// Shuts the runtime down on a thread of its own: drops it (`None`), or
    /// calls `shutdown_timeout` (which detaches workers still busy then).
    Shutdown(Option<Duration>),
    /// Spins this many microseconds (workload: shapes the race, decides
    /// nothing).
    Spin(u32),
}

impl Program {
    pub fn has_shutdown(&self) -> bool {
        self.timeline.iter().any(|s| matches!(s, Step::Shutdown(_)))
    }

    pub fn parkable(&self, w: usize) -> bool {
        self.parkable.contains(&w)
    }

    pub fn ops(&self) -> impl Iterator<Item = (&Context, &Op)> {
        self.contexts
            .iter()
            .flat_map(|c| c.ops.iter().map(move |o| (c, o)))
    }

    /// Whether the context may be aborted by a timeline step.
    pub fn aborted(&self, ctx: usize) -> bool {
        self.timeline
            .iter()
            .any(|s| matches!(s, Step::Abort(c) if *c == ctx))
    }

    /// Whether the builder's stop timeout applies to this call.
    pub fn timed(&self, call: &Call) -> bool {
        match call {
            Call::Machine { timeout: Some(_), .. } => true,
            Call::Machine { .. } | Call::Blocking { .. } | Call::Two { .. } => self.stop_timeout.is_some(),
            Call::Core { .. } | Call::Node { .. } => self.stop_timeout.is_some(),
            _ => false,
        }
    }
}

impl Call {
    /// Whether dropping this call's future mid-call may set off a drop
    /// bomb: the last reference to a stop function's panicking capture
    /// (known bug 3's pattern), or a child holding one, dropped when it
    /// is cancelled (known bug 2's).
    pub fn may_bomb_when_cancelled(&self) -> bool {
        match self {
            Call::Child(c) => c.bomb_held,
            call => call.body().is_some_and(|b| b.panicky_capture),
        }
    }

    /// The stop function, for calls that have one.
    pub fn body(&self) -> Option<&Body> {
        match self {
            Call::One { f, .. } | Call::Nowait { f, .. } | Call::Two { f, .. } => Some(f),
            Call::Cpus { f, .. } | Call::Machine { f, .. } | Call::Blocking { f, .. } => Some(f),
            Call::Core { f, .. } | Call::Node { f, .. } | Call::BlockOnOwn { f } => Some(f),
            _ => None,
        }
    }

    /// A short name for reports and the probe.
    pub fn name(&self) -> &'static str {
        match self {
            Call::One { .. } => "stop_one_cpu",
            Call::Nowait { .. } => "stop_one_cpu_nowait",
            Call::Two { .. } => "stop_two_cpus",
            Call::Cpus { try_only: false, .. } => "stop_cpus",
            Call::Cpus { try_only: true, .. } => "try_stop_cpus",
            Call::Machine { timeout: None, .. } => "stop_machine",
            Call::Machine { .. } => "stop_machine_timeout",
            Call::Blocking { .. } => "stop_machine_blocking",
            Call::Core { .. } => "stop_core",
            Call::Node { .. } => "stop_node",
            Call::Park(_) => "park_worker",
            Call::Unpark(_) => "unpark_worker",
            Call::Child(_) => "spawn child",
            Call::Yield => "yield",
            Call::ParkOwn => "park_worker(own)",
            Call::UnparkAfter { .. } => "unpark_worker(after park_own)",
            Call::BlockOnOwn { .. } => "block_on(stop_one_cpu(own))",
        }
    }
}
