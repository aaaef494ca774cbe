//! The same service on tokio's multi_thread runtime (one worker thread per
//! CPU, or `--workers`), a plain `tokio::spawn` per connection, and no
//! stops: the throughput the stop-machine server is compared with.

use crate::args::Args;
use crate::service;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

pub struct Server {
    /// Kept alive until the process exits.
    _runtime: Runtime,
    pub addr: SocketAddr,
    pub workers: usize,
}

/// Builds the runtime, binds `args.addr` and starts serving.
pub fn start(args: &Args) -> std::io::Result<Server> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind(args.addr))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => drop(tokio::spawn(service::serve(stream))),
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
    Ok(Server {
        _runtime: runtime,
        addr,
        workers,
    })
}
