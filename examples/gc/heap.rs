//! The gc example's heap, mutators and collector (see `examples/gc.rs` for
//! how they work and why the unsynchronized accesses are sound), shared
//! with the test of `integration/gc.rs`, which includes this file with
//! `#[path]` and runs it under a verifier.
//!
//! Each user uses a subset of it; the test also brings a deliberately
//! buggy marker ([`Marker::IgnoresExports`]) for the verifier to reject.
#![allow(dead_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use stop_machine::{Handle, StopError, WorkerMask};
use tokio::sync::{Notify, watch};

/// Slots per partition are indexed by the low bits of an object id.
pub const INDEX_BITS: u32 = 20;
/// Edges per object.
const MAX_CHILDREN: usize = 4;
/// Mutator operations between two yields.
const BURST: usize = 64;

// ---------------------------------------------------------------------------
// The cell.
// ---------------------------------------------------------------------------

/// One partition's state: its worker's tasks and the collector use it
/// without synchronization, never at the same time.
pub struct WorldCell<T>(UnsafeCell<T>);

// SAFETY: the cell is only reached through the unsafe methods below, whose
// contracts keep a `&mut` apart from every other access: the owning
// worker's tasks take it inside one poll (a stop, and so the collector,
// only runs between polls, when no task runs anywhere); in a collection,
// `&T`s are shared only while marking and verifying, which end at a
// barrier before the owner takes `&mut T` to sweep. Every transfer between threads goes
// through the stop's handshake or a barrier, which order the accesses.
unsafe impl<T: Send + Sync> Sync for WorldCell<T> {}

impl<T> WorldCell<T> {
    pub fn new(value: T) -> WorldCell<T> {
        WorldCell(UnsafeCell::new(value))
    }

    /// Exclusive access for `f`.
    ///
    /// # Safety
    ///
    /// Either from a task of the partition's own worker, with `f` starting
    /// no stop; or from the collector's stop function on that worker, once
    /// no other worker holds a shared borrow (after the sweep's barrier).
    pub unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: by the contract, nothing else borrows the value while `f`
        // runs: other workers' tasks never touch this partition, the
        // collector runs only between polls (and `f` is synchronous, so it
        // ends within one), and the collector's readers ended before the
        // sweep's barrier.
        f(unsafe { &mut *self.0.get() })
    }

    /// Shared access for as long as the returned borrow lives.
    ///
    /// # Safety
    ///
    /// Only from the collector's stop function, and the borrow must end
    /// before the barrier after which the owners sweep.
    pub unsafe fn get(&self) -> &T {
        // SAFETY: inside a stop no task runs, so no `with_mut` from a task is
        // alive; sweeps take `with_mut` only after every shared borrow ended.
        unsafe { &*self.0.get() }
    }
}

// ---------------------------------------------------------------------------
// The heap.
// ---------------------------------------------------------------------------

/// A reference to an object: its id (partition, index) and the generation
/// of its slot when it was allocated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ref {
    id: u32,
    generation: u32,
}

impl Ref {
    pub fn new(partition: usize, index: usize, generation: u32) -> Ref {
        Ref {
            id: ((partition as u32) << INDEX_BITS) | index as u32,
            generation,
        }
    }
    pub fn partition(self) -> usize {
        (self.id >> INDEX_BITS) as usize
    }
    pub fn index(self) -> usize {
        (self.id & ((1 << INDEX_BITS) - 1)) as usize
    }
    /// For the export slots; generations start at 1, so 0 means none.
    pub fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.id)
    }
    pub fn unpack(v: u64) -> Option<Ref> {
        (v != 0).then_some(Ref {
            id: v as u32,
            generation: (v >> 32) as u32,
        })
    }
    /// What an object allocated as `self` carries, to catch a use after free.
    pub fn payload(self) -> u64 {
        (self.pack() ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }
}

pub struct Obj {
    /// Set by the mark phase (atomically: markers race for it), cleared by
    /// the sweep.
    pub marked: AtomicBool,
    pub live: bool,
    pub generation: u32,
    pub payload: u64,
    pub children: Vec<Ref>,
}

