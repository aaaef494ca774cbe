//! The machine's packages, NUMA nodes, cores and hardware threads.
//!
//! [`Topology`] describes the CPUs in OS numbering; [`WorkerPlacement`] maps it
//! onto the runtime's workers, so that callers can say "stop every worker on
//! node 1" or "one worker per physical core" as masks of worker ids.
//!
//! Two backends read the machine: the flat one (always built) knows only which
//! CPUs the calling thread may run on and treats each as its own core; the
//! hwloc one (cargo feature `hwloc`) knows the real cores, nodes and packages.

use std::collections::BTreeSet;
use std::io;

use crate::cpumask::CpuMask;

mod flat;
#[cfg(feature = "hwloc")]
mod hwloc;
mod placement;

pub use placement::WorkerPlacement;

/// One hardware thread (processing unit) as the OS numbers it.
///
/// `core`, `node` and `package` are ids unique across the machine (unlike
/// Linux's `core_id`, which restarts in every package), so PUs with the same
/// `core` are SMT siblings on one physical core. Ids need not be dense.
///
/// # Examples
///
/// ```
/// use stop_machine::Pu;
///
/// let pu = Pu { os_cpu: 3, core: 1, node: 0, package: 0 };
/// assert_eq!(pu.os_cpu, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pu {
    /// The CPU number the OS uses (`/sys/devices/system/cpu/cpuN`, `taskset -c`).
    pub os_cpu: usize,
    /// The physical core this PU belongs to, unique across the machine.
    pub core: usize,
    /// The NUMA node whose memory is local to this PU.
    pub node: usize,
    /// The physical package (socket).
    pub package: usize,
}

/// The processing units of the machine, with their cores, NUMA nodes and packages.
///
/// Build one with [`Topology::detect`] (the best backend compiled in),
/// [`Topology::flat`] (no hardware knowledge), or [`Topology::from_pus`] (by hand).
///
/// # Examples
///
/// ```
/// use stop_machine::{Pu, Topology};
///
/// // Two cores with two SMT threads each; Linux numbers siblings apart.
/// let topo = Topology::from_pus(vec![
///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
///     Pu { os_cpu: 1, core: 1, node: 0, package: 0 },
///     Pu { os_cpu: 2, core: 0, node: 0, package: 0 },
///     Pu { os_cpu: 3, core: 1, node: 0, package: 0 },
/// ]);
/// assert_eq!(topo.num_cores(), 2);
/// assert_eq!(topo.siblings(1).to_string(), "1,3");
/// assert_eq!(topo.one_per_core().to_string(), "0-1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    // Sorted by `os_cpu`, no duplicates: lookups binary-search it.
    pus: Vec<Pu>,
}

impl Topology {
    /// Reads the topology of the CPUs the calling thread may run on, with the
    /// best backend compiled in: hwloc with the `hwloc` feature, otherwise
    /// [`Topology::flat`].
    ///
    /// Only CPUs in the calling thread's affinity mask are included, so that
    /// every PU listed is one a worker can be pinned to.
    ///
    /// # Errors
    ///
    /// Returns an error if the affinity mask cannot be read (flat backend) or
    /// hwloc fails to load the topology (`hwloc` feature).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Topology;
    ///
    /// let topo = Topology::detect().unwrap();
    /// assert!(topo.pus().len() >= 1);
    /// ```
    pub fn detect() -> io::Result<Topology> {
        #[cfg(feature = "hwloc")]
        {
            Topology::hwloc()
        }
        #[cfg(not(feature = "hwloc"))]
        {
            Topology::flat()
        }
    }

    /// Reads the topology through hwloc, restricted to the CPUs the calling
    /// thread may run on.
    ///
    /// Core, node and package ids are hwloc's logical indices. A machine that
    /// hwloc reports without cores gives each PU its own core; one without
    /// packages puts every PU in package 0; one without NUMA nodes puts every PU
    /// in node 0.
    ///
    /// Only available with the `hwloc` cargo feature.
    ///
    /// # Errors
    ///
    /// Returns an error if hwloc fails to load the topology.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Topology;
    ///
    /// let topo = Topology::hwloc().unwrap();
    /// assert_eq!(topo.os_cpus(), Topology::flat().unwrap().os_cpus());
    /// ```
    #[cfg(feature = "hwloc")]
    pub fn hwloc() -> io::Result<Topology> {
        hwloc::detect()
    }

