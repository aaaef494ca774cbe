//! Stopping the workers of one physical core or one NUMA node together.

use crate::cpumask::WorkerMask;
use crate::error::StopError;
use crate::runtime::handle::Handle;
use crate::stats::StopKind;
use crate::stop::plan::{self, Plan, Request};
use std::future::Future;
use std::panic::Location;

impl Handle {
    /// Stops every online worker pinned to the same physical core as
    /// `worker` (its SMT siblings, itself included) through the multi-stop
    /// state machine and runs `f(worker)` on each of them: the kernel's
    /// `stop_core_cpuslocked`. An unpinned worker's core is itself alone.
    /// Serialized with other stops; bounded by
    /// [`Builder::stop_timeout`](crate::Builder::stop_timeout).
    ///
    /// CONTEXT: as [`stop_machine`](Handle::stop_machine).
    ///
    /// RETURNS: the values of `f` by worker.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidWorker`], [`StopError::Offline`] (no worker of
    /// the core online), [`StopError::Panicked`], [`StopError::TimedOut`],
    /// [`StopError::Nested`], [`StopError::WouldBlockWorker`],
    /// [`StopError::Shutdown`], [`StopError::WorkerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let h = rt.handle().clone();
    /// let r = rt.block_on(async move { h.stop_core(1, |w| w).await });
    /// assert_eq!(r, Ok(vec![(1, 1)]));
    /// ```
    #[track_caller]
    pub fn stop_core<F, R>(
        &self,
        worker: usize,
        f: F,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let mask = self.worker(worker).map(|_| self.topology().core_mask_of(worker));
        self.stop_group(mask, f, StopKind::Core, Location::caller())
    }

    /// Stops every online worker of NUMA node `node` through the multi-stop
    /// state machine and runs `f(worker)` on each; workers of other nodes go
    /// on running. Serialized with other stops; bounded by
    /// [`Builder::stop_timeout`](crate::Builder::stop_timeout).
    ///
    /// CONTEXT: as [`stop_machine`](Handle::stop_machine).
    ///
    /// RETURNS: the values of `f` by worker.
    ///
    /// # Errors
    ///
    /// [`StopError::EmptyMask`] when no worker is pinned to that node,
    /// [`StopError::Offline`] when none of them is online, and the errors of
    /// [`stop_core`](Handle::stop_core).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).build().unwrap();
    /// let h = rt.handle().clone();
    /// let node = h.topology().nodes().next().unwrap();
    /// let r = rt.block_on(async move { h.stop_node(node, |_| ()).await });
    /// assert!(r.is_ok());
    /// ```
    #[track_caller]
    pub fn stop_node<F, R>(
        &self,
        node: usize,
        f: F,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let mask = Ok(self.topology().node_mask(node));
        self.stop_group(mask, f, StopKind::Node, Location::caller())
    }

    /// A serialized multi-stop of `mask`'s online workers, all active.
    fn stop_group<F, R>(
        &self,
        mask: Result<WorkerMask, StopError>,
        f: F,
        kind: StopKind,
        caller: &'static Location<'static>,
    ) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let handle = self.clone();
        async move {
            let request = Request::new(kind, caller, handle.shared.config.stop_timeout);
            handle.check()?;
            let mask = mask?;
            if mask.is_empty() {
                return Err(StopError::EmptyMask);
            }
            let guard = plan::lock(&handle.shared, &request).await?;
            let participants = &mask & &handle.online();
            if participants.is_empty() {
                return Err(handle.shared.refused(StopError::Offline));
            }
            let plan = Plan {
                request,
                active: participants.clone(),
                participants,
                claim_idle: false,
            };
            plan::multi_stop(&handle.shared, plan, f, Some(guard)).await
        }
    }
}

/// [`Handle::stop_core`] on the current runtime.
///
/// # Errors
///
/// See [`Handle::stop_core`].
///
/// # Panics
///
/// Panics when not called on a worker thread.
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// assert_eq!(rt.block_on(async { stop_machine::stop_core(0, |w| w).await }), Ok(vec![(0, 0)]));
/// ```
#[track_caller]
pub fn stop_core<F, R>(
    worker: usize,
    f: F,
) -> impl Future<Output = Result<Vec<(usize, R)>, StopError>> + use<F, R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    Handle::current().stop_core(worker, f)
}
