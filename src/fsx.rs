//! File-system helpers the runtime's durable state is written with.
//!
//! In: a path and its new contents. Out: the file replaced atomically and durably: the bytes
//! go to a temporary sibling, which is fsynced, renamed over the target and the directory
//! fsynced, so a reader (or a power cut) sees the old contents or the new, never a mix. The
//! temporary file is removed on any failure.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use camino::{Utf8Path, Utf8PathBuf};

/// Why an atomic write failed: the step and the file it failed on.
#[derive(Debug, thiserror::Error)]
#[error("cannot write `{path}`: {source}")]
pub struct WriteError {
    /// The file that could not be written (the target, or its temporary sibling).
    pub path: Utf8PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes` atomically, creating its directory when missing. `mode` sets
/// the new file's permission bits (e.g. `0o600` for secrets), else the process umask applies.
pub fn write_atomic(path: &Utf8Path, bytes: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    /// Tells apart concurrent writes of one file within a process.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let error = |path: &Utf8Path, source| WriteError {
        path: path.to_owned(),
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(error(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ),
        ));
    };
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| error(dir, e))?;
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(path, e));
    }
    sync_dir(dir);
    Ok(())
}

/// The directory `path` is in: its parent, or `.` for a bare file name (whose parent is the
/// empty path, which can be neither created nor opened for the fsync).
pub(crate) fn parent_dir(path: &Utf8Path) -> &Utf8Path {
    match path.parent() {
        Some(d) if !d.as_str().is_empty() => d,
        _ => Utf8Path::new("."),
    }
}

/// Takes an exclusive advisory lock on `path` (created, with its directory, when missing),
/// waiting while another process or thread holds it. The lock is held until the returned file
/// is dropped, and released by the kernel if the process dies.
pub fn lock_exclusive(path: &Utf8Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open the lock file {path}: {e}"))?;
    file.lock()
        .map_err(|e| format!("cannot lock {path}: {e}"))?;
    Ok(file)
}

/// Makes a rename in `dir` durable; best effort, since not every file system lets a directory
/// be fsynced.
pub fn sync_dir(dir: &Utf8Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Utf8PathBuf::try_from(dir.path().to_path_buf()).expect("utf-8 temp dir");
        (dir, path)
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let (_guard, dir) = temp();
        let path = dir.join("state/a.json");
        write_atomic(&path, b"one", None).expect("first write creates the directory");
        write_atomic(&path, b"two", Some(0o600)).expect("second write replaces");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.join("state"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.json"], "only the target remains");
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        assert_eq!(parent_dir(Utf8Path::new("a.json")), ".");
        assert_eq!(parent_dir(Utf8Path::new("state/a.json")), "state");
        assert_eq!(parent_dir(Utf8Path::new("/a.json")), "/");
    }

    #[test]
    fn a_failed_write_keeps_the_old_contents_and_names_the_file() {
        let (_guard, dir) = temp();
        let path = dir.join("a.json");
        write_atomic(&path, b"old", None).expect("write");
        // A directory where the target is cannot be replaced by a file.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).expect("dir");
        let e = write_atomic(&blocked, b"new", None).expect_err("renaming over a directory");
        assert_eq!(e.path, blocked);
        assert!(e.to_string().contains("blocked"), "{e}");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let leftovers = std::fs::read_dir(&dir)
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "the temporary file is removed");
    }

    #[test]
    fn a_bare_name_is_in_the_current_directory() {
        assert_eq!(parent_dir(Utf8Path::new("a.wav")), ".");
        assert_eq!(parent_dir(Utf8Path::new("d/a.wav")), "d");
    }
}
