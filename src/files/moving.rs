//! Crash-safe moves of recordings from the staging directory into storage, across file
//! systems.
//!
//! In: a staged recording, the storage directory it belongs in and its file name. Out: the
//! recording at its final path, complete and durable, and later the staged copy removed. A move
//! is three steps, so that a power cut or a SIGKILL at any instant loses no recording and,
//! after recovery, leaves none twice:
//!
//! 1. [`place`] copies the source to `DIR/.NAME.part` (creating `DIR` and its parents),
//!    fsyncs it, renames it to `DIR/NAME` and fsyncs `DIR`; it never touches the source;
//! 2. the caller points the metadata store at the returned path;
//! 3. [`remove_source`] removes the source and fsyncs its directory.
//!
//! Recovery, at the start of the task (which holds a lock, so no other move runs): the store
//! points at the source until step 2 and at the placed file after it, and both exist in
//! between, so nothing is lost. [`sweep_partials`] removes the `.part` files a crash left;
//! recordings the store still has in staging are placed again, and [`place`] reuses the copy an
//! interrupted move already renamed into place (same length and bytes, [`same_content`])
//! instead of copying twice; sources of recordings the store has in storage are removed.
//! A different file under the final name is never overwritten: the recording goes to
//! `NAME_1.wav`, `NAME_2.wav`… (the rename itself refuses to replace a file on Linux).
//!
//! [`place`] always copies, even when source and destination share a file system: one code
//! path, whose crash behaviour the tests cover; the staging directory is normally a tmpfs,
//! where a rename could not apply anyway. Tests make any step fail with [`place_with`].

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camino::{Utf8Path, Utf8PathBuf};

use crate::fsx::sync_dir;

/// How many numbered names (`NAME_1.wav` …) [`place`] tries after the name itself.
const MAX_NUMBERED: u32 = 10_000;
/// The buffer size for copies and comparisons.
const CHUNK: usize = 256 * 1024;

/// A step of [`place_with`], announced to its hook just before the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the destination directory and its missing parents.
    CreateDir,
    /// Creating the `.part` file.
    CreatePart,
    /// Copying the source's bytes and modification time into the `.part` file.
    Write,
    /// Fsyncing the `.part` file.
    SyncFile,
    /// Renaming the `.part` file to the final name.
    Rename,
    /// Fsyncing the destination directory.
    SyncDir,
}

impl Step {
    /// Every step, in the order [`place_with`] runs them.
    pub const ALL: [Step; 6] = [
        Step::CreateDir,
        Step::CreatePart,
        Step::Write,
        Step::SyncFile,
        Step::Rename,
        Step::SyncDir,
    ];
}

/// How [`place`] put the recording at its final path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The bytes were copied there.
    Copied,
    /// An identical file was already there (left by an interrupted move) and was kept.
    Reused,
}

/// Where [`place`] put a recording, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The final path: the one the store should now hold.
    pub path: Utf8PathBuf,
    /// Whether the bytes were copied or an identical file reused.
    pub placement: Placement,
}

/// The file operation a [`MoveError`] happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reading a file, or its metadata.
    Read,
    /// Creating a directory.
    CreateDir,
    /// Creating a file.
    Create,
    /// Writing a file.
    Write,
    /// Fsyncing a file or directory.
    Sync,
    /// Renaming the `.part` file to the given final name.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing a directory.
    List,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::CreateDir => "create directory",
            Action::Create => "create",
            Action::Write => "write",
            Action::Sync => "fsync",
            Action::Rename => "rename a copy to",
            Action::Remove => "remove",
            Action::List => "list",
        })
    }
}

