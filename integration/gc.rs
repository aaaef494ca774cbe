//! The gc example's core as a test: a parallel mark-sweep collector run
//! under `stop_machine` with every worker active, against mutator tasks on
//! every worker, with the verifier on; and a check that the verifier does
//! catch a collector that misses a root.

mod common;

use common::{runtime, watchdog};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use stop_machine::{CpuMask, Handle, StopError};
use tokio::sync::{Notify, watch};

const INDEX_BITS: u32 = 20;
const MAX_CHILDREN: usize = 4;
const MAX_ROOTS: usize = 256;
const BURST: usize = 64;

/// A partition's state, used without synchronization by its worker's tasks
/// and by the collector, never at the same time.
struct WorldCell<T>(UnsafeCell<T>);

// SAFETY: reached only through the unsafe methods below: the owning
// worker's tasks take `&mut` within one poll, and the collector (a stop
// function, so no task runs) shares `&T` in the mark phase and takes `&mut`
// for its own partition only after the barrier that ends marking and
// verification.
unsafe impl<T: Send + Sync> Sync for WorldCell<T> {}

impl<T> WorldCell<T> {
    /// # Safety
    ///
    /// From a task of the owning worker (`f` starting no stop), or from the
    /// collector on the owning worker once every shared borrow has ended.
    unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: by the contract no other borrow is alive while `f` runs.
        f(unsafe { &mut *self.0.get() })
    }

    /// # Safety
    ///
    /// From the collector's stop function; the borrow ends before the
    /// barrier after which the owners sweep.
    unsafe fn get(&self) -> &T {
        // SAFETY: no task runs during a stop, and sweeps wait for the barrier.
        unsafe { &*self.0.get() }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Ref {
    id: u32,
    generation: u32,
}

impl Ref {
    fn new(partition: usize, index: usize, generation: u32) -> Ref {
        Ref {
            id: ((partition as u32) << INDEX_BITS) | index as u32,
            generation,
        }
    }
    fn partition(self) -> usize {
        (self.id >> INDEX_BITS) as usize
    }
    fn index(self) -> usize {
        (self.id & ((1 << INDEX_BITS) - 1)) as usize
    }
    fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.id)
    }
    fn unpack(v: u64) -> Option<Ref> {
        (v != 0).then_some(Ref {
            id: v as u32,
            generation: (v >> 32) as u32,
        })
    }
    fn payload(self) -> u64 {
        (self.pack() ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }
}

struct Obj {
    marked: AtomicBool,
    live: bool,
    generation: u32,
    payload: u64,
    children: Vec<Ref>,
}

struct Partition {
    objs: Vec<Obj>,
    free: Vec<u32>,
    roots: Vec<Ref>,
}

#[derive(Debug)]
struct Dangling(Ref);

struct Full;

impl Partition {
    fn new(slots: usize) -> Partition {
        let objs = (0..slots)
            .map(|_| Obj {
                marked: AtomicBool::new(false),
                live: false,
                generation: 1,
                payload: 0,
                children: Vec::new(),
            })
            .collect();
        Partition {
            objs,
            free: (0..slots as u32).rev().collect(),
            roots: Vec::new(),
        }
    }

    fn deref(&self, r: Ref) -> Result<&Obj, Dangling> {
        let obj = &self.objs[r.index()];
        if obj.live && obj.generation == r.generation && obj.payload == r.payload() {
            Ok(obj)
        } else {
            Err(Dangling(r))
        }
    }

    fn alloc(&mut self, w: usize) -> Result<Ref, Full> {
        let index = self.free.pop().ok_or(Full)? as usize;
        let obj = &mut self.objs[index];
        let r = Ref::new(w, index, obj.generation);
        obj.live = true;
        obj.payload = r.payload();
        obj.children.clear();
        Ok(r)
    }

    fn link(&mut self, parent: Ref, child: Ref, slot: usize) -> Result<(), Dangling> {
        self.deref(parent)?;
        let children = &mut self.objs[parent.index()].children;
        if children.len() < MAX_CHILDREN {
            children.push(child);
        } else {
            children[slot % MAX_CHILDREN] = child;
        }
        Ok(())
    }
}

