//! What the benchmark binaries share: their groups' settings and the
//! frame of a measurement (timing, a task on worker 0, tasks loading the
//! workers meanwhile), the machine's two physical floors (measured in every
//! run that quotes them, so that figures are compared within one run) and a
//! recorder of per-operation latencies, for the percentiles that
//! criterion's per-sample means cannot give.
//!
//! Each binary uses a subset of it.
#![allow(dead_code)]

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};
use stop_machine::{Handle, JoinHandle, Runtime};

/// A criterion group with the settings every group of a binary shares
/// (they keep a whole run to a few minutes on two CPUs), which knows its
/// name for the ids of what it records.
pub struct Group<'a> {
    inner: BenchmarkGroup<'a, WallTime>,
    name: String,
}

impl<'a> Group<'a> {
    /// Group `name`: `samples` samples, measured for 2 s after 0.5 s of
    /// warm-up, each iteration `elements` operations (criterion reports the
    /// time of one).
    pub fn new(c: &'a mut Criterion, name: &str, samples: usize, elements: u64) -> Group<'a> {
        let mut inner = c.benchmark_group(name);
        inner
            .sample_size(samples)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500))
            .throughput(Throughput::Elements(elements));
        Group {
            inner,
            name: name.to_owned(),
        }
    }

    /// The recorder of benchmark `id` of this group.
    pub fn recorder(&self, id: &str) -> Recorder {
        Recorder::new(&format!("{}/{id}", self.name))
    }

    /// Benchmarks `routine`, criterion's `iter_custom` routine (it runs the
    /// iterations it is given and returns the time they took), as `id`;
    /// notes the CPU time other processes used meanwhile as
    /// `foreign_cpu/<group>/<id>`.
    pub fn bench(&mut self, id: &str, mut routine: impl FnMut(u64) -> Duration) {
        watched(&format!("{}/{id}", self.name), || {
            self.inner.bench_function(id, |b| b.iter_custom(&mut routine));
        });
    }

    pub fn finish(self) {
        self.inner.finish();
    }
}

/// A stop-machine runtime of the default build: one pinned worker per
/// allowed CPU.
pub fn runtime() -> Runtime {
    Runtime::builder().build().expect("stop-machine runtime")
}

/// A stop-machine runtime of `workers` pinned workers.
pub fn runtime_of(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("stop-machine runtime")
}

/// How long `fut` takes to complete.
pub async fn timed(fut: impl Future) -> Duration {
    let start = Instant::now();
    fut.await;
    start.elapsed()
}

/// Runs `fut` as a task on worker 0 of `rt`, from a task that `block_on`
/// runs, and returns its output.
pub fn on_worker0<T: Send + 'static>(rt: &Runtime, fut: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(async move { stop_machine::spawn_on(0, fut).await.expect("task on worker 0") })
}

/// `yield_now` in a loop until `done`: a task that keeps its worker busy,
/// always about to yield.
pub async fn yield_until(done: Arc<AtomicBool>) {
    while !done.load(Ordering::Relaxed) {
        tokio::task::yield_now().await;
    }
}

/// Tasks that keep workers busy while a benchmark runs, until
/// [`Background::end`].
pub struct Background {
    done: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Spawns `task(done)` on each worker of `workers` (a worker named `k`
    /// times gets `k` tasks); each task must return soon after `done` is
    /// set.
    pub fn start<Fut>(
        h: &Handle,
        workers: impl IntoIterator<Item = usize>,
        mut task: impl FnMut(Arc<AtomicBool>) -> Fut,
    ) -> Background
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let done = Arc::new(AtomicBool::new(false));
        let tasks = workers
            .into_iter()
            .map(|w| h.spawn_on(w, task(done.clone())))
            .collect();
        Background { done, tasks }
    }

    /// Sets `done` and waits for every task.
    pub fn end(self, rt: &Runtime) {
        self.done.store(true, Ordering::Relaxed);
        let tasks = self.tasks;
        rt.block_on(async move {
            for t in tasks {
                t.await.expect("background task");
            }
        });
    }
}

/// Pins the calling thread to `cpu`; silently does nothing where that CPU is
/// not allowed (the floors are then unpinned).
pub fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, `cpu` is checked
    // against CPU_SETSIZE, and the set outlives the call.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The other thread's handle, once it has published it.
fn wait_for(slot: &OnceLock<Thread>) -> &Thread {
    loop {
        if let Some(t) = slot.get() {
            return t;
        }
        std::thread::yield_now();
    }
}

/// Runs `a` on a thread pinned to CPU 0 and `b` on one pinned to CPU 1 and
/// returns what `a` measured; thread creation is not timed.
fn on_two_cpus(a: impl FnOnce() -> Duration + Send, b: impl FnOnce() + Send) -> Duration {
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            pin_to(1);
            b()
        });
        let d = s
            .spawn(move || {
                pin_to(0);
                a()
            })
            .join()
            .expect("floor thread");
        other.join().expect("floor thread");
        d
    })
}

