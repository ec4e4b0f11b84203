//! Where everything lives in a built home: the one owner of the home's file names.
//!
//! In: the home directory (or the program's state directory). Out: the paths the compiler
//! writes and the runtime and lifecycle commands read, and the systemd unit names. Nothing
//! else in the crate spells these names, so moving a file is a change in one place.

use camino::{Utf8Path, Utf8PathBuf};

/// `build.lock`: format version, acoupi version and the digest of every generated file.
pub const LOCK_FILE: &str = "build.lock";
/// The compiled program, relative to the home.
pub const PROGRAM_FILE: &str = "config/program.json";
/// The worker definitions, relative to the home.
pub const WORKERS_FILE: &str = "config/workers.json";
/// The units' environment file, relative to the home.
pub const ENV_FILE: &str = "config/env";
/// Secrets the user puts in for the units, relative to the home (never generated).
pub const SECRETS_FILE: &str = "config/secrets.env";
/// The running deployment, relative to the home (written by `deploy`).
pub const DEPLOYMENT_FILE: &str = "config/deployment.json";
/// The generated launcher, relative to the home.
pub const LAUNCHER: &str = "bin/acoupi";
/// Runtime directories of the home that builds never move: logs, pid files, state.
pub const RUNTIME_DIRS: [&str; 3] = [LOG_DIR, RUN_DIR, STATE_DIR];
/// Default storage directory, relative to the home (recordings and databases when the
/// manifest names no paths).
pub const DATA_DIR: &str = "data";
/// Default staging directory, relative to [`DATA_DIR`].
pub const DEFAULT_STAGING: &str = "staging";
/// Default directory of kept recordings, relative to [`DATA_DIR`].
pub const DEFAULT_RECORDINGS: &str = "recordings";
/// Default metadata store, relative to [`DATA_DIR`].
pub const DEFAULT_METADATA: &str = "metadata.db";
/// Default message store (outbox), relative to [`DATA_DIR`].
pub const DEFAULT_MESSAGES: &str = "messages.db";
/// Logs, relative to the home.
pub const LOG_DIR: &str = "log";
/// Pid files and sockets, relative to the home.
pub const RUN_DIR: &str = "run";
/// Runtime state (beat's schedule, the last heartbeat), relative to the home.
pub const STATE_DIR: &str = "state";

/// Name of the beat unit.
pub const BEAT_UNIT: &str = "acoupi-beat.service";
/// Name of the target unit.
pub const TARGET_UNIT: &str = "acoupi.target";

/// The unit file name of a worker.
pub fn worker_unit(worker: &str) -> String {
    format!("acoupi-worker-{worker}.service")
}

/// The log file of `unit` (a service unit name) when no journal takes its output:
/// `log/NAME.log`, NAME being the unit name without `.service`.
pub fn log_file(home: &Utf8Path, unit: &str) -> Utf8PathBuf {
    let stem = unit.strip_suffix(".service").unwrap_or(unit);
    home.join(LOG_DIR).join(format!("{stem}.log"))
}

/// The compiled program of `home`.
pub fn program_file(home: &Utf8Path) -> Utf8PathBuf {
    home.join(PROGRAM_FILE)
}

/// The deployment file of `home`.
pub fn deployment_file(home: &Utf8Path) -> Utf8PathBuf {
    home.join(DEPLOYMENT_FILE)
}

/// Files in the program's state directory (`paths.state`).
#[derive(Debug, Clone, Copy)]
pub struct State<'a>(pub &'a Utf8Path);

impl State<'_> {
    /// Beat's schedule state: when each task last fired.
    pub fn beat(&self) -> Utf8PathBuf {
        self.0.join("beat.json")
    }

    /// The last heartbeat, read by `acoupi status`.
    pub fn heartbeat(&self) -> Utf8PathBuf {
        self.0.join("heartbeat.json")
    }

    /// The lock `manage-files` holds while it runs, so two runs never move the same file.
    pub fn manage_files_lock(&self) -> Utf8PathBuf {
        self.0.join("manage-files.lock")
    }

    /// The missing microphone (`missing_since`), present only while it is missing; read by
    /// heartbeats and `acoupi status`.
    pub fn microphone(&self) -> Utf8PathBuf {
        self.0.join("microphone.json")
    }

    /// The recording tally (files, overruns, the last file), read by heartbeats.
    pub fn recording_tally(&self) -> Utf8PathBuf {
        self.0.join("recording.json")
    }
}
