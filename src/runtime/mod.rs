//! The runtime: workers consume their queues and run tasks, beat publishes scheduled tasks.
//! It reads only the compiled spec (`config/program.json`), never the manifest.
//!
//! `transport` carries messages (RabbitMQ through `transport::amqp`, the only module naming
//! lapin, or the in-process `transport::memory` queues); `celery` is the Celery v2 wire
//! format; `worker` the consumer; `beat` the scheduler (its pure slot and window arithmetic in
//! `beat::schedule`); `tasks` the handler registry, one file per task, and the services
//! handlers share; `continuous` the continuous recorder; `config` loads the program and
//! resolves the broker URL; `log_file` the rotated log files of services without a journal;
//! `microphone` the state of a missing microphone.
//! This module holds the process plumbing the commands share: logging, signals and systemd
//! notification.

pub mod beat;
pub mod celery;
pub mod config;
pub mod continuous;
pub mod log_file;
pub mod microphone;
pub mod serve;
pub mod tasks;
pub mod transport;
pub mod worker;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = std::env::var("ACOUPI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::EnvFilter::new(filter)
}

/// Logging for a service (a worker or beat) of the home `home_flag` resolves to, as `unit`.
/// Run by hand (a terminal, a script, a test: no `INVOCATION_ID`, which systemd sets for every
/// unit) it logs to stderr like every other command. Run by systemd: to the journal when
/// systemd connected our stderr to it, else to the rotated file `log/UNIT.log` of the home
/// ([`layout::log_file`](crate::spec::layout::log_file), 5 MiB, three rotations). A file that
/// cannot be opened leaves logging on stderr, with one warning.
pub fn init_service_logging(home_flag: Option<&camino::Utf8Path>, unit: &str) {
    if std::env::var_os("INVOCATION_ID").is_none() || log_file::stderr_is_journal() {
        return init_logging();
    }
    let opened = crate::home::resolve(home_flag)
        .map_err(|e| e.to_string())
        .and_then(|home| {
            let path = crate::spec::layout::log_file(&home, unit);
            log_file::RotatingFile::open(&path, log_file::MAX_BYTES, log_file::KEEP)
                .map_err(|e| format!("cannot log to `{path}`: {e}"))
        });
    match opened {
        Ok(file) => {
            use std::io::IsTerminal;
            if std::io::stderr().is_terminal() {
                eprintln!("logging to `{}`", file.path());
            }
            let installed = tracing_subscriber::fmt()
                .with_env_filter(log_filter())
                .with_ansi(false)
                .with_writer(file)
                .with_target(false)
                .try_init();
            LOGS_TO_FILE.store(installed.is_ok(), std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => {
            init_logging();
            tracing::warn!("no log file, logging to stderr: {e}");
        }
    }
}

static LOGS_TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process logs to a file ([`init_service_logging`]): errors printed on stderr
/// should then be logged too, or nobody would read them where no journal runs.
pub fn logs_to_file() -> bool {
    LOGS_TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Logs to stderr with tracing; the level comes from `ACOUPI_LOG` (or `RUST_LOG`), default
/// `info`; colour only on a terminal and without `NO_COLOR`.
pub fn init_logging() {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; a second one exits at once (code 130).
pub fn handle_signals(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: finishing in-flight tasks (signal again to exit at once)");
        shutdown.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// Tells systemd the service is ready (no-op outside systemd) and, when the unit has a
/// watchdog, pings it from the event loop for as long as the loop runs: a blocked loop stops
/// the pings and systemd restarts the service.
pub fn notify_ready(status: &str) {
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        let every = (period / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// Tells systemd the service is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Peak resident memory of this process in KiB (`VmHWM`), when the platform reports it.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Resident memory of this process in KiB (`VmRSS`), when the platform reports it.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

/// The `field` (with its colon) of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