/// One worker's share of the heap.
pub struct Partition {
    pub objs: Vec<Obj>,
    pub free: Vec<u32>,
    pub roots: Vec<Ref>,
}

/// A mutator dereferenced a freed object, or a collector followed an edge to
/// one: the collector freed something reachable.
#[derive(Debug)]
pub struct Dangling(pub Ref);

/// The partition is full.
pub struct Full;

impl Partition {
    pub fn new(slots: usize) -> Partition {
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

    /// The live object `r` names, if `r` is not dangling.
    pub fn deref(&self, r: Ref) -> Result<&Obj, Dangling> {
        let obj = &self.objs[r.index()];
        if obj.live && obj.generation == r.generation && obj.payload == r.payload() {
            Ok(obj)
        } else {
            Err(Dangling(r))
        }
    }

    /// Allocates an object in this partition, which is worker `w`'s.
    pub fn alloc(&mut self, w: usize) -> Result<Ref, Full> {
        let index = self.free.pop().ok_or(Full)? as usize;
        let obj = &mut self.objs[index];
        let r = Ref::new(w, index, obj.generation);
        obj.live = true;
        obj.payload = r.payload();
        obj.children.clear();
        Ok(r)
    }
}

/// The whole heap: a partition per worker and an export slot per worker.
pub struct Heap {
    pub parts: Box<[WorldCell<Partition>]>,
    pub exports: Box<[AtomicU64]>,
    /// The most roots a mutator keeps in a partition's root set.
    pub max_roots: usize,
}

impl Heap {
    /// `slots` objects and at most `max_roots` roots per worker.
    pub fn new(workers: usize, slots: usize, max_roots: usize) -> Heap {
        assert!(slots < 1 << INDEX_BITS);
        Heap {
            parts: (0..workers)
                .map(|_| WorldCell::new(Partition::new(slots)))
                .collect(),
            exports: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            max_roots,
        }
    }

    /// The roots of partition `w`: its root set and its export.
    pub fn roots_of<'a>(&self, w: usize, part: &'a Partition) -> impl Iterator<Item = Ref> + 'a {
        let export = Ref::unpack(self.exports[w].load(Ordering::Acquire));
        part.roots.iter().copied().chain(export)
    }
}

// ---------------------------------------------------------------------------
// The mutators.
// ---------------------------------------------------------------------------

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct MutatorStats {
    pub ops: u64,
    pub allocs: u64,
    pub imports: u64,
    pub walked: u64,
}

/// One mutator's view of the heap during a burst: its worker's partition.
struct Mutator<'a> {
    w: usize,
    part: &'a mut Partition,
    exports: &'a [AtomicU64],
    max_roots: usize,
    rng: &'a mut Rng,
    stats: &'a mut MutatorStats,
}

