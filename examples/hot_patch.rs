//! Hot-patching a live TCP service with `stop_machine`.
//!
//! A small line-protocol server runs on every worker of a [`stop_machine::Runtime`]
//! while a built-in load generator (a separate tokio runtime, on loopback)
//! hammers it. Every `--patch-ms` milliseconds a patcher thread swaps the
//! server's *handler table* (function pointers), its version and a
//! multi-field config, the way the kernel rewrites live code under
//! `stop_machine` (ftrace's `ftrace_run_stop_machine`):
//!
//! ```text
//! GET <key>     ->  v<version> <handler> <a> <b> <checksum> <value>
//! ADD <x> <y>   ->  v<version> <handler> <a> <b> <checksum> <sum>
//! ```
//!
//! The state lives in a [`stop_machine::StopCell`]: the patch is a series
//! of *plain, non-atomic writes*, and the request handler reads it with no
//! lock and no atomic. The cell makes that sound by where each side runs:
//!
//! * the writes happen inside `StopCell::patch_blocking`'s function, a
//!   `stop_machine_once`, which runs on one worker while every other worker
//!   waits in its stopper: no task is being polled anywhere, so nobody can
//!   be reading;
//! * the reads happen inside a task's poll, in a synchronous closure, so a
//!   read never spans an `.await` and can never be interrupted by a stop
//!   (a stop only begins between two polls, on every worker);
//! * the stop's handshake orders the writes before every later poll on
//!   every worker, so no reader sees a stale or half-written table.
//!
//! The clients check each response: all its fields must come from a single
//! version (the checksum matches the version, the handler name matches the
//! version, the value is what that version's handler computes), and the
//! versions a connection sees never go backwards. A torn read would show up
//! as an inconsistent response; the program exits non-zero if there is any,
//! or any error.
//!
//! ```text
//! cargo run --release --example hot_patch -- --duration 10 --clients 32 --patch-ms 50
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use stop_machine::{Handle, Runtime, StopCell};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// The patchable state.
// ---------------------------------------------------------------------------

/// The handler table: what a patch swaps.
#[derive(Clone, Copy)]
struct Handlers {
    name: &'static str,
    get: fn(&Config, &str) -> u64,
    add: fn(&Config, u64, u64) -> u64,
}

/// The handler implementations, in the order versions cycle through them.
const HANDLERS: [Handlers; 4] = [
    Handlers {
        name: "alpha",
        get: get_xor,
        add: add_offset,
    },
    Handlers {
        name: "bravo",
        get: get_rotate,
        add: add_scaled,
    },
    Handlers {
        name: "charlie",
        get: get_mix,
        add: add_offset,
    },
    Handlers {
        name: "delta",
        get: get_rotate,
        add: add_mixed,
    },
];

fn get_xor(c: &Config, key: &str) -> u64 {
    fnv1a(key) ^ c.a
}

fn get_rotate(c: &Config, key: &str) -> u64 {
    fnv1a(key).rotate_left((c.b % 64) as u32)
}

fn get_mix(c: &Config, key: &str) -> u64 {
    mix(fnv1a(key).wrapping_add(c.a).wrapping_add(c.b))
}

fn add_offset(c: &Config, x: u64, y: u64) -> u64 {
    x.wrapping_add(y).wrapping_add(c.a)
}

fn add_scaled(c: &Config, x: u64, y: u64) -> u64 {
    x.wrapping_mul(c.b | 1).wrapping_add(y)
}

fn add_mixed(c: &Config, x: u64, y: u64) -> u64 {
    mix(x ^ c.a).wrapping_add(mix(y ^ c.b))
}

/// A multi-field config: every field derives from the version, so a reader
/// that mixed two versions would be caught.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Config {
    version: u64,
    a: u64,
    b: u64,
    checksum: u64,
}

impl Config {
    const fn for_version(version: u64) -> Config {
        let a = mix(version);
        let b = mix(version ^ 0x5bd1_e995);
        Config {
            version,
            a,
            b,
            checksum: checksum(version, a, b),
        }
    }
}

const fn checksum(version: u64, a: u64, b: u64) -> u64 {
    mix(version ^ mix(a ^ mix(b)))
}

