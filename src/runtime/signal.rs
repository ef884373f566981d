//! The signal thread: SIGINT and SIGTERM stop, SIGHUP reloads, SIGUSR1 reopens logs.
//!
//! The signals are blocked in the starting thread before any shard starts, so every
//! thread inherits the mask and none is interrupted; one thread waits for them with
//! `sigwait`, as nginx's master does:
//!
//! ```text
//! SIGINT / SIGTERM   first: the on_stopping hooks, then StopHandle::stop (graceful
//!                    drain, bounded by the drain timeout); second: the process exits at once with 128 + signal
//! SIGHUP             runs the hooks given to on_reload (taken only if there is one)
//! SIGUSR1            runs the hooks given to on_reopen_log (taken only if there is one)
//! ```
//!
//! Hooks are process-wide, as signals are. The thread never dies: a hook that panics
//! is reported and the loop goes on, and nothing here writes to stdout or stderr
//! except through `tracing`, whose subscriber must not fail when its stream is gone
//! (the `weft` binary's does not).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::runtime::{spawn_named, StopHandle};

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Hooks {
    reload: Vec<Hook>,
    reopen_log: Vec<Hook>,
    stopping: Vec<Hook>,
}

static HOOKS: Mutex<Hooks> = Mutex::new(Hooks {
    reload: Vec::new(),
    reopen_log: Vec::new(),
    stopping: Vec::new(),
});

fn hooks() -> std::sync::MutexGuard<'static, Hooks> {
    HOOKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `hook` on the signal thread at every SIGHUP (nginx's reload: what can change
/// without dropping a connection). Register before the server starts: SIGHUP is
/// taken by the signal thread only if a hook exists when the signals are blocked;
/// otherwise it keeps its default action (the process ends).
pub fn on_reload<H: Fn() + Send + Sync + 'static>(hook: H) {
    hooks().reload.push(Arc::new(hook));
}

/// Runs `hook` on the signal thread at every SIGUSR1 (reopen the log file after
/// logrotate moved it). Register before the server starts, as [`on_reload`].
pub fn on_reopen_log<H: Fn() + Send + Sync + 'static>(hook: H) {
    hooks().reopen_log.push(Arc::new(hook));
}

/// Runs `hook` on the signal thread when the first SIGINT or SIGTERM starts the
/// graceful stop (to tell systemd `STOPPING=1`, for example).
pub fn on_stopping<H: Fn() + Send + Sync + 'static>(hook: H) {
    hooks().stopping.push(Arc::new(hook));
}

fn handled_set() -> libc::sigset_t {
    let (reload, reopen) = {
        let h = hooks();
        (!h.reload.is_empty(), !h.reopen_log.is_empty())
    };
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use and
    // sigaddset only sets bits in the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if reload {
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        if reopen {
            libc::sigaddset(&mut set, libc::SIGUSR1);
        }
        set
    }
}

/// Blocks SIGINT and SIGTERM (and SIGHUP, SIGUSR1 when hooks for them exist) in the
/// calling thread, and so in every thread it starts afterwards, so that they can be
/// taken by the signal thread.
pub fn block_stop_signals() {
    let set = handled_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn run_hooks(which: &[Hook], name: &str) {
    for hook in which {
        if catch_unwind(AssertUnwindSafe(|| hook())).is_err() {
            tracing::error!("a {name} hook panicked");
        }
    }
}

pub(crate) fn spawn_signal_thread(stop: StopHandle) {
    spawn_named("weft-signals", move || loop {
        let set = handled_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid place for the result.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            continue;
        }
        // Nothing below may end this thread: it is the only way to stop the server.
        let _ = catch_unwind(AssertUnwindSafe(|| on_signal(sig, &stop)));
    });
}

fn on_signal(sig: libc::c_int, stop: &StopHandle) {
    match sig {
        libc::SIGHUP => {
            tracing::info!("Received SIGHUP, reloading.");
            let reload = hooks().reload.clone();
            run_hooks(&reload, "SIGHUP");
        }
        libc::SIGUSR1 => {
            let reopen = hooks().reopen_log.clone();
            run_hooks(&reopen, "SIGUSR1");
            tracing::info!("Received SIGUSR1, log reopened.");
        }
        _ => {
            let name = if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            if stop.is_stopping() {
                tracing::warn!("Received {name} again, stopping at once.");
                std::process::exit(128 + sig);
            }
            tracing::info!("Received {name}, shutting down.");
            let stopping = hooks().stopping.clone();
            run_hooks(&stopping, name);
            stop.stop();
        }
    }
}
