//! The hwloc backend (cargo feature `hwloc`): real cores, NUMA nodes and packages.

use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};

use hwloc2::{CpuBindError, CpuBindFlags, CpuSet, ObjectType, TopologyObject};

use super::{Pu, Topology};

fn load() -> io::Result<hwloc2::Topology> {
    hwloc2::Topology::new().ok_or_else(|| io::Error::other("hwloc failed to load the machine topology"))
}

/// The nearest ancestor of `obj` of type `is_type`.
fn ancestor(obj: &TopologyObject, is_type: impl Fn(&ObjectType) -> bool) -> Option<&TopologyObject> {
    let mut cur = obj.parent();
    while let Some(o) = cur {
        if is_type(&o.object_type()) {
            return Some(o);
        }
        cur = o.parent();
    }
    None
}

/// The PUs hwloc reports that the calling thread may run on.
pub(crate) fn detect() -> io::Result<Topology> {
    let topo = load()?;
    // hwloc lists the PUs of the whole cgroup; like the flat backend, only those
    // the calling thread may run on are of use for pinning workers. Where the OS
    // cannot report a binding (hwloc has no binding support there), keep all.
    let allowed = topo.get_cpubind(CpuBindFlags::CPUBIND_THREAD);
    let pus = topo
        .objects_with_type(&ObjectType::PU)
        .map_err(|e| io::Error::other(format!("hwloc lists no PUs: {e:?}")))?;
    // Only needed to keep the made-up core ids of core-less PUs clear of real ones.
    let num_cores = topo
        .objects_with_type(&ObjectType::Core)
        .map_or(0, |cores| cores.len());
    // hwloc2 2.2.0 panics when asked for NUMA node objects (it takes their
    // virtual depth for the bridges' and indexes out of bounds), so nodes are
    // numbered by rank among the machine's node OS indexes instead, which is
    // hwloc's logical order on Linux.
    let node_os_indexes: Vec<u32> = topo
        .object_at_root()
        .nodeset()
        .map(|set| set.into_iter().collect())
        .unwrap_or_default();

    let mut out = Vec::with_capacity(pus.len());
    for pu in pus {
        let os_index = pu.os_index();
        if allowed.as_ref().is_some_and(|set| !set.is_set(os_index)) {
            continue;
        }
        let core = match ancestor(pu, |t| matches!(t, ObjectType::Core)) {
            Some(core) => core.logical_index() as usize,
            None => num_cores + pu.logical_index() as usize,
        };
        let package =
            ancestor(pu, |t| matches!(t, ObjectType::Package)).map_or(0, |p| p.logical_index() as usize);
        // A PU's nodeset is the nodes local to it; with several (e.g. DRAM and
        // HBM), the lowest is the ordinary DRAM node.
        let node = pu
            .nodeset()
            .and_then(|set| u32::try_from(set.first()).ok())
            .and_then(|first| node_os_indexes.iter().position(|&n| n == first))
            .unwrap_or(0);
        out.push(Pu {
            os_cpu: os_index as usize,
            core,
            node,
            package,
        });
    }
    Ok(Topology::from_pus(out))
}