/// Why a move step failed: the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The source recording does not exist (perhaps an earlier run already moved it).
    #[error("source recording `{path}` is missing")]
    SourceMissing {
        /// The source path.
        path: Utf8PathBuf,
    },
    /// The file system is full (or the quota is used up).
    #[error("cannot {action} `{path}`: the file system is full")]
    DiskFull {
        /// What was being done.
        action: Action,
        /// The file it was done to.
        path: Utf8PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file system is mounted read-only.
    #[error("cannot {action} `{path}`: the file system is read-only")]
    ReadOnly {
        /// What was being done.
        action: Action,
        /// The file it was done to.
        path: Utf8PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The permissions forbid it.
    #[error("cannot {action} `{path}`: permission denied")]
    PermissionDenied {
        /// What was being done.
        action: Action,
        /// The file it was done to.
        path: Utf8PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Any other I/O failure.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: Action,
        /// The file it was done to.
        path: Utf8PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file name given to [`place`] is empty, `.`, `..` or holds a `/`.
    #[error("`{name}` is not a plain file name")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The name and all its numbered variants hold other files.
    #[error("no free name for `{name}` in `{dir}`: it and {MAX_NUMBERED} numbered ones are taken")]
    NoFreeName {
        /// The destination directory.
        dir: Utf8PathBuf,
        /// The name asked for.
        name: String,
    },
    /// The destination is the source itself: placing it there and then removing the source
    /// would lose the recording.
    #[error("source recording `{path}` is already at its destination")]
    SourceIsDestination {
        /// The source path.
        path: Utf8PathBuf,
    },
}

impl MoveError {
    /// Whether the source recording is missing: for [`place`], the recording was moved (or
    /// lost) before; nothing was changed.
    pub fn is_source_missing(&self) -> bool {
        matches!(self, MoveError::SourceMissing { .. })
    }
}

/// Sorts an OS error into a [`MoveError`] by its cause.
fn classify(action: Action, path: &Utf8Path, source: io::Error) -> MoveError {
    let path = path.to_owned();
    match source.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => MoveError::DiskFull {
            action,
            path,
            source,
        },
        ErrorKind::ReadOnlyFilesystem => MoveError::ReadOnly {
            action,
            path,
            source,
        },
        ErrorKind::PermissionDenied => MoveError::PermissionDenied {
            action,
            path,
            source,
        },
        _ => MoveError::Io {
            action,
            path,
            source,
        },
    }
}

/// Like [`classify`] for an error reading the source, where "not found" is its own variant.
fn source_error(src: &Utf8Path, e: io::Error) -> MoveError {
    if e.kind() == ErrorKind::NotFound {
        MoveError::SourceMissing {
            path: src.to_owned(),
        }
    } else {
        classify(Action::Read, src, e)
    }
}

/// Copies `src` into `dst_dir` as `file_name` (or a numbered variant), durably; see the module
/// docs. Returns the final path, and whether an identical file already there was reused.
/// `src` is left untouched: remove it with [`remove_source`] once the store is updated.
///
/// A missing `src` fails with [`MoveError::SourceMissing`] ([`MoveError::is_source_missing`])
/// and changes nothing. A failure before the rename removes the `.part` file (a crash leaves
/// it to [`sweep_partials`]) and no file under the final name; one after it (the directory's
/// fsync) leaves the final file whole, and a retry reuses it.
pub fn place(src: &Utf8Path, dst_dir: &Utf8Path, file_name: &str) -> Result<Placed, MoveError> {
    place_with(src, dst_dir, file_name, &mut |_| Ok(()))
}

/// [`place`], calling `hook` before each [`Step`]; an error from the hook fails that step as
/// the OS error would. For fault-injection tests.
pub fn place_with(
    src: &Utf8Path,
    dst_dir: &Utf8Path,
    file_name: &str,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
) -> Result<Placed, MoveError> {
    if file_name.is_empty() || file_name == "." || file_name == ".." || file_name.contains('/') {
        return Err(MoveError::InvalidName {
            name: file_name.to_owned(),
        });
    }
    let meta = std::fs::metadata(src).map_err(|e| source_error(src, e))?;
    if !meta.is_file() {
        let e = io::Error::new(ErrorKind::InvalidInput, "not a regular file");
        return Err(classify(Action::Read, src, e));
    }
    hook(Step::CreateDir).map_err(|e| classify(Action::CreateDir, dst_dir, e))?;
    create_dirs(dst_dir)?;
    let mut target = match choose(src, &meta, dst_dir, file_name)? {
        Choice::Reuse(path) => return Ok(reused(path)),
        Choice::Free(path) => path,
    };
    let part = dst_dir.join(format!(".{file_name}.part"));
    if let Err(e) = copy_to_part(src, &meta, &part, hook) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    // The rename refuses to replace a file; one that appeared since `choose` (only possible
    // without the task's lock) sends the copy to the next free name.
    for _ in 0..=MAX_NUMBERED {
        let renamed = hook(Step::Rename).and_then(|()| rename_no_replace(&part, &target));
        match renamed {
            Ok(()) => {
                hook(Step::SyncDir).map_err(|e| classify(Action::Sync, dst_dir, e))?;
                sync_dir(dst_dir);
                return Ok(Placed {
                    path: target,
                    placement: Placement::Copied,
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                match choose(src, &meta, dst_dir, file_name) {
                    Ok(Choice::Free(path)) => target = path,
                    Ok(Choice::Reuse(path)) => {
                        let _ = std::fs::remove_file(&part);
                        return Ok(reused(path));
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&part);
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(classify(Action::Rename, &target, e));
            }
        }
    }
    let _ = std::fs::remove_file(&part);
    Err(MoveError::NoFreeName {
        dir: dst_dir.to_owned(),
        name: file_name.to_owned(),
    })
}

fn reused(path: Utf8PathBuf) -> Placed {
    Placed {
        path,
        placement: Placement::Reused,
    }
}

/// Creates `dir` and its missing parents, and fsyncs the directory each new one was made in.
fn create_dirs(dir: &Utf8Path) -> Result<(), MoveError> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(d) = current.filter(|d| !d.as_str().is_empty()) {
        match std::fs::symlink_metadata(d) {
            Err(e) if e.kind() == ErrorKind::NotFound => missing.push(d),
            // Exists, or cannot be looked at: `create_dir_all` reports the latter.
            _ => break,
        }
        current = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| classify(Action::CreateDir, dir, e))?;
    for d in missing.iter().rev() {
        sync_dir(crate::fsx::parent_dir(d));
    }
    Ok(())
}

/// Where a recording goes: an identical file to keep, or a free name.
enum Choice {
    Reuse(Utf8PathBuf),
    Free(Utf8PathBuf),
}

/// The first of `file_name`, `NAME_1.EXT`, `NAME_2.EXT`… in `dst_dir` that is free or holds a
/// copy of `src`.
fn choose(
    src: &Utf8Path,
    meta: &std::fs::Metadata,
    dst_dir: &Utf8Path,
    file_name: &str,
) -> Result<Choice, MoveError> {
    for n in 0..=MAX_NUMBERED {
        let path = dst_dir.join(numbered(file_name, n));
        let existing = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Choice::Free(path)),
            Err(e) => return Err(classify(Action::Read, &path, e)),
            Ok(existing) => existing,
        };
        if existing.dev() == meta.dev() && existing.ino() == meta.ino() {
            return Err(MoveError::SourceIsDestination {
                path: src.to_owned(),
            });
        }
        if existing.is_file() && existing.len() == meta.len() && compare(src, &path, meta.len())? {
            return Ok(Choice::Reuse(path));
        }
    }
    Err(MoveError::NoFreeName {
        dir: dst_dir.to_owned(),
        name: file_name.to_owned(),
    })
}

/// `name` for `n == 0`, else `name` with `_n` before its extension.
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}_{n}.{ext}"),
        _ => format!("{name}_{n}"),
    }
}

