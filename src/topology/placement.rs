//! [`WorkerPlacement`]: the topology seen in worker ids.

use std::collections::BTreeMap;

use super::{Pu, Topology};
use crate::cpumask::WorkerMask;

/// Where the runtime's workers run: the [`Topology`] translated into masks of
/// **worker ids**, for choosing which workers a stop (or any per-worker job)
/// should involve.
///
/// Worker `i` is pinned to the OS cpu `worker_cpus[i]`, or unpinned if that is
/// `None`. An unpinned worker has no core, node or package: it appears in none
/// of [`node_mask`](Self::node_mask), [`package_mask`](Self::package_mask) or
/// [`core_mask`](Self::core_mask), and its "own core" is just itself. Several
/// workers may be pinned to the same cpu; they then share its core.
///
/// # Examples
///
/// ```
/// use stop_machine::{Pu, Topology, WorkerPlacement};
///
/// // Two cores with two SMT threads each.
/// let topo = Topology::from_pus(vec![
///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
///     Pu { os_cpu: 1, core: 1, node: 0, package: 0 },
///     Pu { os_cpu: 2, core: 0, node: 0, package: 0 },
///     Pu { os_cpu: 3, core: 1, node: 0, package: 0 },
/// ]);
/// // One worker per PU, in OS order, plus an unpinned one.
/// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1), Some(2), Some(3), None]);
/// assert_eq!(placement.core_mask_of(0).to_string(), "0,2");
/// assert_eq!(placement.core_mask_of(4).to_string(), "4");
/// assert_eq!(placement.one_per_core().to_string(), "0-1,4");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlacement {
    topology: Topology,
    worker_cpus: Vec<Option<usize>>,
    // Per worker: the PU it is pinned to.
    worker_pus: Vec<Option<Pu>>,
    // Keyed by id so iteration is ascending.
    by_core: BTreeMap<usize, WorkerMask>,
    by_node: BTreeMap<usize, WorkerMask>,
    by_package: BTreeMap<usize, WorkerMask>,
}

impl WorkerPlacement {
    /// Places worker `i` on the OS cpu `worker_cpus[i]` (`None`: unpinned).
    ///
    /// # Panics
    ///
    /// Panics if a worker is pinned to a cpu that `topology` does not list:
    /// such a worker would have no core, node or package to be counted in.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Topology, WorkerPlacement};
    ///
    /// let topo = Topology::flat().unwrap();
    /// let cpus = topo.os_cpus().iter().map(Some).collect();
    /// let placement = WorkerPlacement::new(topo, cpus);
    /// assert_eq!(placement.num_workers(), placement.topology().pus().len());
    /// ```
    pub fn new(topology: Topology, worker_cpus: Vec<Option<usize>>) -> WorkerPlacement {
        let worker_pus: Vec<Option<Pu>> = worker_cpus
            .iter()
            .enumerate()
            .map(|(worker, cpu)| {
                cpu.map(|cpu| match topology.pu(cpu) {
                    Some(pu) => *pu,
                    None => panic!(
                        "WorkerPlacement::new: worker {worker} is pinned to cpu {cpu}, \
                         which the topology does not list ({})",
                        topology.os_cpus()
                    ),
                })
            })
            .collect();
        let mut by_core = BTreeMap::<usize, WorkerMask>::new();
        let mut by_node = BTreeMap::<usize, WorkerMask>::new();
        let mut by_package = BTreeMap::<usize, WorkerMask>::new();
        for (worker, pu) in worker_pus.iter().enumerate() {
            if let Some(pu) = pu {
                by_core.entry(pu.core).or_default().insert(worker);
                by_node.entry(pu.node).or_default().insert(worker);
                by_package.entry(pu.package).or_default().insert(worker);
            }
        }
        WorkerPlacement {
            topology,
            worker_cpus,
            worker_pus,
            by_core,
            by_node,
            by_package,
        }
    }

