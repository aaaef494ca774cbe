//! A hyper service on stop-machine, hot-patched while it serves: the
//! copy-paste starting point for a real service.
//!
//! - one `SO_REUSEPORT` listener per worker (`Handle::serve_per_worker`),
//!   each accept loop serving its connections with a plain `spawn`, as one
//!   writes with `tokio::spawn`;
//! - the config (`StopCell`) read on every request with no lock and no
//!   atomic, patched in a stopped world every `--patch-ms` (its two fields
//!   always move together, so a torn read would show);
//! - the routing table (`Rcu`) republished every tenth patch, without
//!   stopping anyone: a grace period, then the old table is dropped;
//! - its own load generator (keep-alive HTTP/1.1 clients on a separate
//!   tokio runtime) checking every response, and a summary at the end.
//!
//! ```sh
//! cargo run --release --example http_hot_patch -- --seconds 5 --connections 32 --patch-ms 5
//! ```

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use stop_machine::{Handle, Rcu, Runtime, StopCell, StopKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Read on every request; patched only in a stopped world.
struct Config {
    version: u64,
    /// Always `2 * version`: a reader that sees otherwise saw a torn patch.
    twice: u64,
    greeting: String,
}

impl Config {
    fn v(version: u64) -> Config {
        Config {
            version,
            twice: 2 * version,
            greeting: format!("hello from config {version}"),
        }
    }
}

/// A route's handler: builds the body from the config.
type Handler = fn(&Config, u64) -> String;

/// The routing table, republished now and then; `generation` says which.
struct Routes {
    generation: u64,
    table: HashMap<&'static str, Handler>,
}

fn routes(generation: u64) -> Routes {
    let mut table: HashMap<&'static str, Handler> = HashMap::new();
    table.insert("/", |c, g| {
        format!("{} {} {} routes={g}", c.version, c.twice, c.greeting)
    });
    table.insert("/version", |c, g| format!("{} {} routes={g}", c.version, c.twice));
    Routes { generation, table }
}

/// What the server shares with its tasks.
#[derive(Clone)]
struct App {
    config: StopCell<Config>,
    routes: Arc<Rcu<Routes>>,
    torn: Arc<AtomicU64>,
}

impl App {
    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        // Both reads are closures: nothing borrowed survives them.
        let handler = self
            .routes
            .read(|r| r.table.get(path).map(|h| (*h, r.generation)));
        let Some((handler, generation)) = handler else {
            let mut not_found = Response::new(Full::new(Bytes::from_static(b"no such route")));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return not_found;
        };
        let body = self.config.read(|c| {
            if c.twice != 2 * c.version {
                self.torn.fetch_add(1, Relaxed);
            }
            handler(c, generation)
        });
        Response::new(Full::new(Bytes::from(body)))
    }
}

async fn serve(stream: TcpStream, app: App) {
    let service = service_fn(move |req: Request<Incoming>| {
        let response = app.respond(req.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    // A client closing its connection is the normal end.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn accept_loop(listener: TcpListener, app: App) {
    loop {
        match listener.accept().await {
            // `spawn` keeps the connection on this worker, whose driver its
            // socket is registered with.
            Ok((stream, _)) => drop(stop_machine::spawn(serve(stream, app.clone()))),
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

/// Patches the config every `every` (and republishes the routes every
/// tenth time) until `done`; returns how many patches it made.
async fn patcher(app: App, every: Duration, done: Arc<AtomicBool>) -> u64 {
    let mut version = 1;
    while !done.load(Relaxed) {
        tokio::time::sleep(every).await;
        version += 1;
        // The old config comes back out of the stopped world and is dropped
        // here, after every worker has restarted.
        let old = app.config.replace(Config::v(version)).await.expect("patch");
        debug_assert_eq!(old.version, version - 1);
        if version % 10 == 0 {
            app.routes.publish(routes(version / 10)).await;
        }
    }
    version - 1
}

/// What the load generator saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    bad: AtomicU64,
    max_version: AtomicU64,
}

/// One keep-alive client: GETs `/` and `/version` in turn until `done`,
/// checking that each body is whole and that versions never go back.
async fn client(addr: SocketAddr, seen: Arc<Seen>, done: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut conn = TcpStream::connect(addr).await?;
    let (mut last, mut buf) = (0, Vec::new());
    for i in 0u64.. {
        if done.load(Relaxed) {
            return Ok(());
        }
        let path = if i % 2 == 0 { "/" } else { "/version" };
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: local\r\n\r\n").as_bytes())
            .await?;
        let body = read_response(&mut conn, &mut buf).await?;
        let mut words = body.split(' ');
        let version: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let twice: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
        if twice != 2 * version || version < last {
            seen.bad.fetch_add(1, Relaxed);
        }
        last = version;
        seen.max_version.fetch_max(version, Relaxed);
        seen.requests.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Reads one HTTP/1.1 response with a `content-length` and returns its body.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<String> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad("no content-length"))?;
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                return Ok(body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed mid-response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Args {
    seconds: u64,
    connections: usize,
    patch_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 5,
        connections: 32,
        patch_ms: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = value()?,
            "--connections" => args.connections = value()?.max(1) as usize,
            "--patch-ms" => args.patch_ms = value()?.max(1),
            other => {
                return Err(format!(
                    "unknown argument {other}\nusage: http_hot_patch [--seconds S] [--connections N] [--patch-ms MS]"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = Runtime::new().expect("runtime");
    let h: Handle = rt.handle().clone();
    let app = App {
        config: StopCell::new(&h, Config::v(1)),
        routes: Arc::new(Rcu::new(&h, routes(0))),
        torn: Arc::new(AtomicU64::new(0)),
    };
    let served = {
        let app = app.clone();
        h.serve_per_worker("127.0.0.1:0", move |listener| accept_loop(listener, app.clone()))
            .expect("bind 127.0.0.1")
    };
    let addr = served.local_addr();
    println!(
        "serving on {addr} with {} workers; {} connections for {} s, a patch every {} ms",
        h.num_workers(),
        args.connections,
        args.seconds,
        args.patch_ms
    );

    let done = Arc::new(AtomicBool::new(false));
    let patches = h.spawn_on(
        0,
        patcher(app.clone(), Duration::from_millis(args.patch_ms), done.clone()),
    );

    // The load generator: a separate tokio runtime, as another process would be.
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let errors = load.block_on(async {
        let clients: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(client(addr, seen.clone(), done.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        done.store(true, Relaxed);
        let mut errors = 0;
        for c in clients {
            if !matches!(c.await, Ok(Ok(()))) {
                errors += 1;
            }
        }
        errors
    });
    let elapsed = start.elapsed();
    let patched = rt.block_on(patches).expect("patcher");
    served.abort();

    let stats = h.stats();
    let machine = stats.kind(StopKind::Machine);
    let requests = seen.requests.load(Relaxed);
    let (bad, torn) = (seen.bad.load(Relaxed), app.torn.load(Relaxed));
    println!(
        "{requests} requests in {:.1} s ({:.0} req/s), {errors} client errors",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{patched} patches (config version reached {}), {} route tables published",
        seen.max_version.load(Relaxed),
        patched / 10
    );
    println!(
        "stops: {} (time to stop p50 {:?}, p99 {:?}; stopped p50 {:?})",
        machine.count,
        machine.time_to_stop.p50(),
        machine.time_to_stop.p99(),
        machine.time_stopped.p50()
    );
    println!("torn reads: {torn} on the server, {bad} bad responses seen by clients");
    if torn == 0 && bad == 0 && errors == 0 && requests > 0 {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        println!("FAILED");
        ExitCode::FAILURE
    }
}
