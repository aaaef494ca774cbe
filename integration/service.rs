//! The hot_patch example's core as a test: a line-protocol server on every
//! worker, patched under `stop_machine` every ~2 ms with plain writes, while
//! clients send a fixed number of pipelined requests and check that every
//! one gets a response and that every response comes from a single version.

mod common;

use common::{runtime, watchdog};
use std::cell::UnsafeCell;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use stop_machine::Handle;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const CLIENTS: u64 = 8;
const REQUESTS: u64 = 500;
/// Requests a client writes before reading their responses.
const PIPELINE: u64 = 5;
/// Requests after which a client waits for at least one more patch, so that
/// patches interleave with requests however the machine schedules us.
const PATCH_EVERY: u64 = 50;

/// A value that tasks read without synchronization and that only a
/// stop_machine function writes.
struct StopCell<T>(UnsafeCell<T>);

// SAFETY: reached only through `read` (from tasks, for a synchronous
// closure: the borrow ends within one poll) and `write` (from a stop_machine
// function with one active worker, when no task runs anywhere); the stop's
// handshake orders each write before every later poll.
unsafe impl<T: Send + Sync> Sync for StopCell<T> {}

impl<T> StopCell<T> {
    /// # Safety
    ///
    /// Only from a task of the runtime; `f` must not start a stop.
    unsafe fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: a task is being polled, so no stop function (the only
        // writer) runs; `f` is synchronous, so the borrow ends in this poll.
        f(unsafe { &*self.0.get() })
    }

    /// # Safety
    ///
    /// Only from a stop_machine function with a single active worker.
    unsafe fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: every other worker waits in its stopper and no task is
        // mid-poll, so no `read` borrow is alive.
        f(unsafe { &mut *self.0.get() })
    }
}

#[derive(Clone, Copy)]
struct Live {
    version: u64,
    name: &'static str,
    handler: fn(&Live, u64) -> u64,
    a: u64,
    b: u64,
    checksum: u64,
}

