//! `serve_per_worker`: one `SO_REUSEPORT` listener per worker, so that the
//! kernel spreads connections over the workers and each is served where it
//! was accepted, as thread-per-core runtimes do.

use crate::runtime::handle::Handle;
use crate::runtime::task::JoinHandle;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};

/// The listen backlog of each worker's listener.
const BACKLOG: u32 = 1024;

/// The accept loops that [`Handle::serve_per_worker`] started: one per
/// worker, all listening on [`local_addr`](ServePerWorker::local_addr).
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// let served = rt
///     .handle()
///     .serve_per_worker("127.0.0.1:0", |_listener| async {})
///     .unwrap();
/// assert_eq!(served.local_addr().ip().to_string(), "127.0.0.1");
/// for task in served.into_join_handles() {
///     rt.block_on(task).unwrap();
/// }
/// ```
#[derive(Debug)]
pub struct ServePerWorker<T> {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<T>>,
}

impl<T> ServePerWorker<T> {
    /// The address every worker's listener is bound to (with the port the
    /// OS chose, when asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let served = rt.handle().serve_per_worker("127.0.0.1:0", |_l| async {}).unwrap();
    /// assert_ne!(served.local_addr().port(), 0);
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Aborts every accept loop (their listeners close with them).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let served = rt
    ///     .handle()
    ///     .serve_per_worker("127.0.0.1:0", |_l| std::future::pending::<()>())
    ///     .unwrap();
    /// served.abort();
    /// for task in served.into_join_handles() {
    ///     assert!(rt.block_on(task).unwrap_err().is_cancelled());
    /// }
    /// ```
    pub fn abort(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }

    /// The accept loops' handles, worker 0's first.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let served = rt.handle().serve_per_worker("127.0.0.1:0", |_l| async { 1 }).unwrap();
    /// let sum: i32 = served.into_join_handles().into_iter().map(|t| rt.block_on(t).unwrap()).sum();
    /// assert_eq!(sum, 2);
    /// ```
    pub fn into_join_handles(self) -> Vec<JoinHandle<T>> {
        self.tasks
    }
}

impl Handle {
    /// Binds one TCP listener per worker to `addr`, all sharing it through
    /// `SO_REUSEPORT`, and runs `accept_loop(listener)` as a task on each
    /// worker, with that worker's listener registered with its own I/O
    /// driver. The kernel spreads incoming connections over the listeners
    /// (by a hash of the connection's addresses), so a loop that serves
    /// each connection with [`spawn`](crate::spawn) (or `tokio::spawn`)
    /// keeps it on the worker that accepted it: no hand-off between
    /// workers, and each socket polled by the driver it is registered with.
    ///
    /// Binding and listening happen here, on the calling thread, so that an
    /// address in use is reported at once; for port 0 the first bind picks
    /// the port and the others take the same one.
    ///
    /// CONTEXT: any thread.
    ///
    /// # Errors
    ///
    /// The OS's error when `addr` does not resolve, or a socket cannot be
    /// created, set to `SO_REUSEPORT` or bound (e.g. `AddrInUse` when a
    /// listener without `SO_REUSEPORT` holds the port) or cannot listen.
    /// Every listener listens before this returns, so a client may connect
    /// at once. A worker that cannot register its listener with its driver
    /// (rare: out of memory) ends its task with a panic, reported by its
    /// handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
    /// let served = rt
    ///     .handle()
    ///     .serve_per_worker("127.0.0.1:0", |listener| async move {
    ///         loop {
    ///             let Ok((mut conn, _)) = listener.accept().await else { continue };
    ///             drop(stop_machine::spawn(async move {
    ///                 let _ = conn.write_all(b"hello").await;
    ///             }));
    ///         }
    ///     })
    ///     .unwrap();
    /// let addr = served.local_addr();
    /// let reply = rt.block_on(async move {
    ///     let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    ///     let mut buf = Vec::new();
    ///     c.read_to_end(&mut buf).await.unwrap();
    ///     buf
    /// });
    /// assert_eq!(reply, b"hello");
    /// ```
    pub fn serve_per_worker<F, Fut>(
        &self,
        addr: impl ToSocketAddrs,
        accept_loop: F,
    ) -> io::Result<ServePerWorker<Fut::Output>>
    where
        F: Fn(TcpListener) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let mut addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))?;
        let mut sockets = Vec::with_capacity(self.num_workers());
        for _ in 0..self.num_workers() {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            // Port 0: the others join the port the first one got.
            addr = socket.local_addr()?;
            sockets.push(listen(socket)?);
        }
        let accept_loop = Arc::new(accept_loop);
        let tasks = sockets
            .into_iter()
            .enumerate()
            .map(|(w, socket)| {
                let accept_loop = accept_loop.clone();
                self.spawn_on(w, async move {
                    // Registers the listener with this worker's driver.
                    let listener = TcpListener::from_std(socket).unwrap_or_else(|e| {
                        panic!("serve_per_worker: registering worker {w}'s listener: {e}")
                    });
                    accept_loop(listener).await
                })
            })
            .collect();
        Ok(ServePerWorker { addr, tasks })
    }
}

/// Puts a bound socket in the listening state off any runtime (tokio's
/// `TcpSocket::listen` registers with the calling thread's driver, and the
/// listener belongs to another worker's).
fn listen(socket: TcpSocket) -> io::Result<std::net::TcpListener> {
    // SAFETY: `into_raw_fd` hands over the open socket's ownership, which
    // the listener takes; nothing else holds the descriptor.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(socket.into_raw_fd()) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    // SAFETY: `fd` is a valid socket descriptor owned by `listener`, alive
    // for the call; `listen` takes no pointers.
    if unsafe { libc::listen(fd, BACKLOG as libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}
