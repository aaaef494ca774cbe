//! The HTTP service both Rust servers run: `GET` answers a tiny body built
//! from a two-field config that only a `stop_machine` function writes and
//! that requests read with no lock and no atomic, the way
//! `examples/hot_patch.rs` does it.
//!
//! The patcher always writes both fields together (`a`, then `b`, to the
//! same value), so `a == b` must hold in every response. A response that
//! read `a != b` is a torn read: it is counted, and the count is reported.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::UnsafeCell;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;

/// The patched config.
struct Config {
    a: u64,
    b: u64,
}

/// A value that tasks read without synchronization and that only a
/// `stop_machine` function writes.
struct StopCell<T>(UnsafeCell<T>);

// SAFETY: reached only through `read` and `write`, whose contracts keep
// every access apart in time: `write` runs only inside a stop_machine
// function on its single active worker, while every other worker waits in
// its stopper and no task runs anywhere; `read` runs inside a task's poll
// for a synchronous closure, so its borrow ends before a stop can begin. On
// the tokio server nothing ever writes. The stop's handshake orders each
// write before every later poll on every worker.
unsafe impl<T: Send + Sync> Sync for StopCell<T> {}

static CONFIG: StopCell<Config> = StopCell(UnsafeCell::new(Config { a: 0, b: 0 }));

/// Responses that read `a != b`.
static TORN: AtomicU64 = AtomicU64::new(0);
/// Connections that ended with a hyper error other than the next one.
static CONNECTION_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Connections the client closed with a request in flight (hyper's
/// `IncompleteMessage`): what wrk does to its open connections when its
/// time is up.
static CLOSED_MID_REQUEST: AtomicU64 = AtomicU64::new(0);

pub fn torn_reads() -> u64 {
    TORN.load(Ordering::Relaxed)
}

pub fn connection_errors() -> u64 {
    CONNECTION_ERRORS.load(Ordering::Relaxed)
}

pub fn closed_mid_request() -> u64 {
    CLOSED_MID_REQUEST.load(Ordering::Relaxed)
}

/// Sets both fields of the config to `version`.
///
/// # Safety
///
/// Call only from the function of a `stop_machine` that has a single active
/// worker, on the runtime whose tasks serve the requests.
pub unsafe fn patch(version: u64) {
    // SAFETY: per the contract, every other worker waits in its stopper: no
    // task is mid-poll, so no `read` is running and nothing else writes.
    unsafe {
        let config = CONFIG.0.get();
        std::ptr::write_volatile(&raw mut (*config).a, version);
        std::ptr::write_volatile(&raw mut (*config).b, version);
    }
}

/// Reads both fields, in the order opposite to `patch`'s writes, so that a
/// write running concurrently would show as `a != b`.
fn read() -> (u64, u64) {
    let config = CONFIG.0.get();
    // SAFETY: called from a task's poll, synchronously: on the stop-machine
    // server no stop function (the only writer) runs while any task is
    // polled, and on the tokio server nothing writes. Volatile keeps the two
    // loads separate and in this order.
    unsafe {
        let b = std::ptr::read_volatile(&raw const (*config).b);
        let a = std::ptr::read_volatile(&raw const (*config).a);
        (a, b)
    }
}

/// The service: every request gets `a=<a> b=<b>\n`, zero-padded to a fixed
/// length (the Go server sends the same 25 bytes).
async fn respond(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (a, b) = read();
    if a != b {
        TORN.fetch_add(1, Ordering::Relaxed);
    }
    let mut response = Response::new(Full::new(Bytes::from(format!("a={a:010} b={b:010}\n"))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// Serves one connection with hyper's HTTP/1 server until the client
/// closes it.
pub async fn serve(stream: TcpStream) {
    // Go's net/http sets TCP_NODELAY on every connection; so do we.
    let _ = stream.set_nodelay(true);
    let served = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(respond))
        .await;
    match served {
        Ok(()) => {}
        Err(e) if e.is_incomplete_message() => drop(CLOSED_MID_REQUEST.fetch_add(1, Ordering::Relaxed)),
        Err(e) => {
            if CONNECTION_ERRORS.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("connection: {e}");
            }
        }
    }
}
