//! Multi-worker stop benchmarks (issue 3): the round trip of a no-op
//! `stop_machine`, `stop_cpus` and `stop_two_cpus` with every worker parked,
//! busy, or serving TCP echo traffic; the caller a task on worker 0 or an
//! outside thread; workers = CPUs and workers = 2 × CPUs; and the machine's
//! two physical floors, all in one run.
//!
//! Criterion reports the mean time of one stop per sample (`Throughput::
//! Elements`). Since a sample mean says nothing about the tail, every stop is
//! also timed on its own; the binary prints p50/p99/max per benchmark at the
//! end and writes them to `$CARGO_TARGET_DIR/stop-latency.json`, which
//! `scripts/stops_table.py` and `scripts/stops_plot.py` turn into the tables
//! and the plot of `docs/benchmarks.md`.
//!
//! Run: `cargo bench --bench stops`.

mod common;

use common::{Background, Group, floors, note, on_worker0, runtime, runtime_of, write_report, yield_until};
use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stop_machine::{Handle, JoinHandle, Runtime, StopError, WorkerMask};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Samples per benchmark: keeps the whole run under four minutes on two
/// CPUs.
const SAMPLES: usize = 25;
/// Stops per iteration of the stop benchmarks.
const STOPS: u64 = 10;
/// TCP echo connections of the network load.
const CLIENTS: usize = 4;
/// Bytes per echo message.
const MESSAGE: usize = 64;

/// The stop function of every benchmark: the stop's own cost is the figure.
fn noop(_: usize) {}

/// What the workers do while they are being stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Nothing: every worker sleeps in its driver (except the caller's, when
    /// the caller is a task).
    Idle,
    /// Every worker runs a task that loops on `yield_now`.
    Busy,
    /// Every worker serves TCP echo connections on loopback.
    Tcp,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy",
            Load::Tcp => "tcp",
        }
    }
}

/// A load running on a runtime, until [`Running::end`].
enum Running {
    Idle,
    Busy(Background),
    Tcp(TcpLoad),
}

impl Running {
    fn start(load: Load, rt: &Runtime) -> Running {
        let h = rt.handle();
        match load {
            Load::Idle => Running::Idle,
            Load::Busy => Running::Busy(Background::start(h, 0..h.num_workers(), yield_until)),
            Load::Tcp => Running::Tcp(TcpLoad::start(h)),
        }
    }

    /// Stops the load and waits until every task and thread of it is gone.
    fn end(self, rt: &Runtime, label: &str) {
        match self {
            Running::Idle => {}
            Running::Busy(tasks) => tasks.end(rt),
            Running::Tcp(tcp) => tcp.end(rt, label),
        }
    }
}

/// Echo servers on the workers (connection `i` served by worker
/// `i % workers`), and [`CLIENTS`] clients on a tokio current_thread runtime
/// of their own thread, each ping-ponging a [`MESSAGE`]-byte message as fast
/// as the echo comes back.
struct TcpLoad {
    done: Arc<AtomicBool>,
    round_trips: Arc<AtomicU64>,
    shutdown: Arc<Notify>,
    acceptor: JoinHandle<()>,
    clients: std::thread::JoinHandle<()>,
    started: Instant,
}

