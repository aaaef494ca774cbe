//! The flat backend: only the affinity mask, no hardware structure.
//!
//! It needs nothing beyond libc, so it is always compiled, and it is what
//! [`Topology::flat`] uses even when hwloc is available.

use std::io;

use super::{Pu, Topology};
use crate::cpumask::CpuMask;

/// Each CPU the calling thread may run on, as its own core in node 0, package 0.
pub(crate) fn detect() -> io::Result<Topology> {
    let pus = affinity()?
        .iter()
        .map(|cpu| Pu {
            os_cpu: cpu,
            // The cpu number is unique, so it can double as the core id.
            core: cpu,
            node: 0,
            package: 0,
        })
        .collect();
    Ok(Topology::from_pus(pus))
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::mem::size_of;

    use crate::cpumask::CpuMask;

    // The kernel reads and writes CPU sets as arrays of `unsigned long`.
    type Word = libc::c_ulong;
    const WORD_BITS: usize = Word::BITS as usize;

    // The kernel's NR_CPUS tops out at 8192; the margin covers future growth
    // while keeping a bogus cpu number from allocating without bound.
    const MAX_CPUS: usize = 1 << 20;

    /// The calling thread's affinity mask, however many CPUs the kernel supports.
    pub(super) fn affinity() -> io::Result<CpuMask> {
        // glibc's `cpu_set_t` holds 1024 CPUs; the kernel rejects a buffer
        // smaller than its own cpumask with EINVAL, so grow until it fits.
        let mut words: Vec<Word> = vec![0; 1024 / WORD_BITS];
        loop {
            let bytes = words.len() * size_of::<Word>();
            // SAFETY: `words` is a live, writable buffer of exactly `bytes`
            // bytes, and the kernel writes at most `bytes` bytes into it.
            // `cpu_set_t` is itself an array of `unsigned long`, so the cast
            // pointer is suitably aligned.
            let rc =
                unsafe { libc::sched_getaffinity(0, bytes, words.as_mut_ptr().cast::<libc::cpu_set_t>()) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) || words.len() * WORD_BITS >= MAX_CPUS {
                return Err(err);
            }
            let grown = words.len() * 2;
            words.resize(grown, 0);
        }
        let mut mask = CpuMask::new();
        for (i, &word) in words.iter().enumerate() {
            for bit in 0..WORD_BITS {
                if word & (1 << bit) != 0 {
                    mask.insert(i * WORD_BITS + bit);
                }
            }
        }
        Ok(mask)
    }

    /// Restricts the calling thread to `os_cpu`.
    pub(super) fn bind_current_thread(os_cpu: usize) -> io::Result<()> {
        if os_cpu >= MAX_CPUS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cpu {os_cpu} is beyond any supported cpu number"),
            ));
        }
        let mut words: Vec<Word> = vec![0; os_cpu / WORD_BITS + 1];
        words[os_cpu / WORD_BITS] |= 1 << (os_cpu % WORD_BITS);
        let bytes = words.len() * size_of::<Word>();
        // SAFETY: `words` is a live buffer of exactly `bytes` bytes that the
        // kernel only reads; see `affinity` for the pointer cast. Pid 0 is the
        // calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, bytes, words.as_ptr().cast::<libc::cpu_set_t>()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::thread;

    use crate::cpumask::CpuMask;

    // Without a portable affinity call, assume the first N CPUs are ours.
    pub(super) fn affinity() -> io::Result<CpuMask> {
        Ok(CpuMask::full(thread::available_parallelism()?.get()))
    }

    pub(super) fn bind_current_thread(os_cpu: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot pin a thread to cpu {os_cpu}: no thread affinity on this OS"),
        ))
    }
}

/// The CPUs the calling thread may run on.
pub(crate) fn affinity() -> io::Result<CpuMask> {
    sys::affinity()
}

/// Pins the calling thread to `os_cpu` with `sched_setaffinity`.
// With hwloc the runtime binds through hwloc instead, leaving this unused.
#[cfg_attr(feature = "hwloc", allow(dead_code))]
pub(crate) fn bind_current_thread(os_cpu: usize) -> io::Result<()> {
    sys::bind_current_thread(os_cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_shape() {
        let t = detect().unwrap();
        assert!(!t.pus().is_empty());
        assert_eq!(t.num_cores(), t.pus().len());
        assert_eq!((t.num_nodes(), t.num_packages()), (1, 1));
        for pu in t.pus() {
            assert_eq!(t.siblings(pu.os_cpu), CpuMask::of(pu.os_cpu));
        }
        assert_eq!(t.one_per_core(), t.os_cpus());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn affinity_matches_proc() {
        // The kernel's own cpulist for this thread; absent on very old kernels.
        let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
            return;
        };
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list in status");
        assert_eq!(affinity().unwrap(), list.parse::<CpuMask>().unwrap());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn bind_pins_thread() {
        std::thread::spawn(|| {
            let before = affinity().unwrap();
            let cpu = before.first().unwrap();
            bind_current_thread(cpu).unwrap();
            assert_eq!(affinity().unwrap(), CpuMask::of(cpu));
            let err = bind_current_thread(usize::MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            // Offline or nonexistent CPUs are the kernel's to refuse.
            let err = bind_current_thread(100_000).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        })
        .join()
        .unwrap();
    }
}
