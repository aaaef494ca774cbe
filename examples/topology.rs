//! Prints the machine's topology as the runtime sees it: each worker's CPU,
//! core, NUMA node and package, and the masks of workers by node and core.
//!
//! ```text
//! cargo run --example topology                    # flat topology (affinity mask)
//! cargo run --example topology --features hwloc   # read from hwloc
//! ```

use stop_machine::Handle;

/// On the runtime `Runtime::new()` builds: one pinned worker per CPU.
#[stop_machine::main]
async fn main() {
    let handle = Handle::current();
    let placement = handle.topology();
    let machine = placement.topology();
    println!(
        "backend: {}",
        if cfg!(feature = "hwloc") {
            "hwloc"
        } else {
            "flat (affinity mask)"
        }
    );
    println!(
        "machine: {} package(s), {} NUMA node(s), {} core(s), {} hardware thread(s): cpus {}",
        machine.num_packages(),
        machine.num_nodes(),
        machine.num_cores(),
        machine.pus().len(),
        machine.os_cpus()
    );
    println!(
        "\n{:>6} {:>5} {:>5} {:>5} {:>8}",
        "worker", "cpu", "core", "node", "package"
    );
    for w in 0..handle.num_workers() {
        match placement.worker_pu(w) {
            Some(pu) => println!(
                "{w:>6} {:>5} {:>5} {:>5} {:>8}",
                pu.os_cpu, pu.core, pu.node, pu.package
            ),
            None => println!("{w:>6} {:>5}", "-"),
        }
    }
    println!();
    for node in placement.nodes() {
        println!("node {node}: workers {}", placement.node_mask(node));
    }
    for core in placement.cores() {
        println!("core {core}: workers {}", placement.core_mask(core));
    }
    println!("one worker per core: {}", placement.one_per_core());
}