    /// Describes the CPUs the calling thread may run on (`sched_getaffinity`)
    /// without any hardware knowledge: each CPU its own core, all in node 0 and
    /// package 0.
    ///
    /// On systems without `sched_getaffinity` it lists CPUs
    /// `0..available_parallelism`.
    ///
    /// # Errors
    ///
    /// Returns the OS error if the affinity mask cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Topology;
    ///
    /// let topo = Topology::flat().unwrap();
    /// assert_eq!(topo.num_cores(), topo.pus().len());
    /// assert_eq!(topo.num_nodes(), 1);
    /// ```
    pub fn flat() -> io::Result<Topology> {
        flat::detect()
    }

    /// Describes a topology by hand, in any order.
    ///
    /// # Panics
    ///
    /// Panics if two PUs have the same `os_cpu`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 1, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    /// ]);
    /// assert_eq!(topo.pus()[0].os_cpu, 0);
    /// ```
    pub fn from_pus(mut pus: Vec<Pu>) -> Topology {
        pus.sort_unstable_by_key(|pu| pu.os_cpu);
        if let Some(dup) = pus.windows(2).find(|w| w[0].os_cpu == w[1].os_cpu) {
            panic!("Topology::from_pus: os_cpu {} listed twice", dup[0].os_cpu);
        }
        Topology { pus }
    }

    /// The PUs, sorted by `os_cpu`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Topology;
    ///
    /// let topo = Topology::flat().unwrap();
    /// assert!(topo.pus().windows(2).all(|w| w[0].os_cpu < w[1].os_cpu));
    /// ```
    pub fn pus(&self) -> &[Pu] {
        &self.pus
    }

    /// The OS cpu numbers of all PUs.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Topology;
    ///
    /// let topo = Topology::flat().unwrap();
    /// assert_eq!(topo.os_cpus().weight(), topo.pus().len());
    /// ```
    pub fn os_cpus(&self) -> CpuMask {
        self.pus.iter().map(|pu| pu.os_cpu).collect()
    }

    /// The number of distinct packages.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 1 },
    /// ]);
    /// assert_eq!(topo.num_packages(), 2);
    /// ```
    pub fn num_packages(&self) -> usize {
        self.distinct(|pu| pu.package).len()
    }

    /// The number of distinct NUMA nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 0 },
    /// ]);
    /// assert_eq!(topo.num_nodes(), 2);
    /// ```
    pub fn num_nodes(&self) -> usize {
        self.distinct(|pu| pu.node).len()
    }

    /// The number of distinct physical cores.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 0, node: 0, package: 0 },
    /// ]);
    /// assert_eq!(topo.num_cores(), 1);
    /// ```
    pub fn num_cores(&self) -> usize {
        self.distinct(|pu| pu.core).len()
    }

    /// The PU with OS cpu number `os_cpu`, if the topology has it.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let pu = Pu { os_cpu: 4, core: 2, node: 0, package: 0 };
    /// let topo = Topology::from_pus(vec![pu]);
    /// assert_eq!(topo.pu(4), Some(&pu));
    /// assert_eq!(topo.pu(0), None);
    /// ```
    pub fn pu(&self, os_cpu: usize) -> Option<&Pu> {
        let i = self.pus.binary_search_by_key(&os_cpu, |pu| pu.os_cpu).ok()?;
        Some(&self.pus[i])
    }

    /// The OS cpus on the same physical core as `os_cpu` (its SMT siblings),
    /// including `os_cpu` itself; empty if the topology has no such cpu.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 2, core: 1, node: 0, package: 0 },
    /// ]);
    /// assert_eq!(topo.siblings(1).to_string(), "0-1");
    /// assert!(topo.siblings(9).is_empty());
    /// ```
    pub fn siblings(&self, os_cpu: usize) -> CpuMask {
        match self.pu(os_cpu) {
            Some(me) => self.cpus_where(|pu| pu.core == me.core),
            None => CpuMask::new(),
        }
    }

