//! The mechanism under every stop primitive, in the order of the kernel's
//! stop_machine.c: the data structures first, then the driver.
//!
//! - [`work`]: a unit of work for a stopper (`struct cpu_stop_work`), which
//!   always ends, run or cancelled;
//! - [`stopper`]: a worker's queue of works and its lifecycle (`struct
//!   cpu_stopper`, with hotplug and shutdown in the same state);
//! - [`completion`]: counting the works of one request (`cpu_stop_done`);
//! - [`multi_stop`]: the ack-counted state machine (`multi_cpu_stop`);
//! - [`wait`]: how its participants wait for one another;
//! - [`lock`]: the lock that serializes stops and hotplug
//!   (`stop_cpus_mutex`);
//! - [`deadline`]: the watchdog that bounds timed stops;
//! - [`plan`]: validation, the queueing order and the multi-stop driver;
//! - [`report`]: statistics, stragglers and the slow-stop warning;
//! - `metrics` (cargo feature `metrics`): the statistics through the
//!   `metrics` facade.
//!
//! The public primitives (`stop_one.rs`, `stop_cpus.rs`, `stop_machine.rs`,
//! `stop_core.rs`, `hotplug.rs`) sit on top; the worker's side of a stopper
//! (running works, going offline) is `runtime/service.rs`.

pub(crate) mod completion;
pub(crate) mod deadline;
pub(crate) mod lock;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod multi_stop;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod stopper;
pub(crate) mod wait;
pub(crate) mod work;
