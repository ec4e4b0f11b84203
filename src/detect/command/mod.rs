//! Detectors that are external programs, speaking the detector protocol.
//!
//! In: a [`Config`] from the manifest (the program's argv, its mode, timeouts and slots) and
//! [`Request`]s. Out: each request's [`Event`]s or a [`DetectError`]. The contract with the
//! program is `schema/detector-protocol.md` (version 1), in Rust in [`protocol`].
//!
//! In serve mode (the default, [`serve`]) the program starts on the first request and keeps
//! running, one process per slot, answering one JSON line per request; in per-file mode
//! ([`per_file`]) it starts for each recording with the WAV path as its last argument. Both
//! work on a multi-thread and a current-thread tokio runtime.

mod child;
pub mod per_file;
pub mod protocol;
mod serve;

use std::time::Duration;

use tokio::sync::Semaphore;

use super::{DetectError, Event, Request};
use crate::spec::CommandMode;

pub use protocol::Ready;

/// A command detector's settings, from the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The detector's name (for logs and errors).
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Serve or per-file.
    pub mode: CommandMode,
    /// How long one request (serve) or one run (per-file) may take.
    pub timeout: Duration,
    /// Serve mode: how long the program may take to start, added to its first request's
    /// timeout.
    pub startup_timeout: Duration,
    /// Concurrent requests (serve mode runs one process per slot).
    pub slots: usize,
}

/// A command detector.
#[derive(Debug)]
pub struct CommandDetector {
    config: Config,
    /// Boxed: the pool's state is large and `Engine` holds a detector inline.
    runner: Box<Runner>,
}

/// How requests reach the program.
#[derive(Debug)]
enum Runner {
    /// Long-lived processes.
    Serve(serve::Pool),
    /// One process per request, `slots` at a time.
    PerFile(Semaphore),
}

impl CommandDetector {
    /// A detector running `config`'s program; nothing starts before the first request.
    pub fn new(config: Config) -> CommandDetector {
        let slots = config.slots.clamp(1, Semaphore::MAX_PERMITS);
        let runner = match config.mode {
            CommandMode::Serve => Runner::Serve(serve::Pool::new(slots)),
            CommandMode::PerFile => Runner::PerFile(Semaphore::new(slots)),
        };
        CommandDetector {
            config,
            runner: Box::new(runner),
        }
    }

    /// The detector's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the program on `request`'s file. A file that does not exist is
    /// [`DetectError::Unreadable`] without asking the program.
    pub async fn detect(&self, request: &Request) -> Result<Vec<Event>, DetectError> {
        if let Err(e) = tokio::fs::metadata(&request.path).await {
            return Err(DetectError::Unreadable(format!(
                "cannot read `{}`: {e}",
                request.path
            )));
        }
        match self.runner.as_ref() {
            Runner::Serve(pool) => pool.detect(&self.config, request).await,
            Runner::PerFile(slots) => {
                let _permit = slots.acquire().await.map_err(|_| {
                    DetectError::Failed(format!("detector `{}` is shut down", self.config.name))
                })?;
                per_file::run(&self.config, request).await
            }
        }
    }

    /// Serve mode: starts the program's processes now (one per slot), so the model loads
    /// before the first recording arrives; returns how many started. Nothing in per-file mode.
    pub fn warm(&self) -> Result<usize, DetectError> {
        match self.runner.as_ref() {
            Runner::Serve(pool) => pool.warm(&self.config),
            Runner::PerFile(_) => Ok(0),
        }
    }

    /// What the program announced on its first line (serve mode), once a process has.
    pub async fn ready_info(&self) -> Option<Ready> {
        match self.runner.as_ref() {
            Runner::Serve(pool) => pool.ready(),
            Runner::PerFile(_) => None,
        }
    }

    /// Stops the running processes: waits for the requests in flight, closes each process's
    /// stdin, then signals one that does not exit (SIGTERM, then SIGKILL). Later requests
    /// fail.
    pub async fn shutdown(&self) {
        match self.runner.as_ref() {
            Runner::Serve(pool) => pool.shutdown(&self.config.name).await,
            Runner::PerFile(slots) => {
                let size = u32::try_from(self.config.slots.clamp(1, Semaphore::MAX_PERMITS))
                    .unwrap_or(u32::MAX);
                let all = slots.acquire_many(size).await;
                slots.close();
                drop(all);
            }
        }
    }
}
