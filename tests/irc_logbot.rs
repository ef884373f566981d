//! The IRC log bot example against a real IRC server: Debian's `ngircd`, started
//! on a free loopback port with a generated config, and a raw TCP client playing
//! a user. Fails (does not skip) when ngircd is missing: CI installs it.

mod support;
mod support_client;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::complete_lines;
use support_client::example;

const WHISPER_REPLY: &str = "It isn't nice to whisper! Play nice with the group.";

fn ngircd_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join("ngircd");
        if p.exists() {
            return p;
        }
    }
    panic!("ngircd is not installed; these tests need it: apt-get install -y ngircd");
}

/// An ngircd listening on 127.0.0.1 only, killed on drop.
struct Ngircd {
    child: Child,
    port: u16,
    config: PathBuf,
}

impl Ngircd {
    fn start(dir: &Path, port: u16) -> Ngircd {
        Ngircd::start_with(dir, port, "")
    }

    /// Starts with `extra` appended to the configuration (an `[SSL]` section).
    fn start_with(dir: &Path, port: u16, extra: &str) -> Ngircd {
        let config = dir.join("ngircd.conf");
        // No DNS or ident lookups (loopback only, and they would delay every
        // login), a long nick limit for "twistedbot", a PID file in our own
        // directory (ngircd drops root to "nobody", so the write may fail:
        // harmless).
        std::fs::write(
            &config,
            format!(
                "[Global]\nName = irc.weft.test\nInfo = weft test server\n\
                 AdminInfo1 = weft\nAdminInfo2 = tests\nAdminEMail = nobody@invalid\n\
                 Listen = 127.0.0.1\nPorts = {port}\nPidFile = {pid}\nMotdPhrase = weft\n\
                 [Limits]\nMaxNickLength = 30\nConnectRetry = 5\n\
                 [Options]\nDNS = no\nIdent = no\nPAM = no\n{extra}",
                pid = dir.join("ngircd.pid").display()
            ),
        )
        .expect("write ngircd.conf");
        Ngircd::run(config, port)
    }

