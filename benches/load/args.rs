//! The command line of the load benchmark's server binary.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: load <stop-machine|tokio> [--port P] [--duration SECS] [--patch-ms MS] [--workers N] [--no-pin] [--naive-accept POLICY] [--reuseport] [--grace] [--schedstat] [--out PATH]

Serves HTTP/1.1 GET on 127.0.0.1:P (0: any free port; the address is printed
as `listening on ADDR`) until SIGTERM or SIGINT, or SECS seconds have passed
(default 60), then writes its samples as JSON to PATH.

  stop-machine  hyper on a stop-machine runtime of N workers (default: one per
                CPU), the accept loop on worker 0 handing connections to the
                workers in turn; a task on worker 0 patches the served config
                under stop_machine every MS milliseconds (default 5, 0: never);
                --no-pin: workers not pinned to their CPUs;
                --naive-accept POLICY (local|round-robin|least-loaded): the
                accept loop calls `stop_machine::spawn` per connection, as
                one writes with `tokio::spawn`, under that SpawnPolicy;
                --reuseport: one SO_REUSEPORT listener per worker
                (`Handle::serve_per_worker`), each accept loop calling
                `stop_machine::spawn` (it stays on its worker);
                --grace: every MS milliseconds the task waits for a grace
                period (`Handle::synchronize`) instead of patching under a
                stop; the \"stop\" figures are then its wait;
                --schedstat: before and after each stop, read the other
                workers' thread state and run-queue wait from /proc and
                print the stops by where those workers were
  tokio         the same service on a tokio multi_thread runtime of N worker
                threads (default: one per CPU), no stops

Run by scripts/load-bench, which starts the servers, loads them with wrk and
reports (docs/benchmarks.md, \"Under load\").";

/// Which server to run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    StopMachine,
    Tokio,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::StopMachine => "stop-machine",
            Mode::Tokio => "tokio",
        }
    }
}

#[derive(Debug)]
pub struct Args {
    pub mode: Mode,
    pub addr: SocketAddr,
    /// How long the server lives at most.
    pub duration: Duration,
    /// Time between two patches; `None`: no patcher.
    pub patch_every: Option<Duration>,
    /// `None`: one per CPU.
    pub workers: Option<usize>,
    /// Pin stop-machine's workers to their CPUs (the builder's default).
    pub pin: bool,
    /// `Some`: accept with a plain `spawn` under this policy instead of
    /// the hand-written spreading.
    pub naive_accept: Option<stop_machine::SpawnPolicy>,
    /// One `SO_REUSEPORT` listener per worker (`Handle::serve_per_worker`),
    /// each accept loop spawning its connections locally.
    pub reuseport: bool,
    /// The patcher waits for a grace period instead of stopping the world.
    pub grace: bool,
    /// Classify each stop by the other workers' scheduler state
    /// (`schedstat.rs`).
    pub schedstat: bool,
    pub out: Option<PathBuf>,
}

/// What the command line asks for.
pub enum Parsed {
    Run(Args),
    /// `--help`, or `cargo bench`'s `--bench` with no mode: print the usage
    /// and succeed.
    Usage,
}

/// Parses the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut mode = None;
    let mut port = 0u16;
    let mut duration = Duration::from_secs(60);
    let mut patch_ms = 5u64;
    let mut workers = None;
    let mut pin = true;
    let mut naive_accept = None;
    let mut reuseport = false;
    let mut grace = false;
    let mut schedstat = false;
    let mut out = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "stop-machine" => mode = Some(Mode::StopMachine),
            "tokio" => mode = Some(Mode::Tokio),
            "--port" => port = number(&arg, &value(&arg)?)?,
            "--duration" => duration = Duration::from_secs(number(&arg, &value(&arg)?)?),
            "--patch-ms" => patch_ms = number(&arg, &value(&arg)?)?,
            "--workers" => workers = Some(number::<usize>(&arg, &value(&arg)?)?.max(1)),
            "--no-pin" => pin = false,
            "--naive-accept" => {
                naive_accept = Some(match value(&arg)?.as_str() {
                    "local" => stop_machine::SpawnPolicy::Local,
                    "round-robin" => stop_machine::SpawnPolicy::RoundRobin,
                    "least-loaded" => stop_machine::SpawnPolicy::LeastLoaded,
                    other => return Err(format!("--naive-accept: unknown policy {other:?}")),
                })
            }
            "--reuseport" => reuseport = true,
            "--grace" => grace = true,
            "--schedstat" => schedstat = true,
            "--out" => out = Some(PathBuf::from(value(&arg)?)),
            // cargo bench passes --bench to every harness = false binary.
            "--bench" => {}
            "-h" | "--help" => return Ok(Parsed::Usage),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let Some(mode) = mode else {
        return Ok(Parsed::Usage);
    };
    Ok(Parsed::Run(Args {
        mode,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        duration,
        patch_every: (mode == Mode::StopMachine && patch_ms > 0).then(|| Duration::from_millis(patch_ms)),
        workers,
        pin,
        naive_accept,
        reuseport,
        grace,
        schedstat,
        out,
    }))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: not a number: {v:?}"))
}
