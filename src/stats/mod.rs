//! What every stop cost, where: counters and latency histograms of the
//! three timings of each stop, by kind and by worker.

mod latency;

pub use latency::Latency;

use crate::sync::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The primitive a stop was requested with.
///
/// The discriminants follow [`StopKind::ALL`]: a kind's statistics live at
/// `kind as usize`.
///
/// # Examples
///
/// ```
/// use stop_machine::StopKind;
///
/// assert_eq!(StopKind::Machine.name(), "machine");
/// assert_eq!(StopKind::ALL.len(), 7);
/// assert_eq!(StopKind::ALL[StopKind::Node as usize], StopKind::Node);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StopKind {
    /// `stop_one_cpu`.
    One,
    /// `stop_one_cpu_nowait`.
    Nowait,
    /// `stop_two_cpus`.
    Two,
    /// `stop_cpus`, `try_stop_cpus`.
    Cpus,
    /// `stop_core`.
    Core,
    /// `stop_node`.
    Node,
    /// `stop_machine` and its blocking and timeout variants.
    Machine,
}

impl StopKind {
    /// Every kind, in table order (which is also declaration order).
    ///
    /// # Examples
    ///
    /// ```
    /// let names: Vec<_> = stop_machine::StopKind::ALL.iter().map(|k| k.name()).collect();
    /// assert_eq!(names, ["one", "nowait", "two", "cpus", "core", "node", "machine"]);
    /// ```
    pub const ALL: [StopKind; 7] = [
        StopKind::One,
        StopKind::Nowait,
        StopKind::Two,
        StopKind::Cpus,
        StopKind::Core,
        StopKind::Node,
        StopKind::Machine,
    ];

    /// A short name for tables and logs.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stop_machine::StopKind::Cpus.name(), "cpus");
    /// assert_eq!(stop_machine::StopKind::Nowait.name(), "nowait");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            StopKind::One => "one",
            StopKind::Nowait => "nowait",
            StopKind::Two => "two",
            StopKind::Cpus => "cpus",
            StopKind::Core => "core",
            StopKind::Node => "node",
            StopKind::Machine => "machine",
        }
    }
}

/// The stops of one kind.
///
/// - `time_to_stop`: from the request until every worker was in its
///   stopper (for multi-worker stops: acknowledged DISABLE_IRQ);
/// - `time_stopped`: the stop function itself (RUN);
/// - `time_to_restart`: from the end of RUN (EXIT) until the last worker
///   left its stopper and went back to its tasks.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
/// futures::executor::block_on(rt.handle().stop_one_cpu(0, || ())).unwrap();
/// let one = rt.handle().stats().kind(stop_machine::StopKind::One).clone();
/// assert_eq!((one.count, one.failed), (1, 0));
/// ```
#[derive(Clone, Debug)]
pub struct KindStats {
    /// Stops that ran their function.
    pub count: u64,
    /// Stops that ended in an error (the function panicked, timed out, ...).
    pub failed: u64,
    /// Of the failed ones, those abandoned at their deadline
    /// ([`StopError::TimedOut`](crate::StopError::TimedOut)).
    pub timed_out: u64,
    /// Request until all stopped.
    pub time_to_stop: Latency,
    /// The function's run.
    pub time_stopped: Latency,
    /// EXIT until every worker polls tasks again.
    pub time_to_restart: Latency,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            count: 0,
            failed: 0,
            timed_out: 0,
            time_to_stop: Latency::new(),
            time_stopped: Latency::new(),
            time_to_restart: Latency::new(),
        }
    }
}

/// One worker's part in the stops.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// rt.handle().stop_machine_blocking(|_| (), Some(&stop_machine::WorkerMask::full(2))).unwrap();
/// assert_eq!(rt.handle().stats().worker(1).unwrap().stops, 1);
/// ```
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Stops this worker took part in (claimed while idle included).
    pub stops: u64,
    /// Stops that counted it as stopped while it slept, without a wake-up.
    pub claimed: u64,
    /// From each request until this worker was in its stopper.
    pub time_to_stop: Latency,
    /// From the end of each stop's function (EXIT) until this worker left
    /// its stopper and went back to its tasks.
    pub time_to_restart: Latency,
}

