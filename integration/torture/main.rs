//! A seeded, reproducible randomized torture test of the public API.
//!
//! Each seed is a small random program (`generate.rs`, `program.rs`): every
//! stop primitive, with and without timeouts, issued from tasks
//! (`spawn_on`, `spawn_local`, `tokio::spawn`) and from plain threads;
//! hotplug; futures dropped at random points; panics in stop functions and
//! in tasks; never-yielding tasks with and without `safepoint()`; the
//! runtime dropped at a random moment. `exec.rs` runs it and
//! `invariants.rs` checks it; seeds run in child processes (`procs.rs`).
//!
//! Environment (see `docs/torture.md`):
//!
//! - `TORTURE_SEEDS` (default 500): how many seeds; `TORTURE_START` the first (0);
//! - `TORTURE_SEED`: run only this seed, verbosely (the replay command);
//! - `TORTURE_KNOWN_BUGS=1` (or a list such as `2,5`): also generate the
//!   patterns of the known bugs (see `bugs.rs`);
//! - `TORTURE_JOBS` (1): child processes in parallel;
//! - `TORTURE_PROGRESS=1`: a progress line every 2 s;
//! - `TORTURE_WATCHDOG_SECS` (30): the per-seed deadline.

mod bugs;
mod census;
mod children;
#[path = "../common/mod.rs"]
mod common;
mod contexts;
mod exec;
mod findings;
mod generate;
mod invariants;
mod ops;
mod patterns;
mod procs;
mod program;
mod rng;
mod watchdog;

use std::time::Duration;

/// The run's settings, from the environment.
pub struct Config {
    pub start: u64,
    pub count: u64,
    pub bugs: bugs::Bugs,
    pub jobs: usize,
    pub progress: bool,
    pub verbose: bool,
    pub watchdog: Duration,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Config {
        let seed = std::env::var("TORTURE_SEED")
            .ok()
            .map(|s| s.trim().parse::<u64>().expect("TORTURE_SEED"));
        Config {
            start: seed.unwrap_or_else(|| env("TORTURE_START", 0)),
            count: if seed.is_some() {
                1
            } else {
                env("TORTURE_SEEDS", 500)
            },
            bugs: bugs::Bugs::from_env(),
            jobs: env("TORTURE_JOBS", 1),
            progress: env("TORTURE_PROGRESS", 0u8) != 0,
            verbose: seed.is_some(),
            watchdog: Duration::from_secs(env("TORTURE_WATCHDOG_SECS", 30)),
        }
    }
}

#[test]
fn torture() {
    let cfg = Config::from_env();
    if let Ok(range) = std::env::var("TORTURE_CHILD") {
        procs::child(&range, &cfg);
    }
    let failures = procs::parent(&cfg);
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|f| {
                format!(
                    "  seed {}: {}\n    replay: {}",
                    f.seed,
                    f.summary,
                    procs::replay(&cfg, f.seed)
                )
            })
            .collect();
        panic!(
            "{} of {} seeds failed:\n{}",
            failures.len(),
            cfg.count,
            list.join("\n")
        );
    }
}
