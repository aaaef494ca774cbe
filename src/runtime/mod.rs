//! The worker-per-CPU runtime: the file tree is the architecture, each
//! file depending only on those listed after it.
//!
//! - [`builder`]: configuration and start-up;
//! - [`runtime`]: ownership of the worker threads, shutdown;
//! - [`handle`]: spawning and reaching the runtime from anywhere;
//! - [`scheduler`]: the worker thread and its scheduler loop;
//! - [`service`]: the worker's side of its stopper (works, hotplug,
//!   safepoints, blocking calls);
//! - [`task`]: task wrapping, ids and `JoinHandle`;
//! - [`context`]: what the current thread is, and where a woken task goes;
//! - [`shared`]: what one runtime's workers share;
//! - [`worker`]: one worker's shared state, queues and wake-ups;
//! - [`idle`]: the handshake that claims a worker asleep in its driver;
//! - [`priority`]: raising a late worker's OS priority while a stop or a
//!   grace period waits for it;
//! - [`config`]: the built settings.

pub(crate) mod builder;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod handle;
pub(crate) mod idle;
pub(crate) mod priority;
#[allow(clippy::module_inception)]
pub(crate) mod runtime;
pub(crate) mod scheduler;
pub(crate) mod service;
pub(crate) mod shared;
pub(crate) mod spawn_policy;
pub(crate) mod task;
pub(crate) mod worker;