    /// The OS cpus of NUMA node `node`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 0 },
    /// ]);
    /// assert_eq!(topo.node_cpus(1).to_string(), "1");
    /// ```
    pub fn node_cpus(&self, node: usize) -> CpuMask {
        self.cpus_where(|pu| pu.node == node)
    }

    /// The OS cpus of package `package`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 0, package: 0 },
    /// ]);
    /// assert_eq!(topo.package_cpus(0).to_string(), "0-1");
    /// ```
    pub fn package_cpus(&self, package: usize) -> CpuMask {
        self.cpus_where(|pu| pu.package == package)
    }

    /// A copy holding only the PUs whose OS cpu is in `os_cpus`, ids unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{CpuMask, Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 1, package: 0 },
    /// ]);
    /// let half = topo.restrict(&CpuMask::of(1));
    /// assert_eq!(half.pus(), &[Pu { os_cpu: 1, core: 1, node: 1, package: 0 }]);
    /// ```
    pub fn restrict(&self, os_cpus: &CpuMask) -> Topology {
        Topology {
            pus: self
                .pus
                .iter()
                .filter(|pu| os_cpus.contains(pu.os_cpu))
                .copied()
                .collect(),
        }
    }

    /// The first (lowest-numbered) OS cpu of each physical core: the CPUs to use
    /// when SMT siblings would only compete with each other.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{Pu, Topology};
    ///
    /// let topo = Topology::from_pus(vec![
    ///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 1, core: 1, node: 0, package: 0 },
    ///     Pu { os_cpu: 2, core: 0, node: 0, package: 0 },
    ///     Pu { os_cpu: 3, core: 1, node: 0, package: 0 },
    /// ]);
    /// assert_eq!(topo.one_per_core().to_string(), "0-1");
    /// ```
    pub fn one_per_core(&self) -> CpuMask {
        let mut seen = BTreeSet::new();
        // `pus` is sorted, so the first PU seen on each core is its lowest.
        self.pus
            .iter()
            .filter(|pu| seen.insert(pu.core))
            .map(|pu| pu.os_cpu)
            .collect()
    }

    fn distinct(&self, id: impl Fn(&Pu) -> usize) -> BTreeSet<usize> {
        self.pus.iter().map(id).collect()
    }

    fn cpus_where(&self, keep: impl Fn(&Pu) -> bool) -> CpuMask {
        self.pus
            .iter()
            .filter(|pu| keep(pu))
            .map(|pu| pu.os_cpu)
            .collect()
    }
}

