//! The only module that touches the file system for a build: resolves ACOUPI_HOME, writes an
//! [`OutputTree`] into it atomically, and compares a tree with what a home holds.
//!
//! In: a rendered tree and a home path. Out: a home holding exactly that tree plus the
//! runtime state it had (`log/`, `run/`, `state/`, `config/deployment.json`,
//! `config/secrets.env`). The tree is staged in a sibling directory and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so a failure at any point leaves the previous home as it was.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use fs_err::os::unix::fs::OpenOptionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use fs_err as fs;

use crate::emit::{LOCK_FILE, OutputTree};
use crate::plan::RUNTIME_STATE;

/// Why a home could not be resolved, written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error; `fs-err` names the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The target exists but is not a home this tool built.
    #[error("`{0}` exists and is not an acoupi home (it has files but no build.lock)")]
    NotAHome(Utf8PathBuf),
    /// The target exists and is not a directory.
    #[error("`{0}` exists and is not a directory")]
    NotADirectory(Utf8PathBuf),
    /// No home was given and none can be derived.
    #[error("no home directory: pass `--home DIR`, or set `ACOUPI_HOME` or `HOME`")]
    NoHome,
    /// A path is not UTF-8.
    #[error("path `{0}` is not valid UTF-8")]
    NotUtf8(String),
}

/// The home to use: `--home`, else `$ACOUPI_HOME`, else `$HOME/.acoupi`, made absolute.
pub fn resolve(flag: Option<&Utf8Path>) -> Result<Utf8PathBuf, Error> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let raw: std::path::PathBuf = match (flag, non_empty("ACOUPI_HOME"), non_empty("HOME")) {
        (Some(f), _, _) => f.as_std_path().to_owned(),
        (None, Some(h), _) => h.into(),
        (None, None, Some(h)) => std::path::PathBuf::from(h).join(".acoupi"),
        (None, None, None) => return Err(Error::NoHome),
    };
    let abs = std::path::absolute(&raw)?;
    Utf8PathBuf::from_path_buf(abs).map_err(|p| Error::NotUtf8(p.display().to_string()))
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Files written.
    pub files: usize,
    /// Whether an existing home was replaced (rather than created).
    pub replaced: bool,
}

/// Checks that `home` is absent, an empty directory, or a home with a `build.lock`.
fn check_target(home: &Utf8Path) -> Result<bool, Error> {
    match fs::symlink_metadata(home) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
        Ok(m) if !m.is_dir() => Err(Error::NotADirectory(home.to_owned())),
        Ok(_) => {
            if home.join(LOCK_FILE).exists() || fs::read_dir(home)?.next().is_none() {
                Ok(true)
            } else {
                Err(Error::NotAHome(home.to_owned()))
            }
        }
    }
}

fn stage_prefix(home: &Utf8Path) -> String {
    format!(".{}.acoupi-stage-", home.file_name().unwrap_or("home"))
}

/// Writes `tree` into `home` atomically, keeping the home's runtime state.
pub fn write(tree: &OutputTree, home: &Utf8Path) -> Result<Written, Error> {
    let exists = check_target(home)?;
    let parent = home
        .parent()
        .ok_or_else(|| Error::NotADirectory(home.to_owned()))?;
    fs::create_dir_all(parent)?;
    remove_stale_stages(parent, &stage_prefix(home))?;
    let stage = parent.join(format!("{}{}", stage_prefix(home), std::process::id()));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let result = fill_stage(tree, home, &stage, exists).and_then(|()| swap(&stage, home, exists));
    if result.is_err() && stage.exists() {
        // The previous home is untouched; only the stage is ours to clean up.
        let _ = fs::remove_dir_all(&stage);
    }
    result?;
    Ok(Written {
        files: tree.len(),
        replaced: exists,
    })
}

fn private_dir(path: &Utf8Path) -> Result<(), Error> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn fill_stage(
    tree: &OutputTree,
    home: &Utf8Path,
    stage: &Utf8Path,
    exists: bool,
) -> Result<(), Error> {
    private_dir(stage)?;
    for (path, file) in tree.iter() {
        let dest = stage.join(path);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&dest)?;
        f.write_all(&file.contents)?;
        // The umask may have narrowed the mode at creation; set it exactly.
        fs::set_permissions(&dest, std::fs::Permissions::from_mode(file.mode))?;
    }
    for dir in ["log", "run", "state"] {
        if !(exists && home.join(dir).is_dir()) {
            private_dir(&stage.join(dir))?;
        }
    }
    if exists {
        for entry in RUNTIME_STATE {
            let from = home.join(entry);
            if fs::symlink_metadata(&from).is_ok() {
                link_tree(&from, &stage.join(entry))?;
            }
        }
    }
    Ok(())
}

/// Hard-links `from` (a file, symlink or directory tree) to `to`, so the stage shares the
/// runtime state's inodes with the live home and nothing is copied or moved.
fn link_tree(from: &Utf8Path, to: &Utf8Path) -> Result<(), Error> {
    let meta = fs::symlink_metadata(from)?;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, meta.permissions())?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| Error::NotUtf8(entry.path().display().to_string()))?;
            link_tree(&from.join(name), &to.join(name))?;
        }
    } else if meta.file_type().is_symlink() {
        let target = fs::read_link(from)?;
        std::os::unix::fs::symlink(target, to)?;
    } else {
        fs::hard_link(from, to)?;
    }
    Ok(())
}