    /// The machine topology the workers were placed on.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Topology, WorkerPlacement};
    ///
    /// let topo = Topology::flat().unwrap();
    /// let placement = WorkerPlacement::new(topo.clone(), vec![None]);
    /// assert_eq!(placement.topology(), &topo);
    /// ```
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The number of workers.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Topology, WorkerPlacement};
    ///
    /// let placement = WorkerPlacement::new(Topology::from_pus(vec![]), vec![None; 3]);
    /// assert_eq!(placement.num_workers(), 3);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.worker_cpus.len()
    }

    /// All workers, `0..num_workers()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Topology, WorkerPlacement};
    ///
    /// let placement = WorkerPlacement::new(Topology::from_pus(vec![]), vec![None; 3]);
    /// assert_eq!(placement.workers().to_string(), "0-2");
    /// ```
    pub fn workers(&self) -> WorkerMask {
        WorkerMask::full(self.num_workers())
    }

    /// The workers pinned to a cpu.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![Pu { os_cpu: 0, core: 0, node: 0, package: 0 }]);
    /// let placement = WorkerPlacement::new(topo, vec![None, Some(0)]);
    /// assert_eq!(placement.pinned().to_string(), "1");
    /// ```
    pub fn pinned(&self) -> WorkerMask {
        (0..self.num_workers())
            .filter(|&w| self.worker_cpus[w].is_some())
            .collect()
    }

    /// The OS cpu worker `worker` is pinned to; `None` if it is unpinned or
    /// there is no such worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![Pu { os_cpu: 5, core: 0, node: 0, package: 0 }]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(5), None]);
    /// assert_eq!(placement.worker_cpu(0), Some(5));
    /// assert_eq!(placement.worker_cpu(1), None);
    /// ```
    pub fn worker_cpu(&self, worker: usize) -> Option<usize> {
        self.worker_cpus.get(worker).copied().flatten()
    }

    /// The worker-to-cpu list this placement was built from.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![Pu { os_cpu: 5, core: 0, node: 0, package: 0 }]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(5), None]);
    /// assert_eq!(placement.worker_cpus(), &[Some(5), None]);
    /// ```
    pub fn worker_cpus(&self) -> &[Option<usize>] {
        &self.worker_cpus
    }

    /// The PU worker `worker` is pinned to; `None` if it is unpinned or there is
    /// no such worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let pu = Pu { os_cpu: 5, core: 2, node: 1, package: 0 };
    /// let placement = WorkerPlacement::new(Topology::from_pus(vec![pu]), vec![Some(5)]);
    /// assert_eq!(placement.worker_pu(0), Some(&pu));
    /// ```
    pub fn worker_pu(&self, worker: usize) -> Option<&Pu> {
        self.worker_pus.get(worker)?.as_ref()
    }

    /// The workers pinned to NUMA node `node` (empty for a node with none).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(1), Some(0), Some(1)]);
    /// assert_eq!(placement.node_mask(1).to_string(), "0,2");
    /// ```
    pub fn node_mask(&self, node: usize) -> WorkerMask {
        self.by_node.get(&node).cloned().unwrap_or_default()
    }

    /// The workers pinned to package `package` (empty for a package with none).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 1 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1)]);
    /// assert_eq!(placement.package_mask(1).to_string(), "1");
    /// ```
    pub fn package_mask(&self, package: usize) -> WorkerMask {
        self.by_package.get(&package).cloned().unwrap_or_default()
    }

    /// The workers pinned to physical core `core` (empty for a core with none).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 7, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 7, node: 0, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1)]);
    /// assert_eq!(placement.core_mask(7).to_string(), "0-1");
    /// ```
    pub fn core_mask(&self, core: usize) -> WorkerMask {
        self.by_core.get(&core).cloned().unwrap_or_default()
    }

    /// The workers on the same physical core as `worker`, itself included; just
    /// `worker` if it is unpinned, and empty if there is no such worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 0, node: 0, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1), None]);
    /// assert_eq!(placement.core_mask_of(1).to_string(), "0-1");
    /// assert_eq!(placement.core_mask_of(2).to_string(), "2");
    /// ```
    pub fn core_mask_of(&self, worker: usize) -> WorkerMask {
        self.mask_of(worker, |pu| self.core_mask(pu.core))
    }

    /// The workers on the same NUMA node as `worker`, itself included; just
    /// `worker` if it is unpinned, and empty if there is no such worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 0, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1), None]);
    /// assert_eq!(placement.node_mask_of(0).to_string(), "0-1");
    /// ```
    pub fn node_mask_of(&self, worker: usize) -> WorkerMask {
        self.mask_of(worker, |pu| self.node_mask(pu.node))
    }

    /// The workers in the same package as `worker`, itself included; just
    /// `worker` if it is unpinned, and empty if there is no such worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 1 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1)]);
    /// assert_eq!(placement.package_mask_of(1).to_string(), "1");
    /// ```
    pub fn package_mask_of(&self, worker: usize) -> WorkerMask {
        self.mask_of(worker, |pu| self.package_mask(pu.package))
    }

    /// The lowest worker on each physical core, counting every unpinned worker
    /// as alone on its own core: the workers to use when SMT siblings should
    /// not compete.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 0, node: 0, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(1), Some(0), None]);
    /// assert_eq!(placement.one_per_core().to_string(), "0,2");
    /// ```
    pub fn one_per_core(&self) -> WorkerMask {
        let mut mask: WorkerMask = self.by_core.values().filter_map(WorkerMask::first).collect();
        mask |= self.workers() - self.pinned();
        mask
    }

    /// The NUMA nodes that have at least one worker, ascending.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 3, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(1)]);
    /// assert_eq!(placement.nodes().collect::<Vec<_>>(), [3]);
    /// ```
    pub fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_node.keys().copied()
    }

    /// The physical cores that have at least one worker, ascending.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 4, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 2, node: 0, package: 0 },
    /// ]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), Some(1)]);
    /// assert_eq!(placement.cores().collect::<Vec<_>>(), [2, 4]);
    /// ```
    pub fn cores(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_core.keys().copied()
    }

    /// The packages that have at least one worker, ascending.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology, WorkerPlacement};
    ///
    /// let topo = Topology::from_pus(vec![Pu { os_cpu: 0, core: 0, node: 0, package: 1 }]);
    /// let placement = WorkerPlacement::new(topo, vec![Some(0), None]);
    /// assert_eq!(placement.packages().collect::<Vec<_>>(), [1]);
    /// ```
    pub fn packages(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_package.keys().copied()
    }

    fn mask_of(&self, worker: usize, group: impl Fn(&Pu) -> WorkerMask) -> WorkerMask {
        match self.worker_pus.get(worker) {
            None => WorkerMask::new(),
            Some(None) => WorkerMask::of(worker),
            Some(Some(pu)) => group(pu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::tests::big;

    /// One worker per PU of [`big`], in OS cpu order (worker i on cpu i).
    fn per_pu() -> WorkerPlacement {
        WorkerPlacement::new(big(), (0..16).map(Some).collect())
    }

    #[test]
    fn masks_per_level() {
        let p = per_pu();
        assert_eq!(p.num_workers(), 16);
        assert_eq!(p.workers(), WorkerMask::full(16));
        assert_eq!(p.pinned(), WorkerMask::full(16));
        assert_eq!(p.nodes().collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(p.cores().collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert_eq!(p.packages().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(p.node_mask(0).to_string(), "0-1,8-9");
        assert_eq!(p.node_mask(3).to_string(), "6-7,14-15");
        assert_eq!(p.package_mask(1).to_string(), "4-7,12-15");
        assert_eq!(p.core_mask(5).to_string(), "5,13");
        assert!(p.node_mask(4).is_empty() && p.package_mask(2).is_empty());
        assert!(p.core_mask(8).is_empty());
        // Every level partitions the workers.
        let nodes: Vec<WorkerMask> = p.nodes().map(|n| p.node_mask(n)).collect();
        assert_eq!(nodes.iter().map(WorkerMask::weight).sum::<usize>(), 16);
        assert_eq!(nodes.iter().fold(WorkerMask::new(), |a, m| a | m), p.workers());
    }

    #[test]
    fn masks_of_worker() {
        let p = per_pu();
        assert_eq!(p.core_mask_of(3).to_string(), "3,11");
        assert_eq!(p.core_mask_of(11).to_string(), "3,11");
        assert_eq!(p.node_mask_of(10).to_string(), "2-3,10-11");
        assert_eq!(p.package_mask_of(0).to_string(), "0-3,8-11");
        for w in 0..16 {
            assert!(p.core_mask_of(w).contains(w));
            assert!(p.core_mask_of(w).is_subset(&p.node_mask_of(w)));
            assert!(p.node_mask_of(w).is_subset(&p.package_mask_of(w)));
        }
        assert!(p.core_mask_of(16).is_empty());
        assert!(p.node_mask_of(99).is_empty());
        assert_eq!(p.worker_cpu(16), None);
        assert_eq!(p.worker_pu(16), None);
    }

    #[test]
    fn one_per_core_lowest_worker() {
        let p = per_pu();
        assert_eq!(p.one_per_core(), WorkerMask::full(8));
        // Workers numbered against the OS order: worker i on cpu 15 - i.
        let rev = WorkerPlacement::new(big(), (0..16).rev().map(Some).collect());
        // Cores 7..0 hold workers {0,8}, {1,9}, ...: the lowest are 0..8.
        assert_eq!(rev.one_per_core(), WorkerMask::full(8));
        assert_eq!(rev.core_mask_of(0).to_string(), "0,8");
        assert_eq!(rev.worker_pu(0).unwrap().core, 7);
    }

    #[test]
    fn unpinned_and_shared_cpus() {
        // Workers 0 and 2 share cpu 4; worker 1 and 4 are unpinned.
        let p = WorkerPlacement::new(big(), vec![Some(4), None, Some(4), Some(12), None]);
        assert_eq!(p.pinned().to_string(), "0,2-3");
        assert_eq!(p.core_mask_of(0).to_string(), "0,2-3");
        assert_eq!(p.core_mask_of(1).to_string(), "1");
        assert_eq!(p.node_mask_of(4).to_string(), "4");
        assert_eq!(p.package_mask_of(1), WorkerMask::of(1));
        assert_eq!(p.one_per_core().to_string(), "0-1,4");
        assert_eq!(p.nodes().collect::<Vec<_>>(), [2]);
        assert_eq!(p.packages().collect::<Vec<_>>(), [1]);
        assert_eq!(p.node_mask(2).to_string(), "0,2-3");
        assert!(p.node_mask(0).is_empty());
        assert_eq!(p.worker_cpus(), &[Some(4), None, Some(4), Some(12), None]);
        assert_eq!(p.worker_cpu(3), Some(12));
        assert_eq!(p.worker_pu(3).map(|pu| pu.core), Some(4));
    }

    #[test]
    fn restricted_topology_one_per_core() {
        // Pin one worker per physical core of package 1, as a runtime might.
        let t = big();
        let cpus = t.package_cpus(1);
        let t = t.restrict(&cpus);
        let workers: Vec<Option<usize>> = t.one_per_core().iter().map(Some).collect();
        let p = WorkerPlacement::new(t, workers);
        assert_eq!(p.worker_cpus(), &[Some(4), Some(5), Some(6), Some(7)]);
        assert_eq!(p.one_per_core(), WorkerMask::full(4));
        assert_eq!(p.node_mask(2).to_string(), "0-1");
        assert_eq!(p.node_mask(3).to_string(), "2-3");
        assert_eq!(p.core_mask_of(2), WorkerMask::of(2));
    }

    #[test]
    fn no_workers() {
        let p = WorkerPlacement::new(big(), Vec::new());
        assert!(p.workers().is_empty() && p.one_per_core().is_empty());
        assert_eq!(p.nodes().count(), 0);
    }

    #[test]
    #[should_panic(expected = "worker 1 is pinned to cpu 16")]
    fn unknown_cpu_panics() {
        WorkerPlacement::new(big(), vec![Some(0), Some(16)]);
    }
}
