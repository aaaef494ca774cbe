//! `--schedstat`: where the other workers were when each stop was
//! requested, from the kernel's per-thread scheduler statistics.
//!
//! Before each stop the patcher reads, for every worker but its own, the
//! thread's state (`/proc/self/task/TID/stat`: `S` asleep, `R` running or
//! waiting for a CPU) and its accumulated run-queue wait
//! (`/proc/self/task/TID/schedstat`, second field); after the stop, the wait
//! again. A wait that grew means the thread sat on a run queue, preempted,
//! and was given a CPU during the stop (the kernel adds a wait when it ends,
//! so the growth can exceed the stop). Reading costs a few syscalls, made
//! outside the timed call.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use stop_machine::Handle;

/// The `/proc` files of one worker thread, kept open and re-read.
struct Thread {
    stat: File,
    schedstat: File,
}

impl Thread {
    fn open(tid: i32) -> std::io::Result<Thread> {
        let at = |name: &str| File::open(format!("/proc/self/task/{tid}/{name}"));
        Ok(Thread {
            stat: at("stat")?,
            schedstat: at("schedstat")?,
        })
    }

    /// The thread's state letter, and its run-queue wait so far in ns.
    fn read(&mut self) -> Option<(char, u64)> {
        let stat = reread(&mut self.stat)?;
        let state = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .next()?
            .chars()
            .next()?;
        let wait = reread(&mut self.schedstat)?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((state, wait))
    }
}

fn reread(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The other workers' threads, from a task of worker `here`.
pub struct Watch {
    others: Vec<Thread>,
    /// Per stop: was any other worker running or runnable at the request,
    /// did any wait on a run queue during the stop, request → all stopped.
    stops: Vec<(bool, bool, u64)>,
}

/// What [`Watch::before`] read, for [`Watch::after`].
pub struct Before(Vec<Option<(char, u64)>>);

impl Watch {
    /// Finds every worker's thread id (a task on each asks the OS) but
    /// `here`'s.
    pub async fn open(h: &Handle, here: usize) -> std::io::Result<Watch> {
        let mut others = Vec::new();
        for w in (0..h.num_workers()).filter(|w| *w != here) {
            // SAFETY: gettid has no preconditions.
            let tid = h
                .spawn_on(w, async { unsafe { libc::gettid() } })
                .await
                .map_err(std::io::Error::other)?;
            others.push(Thread::open(tid)?);
        }
        Ok(Watch {
            others,
            stops: Vec::new(),
        })
    }

    pub fn before(&mut self) -> Before {
        Before(self.others.iter_mut().map(Thread::read).collect())
    }

    /// Records one stop that took `to_stop_ns` from its request to `f`.
    pub fn after(&mut self, before: Before, to_stop_ns: u64) {
        let (mut running, mut waited) = (false, false);
        for (thread, was) in self.others.iter_mut().zip(before.0) {
            if let (Some((state, w0)), Some((_, w1))) = (was, thread.read()) {
                running |= state == 'R';
                waited |= w1 > w0;
            }
        }
        self.stops.push((running, waited, to_stop_ns));
    }

    /// One line: the stops by where the other workers were.
    pub fn summary(&self) -> String {
        let group = |keep: &dyn Fn(&(bool, bool, u64)) -> bool| {
            let mut v: Vec<u64> = self.stops.iter().filter(|s| keep(s)).map(|s| s.2).collect();
            v.sort_unstable();
            let p50 = v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0);
            format!(
                "{} (request → all stopped p50 {:.1} µs)",
                v.len(),
                p50 as f64 / 1e3
            )
        };
        format!(
            "stop-machine schedstat: of {} stops, the other workers were all asleep at the request in {}; \
             running or runnable in {}, of which one waited on a run queue during the stop in {}, none in {}",
            self.stops.len(),
            group(&|s| !s.0),
            group(&|s| s.0),
            group(&|s| s.0 && s.1),
            group(&|s| s.0 && !s.1),
        )
    }
}