/// Copies `src` (bytes and modification time) to a new `part` file and fsyncs it.
fn copy_to_part(
    src: &Utf8Path,
    meta: &std::fs::Metadata,
    part: &Utf8Path,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
) -> Result<(), MoveError> {
    let create = |e| classify(Action::Create, part, e);
    let write = |e| classify(Action::Write, part, e);
    let sync = |e| classify(Action::Sync, part, e);
    hook(Step::CreatePart).map_err(create)?;
    // A leftover `.part` is stale (the caller holds the task's lock): start it afresh.
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(part)
        .map_err(create)?;
    hook(Step::Write).map_err(write)?;
    let mut input = File::open(src).map_err(|e| source_error(src, e))?;
    let mut buf = vec![0; CHUNK];
    let mut copied = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(Action::Read, src, e)),
        };
        out.write_all(&buf[..n]).map_err(write)?;
        copied += n as u64;
    }
    if copied != meta.len() {
        let e = io::Error::other(format!(
            "it changed size while being copied ({} bytes, then {copied})",
            meta.len()
        ));
        return Err(classify(Action::Read, src, e));
    }
    let mut times = FileTimes::new();
    if let Ok(modified) = meta.modified() {
        times = times.set_modified(modified);
    }
    if let Ok(accessed) = meta.accessed() {
        times = times.set_accessed(accessed);
    }
    out.set_times(times).map_err(write)?;
    hook(Step::SyncFile).map_err(sync)?;
    out.sync_all().map_err(sync)
}