/// Pins the calling thread to OS cpu `os_cpu`, with hwloc when the `hwloc`
/// feature is on and `sched_setaffinity` otherwise.
///
/// # Errors
///
/// Returns the OS error if the binding fails (for instance, `os_cpu` is offline
/// or outside the process's cpuset), or `Unsupported` where the OS has no
/// thread affinity.
pub(crate) fn bind_current_thread(os_cpu: usize) -> io::Result<()> {
    #[cfg(feature = "hwloc")]
    {
        hwloc::bind_current_thread(os_cpu)
    }
    #[cfg(not(feature = "hwloc"))]
    {
        flat::bind_current_thread(os_cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 packages x 2 nodes per package x 2 cores per node x 2 SMT threads,
    /// numbered the way Linux does: all first threads, then all second threads.
    pub(crate) fn big() -> Topology {
        let mut pus = Vec::new();
        for thread in 0..2 {
            for core in 0..8 {
                pus.push(Pu {
                    os_cpu: thread * 8 + core,
                    core,
                    node: core / 2,
                    package: core / 4,
                });
            }
        }
        Topology::from_pus(pus)
    }

    #[test]
    fn counts() {
        let t = big();
        assert_eq!(t.pus().len(), 16);
        assert_eq!(t.num_packages(), 2);
        assert_eq!(t.num_nodes(), 4);
        assert_eq!(t.num_cores(), 8);
        assert_eq!(t.os_cpus(), CpuMask::full(16));
        let empty = Topology::from_pus(Vec::new());
        assert_eq!((empty.num_cores(), empty.num_nodes()), (0, 0));
        assert!(empty.os_cpus().is_empty() && empty.one_per_core().is_empty());
    }

    #[test]
    fn sorted_and_lookup() {
        let t = big();
        assert!(t.pus().windows(2).all(|w| w[0].os_cpu < w[1].os_cpu));
        assert_eq!(
            t.pu(13),
            Some(&Pu {
                os_cpu: 13,
                core: 5,
                node: 2,
                package: 1
            })
        );
        assert_eq!(t.pu(16), None);
    }

    #[test]
    fn siblings_and_groups() {
        let t = big();
        assert_eq!(t.siblings(3).to_string(), "3,11");
        assert_eq!(t.siblings(11).to_string(), "3,11");
        assert!(t.siblings(99).is_empty());
        assert_eq!(t.node_cpus(1).to_string(), "2-3,10-11");
        assert_eq!(t.package_cpus(1).to_string(), "4-7,12-15");
        assert!(t.node_cpus(7).is_empty());
        assert_eq!(t.one_per_core().to_string(), "0-7");
    }

    #[test]
    fn one_per_core_takes_lowest_cpu() {
        // Siblings listed high first, on a machine numbered sibling-adjacent.
        let t = Topology::from_pus(vec![
            Pu {
                os_cpu: 5,
                core: 7,
                node: 0,
                package: 0,
            },
            Pu {
                os_cpu: 4,
                core: 7,
                node: 0,
                package: 0,
            },
            Pu {
                os_cpu: 3,
                core: 2,
                node: 0,
                package: 0,
            },
            Pu {
                os_cpu: 2,
                core: 2,
                node: 0,
                package: 0,
            },
        ]);
        assert_eq!(t.one_per_core().to_string(), "2,4");
    }

    #[test]
    fn restrict_keeps_ids() {
        let t = big();
        let r = t.restrict(&"4-7,12".parse().unwrap());
        assert_eq!(r.os_cpus().to_string(), "4-7,12");
        assert_eq!(r.num_packages(), 1);
        assert_eq!(r.num_nodes(), 2);
        assert_eq!(r.num_cores(), 4);
        assert_eq!(r.siblings(4).to_string(), "4,12");
        assert_eq!(r.siblings(5).to_string(), "5");
        assert_eq!(r.pu(12).unwrap().package, 1);
        assert!(t.restrict(&CpuMask::new()).pus().is_empty());
        assert_eq!(t.restrict(&CpuMask::full(1000)), t);
    }

    #[test]
    #[should_panic(expected = "os_cpu 1 listed twice")]
    fn duplicate_cpu_panics() {
        let pu = Pu {
            os_cpu: 1,
            core: 0,
            node: 0,
            package: 0,
        };
        Topology::from_pus(vec![pu, pu]);
    }

    #[test]
    fn detect_matches_affinity() {
        let detected = Topology::detect().unwrap();
        let flat = Topology::flat().unwrap();
        assert!(!flat.pus().is_empty());
        assert_eq!(detected.os_cpus(), flat.os_cpus());
        assert!(detected.num_cores() <= detected.pus().len());
        assert!(detected.num_nodes() >= 1 && detected.num_packages() >= 1);
        assert_eq!(
            detected.one_per_core().weight(),
            detected.num_cores(),
            "one PU per core"
        );
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn bind_current_thread_pins() {
        // No machine has this CPU, yet the cpu-set buffer for it stays small.
        const NO_SUCH_CPU: usize = 100_000;
        let cpu = Topology::flat().unwrap().os_cpus().last().unwrap();
        // A fresh thread, so the pin cannot leak into other tests.
        std::thread::spawn(move || {
            bind_current_thread(cpu).unwrap();
            assert_eq!(Topology::flat().unwrap().os_cpus(), CpuMask::of(cpu));
            assert!(bind_current_thread(NO_SUCH_CPU).is_err());
            assert_eq!(Topology::flat().unwrap().os_cpus(), CpuMask::of(cpu));
        })
        .join()
        .unwrap();
    }
}
