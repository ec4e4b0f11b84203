//! The user unit directory (`$XDG_CONFIG_HOME/systemd/user`, else
//! `~/.config/systemd/user`) and the links from it to a home's `units/`.
//!
//! In: a home's unit files and the directory. Out: one symlink per unit,
//! `<dir>/<unit>` → `<home>/units/<unit>` (the home's own stable entry, so a rebuild of the
//! home changes what the links point at, after a `daemon-reload`). What `systemctl link`
//! does, done here so every link made can be undone exactly and a foreign file of the same
//! name is never replaced.

use camino::{Utf8Path, Utf8PathBuf};

/// Why linking or unlinking failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("no user unit directory: set `XDG_CONFIG_HOME` or `HOME`")]
    NoDirectory,
    /// A file system operation failed.
    #[error("cannot {what} `{path}`: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: Utf8PathBuf,
        /// The OS error.
        reason: String,
    },
    /// Another file holds the unit's name.
    #[error("`{path}` exists and is not a link to this home's unit{points}: {advice}")]
    Foreign {
        /// The entry in the unit directory.
        path: Utf8PathBuf,
        /// ` (it points at …)` when it is a link.
        points: String,
        /// What to do about it.
        advice: &'static str,
    },
}

fn io(what: &'static str, path: &Utf8Path, e: std::io::Error) -> Error {
    Error::Io {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The user unit directory: `$XDG_CONFIG_HOME/systemd/user` when that variable holds an
/// absolute path, else `$HOME/.config/systemd/user`.
pub fn user_unit_dir() -> Result<Utf8PathBuf, Error> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| v.starts_with('/'))
            .map(Utf8PathBuf::from)
    };
    if let Some(config) = var("XDG_CONFIG_HOME") {
        return Ok(config.join("systemd/user"));
    }
    var("HOME")
        .map(|h| h.join(".config/systemd/user"))
        .ok_or(Error::NoDirectory)
}

/// What an entry of the unit directory is, for a unit of `home`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Nothing there.
    Absent,
    /// A link to this home's unit.
    Ours,
    /// Something else.
    Foreign(String),
}

/// The link target for `unit` of `home`.
pub fn target(home: &Utf8Path, unit: &str) -> Utf8PathBuf {
    home.join("units").join(unit)
}

/// What `<dir>/<unit>` is.
pub fn entry(dir: &Utf8Path, home: &Utf8Path, unit: &str) -> Entry {
    let path = dir.join(unit);
    match std::fs::read_link(&path) {
        Ok(t) if t == target(home, unit).as_std_path() => Entry::Ours,
        Ok(t) => Entry::Foreign(format!(" (it points at `{}`)", t.display())),
        Err(_) if std::fs::symlink_metadata(&path).is_ok() => Entry::Foreign(String::new()),
        Err(_) => Entry::Absent,
    }
}

/// Links every unit of `home` into `dir`, creating `dir` when needed. Returns the links it
/// created (links already there and pointing at this home are kept and not returned). On an
/// error nothing it created is left behind.
pub fn link(dir: &Utf8Path, home: &Utf8Path, units: &[String]) -> Result<Vec<Utf8PathBuf>, Error> {
    for unit in units {
        if let Entry::Foreign(points) = entry(dir, home, unit) {
            let path = dir.join(unit);
            let advice = if super::python_units::is_original(&path) {
                "it is the Python acoupi's unit; `acoupi deploy --replace-python-acoupi` stops it and sets it aside (and puts it back if our deploy fails)"
            } else {
                "stop the deployment it belongs to, or remove it"
            };
            return Err(Error::Foreign {
                path,
                points,
                advice,
            });
        }
        let source = target(home, unit);
        if let Err(e) = std::fs::metadata(&source) {
            return Err(io("read", &source, e));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let mut created = Vec::new();
    for unit in units {
        if entry(dir, home, unit) == Entry::Ours {
            continue;
        }
        let path = dir.join(unit);
        if let Err(e) = std::os::unix::fs::symlink(target(home, unit), &path) {
            let _ = unlink(&created);
            return Err(io("link", &path, e));
        }
        created.push(path);
    }
    Ok(created)
}

/// Removes the links of `home`'s units from `dir` (only links to this home); returns the
/// ones removed.
pub fn unlink_units(
    dir: &Utf8Path,
    home: &Utf8Path,
    units: &[String],
) -> Result<Vec<Utf8PathBuf>, Error> {
    let ours: Vec<Utf8PathBuf> = units
        .iter()
        .filter(|u| entry(dir, home, u) == Entry::Ours)
        .map(|u| dir.join(u))
        .collect();
    unlink(&ours)?;
    Ok(ours)
}

/// Removes `links` (absent ones are fine).
pub fn unlink(links: &[Utf8PathBuf]) -> Result<(), Error> {
    for path in links {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().expect("temp dir");
        let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).expect("utf-8");
        (d, p)
    }

    #[test]
    fn links_are_made_kept_and_removed_exactly() {
        let (_d, root) = temp();
        let home = root.join("home with 'q' $x %h");
        std::fs::create_dir_all(home.join("units")).expect("units");
        let units = vec!["a.service".to_owned(), "b.target".to_owned()];
        for u in &units {
            std::fs::write(home.join("units").join(u), "[Unit]\n").expect("unit");
        }
        let dir = root.join("cfg/systemd/user");
        let made = link(&dir, &home, &units).expect("links");
        assert_eq!(made.len(), 2);
        assert_eq!(entry(&dir, &home, "a.service"), Entry::Ours);
        // Linking again creates nothing new.
        assert!(link(&dir, &home, &units).expect("relink").is_empty());
        assert_eq!(unlink_units(&dir, &home, &units).expect("unlink").len(), 2);
        assert_eq!(entry(&dir, &home, "a.service"), Entry::Absent);
    }

    #[test]
    fn a_foreign_entry_is_refused_and_nothing_is_left() {
        let (_d, root) = temp();
        let home = root.join("home");
        std::fs::create_dir_all(home.join("units")).expect("units");
        let units = vec!["a.service".to_owned(), "b.service".to_owned()];
        for u in &units {
            std::fs::write(home.join("units").join(u), "[Unit]\n").expect("unit");
        }
        let dir = root.join("user");
        std::fs::create_dir_all(&dir).expect("dir");
        std::os::unix::fs::symlink("/elsewhere/b.service", dir.join("b.service")).expect("link");
        let e = link(&dir, &home, &units).expect_err("foreign");
        assert!(e.to_string().contains("/elsewhere/b.service"), "{e}");
        assert_eq!(entry(&dir, &home, "a.service"), Entry::Absent);
    }

    #[test]
    fn a_unit_directory_under_a_file_fails_cleanly() {
        let (_d, root) = temp();
        let home = root.join("home");
        std::fs::create_dir_all(home.join("units")).expect("units");
        std::fs::write(home.join("units/a.service"), "[Unit]\n").expect("unit");
        std::fs::write(root.join("file"), "x").expect("file");
        let e = link(
            &root.join("file/systemd/user"),
            &home,
            &["a.service".to_owned()],
        )
        .expect_err("not a directory");
        assert!(e.to_string().starts_with("cannot create"), "{e}");
    }
}
