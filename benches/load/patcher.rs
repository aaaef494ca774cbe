//! The patcher: a task that patches the served config under `stop_machine`
//! at a fixed interval, and records how long each stop took, split at the
//! two timestamps its function takes.

use crate::schedstat::Watch;
use crate::service;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stop_machine::Handle;
use tokio::time::MissedTickBehavior;

/// Every stop's timings, one column per figure, in nanoseconds.
#[derive(Default, Debug)]
pub struct Stops {
    /// When the stop was requested (wall clock: the report keeps the stops
    /// made while wrk ran).
    pub at_unix_ns: Vec<u64>,
    /// The call, to `f` starting: the time to stop every worker.
    pub request_to_stopped_ns: Vec<u64>,
    /// `f` itself: the world is stopped.
    pub stopped_ns: Vec<u64>,
    /// `f` ending, to the caller running again after its `.await`.
    pub resume_ns: Vec<u64>,
    /// The call, to the caller running again.
    pub total_ns: Vec<u64>,
}

/// What the patcher has recorded so far.
#[derive(Default)]
pub struct Recorder {
    stops: Mutex<Stops>,
    schedstat: Mutex<Option<Watch>>,
    errors: AtomicU64,
    version: AtomicU64,
}

impl Recorder {
    /// The stops so far, taken out of the recorder.
    pub fn take(&self) -> Stops {
        std::mem::take(&mut *self.stops.lock().unwrap())
    }

    /// The `--schedstat` summary, if it watched.
    pub fn schedstat(&self) -> Option<String> {
        self.schedstat.lock().unwrap().as_ref().map(Watch::summary)
    }

    /// Stops that failed.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The version last patched in.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().try_into().unwrap_or(u64::MAX)
}

/// Patches version 1, 2, 3, … into the config every `every`, each time with
/// `h.stop_machine(f, None)` from this task (so `f` runs on this task's
/// worker), forever. Run it as a task of `h`'s runtime on worker 0. With
/// `schedstat`, classifies each stop by where the other workers were
/// ([`Watch`]).
pub async fn run(h: Handle, every: Duration, recorder: &Recorder, schedstat: bool) {
    if schedstat {
        match Watch::open(&h, 0).await {
            Ok(watch) => *recorder.schedstat.lock().unwrap() = Some(watch),
            Err(e) => eprintln!("--schedstat: {e}"),
        }
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    for version in 1.. {
        tick.tick().await;
        let before = recorder.schedstat.lock().unwrap().as_mut().map(Watch::before);
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let called = Instant::now();
        let stopped = h
            .stop_machine(
                move |_| {
                    let started = Instant::now();
                    // SAFETY: this is stop_machine's function and `active` is
                    // `None`: it runs on one worker while every other worker
                    // waits in its stopper.
                    unsafe { service::patch(version) };
                    (started, Instant::now())
                },
                None,
            )
            .await;
        let resumed = Instant::now();
        match stopped {
            Ok((started, ended)) => {
                if let (Some(before), Some(watch)) = (before, recorder.schedstat.lock().unwrap().as_mut()) {
                    watch.after(before, ns(started - called));
                }
                recorder.version.store(version, Ordering::Relaxed);
                let mut stops = recorder.stops.lock().unwrap();
                stops.at_unix_ns.push(ns(at));
                stops.request_to_stopped_ns.push(ns(started - called));
                stops.stopped_ns.push(ns(ended - started));
                stops.resume_ns.push(ns(resumed - ended));
                stops.total_ns.push(ns(resumed - called));
            }
            Err(e) => {
                eprintln!("stop_machine: {e}");
                recorder.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Instead of patching: a grace period (`h.synchronize()`) every `every`,
/// recorded as a stop whose whole time is "request to stopped" (nobody
/// stops; the figure is how long the caller waits), for issue 13's
/// `synchronize` under load.
pub async fn run_grace(h: Handle, every: Duration, recorder: &Recorder) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let called = Instant::now();
        h.synchronize().await;
        let total = ns(called.elapsed());
        let mut stops = recorder.stops.lock().unwrap();
        stops.at_unix_ns.push(ns(at));
        stops.request_to_stopped_ns.push(total);
        stops.stopped_ns.push(0);
        stops.resume_ns.push(0);
        stops.total_ns.push(total);
    }
}
