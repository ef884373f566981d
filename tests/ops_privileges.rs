//! Privilege drop: finger on port 79 (bound as root) answers Debian's `finger`
//! client while every thread of the process runs as nobody:nogroup.

mod support;

use std::process::Command;

use support::WeftProcess;

/// The uid and gid lines of every thread of `pid`.
fn thread_credentials(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push((field("Uid:"), field("Gid:"), field("Groups:")));
    }
    out
}

fn id(flag: &str, name: &str) -> String {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn finger_on_port_79_answers_while_every_thread_runs_as_nobody() {
    if !nix_is_root() {
        eprintln!("skipped: binding port 79 and dropping privileges need root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("weft-priv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, "moshez:Happy and well\n").unwrap();
    let p = WeftProcess::start(&[
        "serve",
        "finger",
        "--users",
        users.to_str().unwrap(),
        "tcp:79:interface=127.0.0.1",
        "--cores",
        "2",
        "--uid",
        "nobody",
        "--gid",
        "nogroup",
    ]);
    let out = Command::new("finger")
        .arg("moshez@127.0.0.1")
        .output()
        .expect("finger (Debian package finger) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Happy and well"), "{text:?}");

    let uid = id("-u", "nobody");
    let gid = Command::new("getent")
        .args(["group", "nogroup"])
        .output()
        .unwrap();
    let gid = String::from_utf8(gid.stdout)
        .unwrap()
        .split(':')
        .nth(2)
        .unwrap()
        .to_string();
    let threads = thread_credentials(p.child.id());
    assert!(
        threads.len() >= 3,
        "main and two shards at least: {threads:?}"
    );
    for (u, g, groups) in &threads {
        assert_eq!(u, &format!("{uid} {uid} {uid} {uid}"), "{threads:?}");
        assert_eq!(g, &format!("{gid} {gid} {gid} {gid}"), "{threads:?}");
        assert_eq!(groups, &gid, "supplementary groups dropped: {threads:?}");
    }
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
}

#[test]
fn a_port_below_1024_without_root_is_one_line_and_exit_2() {
    if !nix_is_root() {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "echo", "tcp:79:interface=127.0.0.1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("permission denied"), "{err}");
        return;
    }
    // As root: run the binary as nobody through setpriv (util-linux).
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo", "tcp:79:interface=127.0.0.1"])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied") && err.contains("below 1024"),
        "{err}"
    );
}

fn nix_is_root() -> bool {
    // The effective uid, from /proc/self/status (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}