struct Heap {
    parts: Box<[WorldCell<Partition>]>,
    exports: Box<[AtomicU64]>,
}

impl Heap {
    fn new(workers: usize, slots: usize) -> Heap {
        Heap {
            parts: (0..workers)
                .map(|_| WorldCell(UnsafeCell::new(Partition::new(slots))))
                .collect(),
            exports: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn roots_of<'a>(&self, w: usize, part: &'a Partition) -> impl Iterator<Item = Ref> + 'a {
        let export = Ref::unpack(self.exports[w].load(Ordering::Acquire));
        part.roots.iter().copied().chain(export)
    }
}

// ---------------------------------------------------------------------------
// Mutators.
// ---------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct MutatorStats {
    allocs: u64,
    imports: u64,
    walked: u64,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// One random operation on worker `w`'s partition.
fn step(
    w: usize,
    p: &mut Partition,
    exports: &[AtomicU64],
    rng: &mut Rng,
    s: &mut MutatorStats,
) -> Result<Result<(), Full>, Dangling> {
    let root =
        |p: &Partition, rng: &mut Rng| (!p.roots.is_empty()).then(|| p.roots[rng.below(p.roots.len())]);
    match rng.below(100) {
        0..35 => {
            let r = match p.alloc(w) {
                Ok(r) => r,
                Err(full) => return Ok(Err(full)),
            };
            s.allocs += 1;
            match root(p, rng) {
                Some(parent) if rng.below(2) == 0 => p.link(parent, r, rng.below(MAX_CHILDREN))?,
                _ if p.roots.len() < MAX_ROOTS => p.roots.push(r),
                _ => {
                    let i = rng.below(p.roots.len());
                    p.roots[i] = r;
                }
            }
        }
        35..45 => {
            if let (Some(a), Some(b)) = (root(p, rng), root(p, rng)) {
                p.link(a, b, rng.below(MAX_CHILDREN))?;
            }
        }
        45..55 => {
            let other = rng.below(exports.len());
            let export = Ref::unpack(exports[other].load(Ordering::Acquire));
            if let (true, Some(foreign), Some(parent)) = (other != w, export, root(p, rng)) {
                p.link(parent, foreign, rng.below(MAX_CHILDREN))?;
                s.imports += 1;
            }
        }
        55..70 => {
            if !p.roots.is_empty() {
                let i = rng.below(p.roots.len());
                p.roots.swap_remove(i);
            }
        }
        70..78 => {
            if let Some(r) = root(p, rng) {
                p.deref(r)?;
                let children = &mut p.objs[r.index()].children;
                if !children.is_empty() {
                    let i = rng.below(children.len());
                    children.swap_remove(i);
                }
            }
        }
        78..83 => {
            if let Some(r) = root(p, rng) {
                exports[w].store(r.pack(), Ordering::Release);
            }
        }
        _ => {
            // Walk our own objects from a root, checking each.
            let mut at = root(p, rng);
            for _ in 0..16 {
                let Some(r) = at else { break };
                let obj = p.deref(r)?;
                s.walked += 1;
                let own: Vec<Ref> = obj
                    .children
                    .iter()
                    .copied()
                    .filter(|c| c.partition() == w)
                    .collect();
                at = (!own.is_empty()).then(|| own[rng.below(own.len())]);
            }
        }
    }
    Ok(Ok(()))
}

struct Control {
    pressure: Notify,
    epoch: watch::Sender<u64>,
    allocs: AtomicU64,
    budget: u64,
    done: AtomicBool,
}

