//! Helpers for the metrics tests: a tiny HTTP/1.0 client, reading a series out of
//! a Prometheus text page, and `promtool check metrics` on a page.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GETs `path` from `addr` over HTTP/1.0 (so the server sends no chunked body) and
/// returns the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, body.to_string()))
}

/// Fetches weft's `/metrics` page and checks it is a 200.
pub fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("scrape");
    assert!(status.contains(" 200 "), "{status}: {body}");
    body
}

/// Every sample of `name` on `page`: its labels (the text in braces) and value.
pub fn samples<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `name` on `page`.
pub fn sum(page: &str, name: &str) -> f64 {
    samples(page, name).iter().map(|(_, v)| v).sum()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`
/// with the last thing `describe` says.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?}; last: {last}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Runs `promtool check metrics` (Debian's `prometheus` package) on `page` and
/// panics with what it said unless it accepts the page without a word: its linter
/// exits 1 for a problem and prints it.
pub fn assert_promtool_accepts(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; bash .ci/test installs it)");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(page.as_bytes())
        .expect("promtool reads the page");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\npage:\n{page}");
    assert!(said.trim().is_empty(), "promtool complained: {said}");
}
