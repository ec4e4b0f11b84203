//! The runtime: workers consume their queues and run tasks, beat publishes scheduled tasks.
//! It reads only the compiled spec (`config/program.json`), never the manifest.
//!
//! `transport` carries messages (RabbitMQ through `transport::amqp`, the only module naming
//! lapin, or the in-process `transport::memory` queues); `celery` is the Celery v2 wire
//! format; `worker` the consumer; `beat` the scheduler (its pure slot and window arithmetic in
//! `beat::schedule`); `tasks` the handler registry, one file per task, and the services
//! handlers share; `continuous` the continuous recorder; `config` loads the program and
//! resolves the broker URL. This module holds the process plumbing the commands share:
//! logging, signals and systemd notification.

pub mod beat;
pub mod celery;
pub mod config;
pub mod continuous;
pub mod serve;
pub mod tasks;
pub mod transport;
pub mod worker;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Logs to stderr with tracing; the level comes from `ACOUPI_LOG` (or `RUST_LOG`), default
/// `info`; colour only on a terminal and without `NO_COLOR`.
pub fn init_logging() {
    let filter = std::env::var("ACOUPI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
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
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
