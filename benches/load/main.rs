//! The load benchmark's server: the same hyper service on stop-machine
//! (patched under `stop_machine` every 5 ms, with a torn-read check) or on
//! tokio's multi_thread runtime (no stops). `scripts/load-bench` runs it,
//! together with the Go server of `benches/load/go`, under `wrk` on
//! 127.0.0.1, and `scripts/load_report.py` makes the table of
//! docs/benchmarks.md ("Under load") from what it writes.
//!
//! A `harness = false` bench so that `cargo bench --no-run` builds it;
//! without a mode (as `cargo bench` runs it) it prints its usage and exits.
//!
//! ```text
//! load stop-machine --port 0 --duration 60 --patch-ms 5 --out stop-machine.json
//! ```

mod args;
mod output;
mod patcher;
mod schedstat;
mod service;
mod stop_server;
mod tokio_server;

use args::{Args, Mode, Parsed};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_nanos().try_into().unwrap_or(u64::MAX)
}

/// SIGTERM and SIGINT, blocked in the calling thread (and so in every
/// thread it starts afterwards) and taken by [`wait_for_end`] instead.
fn signal_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset, which
    // initializes it; the signal numbers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

fn block_end_signals() {
    let set = signal_set();
    // SAFETY: `set` is initialized; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "pthread_sigmask");
}

/// Waits until SIGTERM or SIGINT arrives or `limit` has passed.
fn wait_for_end(limit: Duration) {
    let set = signal_set();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let timeout = libc::timespec {
            tv_sec: left.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        // SAFETY: `set` is initialized and blocked in this thread; a null
        // siginfo pointer is allowed.
        let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if rc > 0 {
            return;
        }
        // EAGAIN: timed out (the loop ends); EINTR: another signal.
    }
}

fn run(args: &Args) -> std::io::Result<output::Results> {
    let started_unix_ns = unix_ns();
    let (addr, workers, pinned, recorder, handle) = match args.mode {
        Mode::StopMachine => {
            let server = stop_server::start(args)?;
            let (addr, workers, pinned) = (server.addr, server.workers, server.pinned);
            let (recorder, handle) = (server.recorder.clone(), server.handle.clone());
            // The runtime lives until the process exits.
            std::mem::forget(server);
            (addr, workers, pinned, Some(recorder), Some(handle))
        }
        Mode::Tokio => {
            let server = tokio_server::start(args)?;
            let (addr, workers) = (server.addr, server.workers);
            std::mem::forget(server);
            (addr, workers, false, None, None)
        }
    };
    println!(
        "listening on {addr} ({}, {workers} workers{})",
        args.mode.name(),
        if pinned { ", pinned" } else { "" }
    );
    let _ = std::io::stdout().flush();
    wait_for_end(args.duration);
    if let Some(h) = &handle {
        eprintln!("{}", output::per_worker(&h.stats(), workers));
    }
    if let Some(watched) = recorder.as_ref().and_then(|r| r.schedstat()) {
        eprintln!("{watched}");
    }
    let stops = recorder.as_ref().map(|r| r.take()).unwrap_or_default();
    Ok(output::Results {
        server: args.mode.name(),
        workers,
        pinned,
        patch_interval_ns: args.patch_every.map_or(0, |d| d.as_nanos() as u64),
        started_unix_ns,
        ended_unix_ns: unix_ns(),
        torn_reads: service::torn_reads(),
        connection_errors: service::connection_errors(),
        closed_mid_request: service::closed_mid_request(),
        stop_errors: recorder.as_ref().map_or(0, |r| r.errors()),
        last_version: recorder.as_ref().map_or(0, |r| r.version()),
        stops,
    })
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Usage) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Before any thread starts, so that every thread inherits the mask.
    block_end_signals();
    let results = match run(&args) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("load {}: {e}", args.mode.name());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{}", results.summary());
    if let Some(path) = &args.out
        && let Err(e) = std::fs::write(path, results.to_json())
    {
        eprintln!("writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    // Leave without shutting the runtimes down: connections may still be
    // open, and the samples are written.
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}