async fn mutator(heap: Arc<Heap>, control: Arc<Control>, seed: u64) -> MutatorStats {
    let w = stop_machine::current_worker().unwrap();
    let mut rng = Rng(seed | 1);
    let mut stats = MutatorStats::default();
    let mut epoch = control.epoch.subscribe();
    while !control.done.load(Ordering::SeqCst) {
        let before = stats.allocs;
        let burst = |p: &mut Partition| -> Result<(), Full> {
            for _ in 0..BURST {
                match step(w, p, &heap.exports, &mut rng, &mut stats) {
                    Ok(outcome) => outcome?,
                    Err(Dangling(r)) => panic!("worker {w}: use after free of {r:?}"),
                }
            }
            Ok(())
        };
        // SAFETY: a task of partition `w`'s worker; synchronous, starts no stop.
        let outcome = unsafe { heap.parts[w].with_mut(burst) };
        let n = stats.allocs - before;
        let total = control.allocs.fetch_add(n, Ordering::Relaxed) + n;
        if total / control.budget != (total - n) / control.budget {
            control.pressure.notify_one();
        }
        match outcome {
            Ok(()) => tokio::task::yield_now().await,
            Err(Full) => {
                // SAFETY: as above.
                unsafe { heap.parts[w].with_mut(|p| p.roots.truncate(p.roots.len() / 2)) };
                epoch.borrow_and_update();
                if control.done.load(Ordering::SeqCst) {
                    break;
                }
                control.pressure.notify_one();
                if epoch.changed().await.is_err() {
                    break;
                }
            }
        }
    }
    stats
}

// ---------------------------------------------------------------------------
// The collector.
// ---------------------------------------------------------------------------

/// A deliberate bug for the verifier to catch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Correct,
    /// Forgets the export slots as roots.
    IgnoresExports,
}

struct Cycle {
    barrier: Barrier,
    marker: Marker,
    failure: Mutex<Option<String>>,
    marked: AtomicUsize,
    live: AtomicUsize,
    freed: AtomicUsize,
    cross_edges: AtomicUsize,
}

#[derive(Debug, Clone, Copy)]
struct Collection {
    marked: usize,
    live: usize,
    freed: usize,
    cross_edges: usize,
}

/// One verified collection, every worker stopped and taking part.
async fn collect(handle: &Handle, heap: &Arc<Heap>, marker: Marker) -> Result<Collection, StopError> {
    let n = handle.num_workers();
    let cycle = Arc::new(Cycle {
        barrier: Barrier::new(n),
        marker,
        failure: Mutex::new(None),
        marked: AtomicUsize::new(0),
        live: AtomicUsize::new(0),
        freed: AtomicUsize::new(0),
        cross_edges: AtomicUsize::new(0),
    });
    let (h, c) = (heap.clone(), cycle.clone());
    handle
        .stop_machine(move |w| collect_on(&h, &c, w), Some(&CpuMask::full(n)))
        .await?;
    let count = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    Ok(Collection {
        marked: count(&cycle.marked),
        live: count(&cycle.live),
        freed: count(&cycle.freed),
        cross_edges: count(&cycle.cross_edges),
    })
}

fn collect_on(heap: &Heap, cycle: &Cycle, w: usize) {
    let (marked, cross) = mark(heap, w, cycle.marker);
    cycle.marked.fetch_add(marked, Ordering::Relaxed);
    cycle.cross_edges.fetch_add(cross, Ordering::Relaxed);
    cycle.barrier.wait();
    if w == 0 {
        if let Err(e) = verify(heap) {
            *cycle.failure.lock().unwrap() = Some(e);
        }
    }
    cycle.barrier.wait();
    let failure = cycle.failure.lock().unwrap().clone();
    if let Some(e) = failure {
        // Abandon the cycle: clear our marks, free nothing.
        // SAFETY: the collector on worker `w`, the owner, after the barrier.
        unsafe { heap.parts[w].with_mut(|p| p.objs.iter_mut().for_each(|o| *o.marked.get_mut() = false)) };
        if w == 0 {
            panic!("gc verify failed: {e}");
        }
        return;
    }
    let (live, freed) = sweep(heap, w);
    cycle.live.fetch_add(live, Ordering::Relaxed);
    cycle.freed.fetch_add(freed, Ordering::Relaxed);
}

