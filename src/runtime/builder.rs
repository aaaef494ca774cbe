//! Configuring and starting a runtime.

use super::config::{Config, ThreadHook};
use super::handle::Handle;
use super::runtime::Runtime;
use super::scheduler;
use super::shared::Shared;
use super::spawn_policy::SpawnPolicy;
use super::worker::Worker;
use crate::cpumask::CpuMask;
use crate::sync::Arc;
use crate::topology::{self, Topology, WorkerPlacement};
use std::io;

/// Builds a [`Runtime`] with custom settings, in the manner of
/// `tokio::runtime::Builder`.
///
/// # Examples
///
/// ```
/// use stop_machine::Runtime;
///
/// let rt = Runtime::builder()
///     .workers(2)
///     .pin(false)
///     .thread_name("app-worker")
///     .event_interval(61)
///     .build()
///     .unwrap();
/// assert_eq!(rt.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    pin: bool,
    thread_name: String,
    event_interval: u32,
    cpus: Option<CpuMask>,
    per_core: bool,
    stop_timeout: Option<std::time::Duration>,
    stop_a_lot: Option<u32>,
    slow_stop: Option<std::time::Duration>,
    boost_stragglers: bool,
    spawn_policy: SpawnPolicy,
    on_thread_start: Option<ThreadHook>,
    on_thread_stop: Option<ThreadHook>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// One pinned worker per CPU of the process's affinity mask, threads
    /// named `stop-machine-worker-N`, 61 task polls between driver turns.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().build().unwrap();
    /// assert!(rt.handle().num_workers() >= 1);
    /// ```
    pub fn new() -> Builder {
        Builder {
            workers: None,
            pin: true,
            thread_name: "stop-machine-worker".into(),
            event_interval: 61,
            cpus: None,
            per_core: false,
            stop_timeout: None,
            slow_stop: Some(std::time::Duration::from_millis(10)),
            stop_a_lot: stop_a_lot_from_env(),
            boost_stragglers: true,
            spawn_policy: SpawnPolicy::default(),
            on_thread_start: None,
            on_thread_stop: None,
        }
    }

    /// Runs `n` workers. With more workers than allowed CPUs, workers share
    /// CPUs round-robin when pinned.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(3).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().num_workers(), 3);
    /// ```
    #[track_caller]
    pub fn workers(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "a runtime needs at least one worker");
        self.workers = Some(n);
        self
    }

    /// Whether each worker pins its thread to its CPU (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(1).pin(false).build().unwrap();
    /// assert_eq!(rt.handle().worker_cpu(0), None);
    /// ```
    pub fn pin(&mut self, pin: bool) -> &mut Builder {
        self.pin = pin;
        self
    }

    /// The worker threads' name prefix; worker `i` is named `{name}-{i}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(1).pin(false).thread_name("db").build().unwrap();
    /// let name = rt.block_on(async { std::thread::current().name().unwrap().to_owned() });
    /// assert_eq!(name, "db-0");
    /// ```
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Task polls between two turns of a worker's I/O and timer driver
    /// (default 61, as tokio's). Lower favours I/O latency, higher favours
    /// task throughput.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(1).pin(false).event_interval(31).build().unwrap();
    /// # drop(rt);
    /// ```
    #[track_caller]
    pub fn event_interval(&mut self, n: u32) -> &mut Builder {
        assert!(n > 0, "event_interval must be at least 1");
        self.event_interval = n;
        self
    }

    /// Uses only these OS CPUs (intersected with the affinity mask): one
    /// worker per CPU unless [`workers`](Builder::workers) says otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let rt = stop_machine::Builder::new().cpus(CpuMask::of(0)).build().unwrap();
    /// assert_eq!(rt.handle().num_workers(), 1);
    /// assert_eq!(rt.handle().worker_cpu(0), Some(0));
    /// ```
    pub fn cpus(&mut self, os_cpus: CpuMask) -> &mut Builder {
        self.cpus = Some(os_cpus);
        self
    }

    /// One worker per physical core (its first hardware thread) instead of
    /// one per hardware thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().per_core().build().unwrap();
    /// let topo = rt.handle().topology();
    /// assert_eq!(rt.handle().num_workers(), topo.topology().num_cores());
    /// ```
    pub fn per_core(&mut self) -> &mut Builder {
        self.per_core = true;
        self
    }

    /// The default bound on the time to stop for [`Handle::stop_machine`],
    /// [`Handle::stop_two_cpus`], [`Handle::stop_core`] and
    /// [`Handle::stop_node`] (default: none, wait as long as it takes, like
    /// the kernel). Past it, a stop is abandoned before any worker runs the
    /// function and fails with [`StopError::TimedOut`](crate::StopError::TimedOut).
    ///
    /// [`Handle::stop_machine`]: crate::Handle::stop_machine
    /// [`Handle::stop_two_cpus`]: crate::Handle::stop_two_cpus
    /// [`Handle::stop_core`]: crate::Handle::stop_core
    /// [`Handle::stop_node`]: crate::Handle::stop_node
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = stop_machine::Builder::new().workers(1).pin(false).stop_timeout(Duration::from_secs(1)).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn stop_timeout(&mut self, timeout: std::time::Duration) -> &mut Builder {
        self.stop_timeout = Some(timeout);
        self
    }

    /// Stop-a-lot mode, for testing code that runs on the runtime (the JVM's
    /// SafepointALot): every `n` task polls, a worker requests a
    /// `stop_machine` that does nothing, so that stops land at every kind of
    /// poll boundary. In debug builds (tests included) the environment
    /// variable `STOP_MACHINE_STOP_A_LOT=n` switches it on too; release
    /// builds never read it, so a production binary does not change
    /// behaviour with its environment. `0` turns it off.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(2).pin(false).stop_a_lot(100).build().unwrap();
    /// let sum: u64 = rt.block_on(async {
    ///     let mut sum = 0;
    ///     for i in 0..1000 {
    ///         sum += i;
    ///         tokio::task::yield_now().await;
    ///     }
    ///     sum
    /// });
    /// assert_eq!(sum, 499_500);
    /// ```
    pub fn stop_a_lot(&mut self, n: u32) -> &mut Builder {
        self.stop_a_lot = (n > 0).then_some(n);
        self
    }

    /// Logs a `tracing` warning for every stop that took longer than
    /// `threshold` from its request until its caller resumed, naming the slowest worker and
    /// the task it was polling when the stop was requested (default 10 ms;
    /// `None` turns it off).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = stop_machine::Builder::new().workers(1).pin(false).slow_stop_warning(None).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn slow_stop_warning(&mut self, threshold: Option<std::time::Duration>) -> &mut Builder {
        self.slow_stop = threshold;
        self
    }

    /// Whether a stop or a grace period raises the OS priority of the
    /// workers it waits for (default `true`). A participant that has waited
    /// past its spin phase for others to reach their stoppers switches them
    /// to `SCHED_FIFO`, so that a loaded machine runs them next instead of at
    /// the end of a time slice; each drops back to its own policy as soon as
    /// its stopper has nothing left to run, whatever the stop's outcome. A
    /// grace period ([`Handle::synchronize`](crate::Handle::synchronize))
    /// open for more than 100 µs has the workers that pass their quiescent
    /// states raise those still left, for at most 2 ms; each drops back at
    /// its own next quiescent point (its next poll boundary), or is dropped
    /// back when the period ends, its waiter goes, or its 2 ms are up, even
    /// inside a poll that never yields. It needs
    /// `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` above zero, checked when each
    /// worker starts; without it this does nothing.
    /// [`Handle::boosting`](crate::Handle::boosting) says whether it is active,
    /// [`Stats::boosts`](crate::Stats::boosts) how often it acted, and the
    /// runtime logs which at start (`info`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(2).pin(false).boost_stragglers(false).build().unwrap();
    /// assert!(!rt.handle().boosting());
    /// ```
    pub fn boost_stragglers(&mut self, on: bool) -> &mut Builder {
        self.boost_stragglers = on;
        self
    }

    /// Where [`spawn`](crate::spawn) places a task spawned from a worker:
    /// see [`SpawnPolicy`] (default [`SpawnPolicy::Local`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::SpawnPolicy;
    ///
    /// let rt = stop_machine::Builder::new()
    ///     .workers(2)
    ///     .pin(false)
    ///     .spawn_policy(SpawnPolicy::LeastLoaded)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.handle().spawn_policy(), SpawnPolicy::LeastLoaded);
    /// ```
    pub fn spawn_policy(&mut self, policy: SpawnPolicy) -> &mut Builder {
        self.spawn_policy = policy;
        self
    }

    /// Runs `f` on each worker thread as it starts, before the worker runs
    /// any task (tokio's `on_thread_start`): to name a thread in a profiler,
    /// set a thread-local, or count threads. [`build`](Builder::build) returns
    /// once every worker has run it.
    ///
    /// # Panics
    ///
    /// A panic in `f` ends that worker's thread before it starts, and
    /// [`build`](Builder::build) then fails with an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = started.clone();
    /// let rt = stop_machine::Builder::new()
    ///     .workers(2)
    ///     .pin(false)
    ///     .on_thread_start(move || {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// # drop(rt);
    /// ```
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_start = Some(ThreadHook(Arc::new(f)));
        self
    }

    /// Runs `f` on each worker thread as it ends, after every task of that
    /// worker has been dropped and its tokio driver (with the tasks spawned
    /// there by `tokio::spawn`) is gone: the last thing the thread does
    /// (tokio's `on_thread_stop`). Once `f` has run on every worker, no
    /// future of the runtime is alive. It runs for threads that
    /// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout)
    /// detached too, whenever they finish.
    ///
    /// # Panics
    ///
    /// A panic in `f` is caught and logged (`error`); the thread ends as it
    /// would have.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let stopped = Arc::new(AtomicUsize::new(0));
    /// let count = stopped.clone();
    /// let rt = stop_machine::Builder::new()
    ///     .workers(2)
    ///     .pin(false)
    ///     .on_thread_stop(move || {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// drop(rt); // joins the workers
    /// assert_eq!(stopped.load(Ordering::SeqCst), 2);
    /// ```
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Builder {
        self.on_thread_stop = Some(ThreadHook(Arc::new(f)));
        self
    }

    /// Starts the workers and waits until each runs.
    ///
    /// # Errors
    ///
    /// The OS's error when the topology or affinity mask cannot be read, a
    /// thread cannot be spawned or pinned, or a worker's tokio driver cannot
    /// be created; `InvalidInput` when [`cpus`](Builder::cpus) leaves no
    /// allowed CPU.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Builder::new().workers(2).pin(false).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(&self) -> io::Result<Runtime> {
        let machine = Topology::detect()?;
        let mut cpus = match &self.cpus {
            Some(mask) => mask & &machine.os_cpus(),
            None => machine.os_cpus(),
        };
        if self.per_core {
            cpus = machine.restrict(&cpus).one_per_core();
        }
        let cpus: Vec<usize> = cpus.iter().collect();
        if cpus.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no allowed CPU to run workers on",
            ));
        }
        let n = self.workers.unwrap_or(cpus.len());
        let worker_cpus: Vec<Option<usize>> =
            (0..n).map(|i| self.pin.then(|| cpus[i % cpus.len()])).collect();
        let workers: Vec<Arc<Worker>> = worker_cpus
            .iter()
            .enumerate()
            .map(|(i, cpu)| {
                let siblings = (0..n)
                    .filter(|j| *j != i && cpu.is_some() && worker_cpus[*j] == *cpu)
                    .collect();
                Arc::new(Worker::new(i, *cpu, siblings))
            })
            .collect();
        let placement = WorkerPlacement::new(machine, worker_cpus);
        let config = Config {
            event_interval: self.event_interval,
            stop_timeout: self.stop_timeout,
            stop_a_lot: self.stop_a_lot,
            slow_stop: self.slow_stop,
            boost_stragglers: self.boost_stragglers,
            spawn_policy: self.spawn_policy,
            on_thread_start: self.on_thread_start.clone(),
            on_thread_stop: self.on_thread_stop.clone(),
        };
        let handle = Handle {
            shared: Arc::new(Shared::new(workers, placement, config)),
        };
        let mut threads = Vec::with_capacity(n);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        for worker in handle.shared.workers.iter() {
            let (h, worker, ready) = (handle.clone(), worker.clone(), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{}", self.thread_name, worker.index))
                .spawn(move || {
                    // Before `ready`: from then on, stops may need to unpark us.
                    let _ = worker.thread.set(crate::sync::thread::current());
                    let _stop_hook = OnThreadStop(h.shared.config.on_thread_stop.clone());
                    if let Some(start) = &h.shared.config.on_thread_start {
                        (start.0)();
                    }
                    let started = worker
                        .cpu
                        .map_or(Ok(()), topology::bind_current_thread)
                        .and_then(|()| scheduler::driver(&h.shared, &worker));
                    if worker.priority.init_current(h.shared.config.boost_stragglers) {
                        h.shared
                            .boosting
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    match started {
                        Ok(rt) => {
                            let _ = ready.send(Ok(()));
                            scheduler::run(h.shared, worker, rt);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    Runtime::from_parts(handle, threads).shut_down();
                    return Err(e);
                }
            }
        }
        drop(ready_tx);
        let mut failed = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some(io::Error::other("a worker thread died while starting"))),
            }
        }
        let rt = Runtime::from_parts(handle, threads);
        match failed {
            None => {
                let boosting = rt.handle().boosting();
                match (self.boost_stragglers, boosting) {
                    (false, _) => {
                        tracing::info!("stop-machine: straggler boost off (Builder::boost_stragglers)")
                    }
                    (true, true) => tracing::info!(
                        "stop-machine: straggler boost active (SCHED_FIFO for late participants)"
                    ),
                    (true, false) => tracing::info!(
                        "stop-machine: straggler boost inactive: no CAP_SYS_NICE or RLIMIT_RTPRIO, or already real-time"
                    ),
                }
                Ok(rt)
            }
            Some(e) => {
                rt.shut_down();
                Err(e)
            }
        }
    }
}

/// Runs the stop hook when the worker thread's closure ends, whichever way.
struct OnThreadStop(Option<ThreadHook>);

impl Drop for OnThreadStop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (stop.0)()));
            if ran.is_err() {
                tracing::error!("a stop-machine worker's on_thread_stop hook panicked");
            }
        }
    }
}

/// `STOP_MACHINE_STOP_A_LOT`, read only in debug builds.
fn stop_a_lot_from_env() -> Option<u32> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("STOP_MACHINE_STOP_A_LOT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
}

impl Runtime {
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
    pub fn new() -> io::Result<Runtime> {
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
}
