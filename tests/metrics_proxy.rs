//! The PROXY-protocol counters on the metrics page: `weft serve echo
//! haproxy:tcp:… --metrics …` on 2 shards, a real HAProxy (`send-proxy-v2`) in
//! front, and strangers sending junk, a bad v2 length and a v2 header over the cap
//! straight to weft. The page must count each by reason, list both shards, and
//! pass `promtool check metrics`.

mod support;
mod support_metrics;
mod support_scale;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use support::WeftProcess;
use support_metrics::{assert_promtool_accepts, samples, scrape, sum, wait_for};
use support_scale::{connect_from, haproxy, SendProxy};

const ACCEPTED: &str = "weft_proxy_headers_accepted_total";
const REJECTED: &str = "weft_proxy_headers_rejected_total";

/// The sum of `REJECTED` samples with `reason="why"`.
fn rejected(page: &str, why: &str) -> f64 {
    let want = format!("reason=\"{why}\"");
    samples(page, REJECTED)
        .iter()
        .filter(|(labels, _)| labels.contains(&want))
        .map(|(_, v)| v)
        .sum()
}

fn metrics_addr(weft: &mut WeftProcess) -> SocketAddr {
    assert!(
        weft.wait_for_log("metrics on http://127.0.0.1:", Duration::from_secs(20)),
        "{:?}",
        weft.log
    );
    let line = weft
        .log
        .iter()
        .find(|l| l.starts_with("metrics on "))
        .unwrap();
    line.strip_prefix("metrics on http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap()
}

/// Sends `bytes` straight to weft and waits for it to close the connection.
fn stranger(to: SocketAddr, bytes: &[u8]) {
    let mut s = support::connect(to);
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    // Closed with a reset: an error or EOF, never an echo.
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

#[test]
fn proxy_headers_are_counted_per_shard_and_by_reason_on_the_metrics_page() {
    let mut weft = WeftProcess::start(&[
        "serve",
        "echo",
        "haproxy:tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
    ]);
    let metrics = metrics_addr(&mut weft);
    let backend = weft.tcp_addr();

    // Before any connection: both shards listed, every reason at zero.
    let page = scrape(metrics);
    assert_eq!(samples(&page, ACCEPTED).len(), 2, "{page}");
    assert_eq!(samples(&page, REJECTED).len(), 2 * 6, "{page}");
    assert_eq!(sum(&page, ACCEPTED) + sum(&page, REJECTED), 0.0, "{page}");

    let (_lb, port) = haproxy(&[backend], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.2", front);
        s.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping");
    }
    let mut bad_length = weft::haproxy::V2_SIGNATURE.to_vec();
    bad_length.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
    let mut too_long = weft::haproxy::V2_SIGNATURE.to_vec();
    too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    stranger(backend, b"GET / HTTP/1.0\r\n\r\n");
    stranger(backend, b"PING\r\n");
    stranger(backend, &bad_length);
    stranger(backend, &too_long);

    // The counters are written as each connection is decided; wait for the last.
    let page = wait_for(Duration::from_secs(10), "PROXY counters", || {
        let page = scrape(metrics);
        if sum(&page, ACCEPTED) == 3.0 && sum(&page, REJECTED) == 4.0 {
            Ok(page)
        } else {
            Err(page)
        }
    });
    assert_eq!(rejected(&page, "not_proxy"), 2.0, "{page}");
    assert_eq!(rejected(&page, "bad_length"), 1.0, "{page}");
    assert_eq!(rejected(&page, "too_long"), 1.0, "{page}");
    assert_eq!(rejected(&page, "malformed"), 0.0, "{page}");
    assert_eq!(rejected(&page, "timeout"), 0.0, "{page}");
    assert!(
        page.contains(&format!("# TYPE {REJECTED} counter")),
        "{page}"
    );
    for shard in ["0", "1"] {
        let label = format!("shard=\"{shard}\"");
        assert!(
            samples(&page, ACCEPTED).iter().any(|(l, _)| *l == label),
            "{page}"
        );
    }

    assert_promtool_accepts(&page);
    let (code, log) = weft.terminate();
    assert_eq!(code, 0, "{log:?}");
}
