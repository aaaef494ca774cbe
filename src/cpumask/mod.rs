//! Sets of CPUs and of workers, after the kernel's `cpumask`: [`CpuMask`]
//! holds OS CPU numbers, [`WorkerMask`] holds worker ids.
//!
//! The runtime addresses workers the way the kernel addresses CPUs: a mask
//! says which workers a stop involves, and [`WorkerMask::of`] names a single
//! one. Yet a runtime also deals in real CPUs, to choose where its workers run
//! ([`Builder::cpus`](crate::Builder::cpus), [`Topology`](crate::Topology)), and
//! worker `i` need not run on CPU `i`: with [`Builder::cpus`](crate::Builder::cpus),
//! more workers than CPUs, or unpinned workers, it usually does not. So the two
//! kinds of set are two types with the same API, and neither converts into the
//! other; [`WorkerPlacement`](crate::WorkerPlacement) says which CPU each
//! worker runs on.
//!
//! Both print and parse in the kernel's cpulist form (`"0-3,8,10-11"`), so the
//! same text works in configuration files, logs and on the command line.

/// Invokes `$m!(Type, id, "one", "many")` for each mask type: its name, the
/// name of one of its ids, and what one and several ids are called in docs.
macro_rules! for_each_mask {
    ($m:ident) => {
        $m!(CpuMask, cpu, "CPU", "CPUs");
        $m!(WorkerMask, worker, "worker", "workers");
    };
}

mod bits;
mod iter;
mod list;
mod methods;
mod ops;

pub use iter::Iter;
pub use list::{ParseCpuMaskError, ParseCpuMaskErrorKind};

use bits::Bits;

/// A set of OS CPU numbers (as in `/sys/devices/system/cpu/cpuN` or
/// `taskset -c`), like the kernel's `struct cpumask`.
///
/// It chooses and describes the CPUs the runtime runs on:
/// [`Builder::cpus`](crate::Builder::cpus) takes one, and
/// [`Topology`](crate::Topology) answers in them
/// ([`os_cpus`](crate::Topology::os_cpus), [`siblings`](crate::Topology::siblings),
/// [`node_cpus`](crate::Topology::node_cpus), [`package_cpus`](crate::Topology::package_cpus),
/// [`one_per_core`](crate::Topology::one_per_core); [`restrict`](crate::Topology::restrict)
/// takes one). The stops take a [`WorkerMask`] instead, and a `CpuMask` does
/// not convert into one: worker `i` need not run on CPU `i`.
///
/// Bits are stored in 64-bit words that grow on demand, so any CPU number can
/// be stored; the mask takes `cpu / 8` bytes for its highest CPU. Iteration is
/// always in ascending order.
///
/// `Display` and [`FromStr`](std::str::FromStr) use the kernel's cpulist form
/// (as in `/sys/devices/system/cpu/online` or `taskset -c`): comma-separated
/// numbers and inclusive ranges. The empty mask prints as the empty string.
///
/// # Examples
///
/// ```
/// use stop_machine::CpuMask;
///
/// // A line of /sys/devices/system/cpu/online, say.
/// let mut cpus: CpuMask = "0-3,8".parse().unwrap();
/// cpus.insert(10);
/// cpus.insert(11);
/// assert_eq!(cpus.to_string(), "0-3,8,10-11");
/// assert_eq!(cpus.weight(), 7);
///
/// let evens: CpuMask = (0..12).filter(|c| c % 2 == 0).collect();
/// assert_eq!((&cpus & &evens).to_string(), "0,2,8,10");
/// ```
///
/// Running the runtime on chosen CPUs:
///
/// ```
/// use stop_machine::{CpuMask, Runtime};
///
/// let rt = Runtime::builder().cpus(CpuMask::of(0)).build().unwrap();
/// assert_eq!(rt.handle().worker_cpu(0), Some(0));
/// ```
///
/// A `CpuMask` is not a set of workers:
///
/// ```compile_fail,E0308
/// use stop_machine::{CpuMask, Runtime};
///
/// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
/// let _ = rt.handle().stop_cpus(&CpuMask::of(0), |w| w);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CpuMask {
    bits: Bits,
}

