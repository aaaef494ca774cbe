//! Seeds run in child processes (this test binary, re-executed with
//! `TORTURE_CHILD=start..end`), so that an abort, a SIGSEGV or a hang in
//! one seed is reported with that seed instead of killing the suite.
//!
//! The child prints `@@begin S`, then `@@ok S` or `@@fail S` and its report,
//! on stderr, and exits after its first failure; the parent restarts it
//! after the failing seed. A seed that began and never resolved died with
//! its process: the parent reports the exit status and the child's output.

use crate::Config;
use crate::exec;
use crate::generate::generate;
use crate::watchdog::Watchdog;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Failure {
    pub seed: u64,
    pub summary: String,
    pub output: Vec<String>,
}

/// The child's loop over its seeds; never returns.
pub fn child(range: &str, cfg: &Config) -> ! {
    let (start, end) = range
        .split_once("..")
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("TORTURE_CHILD={range:?} is not start..end"));
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .copied()
            .or(p.downcast_ref::<String>().map(|s| s.as_str()));
        // Deliberate panics would drown the report.
        if !msg.is_some_and(|m| m.starts_with("torture: expected")) {
            default_hook(info);
        }
    }));
    let watchdog = Watchdog::start(cfg.watchdog);
    let baseline = crate::census::thread_names();
    for seed in start..end {
        eprintln!("@@begin {seed}");
        let prog = generate(seed, cfg.bugs);
        if cfg.verbose {
            eprintln!("{prog:#?}");
        }
        let violations = exec::run(prog.clone(), &watchdog, &baseline, cfg.verbose);
        if violations.is_empty() {
            eprintln!("@@ok {seed}");
            continue;
        }
        eprintln!("@@fail {seed}");
        for v in &violations {
            eprintln!("  VIOLATION: {v}");
        }
        if !cfg.verbose {
            eprintln!("  program: {prog:#?}");
        }
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// What the parent learns from one child process.
struct ChildRun {
    /// The first seed not yet run.
    next: u64,
    failure: Option<Failure>,
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(crate::watchdog::HUNG), _) => "hung (the watchdog fired)".into(),
        (Some(c), _) => format!("failed (exit code {c})"),
        (None, Some(6)) => "the process aborted (SIGABRT)".into(),
        (None, Some(11)) => "the process crashed (SIGSEGV)".into(),
        (None, Some(s)) => format!("the process died of signal {s}"),
        _ => format!("the process ended: {status}"),
    }
}

/// Runs seeds `next..end` in one child, until it ends or fails.
fn run_child(cfg: &Config, next: u64, end: u64, done: &AtomicUsize) -> ChildRun {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["torture", "--exact", "--nocapture", "--test-threads=1"])
        .env("TORTURE_CHILD", format!("{next}..{end}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a child test process");
    let stderr = child.stderr.take().expect("piped stderr");
    let (mut current, mut failed, mut output) = (None::<u64>, None::<u64>, Vec::new());
    let mut next = next;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if cfg.verbose {
            eprintln!("{line}");
        }
        let marker = |m: &str| line.strip_prefix(m).and_then(|s| s.trim().parse::<u64>().ok());
        if let Some(s) = marker("@@begin ") {
            (current, output) = (Some(s), Vec::new());
        } else if let Some(s) = marker("@@ok ") {
            (current, next) = (None, s + 1);
            done.fetch_add(1, SeqCst);
        } else if let Some(s) = marker("@@fail ") {
            failed = Some(s);
        } else {
            output.push(line);
        }
    }
    let status = child.wait().expect("wait for the child");
    let seed = failed.or(current);
    let failure = seed.map(|seed| {
        done.fetch_add(1, SeqCst);
        next = seed + 1;
        let summary = match failed {
            Some(_) if status.code() == Some(1) => "invariant violated".into(),
            _ => describe(status),
        };
        Failure {
            seed,
            summary,
            output: output.clone(),
        }
    });
    if failure.is_none() && !status.success() {
        // Died between seeds: blame the next one, so that the run moves on.
        done.fetch_add(1, SeqCst);
        let output = std::mem::take(&mut output);
        let f = Failure {
            seed: next,
            summary: describe(status),
            output,
        };
        next += 1;
        return ChildRun {
            next,
            failure: Some(f),
        };
    }
    ChildRun { next, failure }
}

/// The replay command of a seed.
pub fn replay(cfg: &Config, seed: u64) -> String {
    let bugs = cfg
        .bugs
        .env_value()
        .map(|v| format!("TORTURE_KNOWN_BUGS={v} "))
        .unwrap_or_default();
    let release = if cfg!(debug_assertions) { "" } else { " --release" };
    format!("TORTURE_SEED={seed} {bugs}cargo test{release} --test torture -- --nocapture")
}

fn print_failure(cfg: &Config, f: &Failure) {
    eprintln!("torture: seed {} FAILED: {}", f.seed, f.summary);
    eprintln!("  replay: {}", replay(cfg, f.seed));
    for line in f.output.iter().take(3_000) {
        eprintln!("  | {line}");
    }
}

/// Runs every seed of `cfg` in child processes, `cfg.jobs` at a time.
pub fn parent(cfg: &Config) -> Vec<Failure> {
    let total = cfg.count as usize;
    let chunk = 50.min(cfg.count.max(1));
    let next_chunk = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    for n in cfg.bugs.list() {
        eprintln!("torture: known bug {n} allowed: {}", crate::bugs::describe(n));
    }
    let started = Instant::now();
    let finished = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next_chunk.fetch_add(1, SeqCst) as u64;
                    let start = cfg.start + i * chunk;
                    let end = (start + chunk).min(cfg.start + cfg.count);
                    if start >= end {
                        break;
                    }
                    let mut next = start;
                    while next < end {
                        let run = run_child(cfg, next, end, &done);
                        next = run.next;
                        if let Some(f) = run.failure {
                            print_failure(cfg, &f);
                            failures.lock().unwrap().push(f);
                        }
                    }
                }
                finished.fetch_add(1, SeqCst);
            });
        }
        if cfg.progress {
            s.spawn(|| {
                let mut last = Instant::now();
                while finished.load(SeqCst) < cfg.jobs.max(1) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() >= Duration::from_secs(2) {
                        last = Instant::now();
                        let n = done.load(SeqCst);
                        let rate = n as f64 / started.elapsed().as_secs_f64();
                        let bad = failures.lock().unwrap().len();
                        eprintln!("torture: {n}/{total} seeds, {rate:.1}/s, {bad} failed");
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "torture: {} seeds from {} in {secs:.1} s ({:.1}/s), {} failed, known bugs {:?}",
        done.load(SeqCst),
        cfg.start,
        done.load(SeqCst) as f64 / secs,
        failures.len(),
        cfg.bugs
    );
    failures
}
