//! Space on the sensor's file systems: what staging holds against its budget, and how full
//! the recordings file system is.
//!
//! In: the program's paths and settings. Out: [`Staging`] (files, bytes, the effective
//! budget) and [`FsStats`] (size and free bytes of the file system holding a path, or its
//! nearest existing ancestor). Read by the `record` task (which skips a recording while
//! staging is over budget), `manage-files` (retention) and `acoupi status`.

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use super::retention;
use crate::spec::Program;

/// Size and free bytes of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    /// Total bytes.
    pub total: u64,
    /// Bytes available to unprivileged users.
    pub free: u64,
}

/// The file system holding `path` (or its nearest existing ancestor).
pub fn fs_stats(path: &Utf8Path) -> std::io::Result<FsStats> {
    let mut current = path;
    loop {
        let probe = if current.as_str().is_empty() {
            Utf8Path::new(".")
        } else {
            current
        };
        match rustix::fs::statvfs(probe.as_std_path()) {
            Ok(s) => {
                return Ok(FsStats {
                    total: s.f_blocks.saturating_mul(s.f_frsize),
                    free: s.f_bavail.saturating_mul(s.f_frsize),
                });
            }
            Err(e) if e == rustix::io::Errno::NOENT => match current.parent() {
                Some(parent) => current = parent,
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the staging directory holds against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    /// Finished WAV files waiting.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The effective budget (the manifest's `staging-budget`, or its default, capped by the
    /// free space less `min-free-disk`).
    pub budget: u64,
}

impl Staging {
    /// True when one more recording of `next` bytes would pass the budget.
    pub fn would_overflow(&self, next: u64) -> bool {
        self.bytes.saturating_add(next) > self.budget
    }
}

/// The WAV files directly in `dir` (hidden files skipped) and their bytes; a missing `dir`
/// holds nothing.
pub fn wav_bytes(dir: &Utf8Path) -> std::io::Result<(u64, u64)> {
    let entries = match dir.read_dir_utf8() {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".wav") {
            continue;
        }
        if let Ok(m) = entry.metadata() {
            files += 1;
            bytes = bytes.saturating_add(m.len());
        }
    }
    Ok((files, bytes))
}

/// What `program`'s staging directory holds against its budget.
pub fn staging(program: &Program) -> std::io::Result<Staging> {
    let dir = &program.paths.staging;
    let (files, bytes) = wav_bytes(dir)?;
    let fs = fs_stats(dir)?;
    Ok(Staging {
        files,
        bytes,
        budget: retention::staging_budget(
            program.recording.staging_budget,
            fs.total,
            fs.free.saturating_add(bytes),
            program.recording.min_free_disk_bytes,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_files_are_counted_and_the_rest_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = Utf8Path::from_path(dir.path()).expect("utf-8");
        std::fs::write(d.join("a.wav"), [0u8; 100]).expect("w");
        std::fs::write(d.join("B.WAV"), [0u8; 50]).expect("w");
        std::fs::write(d.join(".c.wav.part"), [0u8; 70]).expect("w");
        std::fs::write(d.join("notes.txt"), [0u8; 9]).expect("w");
        assert_eq!(wav_bytes(d).expect("listed"), (2, 150));
        assert_eq!(wav_bytes(&d.join("missing")).expect("nothing"), (0, 0));
        let fs = fs_stats(&d.join("not/yet")).expect("an ancestor's file system");
        assert!(fs.total >= fs.free && fs.total > 0);
        // Only a missing path is looked past: a file in the way is an error, not its parent's
        // file system.
        let in_the_way = fs_stats(&d.join("notes.txt/sub")).expect_err("a file in the way");
        assert_eq!(
            in_the_way.raw_os_error(),
            Some(libc::ENOTDIR),
            "{in_the_way}"
        );
        let s = Staging {
            files: 2,
            bytes: 150,
            budget: 200,
        };
        assert!(!s.would_overflow(50) && s.would_overflow(51));
    }
}
