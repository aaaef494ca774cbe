//! The runtime: owns the worker threads and shuts them down.

use super::handle::Handle;
use super::task;
use crate::sync::atomic::Ordering;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

/// A worker-per-CPU runtime on tokio, whose workers a stop can bring to a
/// standstill.
///
/// Dropping it stops every worker, drops every task (their
/// [`JoinHandle`](crate::JoinHandle)s report cancellation) and joins every
/// thread. The drop panics if a worker's scheduler loop died (a bug of this
/// crate, never a panic of user code, which is always contained), unless
/// the thread is already panicking.
///
/// # Examples
///
/// ```
/// use stop_machine::Runtime;
///
/// let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
/// let sum = rt.block_on(async {
///     let a = stop_machine::spawn_on(0, async { 20 });
///     let b = stop_machine::spawn_on(1, async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 42);
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Runtime {
    pub(crate) fn from_parts(handle: Handle, threads: Vec<std::thread::JoinHandle<()>>) -> Runtime {
        Runtime { handle, threads }
    }

    /// The runtime's handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().num_workers(), 2);
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` to completion as a task on a worker and blocks the calling
    /// thread until it is done. As tokio's, `fut` may borrow from the
    /// caller: it is dropped before this returns, whatever happens.
    ///
    /// Unlike tokio's `block_on`, the future runs on a worker, not on the
    /// calling thread, so that it is a task like any other: a stop stops it
    /// too, and [`Handle::current`] and the tokio APIs work inside it. It
    /// must therefore be `Send` (a `!Send` future would have to run on the
    /// calling thread, outside every stop; spawn it with
    /// [`spawn_local`](crate::spawn_local) from inside instead).
    ///
    /// # Panics
    ///
    /// Resumes the future's panic on the calling thread; panics if called
    /// from a worker thread (that would block a worker), or if the runtime
    /// shuts down before the future completes.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let mut hits = vec![1, 2];
    /// let n = rt.block_on(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     hits.push(3); // borrows a local, as with tokio
    ///     hits.len()
    /// });
    /// assert_eq!((n, hits), (3, vec![1, 2, 3]));
    /// ```
    #[track_caller]
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        assert!(
            crate::current_worker().is_none(),
            "Runtime::block_on called from a worker thread: this would block the worker; spawn instead"
        );
        let shared = &self.handle.shared;
        let worker = &shared.workers[shared.next_online_worker()];
        // SAFETY: this thread blocks on the handle until it resolves, which
        // it does only once the future has been dropped, so the borrows the
        // future holds outlive it.
        let task = unsafe { task::spawn_scoped(worker, Location::caller(), fut) };
        match futures::executor::block_on(task) {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("Runtime::block_on: {e} (the runtime shut down)"),
        }
    }

    /// Shuts down, waiting at most `timeout` for the workers to finish;
    /// threads still busy then (e.g. inside a task that never yields) are
    /// detached.
    ///
    /// # Panics
    ///
    /// As dropping the runtime: if a worker's loop died (a bug of this
    /// crate; its error was also logged when it happened).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// rt.shutdown_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.begin_shutdown();
        let deadline = std::time::Instant::now().checked_add(timeout);
        // Without a representable deadline, wait as long as it takes.
        self.finish(deadline);
    }

    pub(crate) fn shut_down(self) {
        drop(self);
    }

    fn begin_shutdown(&self) {
        self.handle.shared.shutdown.store(true, Ordering::SeqCst);
        for w in self.handle.shared.workers.iter() {
            // Closing refuses every later work: a worker that sees it has
            // every work it will ever get already queued, and flushes them.
            w.stopper.close();
            w.notify();
            w.unpark_thread();
        }
    }

    /// Joins the worker threads that have finished (all of them, without a
    /// timeout), stops the watchdog, and reports workers that died.
    fn finish(&mut self, deadline: Option<std::time::Instant>) {
        if let Some(deadline) = deadline {
            while self.threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for t in std::mem::take(&mut self.threads) {
            if deadline.is_none() || t.is_finished() {
                let _ = t.join();
            }
        }
        self.handle.shared.watchdog.shut_down();
        let dead: Vec<String> = self
            .handle
            .shared
            .workers
            .iter()
            .filter_map(|w| w.death().map(|why| format!("worker {}: {why}", w.index)))
            .collect();
        // Surface a dead worker (a bug of ours) unless already unwinding.
        if !dead.is_empty() && !std::thread::panicking() {
            panic!("stop-machine worker(s) died: {}", dead.join("; "));
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.begin_shutdown();
        self.finish(None);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish()
    }
}