impl TcpLoad {
    fn start(h: &Handle) -> TcpLoad {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("listener address");
        let shutdown = Arc::new(Notify::new());
        let acceptor = h.spawn_on(0, accept(listener, shutdown.clone(), h.num_workers()));
        let done = Arc::new(AtomicBool::new(false));
        let round_trips = Arc::new(AtomicU64::new(0));
        let (d, n) = (done.clone(), round_trips.clone());
        let clients = std::thread::Builder::new()
            .name("echo-clients".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("client runtime");
                rt.block_on(async move {
                    let clients: Vec<_> = (0..CLIENTS)
                        .map(|_| tokio::spawn(client(addr, d.clone(), n.clone())))
                        .collect();
                    for c in clients {
                        c.await.expect("echo client");
                    }
                });
            })
            .expect("client thread");
        // Benchmark only once every connection carries traffic.
        let deadline = Instant::now() + Duration::from_secs(10);
        while round_trips.load(Ordering::Relaxed) < 1_000 {
            assert!(Instant::now() < deadline, "the TCP echo load did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        round_trips.store(0, Ordering::Relaxed);
        TcpLoad {
            done,
            round_trips,
            shutdown,
            acceptor,
            clients,
            started,
        }
    }

    /// Stops the clients (each finishes its round trip and closes), then the
    /// servers (each sees its client close) and the acceptor; notes the echo
    /// rate the load sustained while it was being stopped.
    fn end(self, rt: &Runtime, label: &str) {
        self.done.store(true, Ordering::Relaxed);
        let rate = self.round_trips.load(Ordering::Relaxed) as f64 / self.started.elapsed().as_secs_f64();
        self.clients.join().expect("client thread");
        self.shutdown.notify_one();
        let acceptor = self.acceptor;
        rt.block_on(async move { acceptor.await.expect("acceptor") });
        note(
            &format!("tcp_echo_round_trips_per_s_{label}"),
            format!("{rate:.0}"),
        );
    }
}

/// Accepts connections until `shutdown`, spreading them over the workers;
/// then waits for every connection's server to finish.
async fn accept(listener: std::net::TcpListener, shutdown: Arc<Notify>, workers: usize) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let mut servers = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.notified() => break,
            accepted = listener.accept() => {
                let (stream, _) = accepted.expect("accept");
                // Re-registered on the worker that serves it, with that worker's driver.
                let stream = stream.into_std().expect("std stream");
                servers.push(stop_machine::spawn_on(servers.len() % workers, echo(stream)));
            }
        }
    }
    for s in servers {
        s.await.expect("echo server");
    }
}

/// Echoes until the client closes.
async fn echo(stream: std::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::from_std(stream).expect("tokio stream");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; MESSAGE];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Ping-pongs one message until `done`, counting round trips.
async fn client(addr: SocketAddr, done: Arc<AtomicBool>, round_trips: Arc<AtomicU64>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let message = [7u8; MESSAGE];
    let mut buf = [0u8; MESSAGE];
    while !done.load(Ordering::Relaxed) {
        stream.write_all(&message).await.expect("echo write");
        stream.read_exact(&mut buf).await.expect("echo read");
        round_trips.fetch_add(1, Ordering::Relaxed);
    }
}