impl Mutator<'_> {
    fn alloc(&mut self) -> Result<Ref, Full> {
        let r = self.part.alloc(self.w)?;
        self.stats.allocs += 1;
        Ok(r)
    }

    fn random_root(&mut self) -> Option<Ref> {
        let n = self.part.roots.len();
        (n > 0).then(|| self.part.roots[self.rng.below(n)])
    }

    /// Adds the edge `parent -> child`; `parent` is one of ours.
    fn link(&mut self, parent: Ref, child: Ref) -> Result<(), Dangling> {
        self.part.deref(parent)?;
        let slot = self.rng.below(MAX_CHILDREN);
        let children = &mut self.part.objs[parent.index()].children;
        if children.len() < MAX_CHILDREN {
            children.push(child);
        } else {
            children[slot] = child;
        }
        Ok(())
    }

    /// Follows our own objects from `r`, checking each.
    fn walk(&mut self, mut r: Ref) -> Result<(), Dangling> {
        for _ in 0..16 {
            let obj = self.part.deref(r)?;
            self.stats.walked += 1;
            let own: Vec<Ref> = obj
                .children
                .iter()
                .copied()
                .filter(|c| c.partition() == self.w)
                .collect();
            if own.is_empty() {
                break;
            }
            r = own[self.rng.below(own.len())];
        }
        Ok(())
    }

    /// One random operation.
    fn step(&mut self) -> Result<Result<(), Full>, Dangling> {
        self.stats.ops += 1;
        match self.rng.below(100) {
            0..35 => match self.alloc() {
                Ok(r) => self.keep(r)?,
                Err(full) => return Ok(Err(full)),
            },
            35..45 => {
                if let (Some(a), Some(b)) = (self.random_root(), self.random_root()) {
                    self.link(a, b)?;
                }
            }
            45..50 => self.import()?,
            50..65 => {
                if !self.part.roots.is_empty() {
                    let i = self.rng.below(self.part.roots.len());
                    self.part.roots.swap_remove(i);
                }
            }
            65..75 => self.unlink()?,
            75..80 => {
                if let Some(r) = self.random_root() {
                    self.exports[self.w].store(r.pack(), Ordering::Release);
                }
            }
            _ => {
                if let Some(r) = self.random_root() {
                    self.walk(r)?;
                }
            }
        }
        Ok(Ok(()))
    }

    /// Keeps a new object: as a root half the time (in place of another
    /// when the set is full), else as a child of a root.
    fn keep(&mut self, r: Ref) -> Result<(), Dangling> {
        let n = self.part.roots.len();
        if n == 0 || self.rng.below(2) == 0 {
            if n < self.max_roots {
                self.part.roots.push(r);
            } else {
                self.part.roots[self.rng.below(n)] = r;
            }
            Ok(())
        } else {
            let parent = self.part.roots[self.rng.below(n)];
            self.link(parent, r)
        }
    }

    /// Links the object another worker exports under one of our roots.
    fn import(&mut self) -> Result<(), Dangling> {
        let other = self.rng.below(self.exports.len());
        let export = Ref::unpack(self.exports[other].load(Ordering::Acquire));
        if let (true, Some(foreign), Some(parent)) = (other != self.w, export, self.random_root()) {
            self.link(parent, foreign)?;
            self.stats.imports += 1;
        }
        Ok(())
    }

    /// Drops an edge from one of our roots.
    fn unlink(&mut self) -> Result<(), Dangling> {
        if let Some(r) = self.random_root() {
            self.part.deref(r)?;
            let children = &mut self.part.objs[r.index()].children;
            if !children.is_empty() {
                let i = self.rng.below(children.len());
                children.swap_remove(i);
            }
        }
        Ok(())
    }
}

/// Signals between mutators and the collector.
pub struct Control {
    /// Mutators ask for a collection.
    pub pressure: Notify,
    /// The number of collections done; mutators wait for it to move.
    epoch: watch::Sender<u64>,
    /// Allocations since start; a collection is asked for every `budget`.
    allocs: AtomicU64,
    budget: u64,
    done: AtomicBool,
}

impl Control {
    /// Mutators ask for a collection every `budget` allocations.
    pub fn new(budget: u64) -> Control {
        Control {
            pressure: Notify::new(),
            epoch: watch::Sender::new(0),
            allocs: AtomicU64::new(0),
            budget,
            done: AtomicBool::new(false),
        }
    }

