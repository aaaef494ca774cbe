//! Observability: stop statistics count what happened, the tracing span and
//! events appear, and stopper_info shows the running stop.

mod common;

use common::{runtime, watchdog};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant};
use stop_machine::{Runtime, StopKind, WorkerMask};

#[test]
fn stats_count_every_stop_by_kind_and_worker() {
    watchdog("stats", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        use futures::executor::block_on as b;
        for _ in 0..3 {
            h.stop_machine_blocking(|_| (), None).unwrap();
        }
        for _ in 0..2 {
            b(h.stop_cpus(&WorkerMask::full(2), |_| ())).unwrap();
        }
        for _ in 0..4 {
            b(h.stop_one_cpu(1, || ())).unwrap();
        }
        b(h.stop_two_cpus(0, 1, || ())).unwrap();
        b(h.stop_core(0, |_| ())).unwrap();
        assert!(
            h.stop_machine_blocking(|_| panic!("counted as failed"), None)
                .is_err()
        );

        let stats = h.stats();
        let counts: Vec<_> = StopKind::ALL
            .iter()
            .map(|k| (stats.kind(*k).count, stats.kind(*k).failed))
            .collect();
        // One, Nowait, Two, Cpus, Core, Node, Machine.
        assert_eq!(counts, [(4, 0), (0, 0), (1, 0), (2, 0), (1, 0), (0, 0), (3, 1)]);
        for kind in StopKind::ALL {
            let k = stats.kind(kind);
            assert_eq!(k.time_to_stop.count(), k.count, "{kind:?}");
            assert_eq!(k.time_stopped.count(), k.count, "{kind:?}");
            assert_eq!(k.time_to_restart.count(), k.count, "{kind:?}");
        }
        // Worker 0: 3 machine + 2 cpus + 1 two + 1 core; worker 1: 3 + 2 + 4 one + 1 two.
        assert_eq!(stats.worker(0).unwrap().stops, 7);
        assert_eq!(stats.worker(1).unwrap().stops, 10);
        assert_eq!(stats.worker(0).unwrap().time_to_stop.count(), 7);
        // Restarts are recorded for the workers that ran a work (not claimed ones).
        let w1 = stats.worker(1).unwrap();
        assert_eq!(w1.time_to_restart.count(), w1.stops - w1.claimed);
        let table = stats.to_string();
        for name in ["one", "two", "cpus", "core", "machine"] {
            assert!(
                table.lines().any(|l| l.starts_with(name)),
                "{name} row in\n{table}"
            );
        }

        h.reset_stats();
        let stats = h.stats();
        assert!(
            StopKind::ALL
                .iter()
                .all(|k| stats.kind(*k).count == 0 && stats.kind(*k).failed == 0)
        );
        assert_eq!(stats.worker(1).unwrap().stops, 0);
    });
}

#[test]
fn time_stopped_is_at_least_what_the_stop_function_slept() {
    watchdog("time_stopped", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let nap = Duration::from_millis(5);
        for _ in 0..3 {
            h.stop_machine_blocking(move |_| std::thread::sleep(nap), None)
                .unwrap();
        }
        let stats = h.stats();
        let machine = stats.kind(StopKind::Machine);
        assert_eq!((machine.count, machine.failed), (3, 0));
        for l in [
            &machine.time_to_stop,
            &machine.time_stopped,
            &machine.time_to_restart,
        ] {
            assert_eq!(l.count(), 3);
        }
        // RUN is entered before the function starts and left after it
        // returns, so every stop lasted at least the sleep. Reads are the
        // top of each value's bucket, never below the value: the smallest
        // of the three, the median and the largest are all at least 5 ms.
        let stopped = &machine.time_stopped;
        for (what, read) in [
            ("smallest", stopped.quantile(0.1)),
            ("p50", stopped.p50()),
            ("max", stopped.max()),
        ] {
            assert!(read >= nap, "{what} time stopped {read:?} < {nap:?}: {stopped:?}");
        }
    });
}

/// Sets the flag when dropped: a failing test still ends the spin, so the
/// runtime can shut down and the failure is reported, not a watchdog hang.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn time_to_stop_covers_a_poll_that_holds_the_stop_up() {
    watchdog("time_to_stop", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let release = Arc::new(AtomicBool::new(false));
        let _release_on_failure = SetOnDrop(release.clone());

        // A task on worker 1 that never yields until released.
        let (started_tx, started_rx) = mpsc::channel();
        let r = release.clone();
        let spinner = h.spawn_on(1, async move {
            started_tx.send(()).unwrap();
            while !r.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        started_rx.recv().unwrap();

        // The releaser starts its clock only once the stop's work waits in
        // worker 1's stopper, so after the stop was requested; it reads the
        // clock again before it releases the spin, so before worker 1 can
        // reach its stopper. The sleep is the workload, not synchronization.
        let (h1, r) = (h.clone(), release.clone());
        let releaser = std::thread::spawn(move || {
            while h1.stopper_info(1).unwrap().queued == 0 {
                std::thread::yield_now();
            }
            let from = Instant::now();
            std::thread::sleep(Duration::from_millis(20));
            let held = from.elapsed();
            r.store(true, Ordering::SeqCst);
            held
        });
        h.stop_machine_blocking(|_| (), None).unwrap();
        let held = releaser.join().unwrap();
        futures::executor::block_on(spinner).unwrap();
        assert!(held >= Duration::from_millis(20), "{held:?}");

        let stats = h.stats();
        let machine = stats.kind(StopKind::Machine);
        assert_eq!((machine.count, machine.failed), (1, 0));
        let to_stop = &machine.time_to_stop;
        assert_eq!(to_stop.count(), 1);
        for (what, read) in [("p50", to_stop.p50()), ("max", to_stop.max())] {
            assert!(
                read >= held,
                "{what} time to stop {read:?} < the {held:?} the spin held it up"
            );
        }
        // Worker 1 was busy, so it was woken, not claimed, and its own time
        // to reach its stopper covers the spin too.
        let w1 = stats.worker(1).unwrap();
        assert_eq!((w1.stops, w1.claimed), (1, 0));
        assert!(w1.time_to_stop.max() >= held, "{:?} < {held:?}", w1.time_to_stop);
    });
}