fn mark(heap: &Heap, w: usize, marker: Marker) -> (usize, usize) {
    // SAFETY: the collector's stop function; the borrows end before the barriers.
    let parts: Vec<&Partition> = heap.parts.iter().map(|p| unsafe { p.get() }).collect();
    let mut stack: Vec<Ref> = match marker {
        Marker::Correct => heap.roots_of(w, parts[w]).collect(),
        Marker::IgnoresExports => parts[w].roots.clone(),
    };
    let (mut marked, mut cross) = (0, 0);
    while let Some(r) = stack.pop() {
        let obj = &parts[r.partition()].objs[r.index()];
        if obj.marked.swap(true, Ordering::Relaxed) {
            continue;
        }
        marked += 1;
        for &child in &obj.children {
            cross += usize::from(child.partition() != r.partition());
            stack.push(child);
        }
    }
    (marked, cross)
}

fn verify(heap: &Heap) -> Result<(), String> {
    // SAFETY: the collector's stop function between the barriers: shared
    // borrows only, ended before the sweep.
    let parts: Vec<&Partition> = heap.parts.iter().map(|p| unsafe { p.get() }).collect();
    let mut reachable: Vec<Vec<bool>> = parts.iter().map(|p| vec![false; p.objs.len()]).collect();
    let mut stack: Vec<Ref> = (0..parts.len())
        .flat_map(|w| heap.roots_of(w, parts[w]))
        .collect();
    while let Some(r) = stack.pop() {
        let obj = parts[r.partition()]
            .deref(r)
            .map_err(|Dangling(r)| format!("a reachable edge leads to freed object {r:?}"))?;
        if !std::mem::replace(&mut reachable[r.partition()][r.index()], true) {
            stack.extend(&obj.children);
        }
    }
    for (w, part) in parts.iter().enumerate() {
        for (i, obj) in part.objs.iter().enumerate() {
            match (reachable[w][i], obj.marked.load(Ordering::Relaxed)) {
                (true, false) => return Err(format!("object {w}:{i} is reachable but unmarked")),
                (false, true) => return Err(format!("object {w}:{i} is marked but unreachable")),
                _ => {}
            }
        }
    }
    Ok(())
}

fn sweep(heap: &Heap, w: usize) -> (usize, usize) {
    // SAFETY: the collector on worker `w`, the owner, after the barrier.
    unsafe {
        heap.parts[w].with_mut(|part| {
            let (mut live, mut freed) = (0, 0);
            for (i, obj) in part.objs.iter_mut().enumerate() {
                let marked = std::mem::replace(obj.marked.get_mut(), false);
                if obj.live && marked {
                    live += 1;
                } else if obj.live {
                    obj.live = false;
                    obj.generation = obj.generation.wrapping_add(1).max(1);
                    obj.children.clear();
                    part.free.push(i as u32);
                    freed += 1;
                }
            }
            (live, freed)
        })
    }
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

const WORKERS: usize = 3;
const SLOTS: usize = 4096;
const COLLECTIONS: usize = 30;

#[test]
fn parallel_mark_sweep_under_mutators_frees_nothing_reachable() {
    watchdog("gc", || {
        let rt = runtime(WORKERS);
        let h = rt.handle().clone();
        let heap = Arc::new(Heap::new(WORKERS, SLOTS));
        let control = Arc::new(Control {
            pressure: Notify::new(),
            epoch: watch::Sender::new(0),
            allocs: AtomicU64::new(0),
            budget: (SLOTS * WORKERS / 2) as u64,
            done: AtomicBool::new(false),
        });
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
                done.push(collect(&hh, &heap2, Marker::Correct).await.expect("collection"));
                c.epoch.send_modify(|e| *e += 1);
            }
            c.done.store(true, Ordering::SeqCst);
            c.epoch.send_modify(|e| *e += 1);
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
        let heap = Arc::new(Heap::new(2, 64));
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
        let buggy = rt.block_on(async move { collect(&hh, &hp, Marker::IgnoresExports).await });
        match buggy {
            Err(StopError::Panicked(msg)) => assert!(msg.contains("reachable but unmarked"), "{msg}"),
            other => panic!("the verifier let a missed root through: {other:?}"),
        }

        // Nothing was swept; a correct collection keeps the object.
        let (hh, hp) = (h.clone(), heap.clone());
        let good = rt
            .block_on(async move { collect(&hh, &hp, Marker::Correct).await })
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
