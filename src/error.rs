//! The errors a stop or a task can end with.

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// Why a stop did not run its function to completion everywhere it asked.
///
/// Each variant mirrors an errno of the kernel's stop_machine where one
/// exists; the runtime keeps working after any of them.
///
/// # Examples
///
/// ```
/// use stop_machine::{Runtime, StopError};
///
/// let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
/// let err = rt.block_on(async { stop_machine::stop_one_cpu(99, || ()).await });
/// assert_eq!(err, Err(StopError::InvalidWorker));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopError {
    /// A worker id is not below [`Handle::num_workers`](crate::Handle::num_workers).
    InvalidWorker,
    /// The mask of workers to stop was empty.
    EmptyMask,
    /// The function did not run because its worker (or every worker in the
    /// mask) is offline: the kernel's `-ENOENT`.
    Offline,
    /// Another stop holds the facility and the caller asked not to wait:
    /// the kernel's `-EAGAIN`.
    Busy,
    /// The stop function panicked; the payload's message. Every worker still
    /// left the stop and went back to its tasks.
    Panicked(String),
    /// A stop was requested from inside a stop function, which would wait on
    /// itself; the kernel would deadlock here, we refuse.
    Nested,
    /// The runtime is shutting down or gone.
    Shutdown,
    /// The worker's scheduler loop ended abnormally (a bug of this crate,
    /// reported when the runtime is dropped): its stopper takes no works,
    /// and the works it had queued were cancelled with this error.
    WorkerDied,
    /// A stop was awaited through another executor's `block_on` on one of
    /// the runtime's own worker threads. A worker blocked that way cannot
    /// serve its stopper, so any stop that needs it would wait forever;
    /// `.await` the stop from the task, or block through the crate's own
    /// entry points (`stop_machine_blocking`), which serve the stopper
    /// while they wait.
    WouldBlockWorker,
    /// Some workers did not reach their stopper before the stop's deadline:
    /// the stop was abandoned before DISABLE_IRQ (nobody ran the function)
    /// and the workers that had arrived went back to their tasks. Each
    /// straggler names the task it was polling. The kernel cannot do this.
    TimedOut {
        /// The workers that held the stop up.
        stragglers: Vec<Straggler>,
    },
}

/// A worker that had not reached its stopper when a stop timed out, and
/// what it was doing instead: the analogue of the kernel's
/// `print_stop_info`, or the JVM's SafepointTimeout report.
///
/// # Examples
///
/// ```
/// use stop_machine::{StopError, Straggler};
///
/// fn report(e: &StopError) {
///     if let StopError::TimedOut { stragglers } = e {
///         for s in stragglers {
///             eprintln!("worker {} held the stop up: {s}", s.worker);
///         }
///     }
/// }
/// # report(&StopError::Busy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Straggler {
    /// The worker.
    pub worker: usize,
    /// The task it was polling, if any: its id.
    pub task: Option<crate::TaskId>,
    /// Where that task was spawned (`#[track_caller]` of the spawn call).
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long the current poll had run at least: the same poll was in
    /// progress when the stop was requested and when it timed out.
    pub polling_for: Option<Duration>,
}

impl fmt::Display for Straggler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {}", self.worker)?;
        match (self.task, self.spawned_at) {
            (Some(id), Some(at)) => write!(f, " polling task {id} spawned at {at}")?,
            (Some(id), None) => write!(f, " polling task {id}")?,
            _ => write!(f, " not polling a task (blocked in its driver or a tokio task)")?,
        }
        if let Some(d) = self.polling_for {
            write!(f, " for at least {d:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopError::InvalidWorker => f.write_str("no such worker"),
            StopError::EmptyMask => f.write_str("empty worker mask"),
            StopError::Offline => f.write_str("worker offline"),
            StopError::Busy => f.write_str("another stop is in progress"),
            StopError::Panicked(msg) => write!(f, "stop function panicked: {msg}"),
            StopError::Nested => f.write_str("stop requested from inside a stop function"),
            StopError::Shutdown => f.write_str("runtime is shutting down"),
            StopError::WorkerDied => f.write_str("the worker died"),
            StopError::WouldBlockWorker => f.write_str(
                "a worker thread would block on a stop through a foreign block_on; await it or use stop_machine_blocking",
            ),
            StopError::TimedOut { stragglers } => {
                write!(f, "stop timed out waiting for {} worker(s)", stragglers.len())?;
                for s in stragglers {
                    write!(f, "; {s}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StopError {}

/// Why a task did not produce its value: it was cancelled or it panicked.
///
/// # Examples
///
/// ```
/// use stop_machine::Runtime;
///
/// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
/// let err = rt
///     .block_on(async { stop_machine::spawn(async { panic!("boom") }).await })
///     .unwrap_err();
/// assert!(err.is_panic());
/// ```
pub struct JoinError {
    id: crate::TaskId,
    repr: Repr,
}

enum Repr {
    Cancelled,
    // A Mutex makes the payload Sync, so `JoinError` fits `Box<dyn Error + Send + Sync>`.
    Panic(std::sync::Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled(id: crate::TaskId) -> JoinError {
        JoinError {
            id,
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(id: crate::TaskId, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Panic(std::sync::Mutex::new(payload)),
        }
    }

    /// True when the task was aborted or dropped by runtime shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let err = rt.block_on(async {
    ///     let h = stop_machine::spawn(std::future::pending::<()>());
    ///     h.abort();
    ///     h.await.unwrap_err()
    /// });
    /// assert!(err.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True when the task panicked.
    ///
    /// # Examples
    ///
    /// See [`JoinError`].
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The id of the task that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let task = rt.handle().spawn(async { panic!() });
    /// let id = task.id();
    /// let err = futures::executor::block_on(task).unwrap_err();
    /// assert_eq!(err.id(), id);
    /// ```
    pub fn id(&self) -> crate::TaskId {
        self.id
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// Panics if the task was cancelled rather than panicking; see
    /// [`try_into_panic`](Self::try_into_panic).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let err = rt.block_on(async { stop_machine::spawn(async { panic!("boom") }).await }).unwrap_err();
    /// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
    /// ```
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect("`JoinError` reason is not a panic")
    }

    /// The panic payload, or the error back when the task was cancelled.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)` when the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let err = rt.block_on(async { stop_machine::spawn(async { panic!("boom") }).await }).unwrap_err();
    /// assert!(err.try_into_panic().is_ok());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panic(p) => {
                let msg = panic_message(&**p.lock().unwrap_or_else(|e| e.into_inner()));
                write!(f, "task {} panicked with message {msg:?}", self.id)
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({})", self.id),
            Repr::Panic(_) => write!(f, "JoinError::Panic({}, ...)", self.id),
        }
    }
}

impl std::error::Error for JoinError {}

/// Runs `f`, turning a panic into [`StopError::Panicked`].
pub(crate) fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R, StopError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| StopError::Panicked(panic_message(&*p)))
}

/// The message of a panic payload, as `std` would print it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