/// A snapshot of a runtime's stop statistics: [`Handle::stats`].
///
/// `Display` prints a compact table of count, p50, p99 and max of each
/// timing by kind.
///
/// [`Handle::stats`]: crate::Handle::stats
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// rt.handle().stop_machine_blocking(|_| (), None).unwrap();
/// let stats = rt.handle().stats();
/// assert_eq!(stats.kind(stop_machine::StopKind::Machine).count, 1);
/// println!("{stats}");
/// ```
#[derive(Clone, Debug)]
pub struct Stats {
    kinds: Vec<KindStats>,
    workers: Vec<WorkerStats>,
    boosts: u64,
}

impl Stats {
    /// How often a late worker's OS priority was raised: a stop's straggler
    /// for the rest of the stop, or a worker a grace period waited for too
    /// long ([`Builder::boost_stragglers`](crate::Builder::boost_stragglers)).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// rt.handle().stop_machine_blocking(|_| (), None).unwrap();
    /// let boosts = rt.handle().stats().boosts();
    /// assert!(boosts <= 1, "at most the one other worker");
    /// ```
    pub fn boosts(&self) -> u64 {
        self.boosts
    }

    /// The stops of kind `kind`.
    ///
    /// # Examples
    ///
    /// See [`Stats`].
    pub fn kind(&self, kind: StopKind) -> &KindStats {
        &self.kinds[kind as usize]
    }

    /// Worker `worker`'s part, if it exists.
    ///
    /// # Examples
    ///
    /// See [`WorkerStats`].
    pub fn worker(&self, worker: usize) -> Option<&WorkerStats> {
        self.workers.get(worker)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>7} {:>6} | {:>27} | {:>27} | {:>27}",
            "kind", "count", "failed", "to stop p50/p99/max", "stopped p50/p99/max", "restart p50/p99/max"
        )?;
        let cell = |l: &Latency| format!("{:?}/{:?}/{:?}", l.p50(), l.p99(), l.max());
        for kind in StopKind::ALL {
            let k = self.kind(kind);
            if k.count + k.failed == 0 {
                continue;
            }
            writeln!(
                f,
                "{:<8} {:>7} {:>6} | {:>27} | {:>27} | {:>27}",
                kind.name(),
                k.count,
                k.failed,
                cell(&k.time_to_stop),
                cell(&k.time_stopped),
                cell(&k.time_to_restart)
            )?;
        }
        Ok(())
    }
}

/// The timings of one finished stop, as measured by its coordinator.
pub(crate) struct Measured {
    pub(crate) kind: StopKind,
    pub(crate) ok: bool,
    /// Failed by its deadline.
    pub(crate) timed_out: bool,
    pub(crate) to_stop: Duration,
    pub(crate) stopped: Duration,
    pub(crate) restart: Duration,
    /// Each participant's time to reach its stopper; claimed ones at zero.
    pub(crate) arrivals: Vec<(usize, Duration)>,
    /// Each participant's time from EXIT to leaving its stopper.
    pub(crate) restarts: Vec<(usize, Duration)>,
    pub(crate) claimed: Vec<usize>,
}

impl Measured {
    /// A stop abandoned at its deadline.
    pub(crate) fn timed_out(kind: StopKind) -> Measured {
        Measured {
            timed_out: true,
            ..Measured::failed(kind)
        }
    }

    /// A stop that ended in an error before its timings meant anything.
    pub(crate) fn failed(kind: StopKind) -> Measured {
        Measured {
            kind,
            ok: false,
            timed_out: false,
            to_stop: Duration::ZERO,
            stopped: Duration::ZERO,
            restart: Duration::ZERO,
            arrivals: Vec::new(),
            restarts: Vec::new(),
            claimed: Vec::new(),
        }
    }
}