/// splitmix64's finalizer.
const fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Everything a request handler reads.
struct Live {
    handlers: Handlers,
    config: Config,
}

impl Live {
    const fn for_version(version: u64) -> Live {
        Live {
            handlers: HANDLERS[(version % HANDLERS.len() as u64) as usize],
            config: Config::for_version(version),
        }
    }

    /// Moves to `version` with plain stores, one field at a time; a reader
    /// that could see this half done would mix two versions.
    fn patch(&mut self, version: u64) -> u64 {
        let next = Live::for_version(version);
        let previous = self.config.version;
        self.config.version = next.config.version;
        self.handlers.name = next.handlers.name;
        self.config.a = next.config.a;
        self.handlers.get = next.handlers.get;
        self.config.b = next.config.b;
        self.handlers.add = next.handlers.add;
        self.config.checksum = next.config.checksum;
        previous
    }
}

/// The live handler table and config: read on every request with no lock
/// and no atomic, written only in a stopped world. Set once, by `main`,
/// since a `StopCell` belongs to a runtime.
static LIVE: OnceLock<StopCell<Live>> = OnceLock::new();

fn live() -> &'static StopCell<Live> {
    LIVE.get().expect("main sets LIVE before serving")
}

// ---------------------------------------------------------------------------
// The protocol.
// ---------------------------------------------------------------------------

/// A request the load generator sends.
enum Request {
    Get(String),
    Add(u64, u64),
}

impl Request {
    /// The `i`th request of client `client`.
    fn nth(client: u64, i: u64) -> Request {
        if i.is_multiple_of(2) {
            Request::Get(format!("key-{client}-{}", i % 97))
        } else {
            Request::Add(mix(client ^ i), i)
        }
    }

    fn line(&self) -> String {
        match self {
            Request::Get(key) => format!("GET {key}\n"),
            Request::Add(x, y) => format!("ADD {x} {y}\n"),
        }
    }

    /// What `live`'s handler answers.
    fn eval(&self, live: &Live) -> u64 {
        match self {
            Request::Get(key) => (live.handlers.get)(&live.config, key),
            Request::Add(x, y) => (live.handlers.add)(&live.config, *x, *y),
        }
    }

    fn parse(line: &str) -> Option<Request> {
        let mut words = line.split_ascii_whitespace();
        let request = match (words.next()?, words.next()?, words.next()) {
            ("GET", key, None) => Request::Get(key.to_owned()),
            ("ADD", x, Some(y)) => Request::Add(x.parse().ok()?, y.parse().ok()?),
            _ => return None,
        };
        words.next().is_none().then_some(request)
    }
}

/// The server's answer to `line`, written to `out`; reads `live` only.
fn respond(live: &Live, line: &str, out: &mut String) {
    let Some(request) = Request::parse(line) else {
        out.push_str("ERR bad request\n");
        return;
    };
    let c = &live.config;
    let value = request.eval(live);
    let name = live.handlers.name;
    let _ = writeln!(
        out,
        "v{} {name} {} {} {} {value}",
        c.version, c.a, c.b, c.checksum
    );
}

/// What is wrong with a response.
#[derive(Debug)]
enum Bad {
    /// Not a response at all: counted as an error.
    Malformed,
    /// Fields from different versions, or a version older than one already
    /// seen on this connection.
    Inconsistent,
}

/// Checks `reply` to `request`; returns its version.
fn check(request: &Request, reply: &str, newest_seen: u64) -> Result<u64, Bad> {
    let fields: Vec<&str> = reply.split_ascii_whitespace().collect();
    let [version, name, a, b, sum, value] = fields[..] else {
        return Err(Bad::Malformed);
    };
    let number = |s: &str| s.parse::<u64>().map_err(|_| Bad::Malformed);
    let version = number(version.strip_prefix('v').ok_or(Bad::Malformed)?)?;
    let got = Config {
        version,
        a: number(a)?,
        b: number(b)?,
        checksum: number(sum)?,
    };
    let expected = Live::for_version(version);
    let consistent = got == expected.config
        && name == expected.handlers.name
        && number(value)? == request.eval(&expected)
        && version >= newest_seen;
    if consistent {
        Ok(version)
    } else {
        Err(Bad::Inconsistent)
    }
}

