//! The decoders stay sans-IO: no file under `src/protocols/` may mention the executor,
//! the engine, sockets or the clock. Reading the source is crude but catches the
//! dependency before it is compiled in, including in comments that would mislead.

use std::path::{Path, PathBuf};

/// Words that mark a dependency the helper protocols must not have.
const FORBIDDEN: [&str; 4] = ["glommio", "runtime", "std::net", "Instant"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/protocols is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Returns `(line number, word)` for every forbidden word in `source`.
fn violations(source: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        for word in FORBIDDEN {
            if line.contains(word) {
                found.push((i + 1, word));
            }
        }
    }
    found
}

#[test]
fn protocol_sources_mention_no_executor_socket_or_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocols");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() >= 5,
        "expected the decoder files, found {files:?}"
    );
    let mut report = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for (line, word) in violations(&text) {
            report.push(format!("{}:{line}: mentions `{word}`", f.display()));
        }
    }
    assert!(
        report.is_empty(),
        "sans-IO boundary broken:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_checker_flags_each_forbidden_word() {
    assert_eq!(violations("use glommio::Task;"), [(1, "glommio")]);
    assert_eq!(
        violations("ok\nuse crate::runtime::Shard;"),
        [(2, "runtime")]
    );
    assert_eq!(violations("use std::net::TcpStream;"), [(1, "std::net")]);
    assert_eq!(violations("let t = Instant::now();"), [(1, "Instant")]);
    assert!(violations("fn feed(&mut self, data: &[u8]) {}").is_empty());
}