/// Where a runtime accumulates its [`Stats`].
///
/// A multi-worker stop lets its caller go on at EXIT and is recorded a
/// moment later, by the last participant out of it; `unsettled` counts
/// the stops between the two, and a snapshot waits for them, so that a
/// caller reading the statistics after its stop returned finds it there.
///
/// A record that would be made inside its own caller's poll (the caller's
/// worker took part inline and was the last one out) waits in that
/// worker's list in `waiting` instead of sitting between the stop's end
/// and the caller going on: the worker makes it once the poll returns, or
/// before the next stop that poll calls; a snapshot from any thread makes
/// every waiting record before it looks, so no poll, however long, holds a
/// record back.
pub(crate) struct Recorder {
    inner: Mutex<Stats>,
    unsettled: AtomicUsize,
    /// Per worker, the records its current poll left.
    waiting: Box<[Mutex<Vec<Record>>]>,
}

/// Marks a stop recorded when dropped ([`Recorder::settles`]).
pub(crate) struct Settles<'a>(&'a Recorder);

impl Drop for Settles<'_> {
    fn drop(&mut self) {
        self.0.unsettled.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stop's record, to make later. It gets the recorder when it runs
/// rather than holding it: a record left in the recorder's own list must
/// not keep the recorder alive.
type Record = Box<dyn FnOnce(&Recorder) + Send>;

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("inner", &self.inner)
            .field("unsettled", &self.unsettled)
            .finish_non_exhaustive()
    }
}

/// How long a snapshot waits for stops on their way out to be recorded:
/// far longer than participants take to see EXIT, short enough that a
/// snapshot cannot hang on a worker the OS does not run.
const SETTLE_FOR: Duration = Duration::from_secs(1);

