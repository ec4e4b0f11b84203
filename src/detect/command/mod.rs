//! Detectors that are external programs (being built).

use std::time::Duration;

use super::{DetectError, Event, Request};
use crate::spec::CommandMode;

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
    /// Serve mode: how long the program may take to announce it is ready.
    pub startup_timeout: Duration,
    /// Concurrent requests (serve mode runs one process per slot).
    pub slots: usize,
}

/// A command detector.
#[derive(Debug)]
pub struct CommandDetector {
    config: Config,
}

impl CommandDetector {
    /// A detector running `config`'s program; nothing starts before the first request.
    pub fn new(config: Config) -> CommandDetector {
        CommandDetector { config }
    }

    /// Runs the program on `request`'s file.
    pub async fn detect(&self, request: &Request) -> Result<Vec<Event>, DetectError> {
        let _ = request;
        Err(DetectError::Failed(format!(
            "detector `{}`: command detectors are not built yet",
            self.config.name
        )))
    }

    /// Stops the running processes: stdin closed, then a signal.
    pub async fn shutdown(&self) {}
}
