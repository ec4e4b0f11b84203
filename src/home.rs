//! The only module that touches the file system for a build: resolves ACOUPI_HOME, writes an
//! [`OutputTree`] into it atomically, and compares a tree with what a home holds.
//!
//! In: a rendered tree and a home path. Out: a home whose generated entries are exactly that
//! tree, next to runtime state that is never touched (`data/`, `log/`, `run/`, `state/`,
//! `config/deployment.json`, `config/secrets.env`). The tree is written into its own build
//! directory and switched in by renaming one symlink, so a failure at any point leaves the
//! previous build in place.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use fs_err::os::unix::fs::OpenOptionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use fs_err as fs;

use crate::emit::{LOCK_FILE, OutputTree};

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
    /// The build directory now current (`.build-<digest>`).
    pub build: String,
    /// The build that was current before, when it differs; it is kept on disk (until the
    /// next build) so that [`switch_back`] can return to it.
    pub previous: Option<String>,
}

/// Checks that `home` is absent, an empty directory, or a home with a `build.lock`.
fn check_target(home: &Utf8Path) -> Result<bool, Error> {
    match fs::symlink_metadata(home) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
        Ok(m) if !m.is_dir() => Err(Error::NotADirectory(home.to_owned())),
        Ok(_) => {
            if fs::symlink_metadata(home.join(LOCK_FILE)).is_ok()
                || fs::read_dir(home)?.next().is_none()
            {
                Ok(true)
            } else {
                Err(Error::NotAHome(home.to_owned()))
            }
        }
    }
}

/// The link every generated entry of the home resolves through.
const CURRENT: &str = ".current";
/// Prefix of the directories holding one build each.
const BUILD_PREFIX: &str = ".build-";

/// Writes `tree` into `home` atomically.
///
/// The files go into a new directory `.build-<digest>` inside the home; every generated entry
/// (`bin`, `units`, `config/program.json`, …) is a symlink through `.current`, and one
/// `rename` of a new `.current` link switches all of them at once. Runtime state (`log/`,
/// `run/`, `state/`, `data/`, `config/deployment.json`, `config/secrets.env`) is never moved
/// or copied, so a running deployment keeps writing to it during a rebuild.
pub fn write(tree: &OutputTree, home: &Utf8Path) -> Result<Written, Error> {
    let exists = check_target(home)?;
    private_dir(home)?;
    for dir in crate::spec::layout::RUNTIME_DIRS {
        if fs::symlink_metadata(home.join(dir)).is_err() {
            private_dir(&home.join(dir))?;
        }
    }
    remove_stale(home, &[])?;
    let previous = current_build(home).filter(|p| p.starts_with(BUILD_PREFIX));
    let digest = crate::emit::sha256_hex(tree.to_text().as_bytes());
    let build_name = format!("{BUILD_PREFIX}{}", &digest[..16]);
    let stage = home.join(format!("{BUILD_PREFIX}stage-{}", std::process::id()));
    let result = (|| -> Result<(), Error> {
        let build = home.join(&build_name);
        if !holds(tree, &build) {
            if fs::symlink_metadata(&stage).is_ok() {
                fs::remove_dir_all(&stage)?;
            }
            fill(tree, &stage)?;
            if fs::symlink_metadata(&build).is_ok() {
                // A damaged copy of this build: replace it (after the switch if it is current).
                let aside = home.join(format!("{BUILD_PREFIX}stage-{}-old", std::process::id()));
                fs::rename(&build, &aside)?;
            }
            fs::rename(&stage, &build)?;
        }
        link_entries(tree, home)?;
        if fs::read_link(home.join(CURRENT)).ok().as_deref()
            != Some(std::path::Path::new(&build_name))
        {
            switch_current(home, &build_name)?;
        }
        Ok(())
    })();
    if result.is_err() && fs::symlink_metadata(&stage).is_ok() {
        // The previous build is still `.current`; only the stage is ours to clean up.
        let _ = fs::remove_dir_all(&stage);
    }
    result?;
    remove_dangling_links(home)?;
    let previous = previous.filter(|p| *p != build_name);
    let mut keep = vec![build_name.as_str()];
    keep.extend(previous.as_deref());
    remove_stale(home, &keep)?;
    Ok(Written {
        files: tree.len(),
        replaced: exists,
        build: build_name,
        previous,
    })
}

/// The build directory `.current` points at, if any.
pub fn current_build(home: &Utf8Path) -> Option<String> {
    fs::read_link(home.join(CURRENT))
        .ok()
        .and_then(|t| t.to_str().map(str::to_owned))
}

