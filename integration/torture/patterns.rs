//! The known-bug patterns whose shape random draws would rarely hit:
//! each builds its contexts (and hogs) and returns the controller steps
//! that must come first. Only used when `TORTURE_KNOWN_BUGS` allows them.

use crate::generate::Gen;
use crate::program::*;
use std::time::Duration;

impl Gen {
    /// Bug 4: a task parks its own worker and keeps running; a stop_machine
    /// from elsewhere may then run f while that task is in user code.
    pub(crate) fn bug4(&mut self, contexts: &mut Vec<Context>) {
        let w = self.parkable[0];
        let park = self.op(Call::ParkOwn, Fate::Await, true);
        let after = park.id;
        let id = contexts.len();
        contexts.push(Context {
            id,
            origin: Origin::SpawnOn(w),
            ops: vec![park],
            hotplug: true,
        });
        let unpark = self.op(Call::UnparkAfter { worker: w, after }, Fate::Await, false);
        contexts.push(Context {
            id: id + 1,
            origin: Origin::Thread,
            ops: vec![unpark],
            hotplug: true,
        });
        let mut ops = Vec::new();
        for _ in 0..3 {
            let f = Body {
                sleep_us: 200,
                ..Body::default()
            };
            ops.push(self.op(
                Call::Machine {
                    active: None,
                    timeout: None,
                    f,
                },
                Fate::Await,
                false,
            ));
        }
        contexts.push(Context {
            id: id + 2,
            origin: Origin::Thread,
            ops,
            hotplug: false,
        });
    }

    /// Bug 5: a stop without timeout holds the stop lock, waiting for a hog
    /// that is released only once a *timed* stop, queued behind it on the
    /// lock, has returned. A timeout that bounds the lock wait ends it.
    pub(crate) fn bug5(&mut self, contexts: &mut Vec<Context>, hogs: &mut Vec<Hog>) -> Vec<Step> {
        let holder = self.op(
            Call::Machine {
                active: None,
                timeout: None,
                f: Body::default(),
            },
            Fate::Await,
            false,
        );
        let f = Body::default();
        let timed = self.op(
            Call::Machine {
                active: None,
                timeout: Some(Duration::from_millis(10)),
                f,
            },
            Fate::Await,
            false,
        );
        let id = contexts.len();
        hogs.push(Hog {
            id: hogs.len(),
            worker: self.r.below(self.n),
            safepoints: false,
            tokio: false,
            after_op: Some(timed.id),
        });
        contexts.push(Context {
            id,
            origin: Origin::Thread,
            ops: vec![holder],
            hotplug: false,
        });
        contexts.push(Context {
            id: id + 1,
            origin: Origin::Thread,
            ops: vec![timed],
            hotplug: false,
        });
        vec![
            Step::StartHog(hogs.len() - 1),
            Step::Spin(1_000),
            Step::Start(id),
            Step::Spin(2_000),
            Step::Start(id + 1),
        ]
    }

    /// Bug 7: two threads park and unpark workers as fast as they can while
    /// the runtime is dropped.
    pub(crate) fn bug7(&mut self, contexts: &mut Vec<Context>) -> Vec<Step> {
        let id = contexts.len();
        for c in [id, id + 1] {
            let mut ops = Vec::new();
            for _ in 0..10 {
                let w = self.r.pick(&self.parkable);
                ops.push(self.op(Call::Park(w), Fate::Await, false));
                ops.push(self.op(Call::Unpark(w), Fate::Await, false));
            }
            contexts.push(Context {
                id: c,
                origin: Origin::Thread,
                ops,
                hotplug: true,
            });
        }
        vec![
            Step::Start(id),
            Step::Start(id + 1),
            Step::Spin(self.r.range(0, 500) as u32),
            Step::Shutdown(None),
        ]
    }

    /// Found bug 10: a park_worker future polled once and dropped while its
    /// worker runs a hog; the next stop_machine must still wait for it.
    pub(crate) fn bug10(&mut self, contexts: &mut Vec<Context>, hogs: &mut Vec<Hog>) -> Vec<Step> {
        let w = self.parkable[0];
        let hog = hogs.len();
        hogs.push(Hog {
            id: hog,
            worker: w,
            safepoints: false,
            tokio: false,
            after_op: None,
        });
        let ops = vec![
            self.op(Call::Park(w), Fate::PollOnce, false),
            self.op(
                Call::Machine {
                    active: None,
                    timeout: None,
                    f: Body::default(),
                },
                Fate::Await,
                false,
            ),
            self.op(Call::Unpark(w), Fate::Await, false),
        ];
        let id = contexts.len();
        contexts.push(Context {
            id,
            origin: Origin::Thread,
            ops,
            hotplug: true,
        });
        // The hog outlives the stop by far, yet is released whatever the
        // runtime does (a fixed runtime may make the stop wait for it).
        vec![
            Step::StartHog(hog),
            Step::Spin(1_000),
            Step::Start(id),
            Step::Spin(20_000),
            Step::Release(hog),
        ]
    }
}
