//! `weft`: serve the built-in services on every core, one at a time (`weft serve`)
//! or several from a config file (`weft run`).
//!
//! ```text
//! weft serve SERVICE [ENDPOINT ...] [options]     weft run FILE.toml [options]
//! weft check-config FILE    weft print-config    weft completions SHELL
//! ```
//! When every shard listens, one line per endpoint goes to stderr:
//! `listening on tcp:127.0.0.1:PORT (N shards)`, and with `--metrics` one more,
//! `metrics on http://127.0.0.1:PORT/metrics`. SIGINT or SIGTERM stops gracefully
//! and prints one summary line per shard; a second one stops at once. SIGHUP
//! re-reads the config file of `weft run`; SIGUSR1 reopens `--log-file`. Exit
//! codes: see `weft --help`.

mod catalog;
mod cli;
mod config;
mod logging;
mod notify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use weft::application::{AppError, Application, Credentials};
use weft::{Server, ServerError};

use catalog::{Policies, ServiceSpec};
use cli::{Cli, Command, SharedArgs};
use logging::say;

/// How a command failed: a usage or configuration error (exit 2) or a failure
/// while running (exit 1).
enum Failure {
    Usage(String),
    Runtime(String),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Server(ServerError::Runtime(msg)) => Failure::Runtime(msg),
            other => Failure::Usage(other.to_string()),
        }
    }
}

