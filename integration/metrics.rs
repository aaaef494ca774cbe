//! The `metrics` feature: every stop is published through the `metrics`
//! facade with Prometheus-style names and labels, and the values are the
//! stops' own (checked here through `metrics-exporter-prometheus`, as a
//! scrape would see them).

mod common;

use common::{runtime, watchdog};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stop_machine::{StopError, WorkerMask};

/// The value of the sample `name` in a Prometheus text rendering.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn stops_are_published_with_their_kinds_outcomes_and_durations() {
    watchdog("metrics", || {
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this test binary");
        let rt = runtime(2);
        let h = rt.handle().clone();
        for _ in 0..3 {
            h.stop_machine_blocking(|_| std::thread::sleep(Duration::from_millis(5)), None)
                .unwrap();
        }
        assert_eq!(
            futures::executor::block_on(h.stop_cpus(&WorkerMask::full(2), |w| w)),
            Ok(vec![(0, 0), (1, 1)])
        );
        // A stop held up past its bound by a task that does not yield.
        let (release, started) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (r, s) = (release.clone(), started.clone());
        let hog = h.spawn_on(1, async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let out =
            futures::executor::block_on(h.stop_machine_timeout(|_| (), None, Duration::from_millis(20)));
        release.store(true, Ordering::SeqCst);
        assert!(matches!(out, Err(StopError::TimedOut { .. })), "{out:?}");
        futures::executor::block_on(hog).unwrap();

        let text = prometheus.render();
        let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        assert_eq!(
            get(r#"stop_machine_stops_total{kind="machine",outcome="ok"}"#),
            3.0
        );
        assert_eq!(
            get(r#"stop_machine_stops_total{kind="machine",outcome="timed_out"}"#),
            1.0
        );
        assert_eq!(get(r#"stop_machine_stops_total{kind="cpus",outcome="ok"}"#), 1.0);
        assert_eq!(
            get(r#"stop_machine_time_stopped_seconds_count{kind="machine"}"#),
            3.0
        );
        // Each of the three functions slept 5 ms: values, not only counts.
        assert!(get(r#"stop_machine_time_stopped_seconds{kind="machine",quantile="0"}"#) >= 0.005);
        assert!(get(r#"stop_machine_time_stopped_seconds_sum{kind="machine"}"#) >= 0.015);
        assert_eq!(
            get(r#"stop_machine_time_to_stop_seconds_count{kind="cpus"}"#),
            1.0
        );
        // Both workers took part in the three machine stops and the cpus stop.
        for w in 0..2 {
            assert!(get(&format!(r#"stop_machine_worker_stops_total{{worker="{w}"}}"#)) >= 4.0);
        }
        // The handle's own statistics agree.
        let stats = h.stats();
        let machine = stats.kind(stop_machine::StopKind::Machine);
        assert_eq!((machine.count, machine.failed, machine.timed_out), (3, 1, 1));
    });
}