impl Recorder {
    pub(crate) fn new(workers: usize) -> Recorder {
        Recorder {
            inner: Mutex::new(Recorder::empty(workers)),
            unsettled: AtomicUsize::new(0),
            waiting: (0..workers).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Runs `record` now, or, when this thread is still in the poll `poll`
    /// (the stop's caller's, when its worker took part inline), once that
    /// poll returns: the caller need not wait for it.
    pub(crate) fn record_later(
        &self,
        poll: Option<crate::runtime::context::PollId>,
        record: impl FnOnce(&Recorder) + Send + 'static,
    ) {
        match poll.filter(|p| crate::runtime::context::defer_past_poll(*p)) {
            Some(poll) => self.waiting[poll.worker].lock().push(Box::new(record)),
            None => self.run_caught(record),
        }
    }

    /// Makes the records waiting on `worker` (each worker's own, after its
    /// poll or before the poll's next stop), one at a time.
    pub(crate) fn run_waiting_on(&self, worker: usize) {
        loop {
            let next = self.waiting.get(worker).and_then(|w| w.lock().pop());
            match next {
                Some(record) => self.run_caught(record),
                None => return,
            }
        }
    }

    /// Makes every waiting record, one at a time, so that a record whose
    /// drops read the statistics finds the others still listed.
    fn run_all_waiting(&self) {
        for worker in 0..self.waiting.len() {
            self.run_waiting_on(worker);
        }
    }

    /// A record drops its stop's function: a captured value that panics
    /// when dropped must not take down whoever made the record (a worker,
    /// a snapshot's reader), as it does not take down a stop's worker.
    fn run_caught(&self, record: impl FnOnce(&Recorder)) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| record(self))).is_err() {
            tracing::error!(
                "a value captured by a stop function panicked when dropped with its stop's record; \
                 the statistics go on"
            );
        }
    }

    /// A stop has released its caller and will be recorded.
    pub(crate) fn unsettled(&self) {
        self.unsettled.fetch_add(1, Ordering::AcqRel);
    }

    /// A stop counted by [`unsettled`](Self::unsettled) is recorded once
    /// the guard drops, however its record ends.
    pub(crate) fn settles(&self) -> Settles<'_> {
        Settles(self)
    }

    /// Waits (spinning, then yielding) until every stop that released its
    /// caller has been recorded, or [`SETTLE_FOR`] has passed.
    fn settle(&self) {
        let backoff = crossbeam_utils::Backoff::new();
        let began = std::time::Instant::now();
        loop {
            // Records left inside a poll, including any left since the
            // last look: the snapshot makes them itself.
            self.run_all_waiting();
            if self.unsettled.load(Ordering::Acquire) == 0 || began.elapsed() >= SETTLE_FOR {
                return;
            }
            backoff.snooze();
        }
    }

    fn empty(workers: usize) -> Stats {
        Stats {
            kinds: StopKind::ALL.iter().map(|_| KindStats::new()).collect(),
            workers: (0..workers)
                .map(|_| WorkerStats {
                    stops: 0,
                    claimed: 0,
                    time_to_stop: Latency::new(),
                    time_to_restart: Latency::new(),
                })
                .collect(),
            boosts: 0,
        }
    }

    /// A late participant was raised.
    pub(crate) fn count_boost(&self) {
        self.inner.lock().boosts += 1;
    }

    pub(crate) fn record(&self, m: Measured) {
        let mut stats = self.inner.lock();
        let k = &mut stats.kinds[m.kind as usize];
        if !m.ok {
            k.failed += 1;
            k.timed_out += u64::from(m.timed_out);
            return;
        }
        k.count += 1;
        k.time_to_stop.record(m.to_stop);
        k.time_stopped.record(m.stopped);
        k.time_to_restart.record(m.restart);
        for (w, d) in m.arrivals {
            if let Some(ws) = stats.workers.get_mut(w) {
                ws.stops += 1;
                ws.time_to_stop.record(d);
            }
        }
        for (w, d) in m.restarts {
            if let Some(ws) = stats.workers.get_mut(w) {
                ws.time_to_restart.record(d);
            }
        }
        for w in m.claimed {
            if let Some(ws) = stats.workers.get_mut(w) {
                ws.stops += 1;
                ws.claimed += 1;
                ws.time_to_stop.record(Duration::ZERO);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.settle();
        self.inner.lock().clone()
    }

    pub(crate) fn reset(&self) {
        self.settle();
        let mut stats = self.inner.lock();
        let workers = stats.workers.len();
        *stats = Recorder::empty(workers);
    }
}

#[cfg(test)]
mod tests {
    use super::latency::tests::close;
    use super::*;

    #[test]
    fn every_kind_has_its_own_row_and_name() {
        for (i, kind) in StopKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?} is not at its index in ALL");
        }
        let mut names: Vec<_> = StopKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), StopKind::ALL.len());

        let recorder = Recorder::new(1);
        for (i, kind) in StopKind::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                recorder.record(Measured {
                    stopped: Duration::from_nanos(1500),
                    ..Measured::failed(kind)
                });
                recorder.record(Measured {
                    ok: true,
                    stopped: Duration::from_nanos(1500),
                    ..Measured::failed(kind)
                });
            }
        }
        let stats = recorder.snapshot();
        let table = stats.to_string();
        for (i, kind) in StopKind::ALL.into_iter().enumerate() {
            let k = stats.kind(kind);
            assert_eq!((k.count, k.failed), (i as u64 + 1, i as u64 + 1), "{kind:?}");
            assert_eq!(k.time_stopped.count(), k.count);
            assert!(close(k.time_stopped.max(), Duration::from_nanos(1500)));
            let row = table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(kind.name()))
                .unwrap_or_else(|| panic!("no {} row in\n{table}", kind.name()));
            let cells: Vec<_> = row.split_whitespace().collect();
            assert_eq!(cells[1..3], [format!("{}", i + 1), format!("{}", i + 1)], "{row}");
            assert!(row.contains("1.5µs/1.5µs/1.5µs"), "{row}");
        }
    }
}
