//! The runtime: owns the worker threads and shuts them down.

use super::builder::Builder;
use super::handle::Handle;
use crate::sync::atomic::Ordering;
use std::future::Future;
use std::time::Duration;

/// A worker-per-CPU runtime on tokio, whose workers a stop can bring to a
/// standstill.
///
/// Dropping it stops every worker, drops every task (their
/// [`JoinHandle`](crate::JoinHandle)s report cancellation) and joins every
/// thread.
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

    /// A runtime with [`Builder::new`]'s defaults: one pinned worker per CPU.
    ///
    /// # Errors
    ///
    /// See [`Builder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> std::io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure one.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
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
    /// thread until it is done.
    ///
    /// Unlike tokio's `block_on`, the future runs on a worker, not on the
    /// calling thread, so that it is a task like any other: a stop stops it
    /// too, and [`Handle::current`] and the tokio APIs work inside it.
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
    /// let n = rt.block_on(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     7
    /// });
    /// assert_eq!(n, 7);
    /// ```
    #[track_caller]
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        assert!(
            crate::current_worker().is_none(),
            "Runtime::block_on called from a worker thread: this would block the worker; spawn instead"
        );
        let task = self.handle.spawn(fut);
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
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// rt.shutdown_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.begin_shutdown();
        let deadline = std::time::Instant::now() + timeout;
        while self.threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let threads = std::mem::take(&mut self.threads);
        for t in threads {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    pub(crate) fn shut_down(self) {
        drop(self);
    }

    fn begin_shutdown(&self) {
        self.handle.shared.shutdown.store(true, Ordering::SeqCst);
        for w in self.handle.shared.workers.iter() {
            // Closing the stopper first means that a worker seeing the flag
            // has every work it will ever get already queued.
            w.stopper.close();
            w.shutdown.store(true, Ordering::SeqCst);
            w.stopper.poke();
            w.notify();
            w.unpark_thread();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.begin_shutdown();
        for t in self.threads.drain(..) {
            // A worker thread only dies by a bug of ours; surface it unless
            // we are already unwinding.
            if t.join().is_err() && !std::thread::panicking() {
                panic!("a stop-machine worker thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish()
    }
}
