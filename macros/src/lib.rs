//! The `#[stop_machine::main]` and `#[stop_machine::test]` attributes.
//!
//! Use them through the `stop-machine` crate, which re-exports both under
//! its default feature `macros`; they expand to paths into that crate
//! (`::stop_machine` unless `crate = path` says otherwise).
//!
//! ```
//! #[stop_machine::main(workers = 2, pin = false)]
//! async fn main() {
//!     assert_eq!(stop_machine::Handle::current().num_workers(), 2);
//! }
//! ```
//!
//! See [`main`](macro@main) for the arguments, which both attributes
//! share, and [`test`](macro@test) for the test defaults.
#![warn(missing_docs)]

mod args;
mod expand;

use args::Kind;
use proc_macro::TokenStream;

/// Runs an `async fn main` on a [`stop_machine::Runtime`].
///
/// The attribute turns the `async fn` into a sync `fn` that builds a runtime
/// with `stop_machine::Builder`, from the attribute's arguments, and blocks
/// on the function's body with `Runtime::block_on`; the runtime shuts down
/// when the body is done. It mirrors `#[tokio::main]`. The `stop-machine`
/// crate re-exports it as `stop_machine::main` under its cargo feature
/// `macros`, on by default.
///
/// ```
/// #[stop_machine::main(workers = 2, pin = false, thread_name = "app")]
/// async fn main() -> Result<(), stop_machine::StopError> {
///     let handle = stop_machine::Handle::current();
///     assert_eq!(handle.num_workers(), 2);
///     // The body runs on a worker, as a task like any other.
///     assert!(std::thread::current().name().unwrap().starts_with("app-"));
///     let answer = stop_machine::stop_one_cpu(1, || 42).await?;
///     assert_eq!(answer, 42);
///     Ok(())
/// }
/// ```
///
/// expands to, roughly (the locals are hygienic, invisible to the body, and
/// the real expansion also keeps lints about itself quiet):
///
/// ```
/// fn main() -> Result<(), stop_machine::StopError> {
///     let body = async move {
///         // The body's value has the declared type: a mismatch is reported
///         // at the body, and `?` knows the error type.
///         let ret: Result<(), stop_machine::StopError> = {
///             // ... the body ...
///             # Ok(())
///         };
///         return ret;
///     };
///     let rt = ::stop_machine::Builder::new()
///         .workers(2)
///         .pin(false)
///         .thread_name("app")
///         .build()
///         .expect("#[stop_machine::main]: failed to build the runtime");
///     rt.block_on(body)
/// }
/// ```
///
/// # Arguments
///
/// Both attributes take the same arguments, each at most once, each a
/// literal (not a constant or an expression), and each calls the
/// `stop_machine::Builder` method of the same meaning; an argument left out
/// keeps the `Builder`'s default (for tests, see [`test`](macro@test)).
///
/// | argument | `Builder` call | default |
/// |---|---|---|
/// | `workers = 4` | `.workers(4)` (at least 1) | one worker per CPU |
/// | `pin = false` | `.pin(false)` | `true` |
/// | `thread_name = "app"` | `.thread_name("app")` | `"stop-machine-worker"` |
/// | `event_interval = 31` | `.event_interval(31)` (at least 1) | 61 |
/// | `per_core = true` | `.per_core()` (`false` calls nothing) | one worker per hardware thread |
/// | `stop_timeout_ms = 250` | `.stop_timeout(Duration::from_millis(250))` | no bound |
/// | `slow_stop_warning_ms = 20` | `.slow_stop_warning(Some(Duration::from_millis(20)))`; `0` is `None`, no warning | 10 ms |
/// | `stop_a_lot = 50` | `.stop_a_lot(50)` (`0` turns it off) | off, or `STOP_MACHINE_STOP_A_LOT` in debug builds |
/// | `boost_stragglers = false` | `.boost_stragglers(false)` | `true` (where the OS allows it) |
/// | `crate = path` | the path the expansion names the crate by | `::stop_machine` |
///
/// Integers are unsuffixed or carry an unsigned suffix (`50u32`); the
/// durations are whole milliseconds, which the `_ms` in their names says.
/// `crate` takes a path (`crate = my_reexport::stop_machine`) or, as
/// tokio spells it, a string of one (`crate = "my_reexport::stop_machine"`).
/// A CPU mask (`Builder::cpus`) has no argument: build such a runtime with
/// the `Builder`.
///
/// # The body
///
/// The body becomes an `async move` block given to `Runtime::block_on`: it
/// runs on a worker thread, not on the thread that called `main`, so it is
/// a task like any other (a stop stops it too), [`Handle::current`] and
/// tokio's APIs work in it, and `std::thread::current()` is a worker (named
/// from `thread_name`). The block, like every future given to `block_on`,
/// must be `Send`, and so must its output: hold a `!Send` value across an
/// `.await` and the expansion does not compile (spawn such work with
/// `stop_machine::spawn_local` from inside). Because the block is `async
/// move` and owns everything it uses, the expansion compiles whether
/// `block_on` asks for `Send + 'static` futures, as it did, or only for
/// `Send` ones, as it does now.
///
/// The function may return any type `block_on` can: `()`, `Result<(), E>`
/// (with `E: Debug`, as for any `main`), `ExitCode`. A panic in the body is
/// resumed on the calling thread; a runtime that cannot be built panics
/// with the OS's error, as `#[tokio::main]` does.
///
/// A function not named `main` may take arguments (they move into the
/// body): `#[stop_machine::main] async fn serve(port: u16)` is a sync
/// `fn serve(port: u16)` that runs a runtime for the call.
///
/// # Errors
///
/// The attribute reports, at the offending tokens: an argument it does not
/// know (with a hint for tokio's `worker_threads` and `flavor`), one given
/// twice or without a value, a literal of the wrong kind (`workers = "4"`,
/// `pin = 1`) or out of range (`workers = 0`), a function that is not
/// `async`, and a `main` that takes arguments.
///
/// [`stop_machine::Runtime`]: https://docs.rs/stop-machine/latest/stop_machine/struct.Runtime.html
/// [`Handle::current`]: https://docs.rs/stop-machine/latest/stop_machine/struct.Handle.html#method.current
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a [`stop_machine::Runtime`].
///
/// The attribute turns the `async fn` into a `#[test] fn` that builds a
/// runtime and blocks on the test's body, as [`main`](macro@main) does for a
/// program, with the same arguments. Only the defaults differ, so that
/// tests do not depend on the machine they run on: two workers and
/// `pin = false` unless the arguments say otherwise (with `per_core = true`
/// and no `workers`, one worker per core). A panic in the body (a failed
/// `assert!`) fails the test, and `#[should_panic]` and `#[ignore]` work as
/// on any test. The `stop-machine` crate re-exports it as
/// `stop_machine::test` under its cargo feature `macros`, on by default.
///
/// ```
/// #[stop_machine::test]
/// async fn two_workers() {
///     assert_eq!(stop_machine::Handle::current().num_workers(), 2);
/// }
///
/// #[stop_machine::test(workers = 3, stop_timeout_ms = 1000)]
/// async fn stops_on_three() -> Result<(), stop_machine::StopError> {
///     let ran = stop_machine::stop_machine(|_| 7, None).await?;
///     assert_eq!(ran, 7);
///     Ok(())
/// }
/// ```
///
/// Besides the errors [`main`](macro@main) reports, a test that takes
/// arguments, or carries a second test attribute (`#[test]`,
/// `#[tokio::test]`), is an error.
///
/// [`stop_machine::Runtime`]: https://docs.rs/stop-machine/latest/stop_machine/struct.Runtime.html
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Test, args.into(), item.into()).into()
}