fn swap(stage: &Utf8Path, home: &Utf8Path, exists: bool) -> Result<(), Error> {
    if !exists {
        fs::rename(stage, home)?;
        return Ok(());
    }
    let exchanged = rustix::fs::renameat_with(
        rustix::fs::CWD,
        stage.as_std_path(),
        rustix::fs::CWD,
        home.as_std_path(),
        rustix::fs::RenameFlags::EXCHANGE,
    );
    match exchanged {
        Ok(()) => {}
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::NOTSUP) => {
            // No atomic exchange on this file system: move the old home aside first.
            let aside = Utf8PathBuf::from(format!("{stage}-old"));
            fs::rename(home, &aside)?;
            if let Err(e) = fs::rename(stage, home) {
                fs::rename(&aside, home)?;
                return Err(e.into());
            }
            fs::rename(&aside, stage)?;
        }
        Err(e) => {
            return Err(std::io::Error::other(format!(
                "could not swap `{stage}` into `{home}`: {e}"
            ))
            .into());
        }
    }
    // `stage` now holds the previous home.
    fs::remove_dir_all(stage)?;
    Ok(())
}

/// Removes stages left by a build that crashed: those whose process is gone. A stage of a
/// build still running (another `acoupi build` of the same home) is left alone.
fn remove_stale_stages(parent: &Utf8Path, prefix: &str) -> Result<(), Error> {
    for entry in fs::read_dir(parent)? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .map(str::to_owned)
        else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|p| {
            p != std::process::id() && std::path::Path::new(&format!("/proc/{p}")).exists()
        });
        if !alive {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// One way a home differs from a rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The file is not in the home.
    Missing(Utf8PathBuf),
    /// The file's bytes differ.
    Changed(Utf8PathBuf),
    /// The file's mode differs.
    Mode(Utf8PathBuf),
    /// The home has a generated file the tree no longer emits.
    Extra(Utf8PathBuf),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(p) => write!(f, "missing: {p}"),
            Difference::Changed(p) => write!(f, "changed: {p}"),
            Difference::Mode(p) => write!(f, "mode changed: {p}"),
            Difference::Extra(p) => write!(f, "no longer generated: {p}"),
        }
    }
}

/// Compares `home` with `tree`, without writing anything.
pub fn compare(tree: &OutputTree, home: &Utf8Path) -> Result<Vec<Difference>, Error> {
    let mut out = Vec::new();
    for (path, file) in tree.iter() {
        let on_disk = home.join(path);
        match std::fs::read(&on_disk) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Difference::Missing(path.clone()))
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("failed to read `{on_disk}`: {e}"),
                )
                .into());
            }
            Ok(bytes) if bytes != file.contents => out.push(Difference::Changed(path.clone())),
            Ok(_) => {
                let mode = fs::metadata(&on_disk)?.permissions().mode() & 0o7777;
                if mode != file.mode {
                    out.push(Difference::Mode(path.clone()));
                }
            }
        }
    }
    // Files a previous build generated that this one would not.
    if let Ok(text) = std::fs::read_to_string(home.join(LOCK_FILE))
        && let Ok(lock) = serde_json::from_str::<crate::emit::BuildLock>(&text)
    {
        for path in lock.files.keys() {
            if tree.get(path.as_str()).is_none() {
                out.push(Difference::Extra(path.into()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> OutputTree {
        let mut t = OutputTree::default();
        for (p, c) in files {
            t.insert(*p, *c, 0o644);
        }
        t
    }

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().expect("temp dir");
        let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).expect("utf-8");
        (d, p)
    }

    #[test]
    fn a_failure_while_staging_leaves_the_previous_home_and_no_stage() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        write(&tree(&[(LOCK_FILE, "{}"), ("bin/acoupi", "old")]), &home).expect("first write");
        // `x` as a file and `x/y` under it cannot both exist: staging fails half-way.
        let broken = tree(&[
            (LOCK_FILE, "{}"),
            ("bin/acoupi", "new"),
            ("x", "file"),
            ("x/y", "under a file"),
        ]);
        assert!(write(&broken, &home).is_err());
        assert_eq!(
            std::fs::read_to_string(home.join("bin/acoupi")).expect("old file"),
            "old"
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["home"]);
    }

    #[test]
    fn stale_stages_from_a_crash_are_removed() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        let stale = dir.join(format!("{}999999", stage_prefix(&home)));
        std::fs::create_dir_all(stale.join("bin")).expect("stale stage");
        write(&tree(&[(LOCK_FILE, "{}")]), &home).expect("write");
        assert!(!stale.exists());
    }

    #[test]
    fn an_empty_directory_becomes_a_home_but_a_full_one_does_not() {
        let (_d, dir) = temp();
        let empty = dir.join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        assert!(
            write(&tree(&[(LOCK_FILE, "{}")]), &empty)
                .expect("write")
                .replaced
        );
        let full = dir.join("full");
        std::fs::create_dir(&full).expect("mkdir");
        std::fs::write(full.join("notes.txt"), "mine").expect("write");
        assert!(matches!(
            write(&tree(&[(LOCK_FILE, "{}")]), &full),
            Err(Error::NotAHome(_))
        ));
        let file = dir.join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(
            write(&tree(&[(LOCK_FILE, "{}")]), &file),
            Err(Error::NotADirectory(_))
        ));
    }
}
