//! The server on stop-machine: a runtime of one pinned worker per CPU (or
//! `--workers`), the accept loop on worker 0 handing each connection to the
//! workers in turn (the hand-written spreading of `examples/hot_patch.rs`:
//! `into_std` on the accepting worker, `spawn_on(worker)`, `from_std` on
//! the connection's worker), and the patcher as a task on worker 0.

use crate::args::Args;
use crate::{patcher, service};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use stop_machine::{Handle, Runtime};
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    /// Kept alive until the process exits.
    _runtime: Runtime,
    pub addr: SocketAddr,
    pub handle: Handle,
    pub workers: usize,
    pub pinned: bool,
    pub recorder: Arc<patcher::Recorder>,
}

/// Builds the runtime, binds `args.addr` on worker 0 and starts serving and
/// patching.
pub fn start(args: &Args) -> std::io::Result<Server> {
    let mut builder = Runtime::builder();
    builder.pin(args.pin);
    if let Some(policy) = args.naive_accept {
        builder.spawn_policy(policy);
    }
    if let Some(n) = args.workers {
        builder.workers(n);
    }
    let runtime = builder.build()?;
    let h = runtime.handle().clone();

    if args.reuseport {
        let served = h.serve_per_worker(args.addr, naive_accept_loop)?;
        return Ok(finish(runtime, served.local_addr(), args));
    }
    // The listener is registered with worker 0's I/O driver: bind there.
    let (bound, addr) = mpsc::channel();
    let (bind_to, spread, naive) = (args.addr, h.clone(), args.naive_accept.is_some());
    h.spawn_on(0, async move {
        let listener = match TcpListener::bind(bind_to).await {
            Ok(listener) => listener,
            Err(e) => return drop(bound.send(Err(e))),
        };
        let _ = bound.send(listener.local_addr());
        if naive {
            naive_accept_loop(listener).await
        } else {
            accept_loop(listener, spread).await
        }
    });
    let addr = addr.recv().map_err(std::io::Error::other)??;
    Ok(finish(runtime, addr, args))
}

/// Starts the patcher and describes the server.
fn finish(runtime: Runtime, addr: SocketAddr, args: &Args) -> Server {
    let h = runtime.handle().clone();
    let recorder = Arc::new(patcher::Recorder::default());
    if let Some(every) = args.patch_every {
        let (h2, r) = (h.clone(), recorder.clone());
        let (grace, schedstat) = (args.grace, args.schedstat);
        h.spawn_on(0, async move {
            if grace {
                patcher::run_grace(h2, every, &r).await
            } else {
                patcher::run(h2, every, &r, schedstat).await
            }
        });
    }
    Server {
        addr,
        handle: h.clone(),
        workers: h.num_workers(),
        pinned: h.worker_cpu(0).is_some(),
        recorder,
        _runtime: runtime,
    }
}

/// Accepts connections and hands them to the workers in turn, itself
/// included.
async fn accept_loop(listener: TcpListener, h: Handle) {
    for next in 0.. {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        // Leave this worker's I/O driver; the connection's worker registers
        // the socket with its own.
        let Ok(stream) = stream.into_std() else { continue };
        h.spawn_on(next % h.num_workers(), async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => service::serve(stream).await,
                Err(e) => eprintln!("from_std: {e}"),
            }
        });
    }
}

/// The accept loop a tokio user writes: `spawn` per connection, placed by
/// the runtime's `SpawnPolicy`; the socket stays with the accepting
/// worker's driver.
async fn naive_accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(stop_machine::spawn(service::serve(stream))),
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
