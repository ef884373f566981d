//! The log bot's protocol (examples/irc_logbot/irc.rs) on a StringTransport: no
//! sockets, fixed clock.

#[path = "../examples/irc_logbot/irc.rs"]
mod irc;

use std::cell::RefCell;
use std::rc::Rc;

use irc::{LogBot, Logger, Message, WHISPER_REPLY};
use weft::testing::{feed_chunked, StringTransport};
use weft::{Protocol, Reason};

fn bot() -> (LogBot, StringTransport, Rc<RefCell<Vec<u8>>>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let logger = Logger::new(log.clone(), Rc::new(|| "12:34:56".to_string()));
    let mut t = StringTransport::new();
    let mut b = LogBot::new("twistedbot", "#weft", logger);
    b.connection_made(&mut t);
    (b, t, log)
}

fn text(log: &Rc<RefCell<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&log.borrow()).into_owned()
}

#[test]
fn parse_prefix_command_params_and_trailing() {
    assert_eq!(
        Message::parse(":alice!a@h PRIVMSG #weft :hello there"),
        Some(Message {
            prefix: Some("alice!a@h".into()),
            command: "PRIVMSG".into(),
            params: vec!["#weft".into(), "hello there".into()],
        })
    );
    let m = Message::parse("PING :irc.test").unwrap();
    assert_eq!(
        (m.prefix, m.command.as_str(), m.params),
        (None, "PING", vec!["irc.test".to_string()])
    );
    let m = Message::parse(":srv 433 * twistedbot :Nickname already in use").unwrap();
    assert_eq!(m.params, ["*", "twistedbot", "Nickname already in use"]);
    assert_eq!(Message::parse(":a!b@c join #x").unwrap().command, "JOIN");
    assert_eq!(Message::parse(":a!b@c NICK new").unwrap().nick(), "a");
    assert_eq!(Message::parse(""), None);
    assert_eq!(Message::parse(":onlyprefix"), None);
}

#[test]
fn registers_with_nick_then_user_and_logs_the_connection() {
    let (_b, t, log) = bot();
    assert_eq!(
        t.text(),
        "NICK twistedbot\r\nUSER twistedbot foo bar :None\r\n"
    );
    assert_eq!(text(&log), "[12:34:56] [connected]\n");
}

#[test]
fn joins_the_channel_on_welcome_and_logs_the_join() {
    let (mut b, mut t, log) = bot();
    t.clear();
    b.data_received(b":irc.test 001 twistedbot :Welcome\r\n", &mut t);
    assert_eq!(t.text(), "JOIN #weft\r\n");
    b.data_received(b":twistedbot!~t@127.0.0.1 JOIN :#weft\r\n", &mut t);
    b.data_received(b":alice!~a@127.0.0.1 JOIN #weft\r\n", &mut t);
    assert_eq!(
        text(&log).lines().skip(1).collect::<Vec<_>>(),
        [
            "[12:34:56] [I have joined #weft]",
            "[12:34:56] [alice has joined #weft]"
        ]
    );
}

#[test]
fn answers_ping_with_pong_in_any_chunking() {
    let input = b"PING :irc.test\r\n";
    for size in 1..=input.len() {
        let (mut b, mut t, _) = bot();
        t.clear();
        feed_chunked(&mut b, &mut t, input, size);
        assert_eq!(t.text(), "PONG :irc.test\r\n", "chunks of {size}");
    }
}

#[test]
fn logs_channel_messages_actions_and_nick_changes() {
    let (mut b, mut t, log) = bot();
    t.clear();
    b.data_received(
        b":alice!a@h PRIVMSG #weft :hello there\r\n\
          :alice!a@h PRIVMSG #weft :\x01ACTION waves\x01\r\n\
          :alice!a@h NICK :alicia\r\n",
        &mut t,
    );
    assert_eq!(t.text(), "", "nothing to answer");
    assert_eq!(
        text(&log).lines().skip(1).collect::<Vec<_>>(),
        [
            "[12:34:56] <alice> hello there",
            "[12:34:56] * alice waves",
            "[12:34:56] alice is now known as alicia",
        ]
    );
}

#[test]
fn a_whisper_gets_told_off() {
    let (mut b, mut t, log) = bot();
    t.clear();
    b.data_received(b":alice!a@h PRIVMSG twistedbot :psst\r\n", &mut t);
    assert_eq!(t.text(), format!("PRIVMSG alice :{WHISPER_REPLY}\r\n"));
    assert!(text(&log).contains("<alice> psst"));
}

#[test]
fn a_mention_gets_an_answer_in_the_channel_and_is_logged() {
    let (mut b, mut t, log) = bot();
    t.clear();
    b.data_received(
        b":alice!a@h PRIVMSG #weft :twistedbot: who are you?\r\n",
        &mut t,
    );
    assert_eq!(t.text(), "PRIVMSG #weft :alice: I am a log bot\r\n");
    assert!(text(&log).ends_with("[12:34:56] <twistedbot> alice: I am a log bot\n"));
    t.clear();
    b.data_received(b":alice!a@h PRIVMSG #weft :twistedbotty: no\r\n", &mut t);
    assert_eq!(t.text(), "", "only `<nick>:` is a mention");
}

#[test]
fn a_nick_collision_appends_a_caret_each_time() {
    let (mut b, mut t, _) = bot();
    t.clear();
    b.data_received(
        b":srv 433 * twistedbot :Nickname already in use\r\n",
        &mut t,
    );
    b.data_received(
        b":srv 433 * twistedbot^ :Nickname already in use\r\n",
        &mut t,
    );
    assert_eq!(t.text(), "NICK twistedbot^\r\nNICK twistedbot^^\r\n");
    assert_eq!(b.nick(), "twistedbot^^");
    t.clear();
    b.data_received(b":alice!a@h PRIVMSG #weft :twistedbot^^: hi\r\n", &mut t);
    assert_eq!(t.text(), "PRIVMSG #weft :alice: I am a log bot\r\n");
}

#[test]
fn the_disconnect_is_logged() {
    let (mut b, _t, log) = bot();
    b.connection_lost(Reason::ConnectionDone);
    assert!(text(&log).ends_with("[12:34:56] [disconnected]\n"));
}

#[test]
fn an_endless_line_ends_the_connection() {
    let (mut b, mut t, _) = bot();
    b.data_received(&vec![b'x'; irc::MAX_LINE + 1], &mut t);
    assert!(t.disconnecting());
}

#[test]
fn the_real_clock_reads_hh_mm_ss() {
    let now = irc::utc_clock();
    let parts: Vec<u32> = now.split(':').map(|p| p.parse().unwrap()).collect();
    assert_eq!(now.len(), 8, "{now}");
    assert!(parts[0] < 24 && parts[1] < 60 && parts[2] < 60, "{now}");
}