/// `n` round trips of one cache line between two spinning threads on CPUs
/// 0 and 1.
pub fn cache_line_round_trips(n: u64) -> Duration {
    let line = AtomicU64::new(0);
    let line = &line;
    on_two_cpus(
        move || {
            let start = Instant::now();
            for i in 0..n {
                line.store(2 * i + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            }
            start.elapsed()
        },
        move || {
            for i in 0..n {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        },
    )
}

/// `n` round trips between two threads on CPUs 0 and 1 that wake each other
/// with `Thread::unpark` and sleep in `thread::park`.
pub fn park_unpark_round_trips(n: u64) -> Duration {
    let turn = AtomicU64::new(0);
    let (a_thread, b_thread) = (OnceLock::new(), OnceLock::new());
    let (turn, a_thread, b_thread) = (&turn, &a_thread, &b_thread);
    on_two_cpus(
        move || {
            let _ = a_thread.set(std::thread::current());
            let other = wait_for(b_thread);
            let start = Instant::now();
            for i in 0..n {
                turn.store(2 * i + 1, Ordering::Release);
                other.unpark();
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    std::thread::park();
                }
            }
            start.elapsed()
        },
        move || {
            let _ = b_thread.set(std::thread::current());
            let other = wait_for(a_thread);
            for i in 0..n {
                while turn.load(Ordering::Acquire) != 2 * i + 1 {
                    std::thread::park();
                }
                turn.store(2 * i + 2, Ordering::Release);
                other.unpark();
            }
        },
    )
}

/// Round trips per iteration of the floors.
pub const FLOOR_ROUND_TRIPS: u64 = 100;

/// The two floors as group `name` of `samples` samples; notes the CPU time
/// other processes used meanwhile as `foreign_cpu/<name>`. Measured first
/// and again last in a run, a difference between the two shows that
/// something else ran on the machine meanwhile.
pub fn floors(c: &mut Criterion, name: &str, samples: usize) {
    let mut g = Group::new(c, name, samples, FLOOR_ROUND_TRIPS);
    watched(name, || bench_floors(&mut g.inner, FLOOR_ROUND_TRIPS));
    g.finish();
}

/// Adds the two floors to `g` (whose throughput is `round_trips` elements),
/// `round_trips` round trips per iteration.
fn bench_floors(g: &mut BenchmarkGroup<'_, WallTime>, round_trips: u64) {
    // Two spinning threads on CPUs 0 and 1 bouncing one cache line: the fastest cross-CPU round trip.
    g.bench_function("cache_line_round_trip", |b| {
        b.iter_custom(|iters| cache_line_round_trips(iters * round_trips))
    });
    // Two threads on CPUs 0 and 1 trading park/unpark: the floor of any round trip that wakes a sleeper.
    g.bench_function("park_unpark_round_trip", |b| {
        b.iter_custom(|iters| park_unpark_round_trips(iters * round_trips))
    });
}

/// CPU time used by other processes while a benchmark ran: the machine is
/// shared, and a benchmark that had to share it is marked in the report.
struct ForeignLoad {
    machine: u64,
    own: u64,
}

/// Busy clock ticks of the whole machine (all CPUs) and of this process.
fn busy_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let machine = stat.lines().next().map_or(0, |cpu| {
        let f: Vec<u64> = cpu
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        f.iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| v)
            .sum()
    });
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let own = me.rsplit_once(')').map_or(0, |(_, rest)| {
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        f.iter().sum()
    });
    (machine, own)
}

impl ForeignLoad {
    fn start() -> ForeignLoad {
        let (machine, own) = busy_ticks();
        ForeignLoad { machine, own }
    }

    /// Records, as note `foreign_cpu/<id>`, the CPU time other processes used
    /// since `start`, as a percentage of one CPU over the elapsed time.
    fn note(self, id: &str, since: Instant) {
        let (machine, own) = busy_ticks();
        let foreign = machine
            .saturating_sub(self.machine)
            .saturating_sub(own.saturating_sub(self.own));
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let pct = 100.0 * foreign as f64 / hz / since.elapsed().as_secs_f64();
        note(&format!("foreign_cpu/{id}"), format!("{pct:.0}"));
    }
}

/// Runs `f` (one benchmark, or a group) and notes the CPU time other
/// processes used meanwhile as `foreign_cpu/<id>`.
pub fn watched<R>(id: &str, f: impl FnOnce() -> R) -> R {
    let (load, start) = (ForeignLoad::start(), Instant::now());
    let r = f();
    load.note(id, start);
    r
}

