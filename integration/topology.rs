//! Topology-driven stops and builder placement, checked against what the
//! runtime reports for this machine, whatever its shape.

mod common;

use common::watchdog;
use stop_machine::{CpuMask, Runtime, StopError, WorkerMask};

#[test]
fn stop_core_runs_on_exactly_the_workers_of_that_core() {
    watchdog("stop_core", || {
        // Twice as many workers as CPUs: each core has at least two workers.
        let rt = common::oversubscribed();
        let h = rt.handle().clone();
        for w in 0..h.num_workers() {
            let ran: WorkerMask = futures::executor::block_on(h.stop_core(w, |w| w))
                .unwrap()
                .into_iter()
                .map(|(w, _)| w)
                .collect();
            assert_eq!(ran, h.topology().core_mask_of(w), "worker {w}");
            assert!(ran.weight() >= 2);
        }
        assert_eq!(
            futures::executor::block_on(h.stop_core(99, |_| ())),
            Err(StopError::InvalidWorker)
        );
    });
}

#[test]
fn stop_node_runs_on_every_worker_of_the_node() {
    watchdog("stop_node", || {
        let rt = Runtime::new().unwrap();
        let h = rt.handle().clone();
        let mut covered = WorkerMask::new();
        for node in h.topology().nodes().collect::<Vec<_>>() {
            let ran: WorkerMask = futures::executor::block_on(h.stop_node(node, |w| w))
                .unwrap()
                .into_iter()
                .map(|(w, _)| w)
                .collect();
            assert_eq!(ran, h.topology().node_mask(node));
            covered |= &ran;
        }
        assert_eq!(
            covered,
            WorkerMask::full(h.num_workers()),
            "every worker is on some node"
        );
        assert_eq!(
            futures::executor::block_on(h.stop_node(1 << 20, |_| ())),
            Err(StopError::EmptyMask)
        );
    });
}

#[test]
fn builder_cpus_and_per_core_choose_the_cpus() {
    watchdog("builder_cpus", || {
        let all = Runtime::new().unwrap();
        let machine = all.handle().topology().topology().clone();
        drop(all);
        let first = machine.os_cpus().first().unwrap();
        let rt = Runtime::builder().cpus(CpuMask::of(first)).build().unwrap();
        assert_eq!(rt.handle().num_workers(), 1);
        assert_eq!(rt.handle().worker_cpu(0), Some(first));
        // SAFETY: sched_getcpu has no preconditions.
        let on = rt.block_on(async { unsafe { libc::sched_getcpu() } });
        assert_eq!(on as usize, first);
        drop(rt);

        let rt = Runtime::builder().per_core().build().unwrap();
        let cpus: CpuMask = (0..rt.handle().num_workers())
            .filter_map(|w| rt.handle().worker_cpu(w))
            .collect();
        assert_eq!(cpus, machine.one_per_core());

        let err = Runtime::builder().cpus(CpuMask::of(100_000)).build().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}
