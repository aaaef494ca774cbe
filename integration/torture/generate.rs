//! The generator: seed -> [`Program`].
//!
//! Besides drawing calls, it keeps programs *terminating by construction*
//! in default mode, steering around two kinds of hang:
//!
//! - the known bugs (see `bugs.rs`), unless the switch allows their pattern;
//! - hangs that the documentation says are the caller's fault: a context
//!   that waits for a worker it has itself parked, or a stop whose f waits
//!   for a task. Parks are paired with a later awaited unpark in the same
//!   context, hotplug contexts are never aborted and spawn no children, and
//!   worker 0 is never parked.
//!
//! Blocking calls in a task (`stop_machine_blocking`) are kept off workers
//! that are parked (bug 1) or that host a hotplug task (whose caller future
//! holds the stop lock across an await: the same deadlock, see torture.md).

use crate::bugs::Bugs;
use crate::program::*;
use crate::rng::Rng;
use std::time::Duration;

const MS: fn(u64) -> Duration = Duration::from_millis;

pub(crate) struct Gen {
    pub(crate) r: Rng,
    pub(crate) n: usize,
    bugs: Bugs,
    pub(crate) parkable: Vec<usize>,
    /// The worker a hotplug task context runs on, if any.
    hotplug_worker: Option<usize>,
    next_op: usize,
}

pub fn generate(seed: u64, bugs: Bugs) -> Program {
    let mut r = Rng::new(seed);
    let n = r.range(2, 4);
    let stop_timeout = if bugs.has(8) && r.chance(25) {
        Some(Duration::MAX)
    } else if r.chance(40) {
        Some(r.pick(&[MS(1), MS(20), MS(2_000)]))
    } else {
        None
    };
    let event_interval = r.pick(&[1, 7, 61]);
    let bug4 = bugs.has(4) && r.chance(30);
    // At most one known-bug pattern with a fixed prelude of steps.
    let preludes: Vec<u8> = [5, 7, 10].into_iter().filter(|b| bugs.has(*b)).collect();
    let prelude = (!preludes.is_empty() && r.chance(30)).then(|| r.pick(&preludes));
    let mut parkable = Vec::new();
    if bug4 || matches!(prelude, Some(7 | 10)) || r.chance(40) {
        for _ in 0..r.range(1, 2.min(n - 1)) {
            let w = r.range(1, n - 1);
            if !parkable.contains(&w) {
                parkable.push(w);
            }
        }
    }
    let mut g = Gen {
        r,
        n,
        bugs,
        parkable,
        hotplug_worker: None,
        next_op: 0,
    };
    let mut contexts = Vec::new();
    let mut hogs = Vec::new();
    let mut first = Vec::new();
    if !g.parkable.is_empty() {
        let ctx = g.hotplug_context(contexts.len());
        contexts.push(ctx);
    }
    for _ in 0..g.r.range(1, 4) {
        let ctx = g.context(contexts.len());
        contexts.push(ctx);
    }
    if bug4 {
        g.bug4(&mut contexts);
    }
    match prelude {
        Some(5) => first = g.bug5(&mut contexts, &mut hogs),
        Some(7) => first = g.bug7(&mut contexts),
        Some(10) => first = g.bug10(&mut contexts, &mut hogs),
        _ => {}
    }
    for _ in 0..g.r.weighted(&[60, 30, 10]) {
        hogs.push(Hog {
            id: hogs.len(),
            worker: g.r.below(n),
            safepoints: g.r.chance(50),
            tokio: g.r.chance(30),
            after_op: None,
        });
    }
    let timeline = g.timeline(&contexts, &hogs, first);
    Program {
        seed,
        workers: n,
        stop_timeout,
        event_interval,
        parkable: g.parkable.clone(),
        contexts,
        hogs,
        timeline,
        bugs,
    }
}

impl Gen {
    pub(crate) fn op(&mut self, call: Call, fate: Fate, task: bool) -> Op {
        self.next_op += 1;
        Op {
            id: self.next_op - 1,
            call,
            fate,
            spin: if self.r.chance(50) {
                0
            } else {
                self.r.range(1, 3_000) as u32
            },
            free_fn: task && self.r.chance(40),
        }
    }

    /// A worker id, now and then one out of range.
    fn worker(&mut self) -> usize {
        if self.r.chance(3) {
            self.n
        } else {
            self.r.below(self.n)
        }
    }

    fn mask(&mut self) -> Vec<usize> {
        let mut m = self.r.subset(self.n);
        if m.is_empty() && self.r.chance(80) {
            m.push(self.r.below(self.n));
        }
        if self.r.chance(3) {
            m.push(self.n);
        }
        m
    }

