//! Differential test against Twisted itself.
//!
//! `tests/twisted/run_vectors.py` ran Twisted's receivers over the vectors in
//! `tests/vectors/*.vec`, in every chunking each vector names, and recorded the events
//! in `tests/vectors/expected/*.out`. This test runs weft's receivers with the same
//! scripted handlers over the same vectors and chunkings, renders the events the same
//! way, and requires identical text. It needs no Python.
//!
//! With `WEFT_TWISTED_LIVE=1` it also runs the Python script (Twisted must be
//! installed: `pip install twisted`) and requires the live output to match both
//! weft's and the committed files, so stale expectations are caught too.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weft::protocols::{
    IntNControl, IntNStringHandler, IntNStringReceiver, LineControl, LineHandler, LineOnlyControl,
    LineOnlyHandler, LineOnlyReceiver, LineReceiver, NetstringControl, NetstringError,
    NetstringHandler, NetstringReceiver,
};
use weft::testing::StringTransport;
use weft::{Protocol, Transport};

// ---- the vector format (same rules as run_vectors.py) ----

fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b[i + 1] {
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                    continue;
                }
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b's' => out.push(b' '),
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn fnv64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn escape(data: &[u8]) -> String {
    if data.len() > 64 {
        return format!("#{}:{:016x}", data.len(), fnv64(data));
    }
    let mut s = String::new();
    for &b in data {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x21..=0x7e => s.push(b as char),
            _ => write!(s, "\\x{b:02x}").unwrap(),
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Vector {
    name: String,
    receiver: String,
    input: Vec<u8>,
    chunks: Vec<String>,
    max: Option<usize>,
    delimiter: Option<Vec<u8>>,
    keep_exceeded: bool,
}

fn parse(path: &Path) -> Vec<Vector> {
    let text = std::fs::read_to_string(path).expect("vector file");
    let mut out = Vec::new();
    let mut cur: Option<Vector> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        if key == "vector" {
            cur = Some(Vector {
                name: rest.to_string(),
                receiver: String::new(),
                input: Vec::new(),
                chunks: vec!["whole".into()],
                max: None,
                delimiter: None,
                keep_exceeded: false,
            });
            continue;
        }
        if key == "end" {
            out.push(cur.take().expect("vector before end"));
            continue;
        }
        let v = cur.as_mut().expect("a key inside a vector");
        match key {
            "receiver" => v.receiver = rest.to_string(),
            "max" => v.max = Some(rest.parse().unwrap()),
            "delimiter" => v.delimiter = Some(unescape(rest)),
            "exceeded" => v.keep_exceeded = rest == "keep",
            "chunks" => v.chunks = rest.split_whitespace().map(String::from).collect(),
            "input" => v.input.extend(unescape(rest)),
            "repeat" => {
                let (n, text) = rest.split_once(' ').unwrap();
                v.input.extend(unescape(text).repeat(n.parse().unwrap()));
            }
            other => panic!("{}: unknown key {other:?}", path.display()),
        }
    }
    out
}

fn chunkings(spec: &[String], data: &[u8]) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for item in spec {
        match item.as_str() {
            "whole" => out.push(("whole".to_string(), vec![data.to_vec()])),
            "splits" => {
                for i in 0..=data.len() {
                    out.push((
                        format!("split@{i}"),
                        vec![data[..i].to_vec(), data[i..].to_vec()],
                    ))
                }
            }
            n => {
                let n: usize = n.parse().unwrap();
                let mut chunks: Vec<Vec<u8>> = data.chunks(n).map(<[u8]>::to_vec).collect();
                if chunks.is_empty() {
                    chunks.push(Vec::new());
                }
                out.push((format!("by{n}"), chunks));
            }
        }
    }
    out
}

// ---- scripted handlers (same behaviour as the Python classes) ----

/// Events in rendering order, plus whether `lose` was recorded yet.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    lost: bool,
}

impl Log {
    fn push(&mut self, e: String) {
        self.events.push(e);
    }
    /// Records `lose` the first time the transport is seen disconnecting; called at
    /// the end of every callback, where Twisted's transport recorded the call itself.
    fn check(&mut self, t: &Transport) {
        if t.disconnecting() && !self.lost {
            self.lost = true;
            self.events.push("lose".into());
        }
    }
}

struct ScriptedLine {
    log: Log,
    remaining: usize,
    keep_exceeded: bool,
}