/// Renames `from` to `to`, failing with `AlreadyExists` rather than replacing a file where the
/// OS and file system can tell (`RENAME_NOREPLACE` on Linux); elsewhere a plain rename, which
/// [`choose`] checked was free.
fn rename_no_replace(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        match renameat_with(CWD, from.as_str(), CWD, to.as_str(), RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system does not support the flag: fall back to a plain rename.
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::rename(from, to)
}

/// Whether `a` and `b` have the same bytes, `len` each; errors name the file.
fn compare(a: &Utf8Path, b: &Utf8Path, len: u64) -> Result<bool, MoveError> {
    let fa = File::open(a).map_err(|e| source_error(a, e))?;
    let fb = File::open(b).map_err(|e| classify(Action::Read, b, e))?;
    equal_streams(fa, fb, len).map_err(|(first, e)| {
        if first {
            source_error(a, e)
        } else {
            classify(Action::Read, b, e)
        }
    })
}

/// Whether two files have the same length and bytes, read in chunks (never whole).
pub fn same_content(a: &Utf8Path, b: &Utf8Path) -> io::Result<bool> {
    let (fa, fb) = (File::open(a)?, File::open(b)?);
    let len = fa.metadata()?.len();
    if fb.metadata()?.len() != len {
        return Ok(false);
    }
    equal_streams(fa, fb, len).map_err(|(_, e)| e)
}

/// Compares two readers chunk by chunk; both must hold exactly `len` bytes. An error says
/// whether it came from the first reader.
fn equal_streams(mut a: File, mut b: File, len: u64) -> Result<bool, (bool, io::Error)> {
    let (mut ba, mut bb) = (vec![0; CHUNK], vec![0; CHUNK]);
    let mut total = 0u64;
    loop {
        let na = fill(&mut a, &mut ba).map_err(|e| (true, e))?;
        let nb = fill(&mut b, &mut bb).map_err(|e| (false, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        total += na as u64;
        if na < CHUNK {
            return Ok(total == len);
        }
    }
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Removes a source recording once the store points at its placed copy, and fsyncs its
/// directory. Returns whether it was there: a missing source was removed by an earlier run.
pub fn remove_source(src: &Utf8Path) -> Result<bool, MoveError> {
    match std::fs::remove_file(src) {
        Ok(()) => {
            sync_dir(crate::fsx::parent_dir(src));
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(classify(Action::Remove, src, e)),
    }
}

/// Whether `name` is a [`place`] temporary: `.NAME.part`.
fn is_part_name(name: &str) -> bool {
    name.len() >= ".x.part".len() && name.starts_with('.') && name.ends_with(".part")
}

/// Removes the `.NAME.part` files a crashed [`place`] left anywhere under `root` (following
/// no symbolic links), and returns their paths, sorted. With `older_than`, only those whose
/// status last changed longer ago than that (the change time, since a `.part` file carries its
/// source's modification time); with `None`, all of them: right for the task, which holds a
/// lock, so no move is running. A missing `root` holds nothing.
pub fn sweep_partials(
    root: &Utf8Path,
    older_than: Option<Duration>,
) -> Result<Vec<Utf8PathBuf>, MoveError> {
    let now = SystemTime::now();
    let mut removed = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(classify(Action::List, &dir, e)),
        };
        let mut removed_here = false;
        for entry in entries {
            let entry = entry.map_err(|e| classify(Action::List, &dir, e))?;
            // A name that is not UTF-8 is none of ours.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = dir.join(&name);
            let kind = entry
                .file_type()
                .map_err(|e| classify(Action::Read, &path, e))?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            if !kind.is_file() || !is_part_name(&name) {
                continue;
            }
            if let Some(age) = older_than {
                let meta = entry
                    .metadata()
                    .map_err(|e| classify(Action::Read, &path, e))?;
                let changed = changed_at(&meta);
                if now.duration_since(changed).unwrap_or_default() < age {
                    continue;
                }
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(classify(Action::Remove, &path, e)),
            }
            removed.push(path);
            removed_here = true;
        }
        if removed_here {
            sync_dir(&dir);
        }
    }
    removed.sort();
    Ok(removed)
}

/// When a file's status (content, times, permissions) last changed: its ctime.
fn changed_at(meta: &std::fs::Metadata) -> SystemTime {
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    u64::try_from(meta.ctime())
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::new(s, nanos.min(999_999_999))))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_go_before_the_extension() {
        assert_eq!(numbered("a.wav", 0), "a.wav");
        assert_eq!(numbered("a.wav", 1), "a_1.wav");
        assert_eq!(numbered("a.b.wav", 12), "a.b_12.wav");
        assert_eq!(numbered("noext", 2), "noext_2");
        assert_eq!(numbered(".hidden", 3), ".hidden_3");
    }

    #[test]
    fn part_names_are_dot_name_dot_part() {
        assert!(is_part_name(".a.wav.part"));
        assert!(is_part_name(".x.part"));
        assert!(!is_part_name("a.wav.part"));
        assert!(!is_part_name(".part"));
        assert!(!is_part_name(".a.wav.123.0.tmp"));
        assert!(!is_part_name(".a.wav"));
    }

    #[test]
    fn os_errors_are_sorted_by_cause() {
        let path = Utf8Path::new("/x/a.wav");
        let full = classify(Action::Write, path, io::Error::from_raw_os_error(28));
        assert!(matches!(full, MoveError::DiskFull { .. }), "{full:?}");
        assert_eq!(
            full.to_string(),
            "cannot write `/x/a.wav`: the file system is full"
        );
        let ro = classify(Action::Create, path, io::Error::from_raw_os_error(30));
        assert!(matches!(ro, MoveError::ReadOnly { .. }), "{ro:?}");
        let denied = classify(Action::Create, path, io::Error::from_raw_os_error(13));
        assert!(matches!(denied, MoveError::PermissionDenied { .. }));
        let missing = source_error(path, io::Error::from_raw_os_error(2));
        assert!(missing.is_source_missing());
        assert_eq!(
            missing.to_string(),
            "source recording `/x/a.wav` is missing"
        );
        assert!(!denied.is_source_missing());
    }
}