    fn body(&mut self) -> Body {
        Body {
            panic: self.r.chance(10),
            sleep_us: if self.r.chance(70) {
                0
            } else {
                self.r.range(1, 300) as u32
            },
            nested: self.r.chance(8).then(|| {
                let all = [
                    Nested::Machine,
                    Nested::Cpus,
                    Nested::Two,
                    Nested::One,
                    Nested::Park,
                    Nested::Blocking,
                ];
                self.r.pick(&all)
            }),
            nowait_to: self.r.chance(8).then(|| self.worker()),
            panicky_capture: self.bugs.has(3) && self.r.chance(15),
        }
    }

    fn fate(&mut self, task: bool) -> Fate {
        match self.r.weighted(&[70, 10, 10, if task { 10 } else { 0 }]) {
            0 => Fate::Await,
            1 => Fate::SelectReady,
            2 => Fate::PollOnce,
            _ => Fate::Timeout(Duration::from_micros(self.r.range(1, 2_000) as u64)),
        }
    }

    fn machine_timeout(&mut self) -> Option<Duration> {
        if self.bugs.has(8) && self.r.chance(10) {
            return Some(Duration::MAX);
        }
        self.r
            .chance(40)
            .then(|| self.r.pick(&[Duration::ZERO, MS(1), MS(10), MS(1_000)]))
    }

    /// Whether a task on `w` may block its worker in `stop_machine_blocking`.
    fn may_block(&self, w: usize) -> bool {
        self.bugs.has(1) || (!self.parkable.contains(&w) && self.hotplug_worker != Some(w))
    }

    /// One stop call, as issued from `origin`.
    fn stop_call(&mut self, origin: Origin) -> Call {
        let blocking = origin.worker().is_none_or(|w| self.may_block(w));
        let weights = [10, 6, 10, 10, 6, 14, if blocking { 8 } else { 0 }, 5, 2];
        match self.r.weighted(&weights) {
            0 => Call::One {
                worker: self.worker(),
                f: self.body(),
            },
            1 => Call::Nowait {
                worker: self.worker(),
                f: self.body(),
            },
            2 => Call::Two {
                a: self.worker(),
                b: self.r.below(self.n),
                f: self.body(),
            },
            3 => Call::Cpus {
                mask: self.mask(),
                try_only: false,
                f: self.body(),
            },
            4 => Call::Cpus {
                mask: self.mask(),
                try_only: true,
                f: self.body(),
            },
            5 => {
                let active = self.r.chance(50).then(|| self.mask());
                Call::Machine {
                    active,
                    timeout: self.machine_timeout(),
                    f: self.body(),
                }
            }
            6 => Call::Blocking {
                active: self.r.chance(50).then(|| self.mask()),
                f: self.body(),
            },
            7 => Call::Core {
                worker: self.worker(),
                f: self.body(),
            },
            _ => Call::Node {
                node: self.r.below(2),
                f: self.body(),
            },
        }
    }

    fn child(&mut self, origin: Origin) -> Call {
        let task = origin != Origin::Thread;
        let place = match self
            .r
            .weighted(&[60, if task { 20 } else { 0 }, if task { 20 } else { 0 }])
        {
            0 => ChildPlace::On(self.r.below(self.n)),
            1 => ChildPlace::Local,
            _ => ChildPlace::Tokio,
        };
        let mut c = Child {
            place,
            spin: self.r.range(0, 2_000) as u32,
            yields: self.r.chance(50),
            panic: self.r.chance(15),
            bomb_in_poll: self.r.chance(10),
            bomb_held: false,
            bomb_output: false,
            handle: self
                .r
                .pick(&[ChildHandle::Await, ChildHandle::Detach, ChildHandle::Abort]),
        };
        if self.bugs.has(2) && self.r.chance(30) {
            // Each of the three shapes of the bug.
            match self.r.below(3) {
                0 => (c.bomb_held, c.handle) = (true, ChildHandle::Abort),
                1 => (c.bomb_held, c.handle) = (true, ChildHandle::Detach),
                _ => (c.bomb_output, c.handle, c.panic) = (true, ChildHandle::Detach, false),
            }
        }
        Call::Child(c)
    }

    fn origin(&mut self, allow_parkable: bool) -> Origin {
        let w = loop {
            let w = self.r.below(self.n);
            if allow_parkable || !self.parkable.contains(&w) {
                break w;
            }
        };
        match self.r.weighted(&[35, 35, 15, 15]) {
            0 => Origin::Thread,
            1 => Origin::SpawnOn(w),
            2 => Origin::Local(w),
            _ => Origin::Tokio(w),
        }
    }

