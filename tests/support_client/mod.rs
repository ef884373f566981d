//! Helpers for the client tests: run a client on a reactor with a deadline, wait
//! on the reactor clock, record events.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use weft::Reactor;

/// Runs `main` with `weft::client::react` on its own thread; panics if it takes
/// longer than `limit`.
pub fn run<M, Fut, T>(limit: Duration, main: M) -> T
where
    M: FnOnce(Reactor) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = weft::client::react(main);
        let _ = tx.send(out);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => panic!("the reactor stopped before the test's main finished"),
        Ok(Err(e)) => panic!("the reactor failed: {e}"),
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// Completes after `d` on the reactor's clock.
pub async fn sleep(reactor: &Reactor, d: Duration) {
    let fired = Rc::new(Cell::new(false));
    let waker = Rc::new(RefCell::new(None::<std::task::Waker>));
    let (f, w) = (fired.clone(), waker.clone());
    reactor.call_later(d, move || {
        f.set(true);
        if let Some(w) = w.borrow_mut().take() {
            w.wake();
        }
    });
    poll_fn(|cx| {
        if fired.get() {
            Poll::Ready(())
        } else {
            *waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// Polls `pred` every 5 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(
    reactor: &Reactor,
    limit: Duration,
    mut pred: impl FnMut() -> bool,
) -> bool {
    let start = reactor.seconds();
    loop {
        if pred() {
            return true;
        }
        if reactor.seconds() - start > limit.as_secs_f64() {
            return false;
        }
        sleep(reactor, Duration::from_millis(5)).await;
    }
}

/// A shared, shard-local event log.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, e: impl Into<String>) {
        self.0.borrow_mut().push(e.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    pub fn contains(&self, prefix: &str) -> bool {
        self.0.borrow().iter().any(|e| e.starts_with(prefix))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.0
            .borrow()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

/// A loopback port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Builds (if needed) and returns the path of the example `name`, next to this
/// test binary in the same target directory and profile.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "--example", name])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
    profile_dir.join("examples").join(name)
}
