//! Where [`spawn`](crate::spawn) puts a task spawned from a worker.

/// Where [`Handle::spawn`](crate::Handle::spawn) (and
/// [`spawn`](crate::spawn)) places a task spawned from one of the
/// runtime's workers; set with
/// [`Builder::spawn_policy`](crate::Builder::spawn_policy).
///
/// Tasks never migrate once placed, so this is the whole of load
/// balancing here. A task spawned from outside the runtime always goes to
/// the online workers in turn; [`spawn_on`](crate::spawn_on) and
/// [`spawn_local`](crate::spawn_local) ignore the policy.
///
/// An I/O resource (a `tokio::net::TcpStream`, a timer) stays registered
/// with the driver of the worker that created it. A task placed elsewhere
/// still works: its readiness events arrive on the creating worker's
/// driver, which wakes it across threads (one remote push, and a wake-up
/// if its worker sleeps). docs/benchmarks.md ("Spreading connections")
/// measures what that costs for an accept loop.
///
/// # Examples
///
/// ```
/// use stop_machine::SpawnPolicy;
///
/// let rt = stop_machine::Runtime::builder()
///     .workers(2)
///     .pin(false)
///     .spawn_policy(SpawnPolicy::RoundRobin)
///     .build()
///     .unwrap();
/// let placed = rt.block_on(async {
///     let a = stop_machine::spawn(async { stop_machine::current_worker() });
///     let b = stop_machine::spawn(async { stop_machine::current_worker() });
///     (a.await.unwrap(), b.await.unwrap())
/// });
/// assert_ne!(placed.0, placed.1, "two spawns in a row land on both workers");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpawnPolicy {
    /// On the spawning worker, as `tokio::spawn` does on a
    /// `current_thread` runtime: the cheapest spawn, and what a task that
    /// shares state with its spawner wants. An accept loop that spawns a
    /// task per connection this way keeps every connection on its worker.
    #[default]
    Local,
    /// On the online workers in turn, the spawning one included: spreads
    /// an accept loop's connections evenly.
    RoundRobin,
    /// On the online worker with the fewest live tasks (the spawning one
    /// when tied): spreads connections by how many are still open, which
    /// suits connections of very different lengths.
    LeastLoaded,
}