impl LineHandler for ScriptedLine {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.log.push(format!("line {}", escape(line)));
        if let Some(n) = line.strip_prefix(b"raw ") {
            self.remaining = std::str::from_utf8(n).unwrap().parse().unwrap();
            t.set_raw_mode();
        } else if line == b"pause" {
            t.pause_producing();
        } else if line == b"quit" {
            t.lose_connection();
        } else if line == b"stop" {
            t.stop_producing();
        } else if line == b"clear" {
            let rest = t.clear_line_buffer();
            self.log.push(format!("cleared {}", escape(rest)));
        }
        self.log.check(t);
    }

    fn raw_data_received(&mut self, data: &[u8], t: &mut LineControl<'_>) {
        self.log.push(format!("raw {}", escape(data)));
        let take = self.remaining.min(data.len());
        self.remaining -= take;
        if self.remaining == 0 {
            t.set_line_mode(&data[take..]);
        }
        self.log.check(t);
    }

    fn line_length_exceeded(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.log.push(format!("exceeded {}", escape(line)));
        if !self.keep_exceeded {
            t.lose_connection();
        }
        self.log.check(t);
    }
}

struct ScriptedLineOnly {
    log: Log,
}

impl LineOnlyHandler for ScriptedLineOnly {
    fn line_received(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>) {
        self.log.push(format!("line {}", escape(line)));
        if line == b"quit" {
            t.lose_connection();
        }
        self.log.check(t);
    }

    fn line_length_exceeded(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>) {
        self.log.push(format!("exceeded {}", escape(line)));
        t.lose_connection();
        self.log.check(t);
    }
}

struct ScriptedNetstring {
    log: Log,
}

impl NetstringHandler for ScriptedNetstring {
    fn string_received(&mut self, s: &[u8], t: &mut NetstringControl<'_>) {
        self.log.push(format!("string {}", escape(s)));
        if s == b"quit" {
            t.lose_connection();
        }
        self.log.check(t);
    }

    fn parse_error(&mut self, _: NetstringError, t: &mut NetstringControl<'_>) {
        // Twisted has no callback here: it only closes, which the log records.
        t.lose_connection();
        self.log.check(t);
    }
}

struct ScriptedInt {
    log: Log,
}

impl<const N: usize> IntNStringHandler<N> for ScriptedInt {
    fn string_received(&mut self, s: &[u8], t: &mut IntNControl<'_, N>) {
        self.log.push(format!("string {}", escape(s)));
        if s == b"pause" {
            t.pause_producing();
        } else if s == b"quit" {
            t.lose_connection();
        }
        self.log.check(t);
    }

    fn length_limit_exceeded(&mut self, length: usize, t: &mut IntNControl<'_, N>) {
        self.log.push(format!("limit {length}"));
        t.lose_connection();
        self.log.check(t);
    }
}

// ---- the harness loop (same as run() in the Python script) ----

/// A receiver under test: the protocol, whether it is paused, and its log.
trait Driven: Protocol {
    fn paused(&self) -> bool;
    fn log(&mut self) -> &mut Log;
}

impl Driven for LineReceiver<ScriptedLine> {
    fn paused(&self) -> bool {
        self.is_paused()
    }
    fn log(&mut self) -> &mut Log {
        &mut self.handler_mut().log
    }
}

impl Driven for LineOnlyReceiver<ScriptedLineOnly> {
    fn paused(&self) -> bool {
        false
    }
    fn log(&mut self) -> &mut Log {
        &mut self.handler_mut().log
    }
}

impl Driven for NetstringReceiver<ScriptedNetstring> {
    fn paused(&self) -> bool {
        false
    }
    fn log(&mut self) -> &mut Log {
        &mut self.handler_mut().log
    }
}

impl<const N: usize> Driven for IntNStringReceiver<ScriptedInt, N> {
    fn paused(&self) -> bool {
        self.is_paused()
    }
    fn log(&mut self) -> &mut Log {
        &mut self.handler_mut().log
    }
}

fn drive<P: Driven>(mut p: P, chunks: &[Vec<u8>]) -> Vec<String> {
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    for c in chunks {
        // The engine stops reading at lose_connection, as Twisted's TCP transport does.
        if t.disconnecting() {
            break;
        }
        p.data_received(c, &mut t);
        while p.paused() && !t.disconnecting() {
            p.log().push("resume".into());
            p.resume_producing(&mut t);
        }
    }
    std::mem::take(&mut p.log().events)
}

