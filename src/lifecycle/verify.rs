//! Whether a built home is intact: every file `build.lock` lists has the recorded sha256 and
//! mode, and the lock was written by this acoupi.
//!
//! In: a home. Out: its [`BuildLock`], or why it must not be deployed, with the command that
//! fixes it (a rebuild from the manifest the lock names).

use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};

use crate::emit::{BuildLock, LOCK_FILE, sha256_hex};

/// Why a home cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// There is no `build.lock`.
    #[error(
        "`{home}` is not a built home (no `build.lock`): build it first with `acoupi build MANIFEST --home {quoted}`",
        quoted = quote(home.as_str())
    )]
    NotBuilt {
        /// The home.
        home: Utf8PathBuf,
    },
    /// `build.lock` cannot be read or parsed.
    #[error("cannot read `{path}`: {reason}")]
    Unreadable {
        /// The lock.
        path: Utf8PathBuf,
        /// Why.
        reason: String,
    },
    /// Another acoupi built the home.
    #[error(
        "`{home}` was built by acoupi {built}, this is acoupi {ours}: rebuild it with `{rebuild}`"
    )]
    OtherVersion {
        /// The home.
        home: Utf8PathBuf,
        /// The version in the lock.
        built: String,
        /// This version.
        ours: String,
        /// The rebuild command.
        rebuild: String,
    },
    /// Files differ from the lock.
    #[error("`{home}` does not match its build.lock ({}): rebuild it with `{rebuild}`", summary(.differences))]
    Modified {
        /// The home.
        home: Utf8PathBuf,
        /// Each difference, `changed: units/x.service` and so on.
        differences: Vec<String>,
        /// The rebuild command.
        rebuild: String,
    },
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.escape_debug().to_string())
}

fn summary(differences: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = differences
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if differences.len() > SHOWN {
        text.push_str(&format!(" and {} more", differences.len() - SHOWN));
    }
    text
}

/// The command that rebuilds `home` from the manifest its lock names.
pub fn rebuild_command(lock: &BuildLock, home: &Utf8Path) -> String {
    format!(
        "acoupi build {} --home {}",
        quote(&lock.source.path),
        quote(home.as_str())
    )
}

/// Reads `build.lock` of `home`.
pub fn read_lock(home: &Utf8Path) -> Result<BuildLock, Error> {
    let path = home.join(LOCK_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotBuilt {
                home: home.to_owned(),
            });
        }
        Err(e) => {
            return Err(Error::Unreadable {
                path,
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| Error::Unreadable {
        path,
        reason: e.to_string(),
    })
}

/// Checks `home` against its `build.lock`: same acoupi version, every file present with the
/// recorded sha256 and mode. Returns the lock.
pub fn verify(home: &Utf8Path) -> Result<BuildLock, Error> {
    let lock = read_lock(home)?;
    let ours = env!("CARGO_PKG_VERSION");
    if lock.acoupi_version != ours {
        return Err(Error::OtherVersion {
            home: home.to_owned(),
            built: lock.acoupi_version.clone(),
            ours: ours.to_owned(),
            rebuild: rebuild_command(&lock, home),
        });
    }
    let mut differences = Vec::new();
    for (rel, locked) in &lock.files {
        let path = home.join(rel);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                differences.push(format!("missing: {rel}"));
            }
            Err(e) => differences.push(format!("unreadable: {rel} ({e})")),
            Ok(bytes) if sha256_hex(&bytes) != locked.sha256 => {
                differences.push(format!("changed: {rel}"));
            }
            Ok(_) => {
                let mode = std::fs::metadata(&path)
                    .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
                    .unwrap_or_default();
                if mode != locked.mode {
                    differences.push(format!("mode changed: {rel}"));
                }
            }
        }
    }
    if differences.is_empty() {
        Ok(lock)
    } else {
        Err(Error::Modified {
            home: home.to_owned(),
            differences,
            rebuild: rebuild_command(&lock, home),
        })
    }
}

/// Whether the manifest a home was built from changed since it was built (its sha256 differs
/// from the lock's); an error names the manifest when it cannot be read.
pub fn manifest_stale(lock: &BuildLock) -> Result<bool, String> {
    match std::fs::read(&lock.source.path) {
        Ok(bytes) => Ok(sha256_hex(&bytes) != lock.source.sha256),
        Err(e) => Err(format!("cannot read `{}`: {e}", lock.source.path)),
    }
}
