//! The gc example's core (`examples/gc/heap.rs`) as a test: a parallel
//! mark-sweep collector run under `stop_machine` with every worker active,
//! against mutator tasks on every worker, with the verifier on; and a check
//! that the verifier does catch a collector that misses a root.

mod common;
#[path = "../examples/gc/heap.rs"]
mod heap;

use common::{runtime, watchdog};
use heap::{Control, Heap, Marker, MutatorStats, collect, mutator};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use stop_machine::StopError;

/// Roots per worker (the example keeps up to 2048).
const MAX_ROOTS: usize = 256;
const WORKERS: usize = 3;
const SLOTS: usize = 4096;
const COLLECTIONS: usize = 30;

#[test]
fn parallel_mark_sweep_under_mutators_frees_nothing_reachable() {
    watchdog("gc", || {
        let rt = runtime(WORKERS);
        let h = rt.handle().clone();
        let heap = Arc::new(Heap::new(WORKERS, SLOTS, MAX_ROOTS));
        let control = Arc::new(Control::new((SLOTS * WORKERS / 2) as u64));
        let mutators: Vec<_> = (0..WORKERS * 2)
            .map(|i| {
                h.spawn_on(
                    i % WORKERS,
                    mutator(heap.clone(), control.clone(), 77 * (i as u64 + 1)),
                )
            })
            .collect();

        let (hh, heap2, c) = (h.clone(), heap.clone(), control.clone());
        let collections = rt.block_on(async move {
            let mut done = Vec::new();
            for _ in 0..COLLECTIONS {
                c.pressure.notified().await;
                done.push(
                    collect(&hh, &heap2, true, Marker::Correct)
                        .await
                        .expect("collection"),
                );
                c.collected();
            }
            c.finish();
            done
        });
        let stats: Vec<MutatorStats> = mutators
            .into_iter()
            .map(|m| futures::executor::block_on(m).expect("a mutator found a freed object"))
            .collect();

        assert_eq!(collections.len(), COLLECTIONS);
        for c in &collections {
            assert_eq!(c.marked, c.live, "every marked object survives, nothing else");
        }
        let freed: usize = collections.iter().map(|c| c.freed).sum();
        let cross: usize = collections.iter().map(|c| c.cross_edges).sum();
        let imports: u64 = stats.iter().map(|s| s.imports).sum();
        assert!(freed > 0, "the collector freed nothing");
        assert!(
            imports > 0 && cross > 0,
            "no cross-worker edges: imports {imports}, marked {cross}"
        );
        let walked: u64 = stats.iter().map(|s| s.walked).sum();
        let allocs: u64 = stats.iter().map(|s| s.allocs).sum();
        eprintln!(
            "{COLLECTIONS} collections freed {freed}; {allocs} allocations, {imports} imports, {cross} cross edges marked, {walked} objects checked, {} live at the end",
            collections.last().unwrap().live
        );
        assert!(walked > 0);
    });
}

#[test]
fn the_verifier_catches_a_collector_that_misses_a_root() {
    watchdog("gc_verifier", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let heap = Arc::new(Heap::new(2, 64, MAX_ROOTS));
        // Worker 1 allocates an object, exports it and drops its own root:
        // only the export keeps it alive.
        let hp = heap.clone();
        let exported = futures::executor::block_on(h.spawn_on(1, async move {
            // SAFETY: a task of partition 1's worker; synchronous.
            let r = unsafe { hp.parts[1].with_mut(|p| p.alloc(1).ok().unwrap()) };
            hp.exports[1].store(r.pack(), Ordering::Release);
            r
        }))
        .unwrap();

        let (hh, hp) = (h.clone(), heap.clone());
        let buggy = rt.block_on(async move { collect(&hh, &hp, true, Marker::IgnoresExports).await });
        match buggy {
            Err(StopError::Panicked(msg)) => assert!(msg.contains("reachable but unmarked"), "{msg}"),
            other => panic!("the verifier let a missed root through: {other:?}"),
        }

        // Nothing was swept; a correct collection keeps the object.
        let (hh, hp) = (h.clone(), heap.clone());
        let good = rt
            .block_on(async move { collect(&hh, &hp, true, Marker::Correct).await })
            .unwrap();
        assert_eq!((good.marked, good.live, good.freed), (1, 1, 0));
        let hp = heap.clone();
        let alive = futures::executor::block_on(h.spawn_on(1, async move {
            // SAFETY: as above.
            unsafe { hp.parts[1].with_mut(|p| p.deref(exported).is_ok()) }
        }))
        .unwrap();
        assert!(alive);
    });
}