// ---------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------

/// Accepts connections and hands them to the workers in turn.
async fn accept_loop(listener: TcpListener, handle: Handle) {
    for next in 0.. {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        // Leave this worker's I/O driver; the connection's worker registers
        // the socket with its own.
        let Ok(stream) = stream.into_std() else { continue };
        handle.spawn_on(next % handle.num_workers(), async move {
            if let Err(e) = serve(stream).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

/// Serves one connection, a line at a time.
async fn serve(stream: std::net::TcpStream) -> std::io::Result<()> {
    let mut stream = TcpStream::from_std(stream)?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.split();
    let mut lines = BufReader::new(reader).lines();
    let mut reply = String::new();
    while let Some(line) = lines.next_line().await? {
        reply.clear();
        // The closure is synchronous: the read cannot span an .await.
        live().read(|live| respond(live, &line, &mut reply));
        writer.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The patcher.
// ---------------------------------------------------------------------------

/// Patches to the next version every `every` until `stop`; records each
/// pause. Returns the last version.
fn patcher(every: Duration, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> u64 {
    let mut version = 1;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(every);
        let next = version + 1;
        let start = Instant::now();
        // One writer in a stopped world (`stop_machine_once`); `patch`
        // writes field by field, and no reader can see it half done.
        let patched = live().patch_blocking(move |live| live.patch(next));
        let pause = start.elapsed();
        match patched {
            Ok(previous) => {
                assert_eq!(previous, version, "a patch was lost");
                version = next;
                stats.pauses.lock().unwrap().push(pause);
            }
            Err(e) => {
                eprintln!("stop_machine: {e}");
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    version
}

// ---------------------------------------------------------------------------
// The load generator.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    inconsistent: AtomicU64,
    max_rtt_us: AtomicU64,
    pauses: Mutex<Vec<Duration>>,
}

/// One client: sends requests on one connection until `deadline`, checking
/// every response.
async fn client(id: u64, addr: SocketAddr, deadline: Instant, stats: Arc<Stats>) {
    if let Err(e) = client_loop(id, addr, deadline, &stats).await {
        eprintln!("client {id}: {e}");
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn client_loop(id: u64, addr: SocketAddr, deadline: Instant, stats: &Stats) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut newest = 0;
    for i in 0.. {
        if Instant::now() >= deadline {
            break;
        }
        let request = Request::nth(id, i);
        let sent = Instant::now();
        writer.write_all(request.line().as_bytes()).await?;
        let Some(reply) = lines.next_line().await? else {
            return Err(std::io::Error::other("server closed the connection"));
        };
        let rtt = sent.elapsed().as_micros() as u64;
        stats.max_rtt_us.fetch_max(rtt, Ordering::Relaxed);
        match check(&request, &reply, newest) {
            Ok(version) => {
                newest = version;
                stats.requests.fetch_add(1, Ordering::Relaxed);
            }
            Err(Bad::Malformed) => {
                eprintln!("client {id}: malformed reply {reply:?}");
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(Bad::Inconsistent) => {
                eprintln!("client {id}: inconsistent reply {reply:?} (newest seen v{newest})");
                stats.inconsistent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reporting.
// ---------------------------------------------------------------------------

/// The `p`th percentile of sorted `samples` (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1]
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    }
}

/// p50, p99 and max of `pauses`.
fn pause_columns(pauses: &[Duration]) -> String {
    let mut sorted = pauses.to_vec();
    sorted.sort();
    let (p50, p99) = (percentile(&sorted, 50), percentile(&sorted, 99));
    let max = sorted.last().copied().unwrap_or_default();
    format!("{:>9} {:>9} {:>9}", show(p50), show(p99), show(max))
}

fn print_header() {
    println!(
        "{:>5} {:>10} {:>7} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "time", "req/s", "stops", "pause p50", "p99", "max", "errors", "inconsistent"
    );
}

/// One row of the live table: the second that ended at `secs`.
fn print_row(secs: u64, requests: u64, pauses: &[Duration], stats: &Stats) {
    println!(
        "{:>4}s {:>10} {:>7} {} {:>7} {:>12}",
        secs,
        requests,
        pauses.len(),
        pause_columns(pauses),
        stats.errors.load(Ordering::Relaxed),
        stats.inconsistent.load(Ordering::Relaxed),
    );
}

// ---------------------------------------------------------------------------
// Putting it together.
// ---------------------------------------------------------------------------

struct Args {
    duration: Duration,
    clients: u64,
    patch_every: Duration,
    workers: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        duration: Duration::from_secs(10),
        clients: 32,
        patch_every: Duration::from_millis(50),
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--duration" => args.duration = Duration::from_secs(value()?),
            "--clients" => args.clients = value()?.max(1),
            "--patch-ms" => args.patch_every = Duration::from_millis(value()?.max(1)),
            "--workers" => args.workers = Some(value()?.max(1) as usize),
            "-h" | "--help" => {
                return Err(
                    "usage: hot_patch [--duration SECS] [--clients N] [--patch-ms MS] [--workers N]".into(),
                );
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok(args)
}

/// Starts the server on `rt`; returns its address.
fn start_server(rt: &Runtime) -> std::io::Result<SocketAddr> {
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        stop_machine::spawn(accept_loop(listener, handle));
        Ok(addr)
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Runtime::builder();
    if let Some(n) = args.workers {
        builder.workers(n);
    }
    let rt = builder.build().expect("server runtime");
    assert!(
        LIVE.set(StopCell::new(rt.handle(), Live::for_version(1))).is_ok(),
        "LIVE is set once"
    );
    let addr = start_server(&rt).expect("bind 127.0.0.1");
    let workers = rt.handle().num_workers();
    println!(
        "serving on {addr} with {workers} workers; {} clients for {:?}, a patch every {:?}",
        args.clients, args.duration, args.patch_every
    );

    let stats = Arc::new(Stats::default());
    let stop_patching = Arc::new(AtomicBool::new(false));
    let patcher = {
        let (s, stop, every) = (stats.clone(), stop_patching.clone(), args.patch_every);
        std::thread::Builder::new()
            .name("patcher".into())
            .spawn(move || patcher(every, s, stop))
            .expect("patcher thread")
    };

    // The clients live on their own runtime: they see the server stop.
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let start = Instant::now();
    let deadline = start + args.duration;
    let clients: Vec<_> = (0..args.clients)
        .map(|id| load.spawn(client(id, addr, deadline, stats.clone())))
        .collect();

    print_header();
    let (mut last_requests, mut last_pauses) = (0, 0);
    for secs in 1..=args.duration.as_secs() {
        std::thread::sleep((start + Duration::from_secs(secs)).saturating_duration_since(Instant::now()));
        let requests = stats.requests.load(Ordering::Relaxed);
        let pauses = stats.pauses.lock().unwrap()[last_pauses..].to_vec();
        print_row(secs, requests - last_requests, &pauses, &stats);
        (last_requests, last_pauses) = (requests, last_pauses + pauses.len());
    }
    for c in clients {
        if load.block_on(c).is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let elapsed = start.elapsed();
    stop_patching.store(true, Ordering::Relaxed);
    let version = patcher.join().expect("patcher panicked");
    summary(&stats, elapsed, version)
}

/// Prints the final summary; fails on any error or inconsistent response.
fn summary(stats: &Stats, elapsed: Duration, version: u64) -> ExitCode {
    let requests = stats.requests.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let inconsistent = stats.inconsistent.load(Ordering::Relaxed);
    let pauses = stats.pauses.lock().unwrap();
    println!();
    println!(
        "{requests} requests in {:.1}s ({:.0} req/s), max round trip {}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        show(Duration::from_micros(stats.max_rtt_us.load(Ordering::Relaxed))),
    );
    println!(
        "{} stops (handler now v{version}); pause p50 / p99 / max: {}",
        pauses.len(),
        pause_columns(&pauses)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" / ")
    );
    println!("{errors} errors, {inconsistent} inconsistent responses");
    if errors == 0 && inconsistent == 0 && requests > 0 {
        ExitCode::SUCCESS
    } else {
        println!("FAILED");
        ExitCode::FAILURE
    }
}