#[test]
fn an_idle_worker_counts_as_claimed() {
    watchdog("claimed", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        while !h.stopper_info(1).unwrap().idle {
            std::thread::yield_now();
        }
        h.stop_machine_blocking(|_| (), Some(&WorkerMask::of(0))).unwrap();
        let w1 = h.stats().worker(1).unwrap().clone();
        assert_eq!((w1.stops, w1.claimed), (1, 1));
    });
}

#[test]
fn stopper_info_shows_the_running_stop_function() {
    watchdog("stopper_info", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let barrier = Arc::new(Barrier::new(2));
        let (entered_tx, entered_rx) = mpsc::channel();
        let bar = barrier.clone();
        let line = line!() + 1;
        let stop = h.stop_one_cpu(1, move || {
            entered_tx.send(()).unwrap();
            bar.wait();
        });
        let caller = std::thread::spawn(move || futures::executor::block_on(stop));
        entered_rx.recv().unwrap();
        let info = h.stopper_info(1).unwrap();
        let running = info.running.expect("a stop function runs on worker 1");
        assert_eq!(running.kind, stop_machine::StopKind::One);
        assert_eq!((running.caller.file(), running.caller.line()), (file!(), line));
        assert!(info.online);
        assert_eq!(h.stopper_info(0).unwrap().running, None);
        barrier.wait();
        caller.join().unwrap().unwrap();
        // Cleared right after the work signals its caller: wait for it (a
        // stopper that never clears it fails through the watchdog).
        while h.stopper_info(1).unwrap().running.is_some() {
            std::thread::yield_now();
        }
    });
}

/// A subscriber that remembers spans and events as text.
#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<(u64, String)>>,
    events: Mutex<Vec<(Option<u64>, tracing::Level, String)>>,
    next: std::sync::atomic::AtomicU64,
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut fields = Fields(format!("{} ", span.metadata().name()));
        span.record(&mut fields);
        self.spans.lock().unwrap().push((id, fields.0));
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let parent = event.parent().map(|p| p.into_u64());
        self.events
            .lock()
            .unwrap()
            .push((parent, *event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_span_per_stop_with_phase_events_and_a_slow_stop_warning() {
    watchdog("tracing", || {
        let capture = Arc::new(Capture::default());
        tracing::subscriber::set_global_default(CaptureRef(capture.clone())).expect("first subscriber");
        // A zero threshold makes every stop "slow", so the warning is certain.
        let rt = Runtime::builder()
            .workers(2)
            .pin(false)
            .slow_stop_warning(Some(Duration::ZERO))
            .build()
            .unwrap();
        let h = rt.handle();
        let all = WorkerMask::full(2);
        let (line, out) = (line!(), h.stop_machine_blocking(|_| (), Some(&all)));
        out.unwrap();
        drop(rt);

        // Other tests of this binary stop too: find this one by its caller.
        let here = format!("observability.rs:{line}:");
        let spans = capture.spans.lock().unwrap().clone();
        let (id, span) = spans
            .iter()
            .find(|(_, s)| s.starts_with("stop ") && s.contains(&here))
            .expect("our span");
        assert!(span.contains("kind=\"machine\""), "{span}");
        assert!(span.contains("mask=0-1"), "{span}");
        let events = capture.events.lock().unwrap().clone();
        let phases: Vec<_> = events
            .iter()
            .filter(|(p, l, _)| *p == Some(*id) && *l == tracing::Level::TRACE)
            .map(|(_, _, f)| f.clone())
            .collect();
        for phase in ["Prepare", "DisableIrq", "Run", "Exit"] {
            assert!(
                phases.iter().any(|f| f.contains(&format!("phase={phase}"))),
                "{phase} in {phases:?}"
            );
        }
        let warned = events.iter().any(|(p, l, f)| {
            *p == Some(*id)
                && *l == tracing::Level::WARN
                && f.contains("slow stop")
                && f.contains("slowest_worker")
        });
        assert!(
            warned,
            "a slow-stop warning naming the slowest worker: {events:?}"
        );
        // The end-of-stop line: kind, caller and the three durations.
        let ended = events.iter().any(|(_, l, f)| {
            *l == tracing::Level::DEBUG
                && f.contains("kind=\"machine\"")
                && f.contains(&here)
                && f.contains("ok=true")
                && ["to_stop=", "stopped=", "restart="].iter().all(|k| f.contains(k))
        });
        assert!(ended, "an end-of-stop event with its durations: {events:?}");
    });
}

/// `set_global_default` takes the subscriber by value; share it with the test.
struct CaptureRef(Arc<Capture>);

impl tracing::Subscriber for CaptureRef {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn new_span(&self, s: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(s)
    }
    fn record(&self, i: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        self.0.record(i, r)
    }
    fn record_follows_from(&self, a: &tracing::span::Id, b: &tracing::span::Id) {
        self.0.record_follows_from(a, b)
    }
    fn event(&self, e: &tracing::Event<'_>) {
        self.0.event(e)
    }
    fn enter(&self, i: &tracing::span::Id) {
        self.0.enter(i)
    }
    fn exit(&self, i: &tracing::span::Id) {
        self.0.exit(i)
    }
}
