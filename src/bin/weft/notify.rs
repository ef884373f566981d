//! Telling systemd how the server is doing (`Type=notify`), when `NOTIFY_SOCKET` is
//! set: READY=1 once every shard listens, STATUS= with the connection counts,
//! WATCHDOG=1 only while every shard's loop advances, STOPPING=1 at the drain.

use std::sync::Arc;
use std::time::Duration;

use weft::application::systemd::{status_line, Heartbeats, SystemdNotify};
use weft::policies::PolicyStats;
use weft::{ServerBuilder, ServerHandle};

/// How often the status is sent when systemd asks for no watchdog.
const STATUS_PERIOD: Duration = Duration::from_secs(5);

/// The notifier, set up before the server starts.
pub struct Notifier {
    notify: Arc<SystemdNotify>,
    heartbeats: Heartbeats,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// `None` without `NOTIFY_SOCKET`; otherwise adds the shards' heartbeats to the
    /// builder and the STOPPING=1 message to the first stop signal.
    ///
    /// # Errors
    /// A message if the socket cannot be used.
    pub fn setup(
        builder: ServerBuilder,
        shards: usize,
    ) -> Result<(ServerBuilder, Option<Notifier>), String> {
        let notify = match SystemdNotify::from_env() {
            Ok(Some(n)) => Arc::new(n),
            Ok(None) => return Ok((builder, None)),
            Err(e) => return Err(format!("NOTIFY_SOCKET: {e}")),
        };
        let watchdog = SystemdNotify::watchdog_period();
        // Beat four times per check, so one late timer does not withhold a ping.
        let check = watchdog.map_or(STATUS_PERIOD, |w| w / 2);
        let heartbeats = Heartbeats::new(shards, check / 4);
        let builder = heartbeats.install(builder);
        let n = Arc::clone(&notify);
        weft::runtime::on_stopping(move || {
            let _ = n.notify("STOPPING=1");
        });
        Ok((
            builder,
            Some(Notifier {
                notify,
                heartbeats,
                watchdog,
            }),
        ))
    }

    /// Sends READY=1 (every shard listens by now) and starts the status thread;
    /// the status also counts what the connection policies refused.
    pub fn ready(self, server: &ServerHandle, policies: Arc<PolicyStats>) {
        let stats = server.stats().to_vec();
        let status_line = move |stats: &[Arc<weft::ShardStats>]| {
            format!(
                "{}, {} refused by limits, {} idle timeouts",
                status_line(stats),
                policies.refused_total() + policies.refused_peer(),
                policies.timed_out()
            )
        };
        let stop = server.stop_handle();
        if let Err(e) = self
            .notify
            .notify(&format!("READY=1\n{}", status_line(&stats)))
        {
            tracing::warn!("cannot notify systemd: {e}");
        }
        let period = self.watchdog.map_or(STATUS_PERIOD, |w| w / 2);
        let _ = std::thread::Builder::new()
            .name("weft-notify".into())
            .spawn(move || {
                let mut last = Vec::new();
                while !stop.is_stopping() {
                    std::thread::sleep(period);
                    if stop.is_stopping() {
                        break;
                    }
                    let mut msg = status_line(&stats);
                    if self.watchdog.is_some() {
                        let stalled = self.heartbeats.stalled(&mut last);
                        if stalled.is_empty() {
                            msg.push_str("\nWATCHDOG=1");
                        } else {
                            tracing::warn!(
                                ?stalled,
                                "a shard's loop is not advancing: no WATCHDOG=1"
                            );
                        }
                    }
                    let _ = self.notify.notify(&msg);
                }
            });
    }
}
