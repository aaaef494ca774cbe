//! The known-bug switch: which generator patterns, each of which exercises
//! a bug listed in the issue, a program may use.
//!
//! Off by default so that `cargo test` passes on today's code.
//! `TORTURE_KNOWN_BUGS=1` (or `all`) turns every pattern on;
//! `TORTURE_KNOWN_BUGS=2,5` only those. `docs/torture.md` has the table.

use std::fmt;

/// How many known bugs there are: 1 to 8 are the list, 9 and up
/// are failures this harness found (docs/torture.md has the details).
pub const COUNT: u8 = 13;

/// What known bug `n` is.
pub fn describe(n: u8) -> &'static str {
    match n {
        1 => "park_worker against stop_machine_blocking on the same worker",
        2 => "a panic in a task's Drop (aborted, detached output, alive at runtime drop)",
        3 => "a panic in the Drop of a stop function's captured state",
        4 => "park_worker on the caller's own worker releases the stop lock too early",
        5 => "stop timeouts do not bound the wait for the stop lock",
        6 => "futures::executor::block_on(stop_one_cpu(own worker)) from a task",
        7 => "park_worker racing runtime drop",
        8 => "Builder::stop_timeout(Duration::MAX) (and stop_machine_timeout(MAX))",
        9 => "found: a stop racing the runtime's drop fails with Offline, not Shutdown",
        10 => "found: a dropped park_worker future releases the stop lock before the worker is offline",
        11 => "found: a stop_machine during the runtime's drop runs f beside a closed worker's task",
        12 => "found: spawn_on racing the runtime's drop strands the task (never dropped, never joined)",
        13 => {
            "found: a harness flaw; the thread census missed a live worker, so leaks were checked too early"
        }
        _ => "no such bug",
    }
}

/// A set of known bugs, by number (1..=COUNT).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs(u32);

impl Bugs {
    pub const NONE: Bugs = Bugs(0);

    pub fn all() -> Bugs {
        Bugs((1..=COUNT).fold(0, |m, n| m | 1 << n))
    }

    /// Reads `TORTURE_KNOWN_BUGS`.
    pub fn from_env() -> Bugs {
        match std::env::var("TORTURE_KNOWN_BUGS") {
            Ok(v) => Bugs::parse(&v).unwrap_or_else(|e| panic!("TORTURE_KNOWN_BUGS={v:?}: {e}")),
            Err(_) => Bugs::NONE,
        }
    }

    pub fn parse(v: &str) -> Result<Bugs, String> {
        match v.trim() {
            "" | "0" | "off" => return Ok(Bugs::NONE),
            "1" | "all" | "on" => return Ok(Bugs::all()),
            _ => {}
        }
        let mut set = Bugs::NONE;
        for part in v.split(',') {
            let n: u8 = part
                .trim()
                .parse()
                .map_err(|_| format!("not a bug number: {part:?}"))?;
            if !(1..=COUNT).contains(&n) {
                return Err(format!("no known bug {n}"));
            }
            set.0 |= 1 << n;
        }
        // A lone "1" means "all"; bug 1 alone is spelled "1,1".
        Ok(set)
    }

    pub fn has(self, n: u8) -> bool {
        self.0 & (1 << n) != 0
    }

    /// The numbers in the set.
    pub fn list(self) -> impl Iterator<Item = u8> {
        (1..=COUNT).filter(move |n| self.has(*n))
    }

    /// The value of `TORTURE_KNOWN_BUGS` that selects this set.
    pub fn env_value(self) -> Option<String> {
        if self == Bugs::all() {
            return Some("1".into());
        }
        let list: Vec<String> = (1..=COUNT)
            .filter(|n| self.has(*n))
            .map(|n| n.to_string())
            .collect();
        match list.len() {
            0 => None,
            1 => Some(format!("{0},{0}", list[0])),
            _ => Some(list.join(",")),
        }
    }
}

impl fmt::Debug for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<u8> = self.list().collect();
        write!(f, "Bugs{list:?}")
    }
}