/// Per-operation latencies of every benchmark of a run, by benchmark id, and
/// free-form notes about the run (load rates, machine).
#[derive(Default)]
struct Report {
    ops: BTreeMap<String, Vec<u64>>,
    notes: BTreeMap<String, String>,
}

fn report() -> &'static Mutex<Report> {
    static REPORT: OnceLock<Mutex<Report>> = OnceLock::new();
    REPORT.get_or_init(Mutex::default)
}

/// Collects the latency of each operation of one benchmark, across every
/// call of its `iter_custom` routine (warm-up included: the runtime under
/// test is built before the benchmark starts, so warm-up operations are
/// steady-state ones too).
#[derive(Clone)]
pub struct Recorder {
    id: Arc<str>,
}

impl Recorder {
    /// The recorder of benchmark `id` (`group/function`, as criterion names
    /// it).
    pub fn new(id: &str) -> Recorder {
        report()
            .lock()
            .expect("latency report")
            .ops
            .entry(id.to_owned())
            .or_default();
        Recorder { id: id.into() }
    }

    /// Adds the latencies of one routine call.
    pub fn add(&self, ops: &[u64]) {
        let mut report = report().lock().expect("latency report");
        report
            .ops
            .entry(self.id.to_string())
            .or_default()
            .extend_from_slice(ops);
    }

    /// Times each of `n` calls of `op` and adds them; returns the time of
    /// all `n`.
    pub fn time_each(&self, n: u64, op: impl FnMut()) -> Duration {
        let mut ops = Vec::new();
        let d = time_each(n, &mut ops, op);
        self.add(&ops);
        d
    }

    /// [`Recorder::time_each`] for an asynchronous operation.
    pub async fn time_each_async<F, Fut>(&self, n: u64, op: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut ops = Vec::new();
        let d = time_each_async(n, &mut ops, op).await;
        self.add(&ops);
        d
    }
}

/// Times each of `n` calls of `op` into `ops` (nanoseconds); returns the
/// time of all `n`.
fn time_each(n: u64, ops: &mut Vec<u64>, mut op: impl FnMut()) -> Duration {
    ops.reserve(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        op();
        ops.push(t.elapsed().as_nanos() as u64);
    }
    start.elapsed()
}

/// [`time_each`] for an asynchronous operation.
async fn time_each_async<F, Fut>(n: u64, ops: &mut Vec<u64>, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    ops.reserve(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        op().await;
        ops.push(t.elapsed().as_nanos() as u64);
    }
    start.elapsed()
}

/// Records a note about the run, written with the latencies.
pub fn note(key: &str, value: impl ToString) {
    report()
        .lock()
        .expect("latency report")
        .notes
        .insert(key.to_owned(), value.to_string());
}

/// The `q` quantile of sorted `v`, by nearest rank.
fn quantile(v: &[u64], q: f64) -> u64 {
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Prints the percentiles of every recorded benchmark and writes them, with
/// the notes, as JSON to `$CARGO_TARGET_DIR/<file>` (`target/<file>` when
/// the variable is unset). Benchmarks that recorded nothing (filtered out)
/// are left out.
pub fn write_report(file: &str) {
    let report = report().lock().expect("latency report");
    let mut json = String::from("{\n  \"notes\": {");
    for (i, (k, v)) in report.notes.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(json, "{sep}\n    \"{k}\": \"{v}\"");
    }
    json.push_str("\n  },\n  \"latency_ns\": {");
    println!("\nper-operation latency (every operation timed on its own):");
    println!(
        "{:<48} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "benchmark", "ops", "p50", "p99", "max", "mean"
    );
    let mut first = true;
    for (id, ops) in &report.ops {
        if ops.is_empty() {
            continue;
        }
        let mut v = ops.clone();
        v.sort_unstable();
        let (p50, p90, p99, p999) = (
            quantile(&v, 0.50),
            quantile(&v, 0.90),
            quantile(&v, 0.99),
            quantile(&v, 0.999),
        );
        let (min, max) = (v[0], v[v.len() - 1]);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        println!(
            "{id:<48} {:>9} {:>10} {:>10} {:>10} {:>10}",
            v.len(),
            fmt_ns(p50 as f64),
            fmt_ns(p99 as f64),
            fmt_ns(max as f64),
            fmt_ns(mean)
        );
        let sep = if first { "" } else { "," };
        first = false;
        let _ = write!(
            json,
            "{sep}\n    \"{id}\": {{\"n\": {}, \"min\": {min}, \"p50\": {p50}, \"p90\": {p90}, \
             \"p99\": {p99}, \"p999\": {p999}, \"max\": {max}, \"mean\": {mean:.1}}}",
            v.len()
        );
    }
    json.push_str("\n  }\n}\n");
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), std::path::PathBuf::from);
    let path = dir.join(file);
    match std::fs::write(&path, json) {
        Ok(()) => println!("per-operation latencies written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}
