//! The settings every worker reads, fixed when the runtime is built.

use super::spawn_policy::SpawnPolicy;
use std::sync::Arc;
use std::time::Duration;

/// A callback run on each worker thread ([`Builder::on_thread_start`],
/// [`Builder::on_thread_stop`]).
///
/// [`Builder::on_thread_start`]: crate::Builder::on_thread_start
/// [`Builder::on_thread_stop`]: crate::Builder::on_thread_stop
#[derive(Clone)]
pub(crate) struct ThreadHook(pub(crate) Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ThreadHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadHook(..)")
    }
}

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
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
}