/// A set of worker ids (`0..num_workers()`): which of a runtime's workers a
/// stop involves, as the kernel's `cpumask` says which CPUs.
///
/// The stops take one ([`stop_cpus`](crate::Handle::stop_cpus),
/// [`try_stop_cpus`](crate::Handle::try_stop_cpus), and the `active` workers of
/// [`stop_machine`](crate::Handle::stop_machine),
/// [`stop_machine_timeout`](crate::Handle::stop_machine_timeout) and
/// [`stop_machine_blocking`](crate::Handle::stop_machine_blocking)), and
/// [`WorkerPlacement`](crate::WorkerPlacement) answers in them
/// ([`node_mask`](crate::WorkerPlacement::node_mask),
/// [`core_mask_of`](crate::WorkerPlacement::core_mask_of),
/// [`one_per_core`](crate::WorkerPlacement::one_per_core), ...). OS CPU numbers
/// are a [`CpuMask`] instead, and a `WorkerMask` does not convert into one:
/// [`WorkerPlacement::worker_cpu`](crate::WorkerPlacement::worker_cpu) says
/// where each worker runs.
///
/// The storage, iteration order and cpulist text form are those of
/// [`CpuMask`].
///
/// # Examples
///
/// ```
/// use stop_machine::{Runtime, WorkerMask};
///
/// let rt = Runtime::builder().workers(3).pin(false).build().unwrap();
/// let h = rt.handle().clone();
/// let mask: WorkerMask = "0,2".parse().unwrap();
/// let r = rt.block_on(async move { h.stop_cpus(&mask, |w| w * 10).await });
/// assert_eq!(r, Ok(vec![(0, 0), (2, 20)]));
/// ```
///
/// Masks from the topology, combined:
///
/// ```
/// use stop_machine::{Pu, Topology, WorkerMask, WorkerPlacement};
///
/// let topo = Topology::from_pus(vec![
///     Pu { os_cpu: 0, core: 0, node: 0, package: 0 },
///     Pu { os_cpu: 1, core: 1, node: 1, package: 0 },
/// ]);
/// // Worker 0 on CPU 1, worker 1 on CPU 0, worker 2 unpinned.
/// let placement = WorkerPlacement::new(topo, vec![Some(1), Some(0), None]);
/// let elsewhere: WorkerMask = placement.workers() - placement.node_mask(1);
/// assert_eq!(elsewhere.to_string(), "1-2");
/// ```
///
/// A `WorkerMask` is not a set of CPUs:
///
/// ```compile_fail,E0308
/// use stop_machine::{Builder, WorkerMask};
///
/// Builder::new().cpus(WorkerMask::of(0));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct WorkerMask {
    bits: Bits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_types_share_the_api() {
        let mut workers: WorkerMask = "0-3,70".parse().unwrap();
        let mut cpus: CpuMask = "0-3,70".parse().unwrap();
        assert!(workers.remove(70) && cpus.remove(70));
        workers |= WorkerMask::from(8..=9);
        cpus |= CpuMask::from(8..=9);
        assert_eq!(workers.to_string(), cpus.to_string());
        assert_eq!(
            workers.iter().collect::<Vec<_>>(),
            cpus.iter().collect::<Vec<_>>()
        );
        assert_eq!(format!("{workers:?}"), "WorkerMask(0-3,8-9)");
        assert_eq!(format!("{cpus:?}"), "CpuMask(0-3,8-9)");
        assert_eq!((&workers - &WorkerMask::full(4)).to_string(), "8-9");
        assert_eq!(workers.complement(10), (4..8).collect());
        assert_eq!(WorkerMask::default(), WorkerMask::new());
        assert_eq!(
            "1,,2".parse::<WorkerMask>().unwrap_err(),
            "1,,2".parse::<CpuMask>().unwrap_err()
        );
    }
}
