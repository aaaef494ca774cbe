//! The settings every worker reads, fixed when the runtime is built.

use super::spawn_policy::SpawnPolicy;
use std::time::Duration;

/// What [`Builder`](crate::Builder) decided.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) event_interval: u32,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) stop_a_lot: Option<u32>,
    pub(crate) slow_stop: Option<Duration>,
    /// Raise late participants' OS priority where the process may.
    pub(crate) boost_stragglers: bool,
    /// Where `spawn` from a worker places a task.
    pub(crate) spawn_policy: SpawnPolicy,
}
