//! Which build each running service started from: `run/<unit>.build`, written by the worker
//! or beat process when it has loaded its program, read by `acoupi status` to tell when the
//! units run a spec other than the one built (after `acoupi build --no-apply`, or a restart
//! that failed).
//!
//! In: the home and a unit name. Out: the build directory name (`.build-<digest>`) the
//! process read its program from, or nothing when it is not known.

use camino::{Utf8Path, Utf8PathBuf};

use crate::spec::layout::RUN_DIR;

/// The record of `unit` in `home`.
pub fn path(home: &Utf8Path, unit: &str) -> Utf8PathBuf {
    home.join(RUN_DIR).join(format!("{unit}.build"))
}

/// Records that `unit` runs `build`.
pub fn record(home: &Utf8Path, unit: &str, build: &str) -> Result<(), String> {
    crate::fsx::write_atomic(&path(home, unit), format!("{build}\n").as_bytes(), None)
        .map_err(|e| e.to_string())
}

/// The build `unit` last started from, when recorded.
pub fn read(home: &Utf8Path, unit: &str) -> Option<String> {
    std::fs::read_to_string(path(home, unit))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