/// Makes `build` (a build directory a [`write`] kept, see [`Written::previous`]) current
/// again: its entries are linked (by the file list of its own `build.lock`), `.current` is
/// switched to it with one rename, and links the other build had alone are removed.
pub fn switch_back(home: &Utf8Path, build: &str) -> Result<(), Error> {
    let dir = home.join(build);
    let lock: crate::emit::BuildLock =
        serde_json::from_str(&fs::read_to_string(dir.join(LOCK_FILE))?).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("`{dir}/{LOCK_FILE}`: {e}"),
            )
        })?;
    let mut paths: Vec<Utf8PathBuf> = lock.files.keys().map(Utf8PathBuf::from).collect();
    paths.push(LOCK_FILE.into());
    link_paths(paths.iter(), home)?;
    switch_current(home, build)?;
    remove_dangling_links(home)?;
    Ok(())
}

fn private_dir(path: &Utf8Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {}
        Err(e) => {
            return Err(
                std::io::Error::new(e.kind(), format!("failed to create `{path}`: {e}")).into(),
            );
        }
    }
    if fs::metadata(path)?.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The process umask, read without changing it (Linux reports it in /proc).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

fn fill(tree: &OutputTree, stage: &Utf8Path) -> Result<(), Error> {
    private_dir(stage)?;
    let mask = umask();
    let mut made: std::collections::HashSet<Utf8PathBuf> = std::collections::HashSet::new();
    for (path, file) in tree.iter() {
        let dest = stage.join(path);
        if let Some(dir) = dest.parent()
            && dir != stage
            && made.insert(dir.to_owned())
        {
            fs::create_dir_all(dir)?;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&dest)?;
        f.write_all(&file.contents)?;
        if file.mode & !mask != file.mode {
            // The umask narrowed the mode at creation; set it exactly.
            fs::set_permissions(&dest, std::fs::Permissions::from_mode(file.mode))?;
        }
    }
    Ok(())
}

/// Whether `dir` holds exactly the files of `tree` (bytes and modes): an unchanged rebuild
/// then only re-checks, and writes nothing.
fn holds(tree: &OutputTree, dir: &Utf8Path) -> bool {
    tree.iter().all(|(path, file)| {
        let p = dir.join(path);
        std::fs::read(&p).is_ok_and(|b| b == file.contents)
            && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == file.mode)
    })
}

