//! `weft run FILE.toml`: several services in one process, SIGHUP re-reading the file
//! without dropping a connection, SIGUSR1 reopening a moved log file.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{complete_lines, connect, read_to_end, round_trip, WeftProcess, IO_TIMEOUT};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits up to 20 s until the file at `path` has a complete line containing `needle`.
fn wait_for_file_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if complete_lines(&text).contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in {path:?}: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_two_service_config_answers_echo_on_tcp_and_finger_on_unix() {
    let dir = temp_dir("two");
    let users = dir.join("users");
    std::fs::write(&users, "moshez:Happy and well\n").unwrap();
    let sock = dir.join("finger.sock");
    let config = dir.join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "cores = 2\n\n[[service]]\nkind = \"echo\"\nlisten = [\"tcp:0:interface=127.0.0.1\"]\n\n\
             [[service]]\nkind = \"finger\"\nlisten = [\"unix:{}\"]\nusers = \"{}\"\n",
            sock.display(),
            users.display()
        ),
    )
    .unwrap();
    let mut p = WeftProcess::start(&["run", config.to_str().unwrap()]);
    assert!(
        p.wait_for_log("listening on unix:", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    assert!(
        p.log.iter().any(|l| l.ends_with("(2 shards)")),
        "{:?}",
        p.log
    );
    let mut c = connect(p.tcp_addr());
    assert_eq!(round_trip(&mut c, b"hello\r\n"), b"hello\r\n");
    let mut f = UnixStream::connect(&sock).unwrap();
    f.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    f.write_all(b"moshez\r\n").unwrap();
    let mut answer = Vec::new();
    f.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"Happy and well\r\n");
    drop(c);
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
}

#[test]
fn sighup_raises_a_limit_without_dropping_the_open_connection() {
    let dir = temp_dir("hup");
    let config = dir.join("weft.toml");
    let write_config = |max: usize| {
        std::fs::write(
            &config,
            format!(
                "cores = 2\nmax_connections = {max}\n\n[[service]]\nkind = \"echo\"\n\
                 listen = [\"tcp:0:interface=127.0.0.1\"]\n"
            ),
        )
        .unwrap();
    };
    write_config(1);
    let mut p = WeftProcess::start(&["run", config.to_str().unwrap()]);
    let addr = p.tcp_addr();
    let mut first = connect(addr);
    assert_eq!(round_trip(&mut first, b"one"), b"one");
    let mut refused = connect(addr);
    assert_eq!(
        read_to_end(&mut refused),
        b"Too many connections, try later\r\n"
    );

    write_config(3);
    p.signal("HUP");
    assert!(
        p.wait_for_log("reloaded", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    assert_eq!(round_trip(&mut first, b"still here"), b"still here");
    let mut second = connect(addr);
    assert_eq!(round_trip(&mut second, b"two"), b"two");

    // A broken file is reported and changes nothing.
    std::fs::write(&config, "max_connections = = 1\n").unwrap();
    p.signal("HUP");
    assert!(
        p.wait_for_log("reload failed", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    let mut third = connect(addr);
    assert_eq!(round_trip(&mut third, b"three"), b"three");
    drop((first, second, third));
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
}

#[test]
fn sigusr1_after_the_log_file_was_moved_writes_to_a_new_file() {
    let dir = temp_dir("usr1");
    let log = dir.join("weft.log");
    let mut p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--log-file",
        log.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    // SIGHUP does not end `weft serve`: there is just nothing to re-read.
    p.signal("HUP");
    wait_for_file_line(&log, "nothing to reload");
    p.signal("USR1");
    wait_for_file_line(&log, "Received SIGUSR1");
    let moved = dir.join("weft.log.1");
    std::fs::rename(&log, &moved).unwrap();
    p.signal("USR1");
    let text = wait_for_file_line(&log, "Received SIGUSR1");
    for line in complete_lines(&text).lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "JSON lines: {line}"
        );
        assert!(line.contains("\"level\":\"INFO\""), "{line}");
    }
    let old = std::fs::read_to_string(&moved).unwrap();
    assert_eq!(old.matches("Received SIGUSR1").count(), 1, "{old}");
    p.drain_log();
    assert!(
        !p.log.iter().any(|l| l.contains("Received")),
        "logs go to the file: {:?}",
        p.log
    );
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
    wait_for_file_line(&log, "Received SIGTERM");
}

#[test]
fn sighup_changes_the_log_level() {
    let dir = temp_dir("level");
    let config = dir.join("weft.toml");
    let write_config = |level: &str| {
        std::fs::write(
            &config,
            format!(
                "log_level = \"{level}\"\n\n[[service]]\nkind = \"echo\"\n\
                 listen = [\"tcp:0:interface=127.0.0.1\"]\n"
            ),
        )
        .unwrap();
    };
    write_config("warn");
    // RUST_LOG would win over the file's level.
    let mut p = WeftProcess::start_with("unset RUST_LOG;", &["run", config.to_str().unwrap()]);
    write_config("info");
    p.signal("HUP");
    // "Received SIGHUP" is logged at info before the reload, under warn: not shown;
    // "reloaded" is logged after it, under info.
    assert!(
        p.wait_for_log("reloaded", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    assert!(
        !p.log.iter().any(|l| l.contains("Received SIGHUP")),
        "{:?}",
        p.log
    );
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    assert!(
        log.iter().any(|l| l.contains("Received SIGTERM")),
        "{log:?}"
    );
}

#[test]
fn the_command_line_wins_over_the_environment_which_wins_over_the_file() {
    if weft::Server::builder().shard_count() < 2 {
        eprintln!("skipped: needs 2 cores");
        return;
    }
    let dir = temp_dir("precedence");
    let config = dir.join("weft.toml");
    std::fs::write(
        &config,
        "cores = 1\n\n[[service]]\nkind = \"echo\"\nlisten = [\"tcp:0:interface=127.0.0.1\"]\n",
    )
    .unwrap();
    let file = config.to_str().unwrap();
    let shards = |prefix: &str, extra: &[&str]| {
        let mut args = vec!["run", file];
        args.extend_from_slice(extra);
        let p = WeftProcess::start_with(prefix, &args);
        let line = p
            .log
            .iter()
            .find(|l| l.starts_with("listening on "))
            .unwrap()
            .clone();
        let (code, _) = p.terminate();
        assert_eq!(code, 0);
        line
    };
    assert!(shards("", &[]).ends_with("(1 shards)"), "the file");
    assert!(
        shards("WEFT_CORES=2", &[]).ends_with("(2 shards)"),
        "the environment over the file"
    );
    assert!(
        shards("WEFT_CORES=2", &["--cores", "1"]).ends_with("(1 shards)"),
        "the command line over the environment"
    );
}

#[test]
fn connection_events_are_logged_at_debug_with_the_shard_and_the_peer() {
    let mut p = WeftProcess::start_with(
        "RUST_LOG=weft=debug",
        &["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "1"],
    );
    let mut c = connect(p.tcp_addr());
    assert_eq!(round_trip(&mut c, b"hello"), b"hello");
    let local = c.local_addr().unwrap().to_string();
    drop(c);
    assert!(
        p.wait_for_log("connection lost", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    let about_it: Vec<&String> = p.log.iter().filter(|l| l.contains(&local)).collect();
    for needle in ["connection made", "connection lost"] {
        let line = about_it
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line naming {local}: {:?}", p.log));
        assert!(line.contains("DEBUG") && line.contains("shard=0"), "{line}");
    }
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
}