/// Benchmarks `op` (one stop) from a task on worker 0, timing each stop.
fn from_task<F, Fut, R>(g: &mut Group<'_>, rt: &Runtime, id: &str, op: F)
where
    F: Fn(&Handle) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, StopError>> + Send,
    R: Send,
{
    let recorder = g.recorder(id);
    g.bench(id, |iters| {
        let (op, recorder, h) = (op.clone(), recorder.clone(), rt.handle().clone());
        on_worker0(rt, async move {
            let one_stop = || {
                let stop = op(&h);
                async move {
                    stop.await.expect("stop");
                }
            };
            recorder.time_each_async(iters * STOPS, one_stop).await
        })
    });
}

/// What the caller does before each stop of [`before_each_stop`].
#[derive(Clone, Copy)]
enum Before {
    /// Sleeps 50 µs on a tokio timer (its worker parks in the driver).
    Sleep,
    /// Spins for 1 ms in the task (its worker never parks).
    Spin,
}

/// Benchmarks `stop_machine(noop, None)` from a task on worker 0 that
/// sleeps or spins before each stop; only the stop is timed.
fn before_each_stop(g: &mut Group<'_>, rt: &Runtime, id: &str, before: Before) {
    let recorder = g.recorder(id);
    g.bench(id, |iters| {
        let (recorder, h) = (recorder.clone(), rt.handle().clone());
        on_worker0(rt, async move {
            let mut ops = Vec::with_capacity((iters * STOPS) as usize);
            let mut total = Duration::ZERO;
            for _ in 0..iters * STOPS {
                match before {
                    Before::Sleep => tokio::time::sleep(Duration::from_micros(50)).await,
                    Before::Spin => {
                        let began = Instant::now();
                        while began.elapsed() < Duration::from_millis(1) {
                            std::hint::spin_loop();
                        }
                    }
                }
                let t = Instant::now();
                h.stop_machine(noop, None).await.expect("stop");
                let d = t.elapsed();
                ops.push(d.as_nanos() as u64);
                total += d;
            }
            recorder.add(&ops);
            total
        })
    });
}

/// Benchmarks `op` (one stop, blocking) from the benchmark's own thread, an
/// outside thread of the runtime, timing each stop.
fn from_thread<R>(g: &mut Group<'_>, rt: &Runtime, id: &str, op: impl Fn(&Handle) -> Result<R, StopError>) {
    let recorder = g.recorder(id);
    let h = rt.handle();
    g.bench(id, |iters| {
        recorder.time_each(iters * STOPS, || {
            op(h).expect("stop");
        })
    });
}

/// Every stop benchmark on one runtime of `workers` workers, under each load
/// in turn; the group is `stops_<label>`.
fn stops_with(c: &mut Criterion, label: &str, rt: &Runtime) {
    let mut g = Group::new(c, &format!("stops_{label}"), SAMPLES, STOPS);
    let workers = rt.handle().num_workers();
    note(&format!("workers_{label}"), workers);
    for load in [Load::Idle, Load::Busy, Load::Tcp] {
        let l = load.name();
        let running = Running::start(load, rt);

        // stop_machine(noop, None) from a task on worker 0: the function runs there, idle workers are claimed unwoken.
        from_task(&mut g, rt, &format!("stop_machine_{l}_task"), |h| {
            h.stop_machine(noop, None)
        });
        // The same from an outside thread with futures::executor::block_on: worker 0 runs it and must be reached.
        from_thread(&mut g, rt, &format!("stop_machine_{l}_thread"), |h| {
            futures::executor::block_on(h.stop_machine(noop, None))
        });
        // stop_machine_blocking from the same outside thread: the non-async caller's API.
        from_thread(&mut g, rt, &format!("stop_machine_blocking_{l}_thread"), |h| {
            h.stop_machine_blocking(noop, None)
        });
        if load == Load::Idle {
            // stop_machine(noop, None) from a task just woken by a tokio timer, the other workers asleep: the
            // caller's worker was parked in its driver a moment ago, the others are claimed unwoken.
            before_each_stop(&mut g, rt, &format!("stop_machine_{l}_woken_task"), Before::Sleep);
            // The same after spinning 1 ms instead: the worker never parks, and
            // what is left of the difference to the back-to-back stop is the
            // stop's code and data gone cold meanwhile.
            before_each_stop(&mut g, rt, &format!("stop_machine_{l}_spun_task"), Before::Spin);
        }
        if load != Load::Tcp {
            // stop_cpus(all, noop) from a task on worker 0: every worker runs the function, idle ones are woken.
            let all = WorkerMask::full(workers);
            from_task(&mut g, rt, &format!("stop_cpus_{l}_task"), move |h| {
                h.stop_cpus(&all, noop)
            });
            // stop_two_cpus(0, 1, noop) from a task on worker 0: not serialized, no idle claim; worker 1 is woken.
            from_task(&mut g, rt, &format!("stop_two_cpus_{l}_task"), |h| {
                h.stop_two_cpus(0, 1, || ())
            });
        }
        running.end(rt, label);
    }
    g.finish();
}

fn stops(c: &mut Criterion) {
    // The default build: one pinned worker per allowed CPU.
    let rt = runtime();
    let cpus = rt.handle().num_workers();
    note("cpus", cpus);
    stops_with(c, "cpus", &rt);
    drop(rt);

    // Twice as many workers as CPUs, pinned round-robin: workers share CPUs, and a stop needs them all.
    let rt = runtime_of(2 * cpus);
    stops_with(c, "2xcpus", &rt);
    drop(rt);
}

fn floors_first(c: &mut Criterion) {
    floors(c, "stops_floor", SAMPLES);
}

fn floors_last(c: &mut Criterion) {
    floors(c, "stops_floor_last", SAMPLES);
}

/// Prints and saves the per-stop percentiles of the whole run.
fn report(_: &mut Criterion) {
    write_report("stop-latency.json");
}

criterion_group!(benches, floors_first, stops, floors_last, report);
criterion_main!(benches);
