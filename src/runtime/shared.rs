//! Everything the workers of one runtime share.

use super::config::Config;
use super::priority::Cause;
use super::spawn_policy::SpawnPolicy;
use super::worker::Worker;
use crate::error::StopError;
use crate::rcu::defer::Batch;
use crate::rcu::grace::GracePeriods;
use crate::stats::Recorder;
use crate::stop::deadline::Watchdog;
use crate::stop::lock::StopLock;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex};
use crate::topology::WorkerPlacement;

/// The state of one runtime, behind every [`Handle`](crate::Handle).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) workers: Box<[Arc<Worker>]>,
    /// Serializes stop_cpus, stop_machine and hotplug (the kernel's
    /// `stop_cpus_mutex` plus `cpus_read_lock`): the set of online workers
    /// cannot change while a stop runs.
    pub(crate) stop_lock: Arc<StopLock>,
    /// Held while the works of one multi-worker request are queued, so that
    /// any two such requests appear in the same order on every worker they
    /// share and can never wait for each other in a cycle. Hotplug changes
    /// a worker's state under it too.
    pub(crate) queue_lock: Mutex<()>,
    /// Bounds timed stops.
    pub(crate) watchdog: Watchdog,
    next_worker: AtomicUsize,
    pub(crate) placement: WorkerPlacement,
    pub(crate) config: Config,
    /// Set when the runtime begins to shut down.
    pub(crate) shutdown: AtomicBool,
    /// Stop-a-lot mode: one of its stops is on its way.
    pub(crate) stop_a_lot_inflight: AtomicBool,
    /// What every stop cost.
    pub(crate) stats: Arc<Recorder>,
    /// Whether late participants of a stop get their OS priority raised
    /// (asked for, and allowed on at least one worker).
    pub(crate) boosting: AtomicBool,
    /// RCU grace periods (`synchronize`). Its own `Arc`: the driver's park
    /// hook holds it, and the driver lives as long as the worker's loop
    /// waker, which the worker keeps, so holding `Shared` there would keep
    /// the runtime (and the values waiting in `deferred`) alive forever.
    pub(crate) grace: Arc<GracePeriods>,
    /// Values waiting for a grace period to be dropped (`defer`).
    pub(crate) deferred: Mutex<Batch>,
}

impl Shared {
    /// Drops back every worker a grace period raised: the calling worker
    /// will not be running to drop them back at the end of their window (it
    /// parks, goes offline or exits), and one of them may be in a poll that
    /// never yields. A worker still late is raised again by one that runs.
    pub(crate) fn lower_grace_raises(&self) {
        self.lower_grace_raises_of(0..self.workers.len());
    }

    /// Drops back `workers`, where a grace period raised them.
    pub(crate) fn lower_grace_raises_of(&self, workers: impl IntoIterator<Item = usize>) {
        for w in workers {
            self.workers[w].priority.restore_if_raised(Cause::Grace);
        }
    }

    pub(crate) fn new(workers: Vec<Arc<Worker>>, placement: WorkerPlacement, config: Config) -> Shared {
        let stats = Arc::new(Recorder::new(workers.len()));
        let grace = Arc::new(GracePeriods::new(workers.len()));
        Shared {
            workers: workers.into_boxed_slice(),
            stop_lock: Arc::new(StopLock::new()),
            queue_lock: Mutex::new(()),
            watchdog: Watchdog::default(),
            next_worker: AtomicUsize::new(0),
            placement,
            config,
            shutdown: AtomicBool::new(false),
            stop_a_lot_inflight: AtomicBool::new(false),
            stats,
            boosting: AtomicBool::new(false),
            grace,
            deferred: Mutex::new(Vec::new()),
        }
    }

    /// The next worker in turn, skipping offline ones (their tasks would wait
    /// until they are back); any worker when all are offline.
    pub(crate) fn next_online_worker(&self) -> usize {
        let n = self.workers.len();
        let start = self.next_worker.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|w| self.workers[*w].is_online())
            .unwrap_or(start % n)
    }

    /// The worker a task spawned from worker `here` goes to, or from
    /// outside the runtime (`None`): the online workers in turn.
    pub(crate) fn place(&self, here: Option<usize>) -> usize {
        let Some(here) = here else {
            return self.next_online_worker();
        };
        match self.config.spawn_policy {
            SpawnPolicy::Local => here,
            SpawnPolicy::RoundRobin => self.next_online_worker(),
            // Fewest live tasks; ties stay here, then go to the lowest id.
            SpawnPolicy::LeastLoaded => (0..self.workers.len())
                .filter(|w| *w == here || self.workers[*w].is_online())
                .min_by_key(|w| (self.workers[*w].live_tasks_hint(), *w != here))
                .unwrap_or(here),
        }
    }

    /// Whether the runtime has begun to shut down.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// What a stop that found a worker (or every worker) refusing reports:
    /// `why`, unless the runtime has begun to shut down, which is then the
    /// real reason. The drop closes stoppers without the stop lock, so a
    /// stop racing it may see a worker that was offline, or none online.
    pub(crate) fn refused(&self, why: StopError) -> StopError {
        match why {
            StopError::Offline if self.is_shut_down() => StopError::Shutdown,
            why => why,
        }
    }
}
