//! The Python acoupi's systemd user units, found, stopped, disabled and moved aside so ours can
//! take over (`acoupi deploy --replace-python-acoupi`), and put back when our deploy fails.
//!
//! In: the user unit directory and the service manager. Out: the units found (`acoupi.service`
//! and `acoupi-beat.service`, written by the original's `acoupi setup`; the beat unit has the
//! name of ours), and, after [`replace`], their files in `<dir>/python-acoupi/`, a directory
//! systemd does not read, with what [`restore`] needs to undo it.

use camino::{Utf8Path, Utf8PathBuf};

use super::systemd::{ServiceManager, UnitState};
use super::unit_dir::{self, Entry};

/// The original's units and the description line that marks each as its own.
pub const UNITS: [(&str, &str); 2] = [
    ("acoupi.service", "Description=Acoupi Service"),
    (
        "acoupi-beat.service",
        "Description=Acoupi Scheduler Service",
    ),
];

/// The folder of the unit directory the replaced units are moved to.
pub const SET_ASIDE: &str = "python-acoupi";

/// One of the original's units.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its name.
    pub unit: String,
    /// Its file in the unit directory.
    pub path: Utf8PathBuf,
    /// What systemd said about it.
    pub state: UnitState,
}

/// Units replaced: what [`restore`] puts back.
#[derive(Debug, Clone)]
pub struct Replaced {
    /// The units, with their state before.
    pub units: Vec<Found>,
    /// Each file moved: from, to.
    pub moved: Vec<(Utf8PathBuf, Utf8PathBuf)>,
}

/// Whether the file at `path` is one of the original's units: one of their names, with the
/// description line the original writes.
pub fn is_original(path: &Utf8Path) -> bool {
    let Some(marker) = UNITS
        .iter()
        .find(|(unit, _)| path.file_name() == Some(*unit))
        .map(|(_, marker)| *marker)
    else {
        return false;
    };
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == marker))
}

/// The original's units in `dir` (not links to `home`'s own units). A file with one of their
/// names that is not the original's is an error: it is not ours to stop.
pub fn find(
    dir: &Utf8Path,
    home: &Utf8Path,
    manager: &dyn ServiceManager,
) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for (unit, marker) in UNITS {
        if !matches!(unit_dir::entry(dir, home, unit), Entry::Foreign(_)) {
            continue;
        }
        let path = dir.join(unit);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        if !text.lines().any(|l| l.trim() == marker) {
            return Err(format!(
                "`{path}` is not a unit of the Python acoupi (it has no `{marker}` line): move it away yourself, then deploy again"
            ));
        }
        let state = manager.show(unit).map_err(|e| e.to_string())?;
        found.push(Found {
            unit: unit.to_owned(),
            path,
            state,
        });
    }
    Ok(found)
}

/// Stops and disables `found`, moves their files into `<dir>/python-acoupi/` and reloads
/// systemd. On a failure, what was done is undone and the error says what failed.
pub fn replace(
    manager: &dyn ServiceManager,
    dir: &Utf8Path,
    found: &[Found],
) -> Result<Replaced, String> {
    let mut replaced = Replaced {
        units: found.to_vec(),
        moved: Vec::new(),
    };
    let aside = dir.join(SET_ASIDE);
    for f in found {
        let to = aside.join(&f.unit);
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(format!(
                "`{to}` already exists (from an earlier replacement?): move it away, then deploy again; nothing was changed"
            ));
        }
    }
    let units: Vec<String> = found.iter().map(|f| f.unit.clone()).collect();
    manager
        .stop(&units)
        .map_err(|e| format!("could not stop the Python acoupi: {e}; nothing was changed"))?;
    let undo = |replaced: &Replaced, e: String| {
        let failures = restore(manager, dir, replaced);
        if failures.is_empty() {
            format!("{e}; the Python acoupi's units were put back and started again")
        } else {
            format!(
                "{e}; putting the Python acoupi's units back failed: {}",
                failures.join("; ")
            )
        }
    };
    for f in found {
        if let Err(e) = manager.disable(&f.unit) {
            return Err(undo(
                &replaced,
                format!("could not disable `{}`: {e}", f.unit),
            ));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&aside) {
        return Err(undo(&replaced, format!("cannot create `{aside}`: {e}")));
    }
    for f in found {
        let to = aside.join(&f.unit);
        if let Err(e) = std::fs::rename(&f.path, &to) {
            return Err(undo(
                &replaced,
                format!("cannot move `{}` to `{to}`: {e}", f.path),
            ));
        }
        replaced.moved.push((f.path.clone(), to));
    }
    if let Err(e) = manager.daemon_reload() {
        return Err(undo(&replaced, format!("could not reload systemd: {e}")));
    }
    Ok(replaced)
}

/// Puts the replaced units back: moves their files back, reloads, enables them and starts the
/// ones that were running. Returns what could not be done (empty when all was).
pub fn restore(manager: &dyn ServiceManager, dir: &Utf8Path, replaced: &Replaced) -> Vec<String> {
    let mut failures = Vec::new();
    for (from, to) in &replaced.moved {
        if let Err(e) = std::fs::rename(to, from) {
            failures.push(format!("cannot move `{to}` back to `{from}`: {e}"));
        }
    }
    let aside = dir.join(SET_ASIDE);
    // Only removed when empty: anything else in it is left alone.
    let _ = std::fs::remove_dir(&aside);
    if let Err(e) = manager.daemon_reload() {
        failures.push(e.to_string());
    }
    for f in &replaced.units {
        if let Err(e) = manager.enable(&f.unit) {
            failures.push(e.to_string());
        }
    }
    let running: Vec<String> = replaced
        .units
        .iter()
        .filter(|f| f.state.is_engaged())
        .map(|f| f.unit.clone())
        .collect();
    if !running.is_empty()
        && let Err(e) = manager.start(&running, false)
    {
        failures.push(e.to_string());
    }
    failures
}
