//! loom models of completion counting (the kernel's `cpu_stop_done`): the
//! waiter is woken exactly when every work has signalled (or the stop ended
//! early), the finishers run exactly once and before the waiter returns, and
//! the works' writes are visible to the waiter.

use super::Completion;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::model::thread;
use crate::sync::model::{Shared, model};

/// Two works signal (one through `signal_n`) while the waiter attaches a
/// finisher and waits: the finisher runs once, before the waiter returns,
/// and the waiter sees both works' writes.
#[test]
fn model_completion_signal_wait() {
    model(3, || {
        let done = Arc::new(Completion::new(3));
        // What each work wrote before signalling.
        let results = Arc::new([Shared::new(0u8), Shared::new(0)]);
        let finished = Arc::new(AtomicUsize::new(0));
        let works: Vec<_> = [1, 2]
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let (done, results) = (done.clone(), results.clone());
                thread::spawn(move || {
                    results[i].update(|r| *r = 1);
                    done.signal_n(n);
                })
            })
            .collect();
        let f = finished.clone();
        done.on_complete(move || {
            f.fetch_add(1, Ordering::Relaxed);
        });
        crate::sync::model::block_on(done.wait());
        assert!(done.is_done());
        assert_eq!(
            finished.load(Ordering::Relaxed),
            1,
            "finisher not run before the waiter woke"
        );
        for r in results.iter() {
            assert_eq!(r.get(), 1, "woken before every work signalled");
        }
        for w in works {
            w.join().unwrap();
        }
        assert_eq!(finished.load(Ordering::Relaxed), 1);
    });
}

/// An abandoned stop: the coordinator's finisher is attached, then one
/// participant ends the wait early (`finish_early`) and signals, the other
/// signals late. The finisher runs exactly once, before the waiter returns;
/// the late signals find nothing left to do.
#[test]
fn model_completion_finish_early() {
    model(3, || {
        let done = Arc::new(Completion::new(2));
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        done.on_complete(move || {
            f.fetch_add(1, Ordering::Relaxed);
        });
        let early = {
            let done = done.clone();
            thread::spawn(move || {
                done.finish_early();
                done.signal();
            })
        };
        let late = {
            let done = done.clone();
            thread::spawn(move || done.signal())
        };
        crate::sync::model::block_on(done.wait());
        assert_eq!(
            finished.load(Ordering::Relaxed),
            1,
            "finisher not run before the waiter woke"
        );
        early.join().unwrap();
        late.join().unwrap();
        assert_eq!(finished.load(Ordering::Relaxed), 1, "finisher ran twice");
        // A finisher attached after the end runs at once.
        let f = finished.clone();
        done.on_complete(move || {
            f.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(finished.load(Ordering::Relaxed), 2);
    });
}

/// A participant abandons the stop (`finish_early`, from its deadline) just
/// as the coordinator attaches its finisher: the finisher must still run
/// before the waiter returns, as releasing the claimed workers and the stop
/// lock is what abandoning is for. Attached before the stages are taken,
/// it runs with them; after, at once: either way before the wait ends.
#[test]
fn model_completion_finish_early_before_on_complete() {
    model(3, || {
        let done = Arc::new(Completion::new(2));
        let finished = Arc::new(AtomicUsize::new(0));
        let early = {
            let done = done.clone();
            thread::spawn(move || {
                done.finish_early();
                done.signal();
            })
        };
        let f = finished.clone();
        done.on_complete(move || {
            f.fetch_add(1, Ordering::Relaxed);
        });
        crate::sync::model::block_on(done.wait());
        assert_eq!(
            finished.load(Ordering::Relaxed),
            1,
            "the waiter returned, the finisher had not run"
        );
        early.join().unwrap();
        done.signal();
        assert_eq!(finished.load(Ordering::Relaxed), 1);
    });
}

/// A multi-worker stop at EXIT: the last active participant releases the
/// waiter (`release`) before the other participants have signalled. The
/// release stage runs once, before the waiter returns, and sees what the
/// releasing participant wrote; the completion stage runs once, only after
/// the last signal, and sees what every participant wrote.
#[test]
fn model_completion_release_before_the_last_signal() {
    model(3, || {
        let done = Arc::new(Completion::new(2));
        let results = Arc::new([Shared::new(0u8), Shared::new(0)]);
        let (released, completed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, rs) = (released.clone(), results.clone());
        done.on_release(move || {
            assert_eq!(rs[0].get(), 1, "released before the releaser's write");
            r.fetch_add(1, Ordering::Relaxed);
        });
        let (c, rs) = (completed.clone(), results.clone());
        done.on_complete(move || {
            for r in rs.iter() {
                assert_eq!(r.get(), 1, "completed before every work signalled");
            }
            c.fetch_add(1, Ordering::Relaxed);
        });
        let releaser = {
            let (done, results) = (done.clone(), results.clone());
            thread::spawn(move || {
                results[0].update(|r| *r = 1);
                done.release();
                done.signal();
            })
        };
        let late = {
            let (done, results) = (done.clone(), results.clone());
            thread::spawn(move || {
                results[1].update(|r| *r = 1);
                done.signal();
            })
        };
        crate::sync::model::block_on(done.wait());
        assert_eq!(
            released.load(Ordering::Relaxed),
            1,
            "release stage not run before the waiter woke"
        );
        releaser.join().unwrap();
        late.join().unwrap();
        assert_eq!(released.load(Ordering::Relaxed), 1, "release stage ran twice");
        assert_eq!(
            completed.load(Ordering::Relaxed),
            1,
            "completion stage not run exactly once"
        );
    });
}
