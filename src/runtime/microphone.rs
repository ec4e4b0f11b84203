//! Whether the recording microphone is present: the state a missing microphone leaves in the
//! program's state directory, so the recorder warns once (not once per slot) and `acoupi
//! status` and heartbeats can say `microphone: missing since …`.
//!
//! In: the state directory, the microphone's name, the time and why it could not be opened.
//! Out: `state/microphone.json` (`{"microphone", "missing_since", "error"}`) written once when
//! the microphone goes missing (the first time is kept) and removed when it is back; one
//! warning and one info line at those two transitions.

use camino::Utf8Path;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::layout::State;

/// A missing microphone, as its state file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    /// The microphone's name in the program.
    pub microphone: String,
    /// When the recorder first found it missing.
    pub missing_since: Timestamp,
    /// Why it could not be opened then.
    pub error: String,
}

/// The missing microphone the state directory records, if any (a state file that cannot be
/// read or parsed counts as none: this is a report, never a failure).
pub fn read(state: &Utf8Path) -> Option<Missing> {
    let text = std::fs::read_to_string(State(state).microphone()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Records that microphone `mic` could not be opened at `now` because it is absent (`error`
/// says why). The first call of a missing spell writes the state file and logs the one
/// warning; later calls, from this process or another, leave the first time and only log at
/// debug level. A state file that cannot be written is logged as a warning each time, with
/// the microphone's error.
pub fn missing(state: &Utf8Path, mic: &str, now: Timestamp, error: &str) {
    match record(state, mic, now, error) {
        Ok(true) => tracing::warn!(
            microphone = %mic,
            "microphone `{mic}` is missing, recording is paused until it is back: {error}"
        ),
        Ok(false) => tracing::debug!(microphone = %mic, "microphone still missing"),
        Err(e) => tracing::warn!(
            microphone = %mic,
            "microphone `{mic}` is missing, recording is paused until it is back ({e}): {error}"
        ),
    }
}

/// Records that the microphone opened: clears the state file and, when it was missing, logs
/// the one info line saying recording resumes.
pub fn present(state: &Utf8Path, mic: &str) {
    let path = State(state).microphone();
    let was = read(state);
    match std::fs::remove_file(&path) {
        Ok(()) => match was {
            Some(m) => tracing::info!(
                microphone = %mic,
                "microphone `{mic}` is back (missing since {}): recording resumes",
                m.missing_since
            ),
            None => {
                tracing::info!(microphone = %mic, "microphone `{mic}` is back: recording resumes")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, path = %path, "cannot clear the microphone state"),
    }
}

/// Writes the state file unless it exists; true when this call wrote it. The file appears
/// complete or not at all (a hard link of a finished temporary file), and of two recorders
/// racing, exactly one wins.
fn record(state: &Utf8Path, mic: &str, now: Timestamp, error: &str) -> Result<bool, String> {
    let path = State(state).microphone();
    if path.exists() {
        return Ok(false);
    }
    let body = serde_json::to_vec(&Missing {
        microphone: mic.to_owned(),
        missing_since: now,
        error: error.to_owned(),
    })
    .map_err(|e| format!("cannot encode the microphone state: {e}"))?;
    let tmp = state.join(format!(
        ".microphone.{}.{}.new",
        std::process::id(),
        unique()
    ));
    crate::fsx::write_atomic(&tmp, &body, None).map_err(|e| e.to_string())?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            crate::fsx::sync_dir(state);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("cannot write `{path}`: {e}")),
    }
}

/// A number no other call in this process uses.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, camino::Utf8PathBuf) {
        let d = tempfile::tempdir().expect("temp dir");
        let p = camino::Utf8PathBuf::from_path_buf(d.path().join("state")).expect("utf-8");
        (d, p)
    }

    #[test]
    fn the_first_time_is_kept_until_the_microphone_is_back() {
        let (_d, state) = dir();
        let t1: Timestamp = "2026-06-01T20:00:00Z".parse().expect("time");
        let t2: Timestamp = "2026-06-01T20:00:10Z".parse().expect("time");
        assert_eq!(record(&state, "m", t1, "gone"), Ok(true));
        assert_eq!(record(&state, "m", t2, "still gone"), Ok(false));
        let m = read(&state).expect("missing");
        assert_eq!((m.missing_since, m.error.as_str()), (t1, "gone"));
        present(&state, "m");
        assert_eq!(read(&state), None);
        assert!(!State(&state).microphone().exists());
        assert_eq!(record(&state, "m", t2, "again"), Ok(true));
        assert_eq!(read(&state).map(|m| m.missing_since), Some(t2));
        let names: Vec<_> = std::fs::read_dir(&state)
            .expect("state dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["microphone.json"], "no temporary file is left");
    }
}
