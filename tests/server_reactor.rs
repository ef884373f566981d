//! Reactor services on a running shard: timers, spawned tasks writing through a
//! transport handle (the Deferred pattern), pause/resume of reading, flow control.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{connect, read_to_end, require_io_uring};
use weft::{Address, DelayedCallError, Factory, Protocol, Reason, Server, Transport};

/// On connect: schedules "tick" in 50 ms, a cancelled call, and a call moved
/// earlier; spawns a task that answers after a timer; closes after 300 ms.
struct Timed {
    log: Arc<Mutex<Vec<String>>>,
}

impl Protocol for Timed {
    fn connection_made(&mut self, t: &mut Transport) {
        let r = t.reactor().clone();
        let h = t.handle();
        let h2 = t.handle();
        r.call_later(Duration::from_millis(50), move || h.write(b"tick;"));
        let never = {
            let h = t.handle();
            r.call_later(Duration::from_millis(20), move || h.write(b"NEVER;"))
        };
        never.cancel().unwrap();
        assert_eq!(never.cancel(), Err(DelayedCallError::AlreadyCancelled));
        let moved = {
            let h = t.handle();
            r.call_later(Duration::from_secs(60), move || h.write(b"moved;"))
        };
        moved.reset(Duration::from_millis(100)).unwrap();
        let log = Arc::clone(&self.log);
        let rc = r.clone();
        r.spawn_local(async move {
            // A Deferred-like step: wait on a timer-driven future, then write back.
            let done = Rc::new(RefCell::new(None::<std::task::Waker>));
            let fired = Rc::new(std::cell::Cell::new(false));
            let (d, f) = (Rc::clone(&done), Rc::clone(&fired));
            rc.call_later(Duration::from_millis(150), move || {
                f.set(true);
                if let Some(w) = d.borrow_mut().take() {
                    w.wake();
                }
            });
            std::future::poll_fn(|cx| {
                if fired.get() {
                    std::task::Poll::Ready(())
                } else {
                    *done.borrow_mut() = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            })
            .await;
            h2.write(b"async;");
            log.lock().unwrap().push("async done".into());
            h2.lose_connection();
        });
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}

    fn connection_lost(&mut self, reason: Reason) {
        self.log
            .lock()
            .unwrap()
            .push(format!("lost clean={}", reason.is_clean()));
    }
}

struct TimedFactory(Arc<Mutex<Vec<String>>>);
impl Factory for TimedFactory {
    type Protocol = Timed;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Timed> {
        Some(Timed {
            log: Arc::clone(&self.0),
        })
    }
}

#[test]
fn timers_and_spawned_tasks_write_through_handles_in_time_order() {
    require_io_uring();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            TimedFactory(Arc::clone(&l))
        })
        .start()
        .unwrap();
    let t0 = Instant::now();
    let mut c = connect(server.tcp_addr().unwrap());
    let got = read_to_end(&mut c);
    let elapsed = t0.elapsed();
    assert_eq!(String::from_utf8(got).unwrap(), "tick;moved;async;");
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    server.shutdown().unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["async done", "lost clean=true"]);
}

/// Pauses reading after the first chunk; resumes 200 ms later from a timer.
struct Pauser {
    seen: Rc<RefCell<Vec<u8>>>,
    paused_once: bool,
}

impl Protocol for Pauser {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.seen.borrow_mut().extend_from_slice(data);
        t.write(data);
        if !self.paused_once {
            self.paused_once = true;
            t.pause_reading();
            let h = t.handle();
            t.reactor()
                .call_later(Duration::from_millis(200), move || h.resume_reading());
        }
    }
}

struct PauserFactory;
impl Factory for PauserFactory {
    type Protocol = Pauser;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Pauser> {
        Some(Pauser {
            seen: Rc::default(),
            paused_once: false,
        })
    }
}

#[test]
fn pause_reading_holds_input_until_resume_reading() {
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .listen("tcp:0:interface=127.0.0.1", |_| PauserFactory)
        .start()
        .unwrap();
    let mut c = connect(server.tcp_addr().unwrap());
    c.write_all(b"first").unwrap();
    let mut b = [0u8; 5];
    c.read_exact(&mut b).unwrap();
    let t0 = Instant::now();
    c.write_all(b"second").unwrap();
    let mut b = [0u8; 6];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"second");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "read resumed after only {waited:?}"
    );
    server.shutdown().unwrap();
}

/// Records pause/resume of producing while writing a large burst.
struct Producer {
    events: Arc<Mutex<Vec<&'static str>>>,
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write(&vec![b'p'; 1 << 20]);
    }
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
    fn pause_producing(&mut self, _t: &mut Transport) {
        self.events.lock().unwrap().push("pause");
    }
    fn resume_producing(&mut self, t: &mut Transport) {
        self.events.lock().unwrap().push("resume");
        t.lose_connection();
    }
}

struct ProducerFactory(Arc<Mutex<Vec<&'static str>>>);
impl Factory for ProducerFactory {
    type Protocol = Producer;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Producer> {
        Some(Producer {
            events: Arc::clone(&self.0),
        })
    }
}

#[test]
fn a_burst_past_the_high_watermark_pauses_the_producer_and_draining_resumes_it() {
    require_io_uring();
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&events);
    let server = Server::builder()
        .cores(1)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            ProducerFactory(Arc::clone(&e))
        })
        .start()
        .unwrap();
    let mut c = connect(server.tcp_addr().unwrap());
    std::thread::sleep(Duration::from_millis(100)); // let the socket buffers fill
    assert_eq!(read_to_end(&mut c).len(), 1 << 20);
    server.shutdown().unwrap();
    assert_eq!(*events.lock().unwrap(), vec!["pause", "resume"]);
}
