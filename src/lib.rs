//! The Linux kernel's `stop_machine` for async Rust.
//!
//! A worker-per-CPU runtime on tokio (each worker an OS thread pinned to its
//! CPU, running a tokio `current_thread` runtime as its I/O and timer
//! driver) whose workers each have a *stopper*: a lane of the highest
//! priority. Work queued to it runs before the worker's next task poll and
//! monopolizes the worker. On top of the stoppers sit the kernel's
//! primitives, as futures: [`stop_one_cpu`], [`stop_one_cpu_nowait`] and the
//! multi-worker stops.
//!
//! ```
//! use stop_machine::Runtime;
//!
//! let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
//! let answer = rt.block_on(async {
//!     // Runs on worker 1 before any other task there, and alone.
//!     stop_machine::stop_one_cpu(1, || 42).await
//! });
//! assert_eq!(answer, Ok(42));
//! ```
//!
//! With the cargo feature `macros` (on by default), the attributes
//! `#[stop_machine::main]` and `#[stop_machine::test]` build the runtime for
//! a program or a test, as `#[tokio::main]` and `#[tokio::test]` do: write
//! `#[stop_machine::main(workers = 4)]` on an `async fn main`, and its body
//! runs on a worker of a four-worker runtime.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, missing_debug_implementations)]

pub mod cpumask;
mod error;
mod hotplug;
mod rcu;
mod runtime;
mod serve;
mod stats;
mod stop;
mod stop_cell;
mod stop_core;
mod stop_cpus;
mod stop_machine;
mod stop_one;
mod stopped_world;
mod sync;
pub mod topology;
mod worker_local;

pub use cpumask::{CpuMask, ParseCpuMaskError, WorkerMask};
pub use error::{JoinError, StopError, Straggler};
pub use rcu::cell::Rcu;
pub use rcu::synchronize::synchronize;
pub use runtime::builder::Builder;
pub use runtime::handle::{
    Handle, StopperInfo, TryCurrentError, current_worker, spawn, spawn_local, spawn_on,
};
pub use runtime::runtime::Runtime;
pub use runtime::service::safepoint;
pub use runtime::spawn_policy::SpawnPolicy;
pub use runtime::task::{JoinHandle, TaskId};
pub use serve::ServePerWorker;
pub use stats::{KindStats, Latency, Stats, StopKind, WorkerStats};
pub use stop::stopper::RunningStop;
pub use stop_cell::StopCell;
pub use stop_core::stop_core;
pub use stop_cpus::{stop_cpus, try_stop_cpus};
pub use stop_machine::{stop_machine, stop_machine_blocking, stop_two_cpus};
pub use stop_one::{stop_one_cpu, stop_one_cpu_nowait};
pub use stopped_world::StoppedWorld;
pub use topology::{Pu, Topology, WorkerPlacement};
pub use worker_local::WorkerLocal;

// The attributes' docs are the macro crate's, which rustdoc shows here; their
// examples run as that crate's doctests (it has this crate as a
// dev-dependency), and integration/macros.rs tests them from outside.
#[cfg(feature = "macros")]
pub use stop_machine_macros::{main, test};

/// The README's examples, compiled and run as doctests so that the first
/// page a newcomer reads stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