/// What to run: the settings, resolved, and the services.
struct Plan {
    settings: SharedArgs,
    /// The config file, re-read on SIGHUP, and the command line's settings, which
    /// win over it.
    reload_from: Option<(PathBuf, SharedArgs)>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and exit 0; every usage error exits 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Serve(args) => {
            let mut settings = args.shared;
            settings.services = vec![args.service];
            execute(Plan {
                settings,
                reload_from: None,
            })
        }
        Command::Run(args) => match config::load(&args.file) {
            Ok(file) => execute(Plan {
                settings: args.shared.clone().or(file),
                reload_from: Some((args.file, args.shared)),
            }),
            Err(e) => Err(Failure::Usage(e.0)),
        },
        Command::CheckConfig { file } => config::load(&file)
            .map_err(|e| Failure::Usage(e.0))
            .and_then(|c| check_services(&c)),
        Command::PrintConfig => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(config::DEFAULT_CONFIG.as_bytes());
            Ok(())
        }
        Command::Completions { shell } => {
            use std::io::Write as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "weft", &mut script);
            let _ = std::io::stdout().write_all(&script);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            say!("weft: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            say!("weft: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Builds every service once (reading the files they name) without serving.
fn check_services(c: &SharedArgs) -> Result<(), Failure> {
    let shards = c.cores.unwrap_or_else(cli::available_cores);
    for (i, s) in c.services.iter().enumerate() {
        s.build(&service_name(i, s), shards, &Policies::default())
            .map_err(|m| Failure::Usage(format!("service {} ({}): {m}", i + 1, s.kind())))?;
    }
    Ok(())
}

fn service_name(index: usize, s: &ServiceSpec) -> String {
    format!("{}-{}", s.kind(), index + 1)
}

fn execute(plan: Plan) -> Result<(), Failure> {
    let s = &plan.settings;
    // Everything that can be wrong with the input is found before anything binds.
    let credentials = match &s.uid {
        Some(user) => Some(
            Credentials::resolve(user, s.gid.as_deref())
                .map_err(|e| Failure::Usage(e.to_string()))?,
        ),
        None if s.gid.is_some() => {
            return Err(Failure::Usage("--gid needs --uid".into()));
        }
        None => None,
    };
    // The command line and WEFT_LOG_LEVEL, then RUST_LOG, then the file.
    let (level, file_level) = match &plan.reload_from {
        Some((_, overrides)) => (overrides.log_level.as_deref(), s.log_level.as_deref()),
        None => (s.log_level.as_deref(), None),
    };
    let filter = logging::filter(level, file_level).map_err(Failure::Usage)?;
    let target = match &s.log_file {
        Some(path) => logging::Target::File(Arc::new(
            logging::LogFile::open(path).map_err(Failure::Usage)?,
        )),
        None => logging::Target::Stderr,
    };

    let mut builder = Server::builder().handle_signals(true);
    if let Some(n) = s.cores {
        builder = builder.cores(n);
    }
    if let Some(d) = s.drain_timeout {
        builder = builder.drain_timeout(Duration::from_secs_f64(d));
    }
    if let Some(n) = s.max_output_buffer {
        builder = builder.max_output_buffer(n);
    }
    if let Some(ep) = &s.metrics {
        builder = builder.metrics(ep);
    }
    let shards = builder.shard_count();
    let (builder, notifier) = notify::Notifier::setup(builder, shards).map_err(Failure::Runtime)?;

    let policies = Policies {
        active: s.has_policy() || plan.reload_from.is_some(),
        ..Policies::default()
    };
    s.apply_policies(&policies.settings);
    let mut app = Application::new("weft");
    app.set_credentials(credentials)
        .join_port_group(s.join_port_group);
    for (i, spec) in s.services.iter().enumerate() {
        let service = spec
            .build(&service_name(i, spec), shards, &policies)
            .map_err(Failure::Usage)?;
        app.add_service(Box::new(service))?;
    }

    let filter_handle = logging::init(target.clone(), s.log_format.unwrap_or_default(), filter);
    if let logging::Target::File(file) = target {
        weft::runtime::on_reopen_log(move || file.reopen());
    }
    // SIGHUP also reloads every `ssl:` endpoint's certificates for new handshakes
    // (a bad file keeps the old one and says why; nothing happens without TLS).
    weft::runtime::on_reload(|| {
        weft::tls::reload_all();
    });
    match plan.reload_from.clone() {
        Some((path, overrides)) => {
            let settings = Arc::clone(&policies.settings);
            weft::runtime::on_reload(move || reload(&path, &overrides, &settings, &filter_handle));
        }
        // Without a file there is nothing to re-read, but SIGHUP must not end the
        // server (its default action) either.
        None => weft::runtime::on_reload(|| {
            tracing::info!("nothing to reload: `weft serve` has no config file (see `weft run`)");
        }),
    }

    let running = app.start(builder)?;
    let server = running.server();
    for addr in server.addresses() {
        say!("listening on {addr} ({} shards)", server.shards());
    }
    if let Some(url) = server.metrics_url() {
        say!("metrics on {url}");
    }
    if let Some(n) = notifier {
        n.ready(server, Arc::clone(&policies.stats));
    }
    let summaries = running.join()?;
    for summary in summaries {
        say!("{summary}");
    }
    let st = &policies.stats;
    if policies.active {
        tracing::info!(
            refused_total = st.refused_total(),
            refused_peer = st.refused_peer(),
            timed_out = st.timed_out(),
            throttled = st.throttled(),
            "policies"
        );
    }
    Ok(())
}

/// SIGHUP: re-reads the config file and applies what can change without dropping
/// a connection (the connection policies and the log filter); the command line's
/// settings still win. A bad file is reported and changes nothing.
fn reload(
    path: &std::path::Path,
    overrides: &SharedArgs,
    policies: &weft::policies::PolicySettings,
    filter: &logging::FilterHandle,
) {
    let file = match config::load(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("reload failed, nothing changed: {}", e.0);
            return;
        }
    };
    let file_level = file.log_level.clone();
    let merged = overrides.clone().or(file);
    let level = overrides.log_level.as_deref();
    match logging::filter(level, file_level.as_deref()) {
        Ok(f) => {
            let _ = filter.reload(f);
        }
        Err(e) => tracing::error!("reload: {e}"),
    }
    merged.apply_policies(policies);
    tracing::info!(
        max_connections = ?merged.max_connections,
        max_connections_per_peer = ?merged.max_connections_per_peer,
        idle_timeout = ?merged.idle_timeout,
        read_rate = ?merged.read_rate,
        write_rate = ?merged.write_rate,
        total_read_rate = ?merged.total_read_rate,
        total_write_rate = ?merged.total_write_rate,
        "reloaded {}",
        path.display()
    );
}