    fn run(config: PathBuf, port: u16) -> Ngircd {
        let child = Command::new(ngircd_binary())
            .args(["-n", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ngircd");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ngircd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ngircd {
            child,
            port,
            config,
        }
    }

    fn restart(mut self) -> Ngircd {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (config, port) = (self.config.clone(), self.port);
        std::mem::forget(self);
        Ngircd::run(config, port)
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bot, killed on drop.
struct Bot(Child);

impl Bot {
    fn start(port: u16, log: &Path, nick: Option<&str>) -> Bot {
        Bot::start_on(
            &format!("tcp:host=127.0.0.1:port={port}:timeout=5"),
            log,
            nick,
        )
    }

    /// Starts with an explicit `--server` endpoint (`tls:` included).
    fn start_on(server: &str, log: &Path, nick: Option<&str>) -> Bot {
        let mut cmd = Command::new(example("irc_logbot"));
        cmd.args(["--server", server])
            .args(["--channel", "#weft", "--log"])
            .arg(log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = nick {
            cmd.args(["--nick", n]);
        }
        Bot(cmd.spawn().expect("start irc_logbot"))
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A raw IRC user.
struct User {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl User {
    fn connect(port: u16, nick: &str) -> User {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("user connects");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut u = User {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        };
        u.send(&format!("NICK {nick}"));
        u.send(&format!("USER {nick} 0 * :{nick}"));
        u.expect(" 001 ", Duration::from_secs(10));
        u
    }

    fn send(&mut self, line: &str) {
        self.out
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    /// Reads lines (answering PINGs) until one contains `needle`.
    fn expect(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        let mut line = String::new();
        loop {
            assert!(
                start.elapsed() < limit,
                "no line with {needle:?} within {limit:?}"
            );
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => panic!("the server closed the user's connection"),
                Ok(_) => {
                    if let Some(token) = line.strip_prefix("PING ") {
                        let reply = format!("PONG {}", token.trim_end());
                        self.send(&reply);
                    }
                    if line.contains(needle) {
                        return line.trim_end().to_string();
                    }
                }
                Err(_) => {} // read timeout: try again
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // ngircd runs as "nobody" once it dropped root; let it write its PID file.
    let _ = std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    d
}

/// Waits until the log has `n` lines containing `needle`; returns the log.
fn wait_log(log: &Path, needle: &str, n: usize, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        // The bot may be appending as we read: only whole lines count.
        let read = std::fs::read_to_string(log).unwrap_or_default();
        let text = complete_lines(&read);
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return text.to_string();
        }
        assert!(
            start.elapsed() < limit,
            "the log never had {n} line(s) with {needle:?} within {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_stamped(log: &str) {
    for line in log.lines() {
        let b = line.as_bytes();
        assert!(
            b.len() > 11
                && b[0] == b'['
                && b[3] == b':'
                && b[6] == b':'
                && b[9] == b']'
                && b[10] == b' ',
            "not stamped [HH:MM:SS]: {line:?}"
        );
    }
}

#[test]
fn the_log_bot_joins_logs_answers_and_rejoins_after_a_server_restart() {
    let dir = temp_dir("irc-logbot");
    let port = free_port();
    let server = Ngircd::start(&dir, port);
    let log = dir.join("bot.log");
    let _bot = Bot::start(port, &log, None);
    wait_log(&log, "[I have joined #weft]", 1, Duration::from_secs(15));

    let mut alice = User::connect(port, "alice");
    alice.send("JOIN #weft");
    alice.expect("JOIN", Duration::from_secs(5));
    alice.send("PRIVMSG #weft :hello there");
    alice.send("PRIVMSG #weft :\u{1}ACTION waves\u{1}");
    alice.send("PRIVMSG #weft :twistedbot: who are you?");
    let reply = alice.expect("I am a log bot", Duration::from_secs(5));
    assert!(
        reply.starts_with(":twistedbot!")
            && reply.ends_with("PRIVMSG #weft :alice: I am a log bot"),
        "{reply}"
    );
    alice.send("PRIVMSG twistedbot :psst");
    let whisper = alice.expect(WHISPER_REPLY, Duration::from_secs(5));
    assert!(
        whisper.ends_with(&format!("PRIVMSG alice :{WHISPER_REPLY}")),
        "{whisper}"
    );
    alice.send("NICK alicia");
    let text = wait_log(
        &log,
        "alice is now known as alicia",
        1,
        Duration::from_secs(5),
    );
    for want in [
        "] [connected]",
        "] [alice has joined #weft]",
        "] <alice> hello there",
        "] * alice waves",
        "] <alice> twistedbot: who are you?",
        "] <twistedbot> alice: I am a log bot",
        "] <alice> psst",
    ] {
        assert!(text.contains(want), "log lacks {want:?}:\n{text}");
    }
    assert_stamped(&text);
    drop(alice);

    // The server goes away and comes back on the same port: the bot logs the
    // disconnect, reconnects (with back-off) and joins again.
    let server = server.restart();
    wait_log(&log, "] [disconnected]", 1, Duration::from_secs(10));
    wait_log(&log, "[I have joined #weft]", 2, Duration::from_secs(20));
    let mut bob = User::connect(port, "bob");
    bob.send("JOIN #weft");
    bob.expect("JOIN", Duration::from_secs(5));
    bob.send("PRIVMSG #weft :after the restart");
    let text = wait_log(&log, "<bob> after the restart", 1, Duration::from_secs(5));
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with("] [connected]"))
            .count(),
        2,
        "{text}"
    );
    assert_stamped(&text);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_log_bot_appends_a_caret_when_its_nick_is_taken() {
    let dir = temp_dir("irc-collide");
    let port = free_port();
    let _server = Ngircd::start(&dir, port);
    let mut squatter = User::connect(port, "logger");
    squatter.send("JOIN #weft");
    squatter.expect("JOIN", Duration::from_secs(5));
    let log = dir.join("bot.log");
    let _bot = Bot::start(port, &log, Some("logger"));
    squatter.expect(":logger^!", Duration::from_secs(15));
    squatter.send("PRIVMSG #weft :logger^: hello");
    let reply = squatter.expect("I am a log bot", Duration::from_secs(5));
    assert!(
        reply.starts_with(":logger^!") && reply.ends_with(":logger: I am a log bot"),
        "{reply}"
    );
    wait_log(
        &log,
        "<logger^> logger: I am a log bot",
        1,
        Duration::from_secs(5),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[path = "../src/tls/test_pki.rs"]
mod test_pki;

#[test]
fn the_log_bot_connects_over_tls_to_ngircds_tls_port() {
    let dir = temp_dir("irc-logbot-tls");
    let pki = test_pki::TestPki::new("irc");
    // ngircd (GnuTLS) reads its key and certificate from the one PEM file.
    let pem = pki.issue("ngircd.pem", &["127.0.0.1"]);
    let port = free_port();
    // Two numbers the kernel handed out one after the other can be the same one.
    let tls_port = std::iter::repeat_with(free_port)
        .find(|&p| p != port)
        .unwrap();
    let _server = Ngircd::start_with(
        &dir,
        port,
        &format!(
            "[SSL]\nCertFile = {pem}\nKeyFile = {pem}\nPorts = {tls_port}\n",
            pem = pem.display()
        ),
    );
    let log = dir.join("bot.log");
    let _bot = Bot::start_on(
        &format!(
            "tls:host=127.0.0.1:port={tls_port}:timeout=5:trustRoots={}",
            pki.ca().display()
        ),
        &log,
        None,
    );
    wait_log(&log, "[I have joined #weft]", 1, Duration::from_secs(15));
    let mut alice = User::connect(port, "alice");
    alice.send("JOIN #weft");
    alice.expect("JOIN", Duration::from_secs(5));
    alice.send("PRIVMSG #weft :hello over tls");
    let text = wait_log(&log, "<alice> hello over tls", 1, Duration::from_secs(10));
    assert_stamped(&text);
}