    /// A collection is done: wakes the mutators waiting for one.
    pub fn collected(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Tells the mutators to return, and wakes those waiting.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}

/// A mutator task: bursts of random operations on its worker's partition.
pub async fn mutator(heap: Arc<Heap>, control: Arc<Control>, seed: u64) -> MutatorStats {
    let w = stop_machine::current_worker().expect("a mutator runs on a worker");
    let mut rng = Rng(seed | 1);
    let mut stats = MutatorStats::default();
    let mut epoch = control.epoch.subscribe();
    while !control.done.load(Ordering::SeqCst) {
        let allocs_before = stats.allocs;
        let burst = |part: &mut Partition| -> Result<(), Full> {
            let mut m = Mutator {
                w,
                part,
                exports: &heap.exports,
                max_roots: heap.max_roots,
                rng: &mut rng,
                stats: &mut stats,
            };
            for _ in 0..BURST {
                match m.step() {
                    Ok(outcome) => outcome?,
                    Err(Dangling(r)) => panic!("mutator on worker {w}: use after free of {r:?}"),
                }
            }
            Ok(())
        };
        // SAFETY: a task of partition `w`'s own worker; the closure is
        // synchronous and starts no stop.
        let outcome = unsafe { heap.parts[w].with_mut(burst) };
        let allocated = stats.allocs - allocs_before;
        let total = control.allocs.fetch_add(allocated, Ordering::Relaxed) + allocated;
        if total / control.budget != (total - allocated) / control.budget {
            control.pressure.notify_one();
        }
        match outcome {
            Ok(()) => tokio::task::yield_now().await,
            Err(Full) => {
                // Out of memory: let go of half our roots, ask for a
                // collection and wait for one.
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

/// Where the mark phase starts: from every root, or, a deliberate bug for
/// the verifier to catch, from too few.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Marker {
    /// From the root set and the export slot of each partition.
    Correct,
    /// Forgets the export slots as roots.
    IgnoresExports,
}

/// What the workers of one collection share.
struct Cycle {
    barrier: Barrier,
    verify: bool,
    marker: Marker,
    /// A verification failure: every worker skips its sweep, worker 0 panics.
    failure: Mutex<Option<String>>,
    marked: AtomicUsize,
    live: AtomicUsize,
    freed: AtomicUsize,
    /// Edges the markers followed into another worker's partition.
    cross_edges: AtomicUsize,
    mark_ns: AtomicU64,
    verify_ns: AtomicU64,
    sweep_ns: AtomicU64,
}

/// The results of one collection.
#[derive(Debug, Clone, Copy)]
pub struct Collection {
    pub pause: Duration,
    pub mark: Duration,
    pub verify: Duration,
    pub sweep: Duration,
    pub marked: usize,
    pub live: usize,
    pub freed: usize,
    pub cross_edges: usize,
}

/// Collects the heap with every worker stopped and taking part, marking
/// with `marker`; with `verify`, worker 0 checks the marks before the sweep
/// (a failure is a `Panicked` stop).
pub async fn collect(
    handle: &Handle,
    heap: &Arc<Heap>,
    verify: bool,
    marker: Marker,
) -> Result<Collection, StopError> {
    let n = handle.num_workers();
    let cycle = Arc::new(Cycle {
        barrier: Barrier::new(n),
        verify,
        marker,
        failure: Mutex::new(None),
        marked: AtomicUsize::new(0),
        live: AtomicUsize::new(0),
        freed: AtomicUsize::new(0),
        cross_edges: AtomicUsize::new(0),
        mark_ns: AtomicU64::new(0),
        verify_ns: AtomicU64::new(0),
        sweep_ns: AtomicU64::new(0),
    });
    let (h, c) = (heap.clone(), cycle.clone());
    let start = Instant::now();
    handle
        .stop_machine(move |w| collect_on(&h, &c, w), Some(&WorkerMask::full(n)))
        .await?;
    let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
    let count = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    Ok(Collection {
        pause: start.elapsed(),
        mark: ns(&cycle.mark_ns),
        verify: ns(&cycle.verify_ns),
        sweep: ns(&cycle.sweep_ns),
        marked: count(&cycle.marked),
        live: count(&cycle.live),
        freed: count(&cycle.freed),
        cross_edges: count(&cycle.cross_edges),
    })
}

/// Worker `w`'s part of a collection; every worker runs it at once.
fn collect_on(heap: &Heap, cycle: &Cycle, w: usize) {
    let t0 = Instant::now();
    let (marked, cross) = mark(heap, w, cycle.marker);
    cycle.marked.fetch_add(marked, Ordering::Relaxed);
    cycle.cross_edges.fetch_add(cross, Ordering::Relaxed);
    cycle.barrier.wait();
    let t1 = Instant::now();
    if w == 0 {
        cycle
            .mark_ns
            .store((t1 - t0).as_nanos() as u64, Ordering::Relaxed);
        if cycle.verify {
            if let Err(e) = verify(heap) {
                *cycle.failure.lock().unwrap() = Some(e);
            }
            cycle
                .verify_ns
                .store(t1.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
    cycle.barrier.wait();
    // Past the last barrier, a panic cannot leave another worker waiting.
    let failure = cycle.failure.lock().unwrap().clone();
    if let Some(e) = failure {
        // Abandon the cycle: clear our marks, free nothing.
        // SAFETY: the collector on worker `w`, the owner, after the barrier
        // that ended every shared borrow.
        unsafe { heap.parts[w].with_mut(|p| p.objs.iter_mut().for_each(|o| *o.marked.get_mut() = false)) };
        if w == 0 {
            panic!("gc verify failed: {e}");
        }
        return;
    }
    let t2 = Instant::now();
    let (live, freed) = sweep(heap, w);
    cycle.live.fetch_add(live, Ordering::Relaxed);
    cycle.freed.fetch_add(freed, Ordering::Relaxed);
    cycle
        .sweep_ns
        .fetch_max(t2.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Marks everything reachable from worker `w`'s roots (as `marker` sees
/// them); returns the objects this worker marked and the edges it followed
/// into other partitions.
fn mark(heap: &Heap, w: usize, marker: Marker) -> (usize, usize) {
    // SAFETY: the collector's stop function; these borrows end when `mark`
    // returns, before the barriers.
    let parts: Vec<&Partition> = heap.parts.iter().map(|p| unsafe { p.get() }).collect();
    let mut stack: Vec<Ref> = match marker {
        Marker::Correct => heap.roots_of(w, parts[w]).collect(),
        Marker::IgnoresExports => parts[w].roots.clone(),
    };
    let (mut marked, mut cross) = (0, 0);
    while let Some(r) = stack.pop() {
        let obj = &parts[r.partition()].objs[r.index()];
        // Test-and-set: exactly one marker claims each object. Relaxed is
        // enough: the graph is read-only during the stop, and the stop's
        // handshake ordered the mutators' writes before it.
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

/// Recomputes reachability sequentially and compares it with the marks:
/// every reachable object must be marked (else the sweep would free it) and
/// every marked one reachable.
fn verify(heap: &Heap) -> Result<(), String> {
    // SAFETY: the collector's stop function, between the two barriers: only
    // shared borrows exist, and these end before the sweep's barrier.
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
            let marked = obj.marked.load(Ordering::Relaxed);
            if reachable[w][i] && !marked {
                return Err(format!(
                    "object {w}:{i} is reachable but unmarked: the sweep would free it"
                ));
            }
            if marked && !reachable[w][i] {
                return Err(format!("object {w}:{i} is marked but unreachable"));
            }
        }
    }
    Ok(())
}

/// Frees the unmarked objects of worker `w`'s partition and clears the
/// marks; returns (live, freed).
fn sweep(heap: &Heap, w: usize) -> (usize, usize) {
    let sweep_part = |part: &mut Partition| {
        let (mut live, mut freed) = (0, 0);
        for (i, obj) in part.objs.iter_mut().enumerate() {
            let marked = std::mem::replace(obj.marked.get_mut(), false);
            if !obj.live {
                continue;
            }
            if marked {
                live += 1;
            } else {
                obj.live = false;
                obj.generation = obj.generation.wrapping_add(1).max(1);
                obj.children.clear();
                part.free.push(i as u32);
                freed += 1;
            }
        }
        (live, freed)
    };
    // SAFETY: the collector's stop function on worker `w`, the owner of
    // partition `w`, after the barrier that ended every shared borrow.
    unsafe { heap.parts[w].with_mut(sweep_part) }
}