const NAMES: [&str; 3] = ["alpha", "bravo", "charlie"];
const HANDLERS: [fn(&Live, u64) -> u64; 3] = [
    |l, x| x.wrapping_add(l.a),
    |l, x| x.wrapping_mul(l.b | 1),
    |l, x| mix(x ^ l.a ^ l.b),
];

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Live {
    fn for_version(version: u64) -> Live {
        let (a, b) = (mix(version), mix(!version));
        let i = (version % 3) as usize;
        Live {
            version,
            name: NAMES[i],
            handler: HANDLERS[i],
            a,
            b,
            checksum: mix(version ^ a ^ mix(b)),
        }
    }

    /// Plain stores, one field at a time.
    fn patch(&mut self, version: u64) -> u64 {
        let next = Live::for_version(version);
        let previous = self.version;
        self.version = next.version;
        self.name = next.name;
        self.a = next.a;
        self.handler = next.handler;
        self.b = next.b;
        self.checksum = next.checksum;
        previous
    }

    fn respond(&self, x: u64) -> String {
        let value = (self.handler)(self, x);
        format!(
            "v{} {} {} {} {} {value}\n",
            self.version, self.name, self.a, self.b, self.checksum
        )
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, handle: Handle, live: Arc<StopCell<Live>>) {
    for next in 0.. {
        let (stream, _) = listener.accept().await.expect("accept");
        let stream = stream.into_std().expect("into_std");
        let live = live.clone();
        handle.spawn_on(next % handle.num_workers(), async move {
            let mut stream = tokio::net::TcpStream::from_std(stream).expect("from_std");
            stream.set_nodelay(true).expect("nodelay");
            let (reader, mut writer) = stream.split();
            let mut lines = tokio::io::BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let x: u64 = line.trim().parse().expect("a number");
                // SAFETY: a task; synchronous closure that starts no stop.
                let reply = unsafe { live.read(|l| l.respond(x)) };
                if writer.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The number of patches done, for clients to wait on.
#[derive(Default)]
struct Patches {
    count: Mutex<u64>,
    more: Condvar,
}

impl Patches {
    fn done(&self) -> u64 {
        *self.count.lock().unwrap()
    }

    fn wait_beyond(&self, seen: u64) {
        let count = self.count.lock().unwrap();
        drop(self.more.wait_while(count, |c| *c <= seen).unwrap());
    }
}

/// Checks a reply to request `x`; returns its version.
fn check(reply: &str, x: u64, newest: u64) -> u64 {
    let fields: Vec<&str> = reply.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "malformed reply {reply:?}");
    let version: u64 = fields[0].strip_prefix('v').unwrap().parse().unwrap();
    let expected = Live::for_version(version);
    assert_eq!(
        reply,
        expected.respond(x),
        "inconsistent reply: fields of several versions"
    );
    assert!(version >= newest, "v{version} after v{newest}: a stale read");
    version
}

/// One client: `REQUESTS` requests, `PIPELINE` at a time; returns the
/// number of patches done when it started and the newest version it saw.
fn client(id: u64, addr: SocketAddr, patches: &Patches) -> (u64, u64) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut replies = BufReader::new(stream.try_clone().unwrap());
    let mut newest = 0;
    let start = patches.done();
    let mut patches_seen = start;
    let batches = REQUESTS / PIPELINE;
    for batch in 0..batches {
        let xs: Vec<u64> = (0..PIPELINE)
            .map(|i| mix((id << 32) | (batch * PIPELINE + i)))
            .collect();
        let requests: String = xs.iter().map(|x| format!("{x}\n")).collect();
        stream.write_all(requests.as_bytes()).unwrap();
        for x in xs {
            let mut reply = String::new();
            let n = replies.read_line(&mut reply).unwrap();
            assert!(
                n > 0,
                "client {id}: the server closed the connection: a request was lost"
            );
            newest = check(&reply, x, newest);
        }
        if ((batch + 1) * PIPELINE).is_multiple_of(PATCH_EVERY) && batch + 1 < batches {
            patches.wait_beyond(patches_seen);
            patches_seen = patches.done();
        }
    }
    (start, newest)
}

#[test]
fn hot_patching_under_load_loses_no_request_and_tears_no_response() {
    watchdog("service", || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let live = Arc::new(StopCell(UnsafeCell::new(Live::for_version(1))));
        let l = live.clone();
        let addr = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            stop_machine::spawn(accept_loop(listener, stop_machine::Handle::current(), l));
            addr
        });

        let patches = Arc::new(Patches::default());
        let finished = Arc::new(AtomicBool::new(false));
        let patcher = {
            let (patches, finished) = (patches.clone(), finished.clone());
            std::thread::spawn(move || {
                let mut version = 1;
                while !finished.load(Ordering::SeqCst) {
                    // Pacing, not synchronization: clients wait on `patches`.
                    std::thread::sleep(Duration::from_millis(2));
                    let (next, live) = (version + 1, live.clone());
                    let previous = h
                        .stop_machine_blocking(
                            // SAFETY: stop_machine's function, one active worker.
                            move |_| unsafe { live.write(|l| l.patch(next)) },
                            None,
                        )
                        .unwrap();
                    assert_eq!(previous, version);
                    version = next;
                    *patches.count.lock().unwrap() += 1;
                    patches.more.notify_all();
                }
                version
            })
        };

        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let patches = patches.clone();
                std::thread::spawn(move || client(id, addr, &patches))
            })
            .collect();
        let seen: Vec<(u64, u64)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        finished.store(true, Ordering::SeqCst);
        let last = patcher.join().unwrap();

        // Each wait let at least one more patch in, and a finished patch is
        // seen by every later request: version = 1 + patches done.
        let waits = REQUESTS / PATCH_EVERY - 1;
        for (id, (start, newest)) in seen.into_iter().enumerate() {
            assert!(
                newest > start + waits,
                "client {id} started after {start} patches, waited for {waits} more, yet saw only v{newest}"
            );
            assert!(newest <= last);
        }
    });
}
