//! Stop figures a service can export: a runtime whose stops are published
//! through the `metrics` facade, rendered by `metrics-exporter-prometheus`
//! as a Prometheus scrape would see them.
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! ```
//!
//! A real service serves `handle.render()` on its `/metrics` endpoint.

use metrics_exporter_prometheus::PrometheusBuilder;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stop_machine::{Runtime, WorkerMask};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let rt = Runtime::builder().workers(2).pin(false).build()?;
    let h = rt.handle().clone();
    rt.block_on(async {
        for _ in 0..100 {
            h.stop_machine(|_| (), None).await?;
        }
        h.stop_cpus(&WorkerMask::full(2), |w| w).await?;
        // A stop held up past its bound, to show a timeout in the counters:
        // worker 1 polls a task that does not yield until the stop has
        // given up, whatever the OS's timing.
        let started = Arc::new(AtomicBool::new(false));
        let gave_up = Arc::new(AtomicBool::new(false));
        let (flag, done) = (started.clone(), gave_up.clone());
        let hog = h.spawn_on(1, async move {
            flag.store(true, Ordering::SeqCst);
            while !done.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let timed_out = h
            .stop_machine_timeout(|_| (), None, Duration::from_millis(10))
            .await;
        gave_up.store(true, Ordering::SeqCst);
        assert!(timed_out.is_err());
        hog.await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .map_err(|e| e as Box<dyn std::error::Error>)?;
    for line in prometheus
        .render()
        .lines()
        .filter(|l| l.contains("stop_machine_"))
    {
        println!("{line}");
    }
    Ok(())
}