/// Pins the calling thread to `os_cpu` through hwloc.
pub(crate) fn bind_current_thread(os_cpu: usize) -> io::Result<()> {
    // Loading a topology takes milliseconds, and every worker binds once at
    // start-up, so one is loaded on first use and kept; binding needs `&mut`.
    static TOPOLOGY: OnceLock<Option<Mutex<hwloc2::Topology>>> = OnceLock::new();
    let cpu = u32::try_from(os_cpu).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {os_cpu} is beyond any supported cpu number"),
        )
    })?;
    let topo = TOPOLOGY
        .get_or_init(|| load().ok().map(Mutex::new))
        .as_ref()
        .ok_or_else(|| io::Error::other("hwloc failed to load the machine topology"))?;
    // The topology is only read under the lock, so a panic elsewhere cannot
    // have left it inconsistent.
    let mut topo = topo.lock().unwrap_or_else(PoisonError::into_inner);
    topo.set_cpubind(CpuSet::from(cpu), CpuBindFlags::CPUBIND_THREAD)
        .map_err(|CpuBindError::Generic(errno, _)| io::Error::from_raw_os_error(errno))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use super::*;
    use crate::cpumask::CpuMask;
    use crate::topology::flat;

    /// `/sys/devices/system/cpu/cpuN/topology/<file>`, if the kernel exposes it.
    fn sys_cpu(cpu: usize, file: &str) -> Option<String> {
        fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{file}"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Whether `a` and `b` group the cpus the same way, whatever the ids.
    fn same_partition(a: &BTreeMap<usize, usize>, b: &BTreeMap<usize, usize>) -> bool {
        a.keys().eq(b.keys())
            && a.iter()
                .all(|(cpu, ga)| a.iter().all(|(other, gb)| (ga == gb) == (b[cpu] == b[other])))
    }

    #[test]
    fn pus_match_affinity() {
        let t = detect().unwrap();
        assert_eq!(t.os_cpus(), flat::affinity().unwrap());
        assert!(t.num_cores() >= 1 && t.num_cores() <= t.pus().len());
        assert!(t.num_nodes() >= 1 && t.num_packages() >= 1);
        // Every core lies within one node and one package.
        for pu in t.pus() {
            for sib in &t.siblings(pu.os_cpu) {
                let s = t.pu(sib).unwrap();
                assert_eq!((s.node, s.package), (pu.node, pu.package));
            }
        }
    }

    #[test]
    fn cores_match_sysfs() {
        let t = detect().unwrap();
        for pu in t.pus() {
            let Some(list) = sys_cpu(pu.os_cpu, "thread_siblings_list") else {
                return;
            };
            let kernel: CpuMask = list.parse().unwrap();
            // The kernel lists siblings outside our affinity too.
            assert_eq!(t.siblings(pu.os_cpu), &kernel & &t.os_cpus(), "cpu {}", pu.os_cpu);
        }
    }

    #[test]
    fn packages_match_sysfs() {
        let t = detect().unwrap();
        let ours: BTreeMap<usize, usize> = t.pus().iter().map(|p| (p.os_cpu, p.package)).collect();
        let mut kernel = BTreeMap::new();
        for pu in t.pus() {
            let Some(id) = sys_cpu(pu.os_cpu, "physical_package_id") else {
                return;
            };
            kernel.insert(pu.os_cpu, id.parse::<usize>().unwrap());
        }
        assert!(same_partition(&ours, &kernel), "{ours:?} vs {kernel:?}");
    }

    #[test]
    fn nodes_match_sysfs() {
        let t = detect().unwrap();
        let ours: BTreeMap<usize, usize> = t.pus().iter().map(|p| (p.os_cpu, p.node)).collect();
        let Ok(dir) = fs::read_dir("/sys/devices/system/node") else {
            return;
        };
        let mut kernel = BTreeMap::new();
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(node) = name.strip_prefix("node").and_then(|n| n.parse().ok()) else {
                continue;
            };
            let cpus: CpuMask = fs::read_to_string(entry.path().join("cpulist"))
                .unwrap()
                .parse()
                .unwrap();
            for cpu in &(&cpus & &t.os_cpus()) {
                kernel.insert(cpu, node);
            }
        }
        if kernel.is_empty() {
            // No NUMA in this kernel: hwloc must then report a single node.
            assert_eq!(t.num_nodes(), 1);
        } else {
            assert!(same_partition(&ours, &kernel), "{ours:?} vs {kernel:?}");
        }
    }

    /// Reads a made-up 2 packages x 2 nodes x 2 cores x 2 threads machine
    /// through hwloc's `HWLOC_SYNTHETIC`, to check the tree walk on a shape this
    /// machine may not have.
    #[test]
    fn synthetic_machine() {
        // hwloc reads the variable when loading, and it is process-wide, so the
        // check runs in a child test process of its own.
        const CHILD: &str = "STOP_MACHINE_HWLOC_SYNTHETIC_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let t = detect().unwrap();
            assert_eq!(t.os_cpus(), CpuMask::full(16));
            assert_eq!((t.num_packages(), t.num_nodes(), t.num_cores()), (2, 4, 8));
            assert_eq!(t.siblings(5).to_string(), "4-5");
            assert_eq!(t.node_cpus(1).to_string(), "4-7");
            assert_eq!(t.package_cpus(1).to_string(), "8-15");
            assert_eq!(t.one_per_core().to_string(), "0,2,4,6,8,10,12,14");
            return;
        }
        let name = module_path!().split_once("::").unwrap().1.to_owned() + "::synthetic_machine";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--test-threads=1"])
            .env(CHILD, "1")
            .env("HWLOC_SYNTHETIC", "pack:2 numa:2 core:2 pu:2")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}{stderr}");
        // A filter that matched nothing would pass vacuously.
        assert!(stdout.contains("1 passed"), "{stdout}{stderr}");
    }

    #[test]
    fn bind_pins_thread() {
        std::thread::spawn(|| {
            let cpu = flat::affinity().unwrap().last().unwrap();
            bind_current_thread(cpu).unwrap();
            assert_eq!(flat::affinity().unwrap(), CpuMask::of(cpu));
            assert!(bind_current_thread(100_000).is_err());
            assert_eq!(
                bind_current_thread(usize::MAX).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        })
        .join()
        .unwrap();
    }
}