/// The entries of the home that are links into `.current`: top-level names, except inside
/// `config/`, which also holds runtime state, where each file is linked on its own.
fn entries<'a>(paths: impl Iterator<Item = &'a Utf8PathBuf>) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> = Vec::new();
    for path in paths {
        let mut parts = path.components();
        let first = Utf8PathBuf::from(parts.next().map(|c| c.as_str()).unwrap_or_default());
        let entry = if first == "config" {
            path.clone()
        } else {
            first
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// Makes every generated entry a relative symlink through `.current` (idempotent).
fn link_entries(tree: &OutputTree, home: &Utf8Path) -> Result<(), Error> {
    link_paths(tree.iter().map(|(p, _)| p), home)
}

/// [`link_entries`] for a list of generated paths.
fn link_paths<'a>(
    paths: impl Iterator<Item = &'a Utf8PathBuf>,
    home: &Utf8Path,
) -> Result<(), Error> {
    for entry in entries(paths) {
        let depth = entry.components().count() - 1;
        let target = Utf8PathBuf::from(format!("{}{CURRENT}/{entry}", "../".repeat(depth)));
        let path = home.join(&entry);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        if fs::read_link(&path)
            .ok()
            .is_some_and(|t| t == target.as_std_path())
        {
            continue;
        }
        let tmp = Utf8PathBuf::from(format!("{path}.acoupi-link"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            // An entry from an older layout: a real directory cannot be renamed over.
            fs::remove_dir_all(&path)?;
        }
        fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// Removes links into `.current` whose target the new build no longer has.
fn remove_dangling_links(home: &Utf8Path) -> Result<(), Error> {
    for dir in [home.to_owned(), home.join("config")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let into_current = fs::read_link(&path)
                .is_ok_and(|t| t.components().any(|c| c.as_os_str() == CURRENT));
            if into_current && !path.exists() {
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

/// Points `.current` at `build` with one atomic rename.
fn switch_current(home: &Utf8Path, build: &str) -> Result<(), Error> {
    let tmp = home.join(format!("{CURRENT}.new-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(build, &tmp)?;
    fs::rename(&tmp, home.join(CURRENT))?;
    Ok(())
}

/// Removes builds other than `keep` (none when `keep` is empty) and stages of builds that
/// crashed (those whose process is gone; a concurrent build's stage is left alone).
fn remove_stale(home: &Utf8Path, keep: &[&str]) -> Result<(), Error> {
    let current = fs::read_link(home.join(CURRENT)).ok();
    for entry in fs::read_dir(home)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(BUILD_PREFIX) else {
            continue;
        };
        if let Some(pid) = rest.strip_prefix("stage-") {
            let alive = pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && std::path::Path::new(&format!("/proc/{p}")).exists()
            });
            if !alive {
                fs::remove_dir_all(entry.path())?;
            }
            continue;
        }
        let is_current = current
            .as_deref()
            .is_some_and(|c| c == std::path::Path::new(name));
        if !keep.is_empty() && !keep.contains(&name) && !is_current {
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
    fn stale_stages_and_old_builds_are_removed() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        write(&tree(&[(LOCK_FILE, "{}"), ("config/old.json", "x")]), &home).expect("write");
        let stale = home.join(".build-stage-999999");
        std::fs::create_dir_all(stale.join("bin")).expect("stale stage");
        write(&tree(&[(LOCK_FILE, "{\"v\": 2}")]), &home).expect("write");
        assert!(!stale.exists());
        let builds = |home: &Utf8Path| -> Vec<String> {
            let mut b: Vec<String> = std::fs::read_dir(home)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(BUILD_PREFIX))
                .collect();
            b.sort();
            b
        };
        // The previous build is kept for a switch back; the one before it goes.
        assert_eq!(builds(&home).len(), 2, "{:?}", builds(&home));
        // The file the new build no longer has is gone, link included.
        assert!(std::fs::symlink_metadata(home.join("config/old.json")).is_err());
        assert_eq!(
            std::fs::read_to_string(home.join(LOCK_FILE)).expect("lock"),
            "{\"v\": 2}"
        );
        let w = write(&tree(&[(LOCK_FILE, "{\"v\": 3}")]), &home).expect("write");
        let mut expected = vec![w.build.clone(), w.previous.clone().expect("previous")];
        expected.sort();
        assert_eq!(builds(&home), expected);
    }

    #[test]
    fn a_switch_back_restores_the_previous_build_and_its_links() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        let lock = |files: &[&str]| {
            let entries: Vec<String> = files
                .iter()
                .map(|f| format!("\"{f}\": {{\"sha256\": \"x\", \"mode\": \"0644\"}}"))
                .collect();
            format!(
                "{{\"format\": 1, \"acoupi_version\": \"0\", \"source\": {{\"path\": \"m\", \"sha256\": \"x\"}}, \"files\": {{{}}}}}",
                entries.join(", ")
            )
        };
        let old_lock = lock(&["bin/acoupi", "config/old.json"]);
        let first = write(
            &tree(&[
                (LOCK_FILE, &old_lock),
                ("bin/acoupi", "1"),
                ("config/old.json", "o"),
            ]),
            &home,
        )
        .expect("write");
        let new_lock = lock(&["bin/acoupi", "units/a.service"]);
        let second = write(
            &tree(&[
                (LOCK_FILE, &new_lock),
                ("bin/acoupi", "2"),
                ("units/a.service", "u"),
            ]),
            &home,
        )
        .expect("write");
        assert_eq!(second.previous.as_deref(), Some(first.build.as_str()));
        switch_back(&home, &first.build).expect("switch back");
        assert_eq!(current_build(&home), Some(first.build));
        let read = |p: &str| std::fs::read_to_string(home.join(p)).ok();
        assert_eq!(read("bin/acoupi").as_deref(), Some("1"));
        assert_eq!(read("config/old.json").as_deref(), Some("o"));
        assert!(std::fs::symlink_metadata(home.join("units")).is_err());
    }

    #[test]
    fn a_rebuild_repairs_a_tampered_file() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        let t = tree(&[(LOCK_FILE, "{}"), ("bin/acoupi", "launcher")]);
        write(&t, &home).expect("write");
        std::fs::write(home.join("bin/acoupi"), "tampered").expect("tamper through the link");
        write(&t, &home).expect("rewrite");
        assert_eq!(
            std::fs::read_to_string(home.join("bin/acoupi")).expect("read"),
            "launcher"
        );
    }

    #[test]
    fn runtime_state_is_never_touched() {
        let (_d, dir) = temp();
        let home = dir.join("home");
        write(&tree(&[(LOCK_FILE, "{}"), ("bin/acoupi", "1")]), &home).expect("write");
        std::fs::create_dir_all(home.join("data/recordings")).expect("data");
        std::fs::write(home.join("data/recordings/a.wav"), "RIFF").expect("wav");
        let inode = |p: &Utf8Path| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("meta"))
        };
        let before = inode(&home.join("data/recordings/a.wav"));
        write(&tree(&[(LOCK_FILE, "{}"), ("bin/acoupi", "2")]), &home).expect("rewrite");
        assert_eq!(inode(&home.join("data/recordings/a.wav")), before);
        assert_eq!(
            std::fs::read_to_string(home.join("bin/acoupi")).expect("new"),
            "2"
        );
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
