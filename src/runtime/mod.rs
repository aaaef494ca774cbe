//! The worker-per-CPU runtime: the file tree is the architecture.
//!
//! - [`builder`]: configuration and start-up;
//! - [`runtime`]: ownership of the worker threads, shutdown;
//! - [`handle`]: spawning and reaching the runtime from anywhere;
//! - [`worker`]: one worker's shared state, queues and wake-ups;
//! - [`idle`]: the handshake that claims a worker asleep in its driver;
//! - [`scheduler`]: the worker thread and its scheduler loop;
//! - [`task`]: task wrapping and `JoinHandle`;
//! - [`context`]: what the current thread is.

pub(crate) mod builder;
pub(crate) mod context;
pub(crate) mod handle;
pub(crate) mod idle;
#[allow(clippy::module_inception)]
pub(crate) mod runtime;
pub(crate) mod scheduler;
pub(crate) mod task;
pub(crate) mod worker;