    fn context(&mut self, id: usize) -> Context {
        let mut origin = self.origin(true);
        if self.bugs.has(1) && !self.parkable.is_empty() && self.r.chance(30) {
            // Bug 1's sharpest shape: blocking stops on a worker that is parked.
            origin = Origin::SpawnOn(self.r.pick(&self.parkable));
        }
        let task = origin != Origin::Thread;
        let mut ops = Vec::new();
        for _ in 0..self.r.range(1, 5) {
            let (call, fate) = match self.r.weighted(&[80, 10, if task { 6 } else { 0 }, 0]) {
                0 => (self.stop_call(origin), self.fate(task)),
                1 => (self.child(origin), Fate::Await),
                _ => (Call::Yield, Fate::Await),
            };
            ops.push(self.op(call, fate, task));
            if task && self.bugs.has(6) && self.r.chance(10) {
                let f = self.body();
                ops.push(self.op(Call::BlockOnOwn { f }, Fate::Await, task));
            }
        }
        Context {
            id,
            origin,
            ops,
            hotplug: false,
        }
    }

    /// Park/unpark pairs, each with a few stops in between.
    fn hotplug_context(&mut self, id: usize) -> Context {
        let origin = self.origin(false);
        self.hotplug_worker = origin.worker();
        let task = origin != Origin::Thread;
        let mut ops = Vec::new();
        for _ in 0..self.r.range(1, 3) {
            let w = self.r.pick(&self.parkable);
            // Found bug 10: a park_worker future dropped before its ack.
            let fate = if self.bugs.has(10) {
                self.fate(task)
            } else {
                Fate::Await
            };
            ops.push(self.op(Call::Park(w), fate, task));
            for _ in 0..self.r.range(0, 2) {
                let (call, fate) = (self.stop_call(origin), self.fate(task));
                ops.push(self.op(call, fate, task));
            }
            // Never dropped: a worker left offline would strand its tasks.
            ops.push(self.op(Call::Unpark(w), Fate::Await, task));
        }
        Context {
            id,
            origin,
            ops,
            hotplug: true,
        }
    }

    /// The controller's steps: `first` (a known-bug pattern's fixed
    /// prelude), then every other start in random order, with hog releases,
    /// aborts and at most one shutdown mixed in.
    fn timeline(&mut self, contexts: &[Context], hogs: &[Hog], first: Vec<Step>) -> Vec<Step> {
        let placed = |s: &Step| {
            first.iter().any(|f| match (f, s) {
                (Step::Start(a), Step::Start(b)) | (Step::StartHog(a), Step::StartHog(b)) => a == b,
                _ => false,
            })
        };
        let mut items: Vec<Step> = (0..contexts.len()).map(Step::Start).collect();
        items.extend(hogs.iter().map(|h| Step::StartHog(h.id)));
        items.retain(|s| !placed(s));
        for i in (1..items.len()).rev() {
            items.swap(i, self.r.below(i + 1));
        }
        let mut steps = first;
        for item in items {
            if self.r.chance(50) {
                steps.push(Step::Spin(self.r.range(1, 300) as u32));
            }
            steps.push(item);
        }
        let released = |h: &Hog| steps.iter().any(|s| matches!(s, Step::Release(x) if *x == h.id));
        let unreleased: Vec<usize> = hogs
            .iter()
            .filter(|h| h.after_op.is_none() && !released(h))
            .map(|h| h.id)
            .collect();
        for h in unreleased.iter().map(|h| &hogs[*h]) {
            let at = steps
                .iter()
                .position(|s| matches!(s, Step::StartHog(x) if *x == h.id))
                .unwrap();
            let to = self.r.range(at + 1, steps.len());
            steps.insert(to, Step::Release(h.id));
            steps.insert(to, Step::Spin(self.r.range(100, 2_000) as u32));
        }
        for c in contexts {
            if c.hotplug || c.origin == Origin::Thread || !self.r.chance(15) {
                continue;
            }
            let at = steps
                .iter()
                .position(|s| matches!(s, Step::Start(x) if *x == c.id))
                .unwrap();
            let to = self.r.range(at + 1, steps.len());
            steps.insert(to, Step::Abort(c.id));
        }
        let bug5 = hogs.iter().any(|h| h.after_op.is_some());
        let bug7 = self.bugs.has(7) && contexts.iter().any(|c| c.hotplug) && self.r.chance(50);
        let has = steps.iter().any(|s| matches!(s, Step::Shutdown(_)));
        if !has && !bug5 && (bug7 || self.r.chance(25)) {
            let to = self.r.range(0, steps.len());
            let how = self
                .r
                .chance(30)
                .then(|| self.r.pick(&[Duration::ZERO, MS(5), MS(5_000)]));
            steps.insert(to, Step::Shutdown(how));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::generate;
    use crate::bugs::Bugs;

    #[test]
    fn same_seed_same_program() {
        for seed in 0..200 {
            for bugs in [Bugs::NONE, Bugs::all()] {
                let (a, b) = (generate(seed, bugs), generate(seed, bugs));
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
            }
        }
    }
}