fn run(v: &Vector, chunks: &[Vec<u8>]) -> Vec<String> {
    let delimiter = v.delimiter.as_deref().unwrap_or(b"\r\n");
    let line_max = v.max.unwrap_or(16_384);
    let string_max = v.max.unwrap_or(99_999);
    match v.receiver.as_str() {
        "line" => {
            let h = ScriptedLine {
                log: Log::default(),
                remaining: 0,
                keep_exceeded: v.keep_exceeded,
            };
            drive(LineReceiver::with_limits(h, delimiter, line_max), chunks)
        }
        "line_only" => {
            let h = ScriptedLineOnly {
                log: Log::default(),
            };
            drive(
                LineOnlyReceiver::with_limits(h, delimiter, line_max),
                chunks,
            )
        }
        "netstring" => {
            let h = ScriptedNetstring {
                log: Log::default(),
            };
            drive(NetstringReceiver::with_max_length(h, string_max), chunks)
        }
        "int8" => drive(int_receiver::<1>(string_max), chunks),
        "int16" => drive(int_receiver::<2>(string_max), chunks),
        "int32" => drive(int_receiver::<4>(string_max), chunks),
        other => panic!("unknown receiver {other:?}"),
    }
}

fn int_receiver<const N: usize>(max: usize) -> IntNStringReceiver<ScriptedInt, N> {
    IntNStringReceiver::with_max_length(
        ScriptedInt {
            log: Log::default(),
        },
        max,
    )
}

fn render(path: &Path) -> String {
    let mut out = String::new();
    for v in parse(path) {
        writeln!(out, "vector {}", v.name).unwrap();
        let mut groups: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for (label, chunks) in chunkings(&v.chunks, &v.input) {
            let events = run(&v, &chunks);
            match groups.iter_mut().find(|g| g.0 == events) {
                Some(g) => g.1.push(label),
                None => groups.push((events, vec![label])),
            }
        }
        for (events, labels) in groups {
            writeln!(out, "chunkings {}", labels.join(" ")).unwrap();
            for e in events {
                writeln!(out, "{e}").unwrap();
            }
        }
    }
    out
}

// ---- the tests ----

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/vectors")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vec"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "vector files missing: {files:?}");
    files
}

fn expected_path(vec_file: &Path) -> PathBuf {
    let stem = vec_file.file_stem().unwrap();
    vec_file
        .parent()
        .unwrap()
        .join("expected")
        .join(stem)
        .with_extension("out")
}

/// Panics with the first differing line if `got` and `want` differ.
fn assert_same(what: &str, got: &str, want: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let i = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    let vector = w[..i.min(w.len())]
        .iter()
        .rev()
        .find(|l| l.starts_with("vector "))
        .unwrap_or(&"?");
    let context = |v: &[&str]| v[i.saturating_sub(3)..(i + 3).min(v.len())].join("\n");
    panic!(
        "{what}: differs at line {} ({vector})\n--- weft:\n{}\n--- expected:\n{}",
        i + 1,
        context(&g),
        context(&w)
    );
}

#[test]
fn weft_receivers_match_twisteds_recorded_events() {
    for f in vector_files() {
        let want = std::fs::read_to_string(expected_path(&f)).expect("expected file");
        assert_same(&f.display().to_string(), &render(&f), &want);
    }
}

#[test]
fn weft_receivers_match_twisted_run_live_when_asked() {
    if std::env::var_os("WEFT_TWISTED_LIVE").is_none_or(|v| v != "1") {
        eprintln!("skipped: set WEFT_TWISTED_LIVE=1 (needs python3 with twisted)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in vector_files() {
        let out = std::process::Command::new("python3")
            .arg(root.join("tests/twisted/run_vectors.py"))
            .arg(&f)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "run_vectors.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let live = String::from_utf8(out.stdout).expect("utf-8");
        let committed = std::fs::read_to_string(expected_path(&f)).expect("expected file");
        assert_same(
            &format!("{} (live Twisted)", f.display()),
            &render(&f),
            &live,
        );
        assert_same(
            &format!(
                "{} (committed vs live: regenerate with --write)",
                f.display()
            ),
            &committed,
            &live,
        );
    }
}

#[test]
fn the_comparison_notices_a_changed_event() {
    let f = &vector_files()[0];
    let want = std::fs::read_to_string(expected_path(f)).unwrap();
    // The third line is the first event of the first vector.
    let mut lines: Vec<String> = want.lines().map(String::from).collect();
    lines[2].push('X');
    let tampered = lines.join("\n") + "\n";
    let r = std::panic::catch_unwind(|| assert_same("tampered", &render(f), &tampered));
    assert!(r.is_err(), "a changed event must fail the comparison");
}
