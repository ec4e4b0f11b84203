//! Applying a rebuild to a deployed home: restart the units it changed, and go back to the
//! previous build when one of them fails to come up.
//!
//! In: the home just rebuilt (its new and its previous build directory, see
//! [`crate::home::Written`]), the user unit directory and the service manager. Out: what was
//! restarted, or, when a unit did not become ready, the sensor back on its previous build
//! with its old units restarted, and what went wrong. A home that is not deployed, or whose
//! rebuild changed nothing the units read, is left alone.
//!
//! Order: link the units the new build adds; stop the ones it removes (workers drain) and
//! unlink them; reload systemd when a unit file changed; restart the changed units (systemd
//! stops each first, and a worker finishes its in-flight tasks on SIGTERM before it exits)
//! and start the added ones, then wait, as `deploy` does, until they are up, one fails, or
//! the settle time passes (a worker still waiting for its broker is not a failure). On a
//! failure the same steps run backwards against the previous build, which `.current` points
//! at again after one rename.

use std::time::Duration;

use camino::Utf8Path;

use super::changes::{self, Changes};
use super::deploy::settle;
use super::systemd::{ServiceManager, UnitState};
use super::{deployment, sandbox, unit_dir};
use crate::spec::layout::TARGET_UNIT;

/// Where to apply.
pub struct Apply<'a> {
    /// The home (absolute).
    pub home: &'a Utf8Path,
    /// The user unit directory.
    pub unit_dir: &'a Utf8Path,
    /// The user's service manager.
    pub manager: &'a dyn ServiceManager,
    /// How long to wait for the restarted units to become ready.
    pub settle: Duration,
    /// How often to look while waiting.
    pub poll: Duration,
}

/// What applying did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The home is not deployed: nothing runs from it.
    NotDeployed,
    /// The units already run what the new build describes.
    UpToDate,
    /// `--no-apply`: the units were left running; these would need a restart.
    Left {
        /// What changed.
        changes: Changes,
    },
    /// The changed units were restarted and are ready.
    Applied {
        /// What changed.
        changes: Changes,
        /// The restarted and added units, as they were when they settled.
        units: Vec<(String, UnitState)>,
    },
}

/// Why applying did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The builds could not be compared; nothing was restarted.
    #[error("cannot compare the new build with the running one: {0}")]
    Compare(String),
    /// A step failed or a unit did not become ready; the previous build was restored.
    #[error("{}", rolled_back_message(.0))]
    RolledBack(RolledBack),
}

/// A failed apply and the way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The step that failed, e.g. ``restart `acoupi-beat.service` ``.
    pub step: String,
    /// Why.
    pub cause: String,
    /// The build restored as current.
    pub restored: String,
    /// Steps of the way back that failed.
    pub failures: Vec<String>,
}

fn rolled_back_message(r: &RolledBack) -> String {
    let mut text = format!(
        "could not {}: {}; the home was switched back to its previous build `{}` and the old units restarted",
        r.step, r.cause, r.restored
    );
    if !r.failures.is_empty() {
        text.push_str(&format!(
            ", but part of the way back failed: {}",
            r.failures.join("; ")
        ));
    }
    text
}

/// Whether `home` is deployed: an active deployment and its target linked from `unit_dir`.
pub fn is_deployed(home: &Utf8Path, unit_dir: &Utf8Path) -> bool {
    let active = deployment::read(home)
        .ok()
        .flatten()
        .is_some_and(|d| d.is_active());
    active && unit_dir::entry(unit_dir, home, TARGET_UNIT) == unit_dir::Entry::Ours
}

/// Applies the switch from build `previous` to build `current` (directory names in the
/// home); see the module documentation. With `restart` false the units are left running
/// ([`Outcome::Left`]).
///
/// Either way, a unit that reads nothing that changed runs what the new build describes:
/// its record of the build it runs (`lifecycle::running`) moves on to `current`, so that
/// `acoupi status` flags only the units whose spec really differs.
pub fn apply(
    a: &Apply<'_>,
    previous: Option<&str>,
    current: &str,
    restart: bool,
) -> Result<Outcome, Error> {
    if !is_deployed(a.home, a.unit_dir) {
        return Ok(Outcome::NotDeployed);
    }
    let Some(previous) = previous else {
        return Ok(Outcome::UpToDate);
    };
    let read =
        |b: &str| changes::read_build(&a.home.join(b)).map_err(|e| Error::Compare(e.to_string()));
    let changes = changes::changes(&read(previous)?, &read(current)?);
    for unit in &changes.unchanged {
        if super::running::read(a.home, unit).as_deref() == Some(previous) {
            // Best effort: a record left behind only makes status flag the unit.
            let _ = super::running::record(a.home, unit, current);
        }
    }
    if changes.is_empty() {
        return Ok(Outcome::UpToDate);
    }
    if !restart {
        return Ok(Outcome::Left { changes });
    }
    match forward(a, &changes) {
        Ok(units) => Ok(Outcome::Applied { changes, units }),
        Err((step, cause)) => Err(Error::RolledBack(back(a, &changes, previous, step, cause))),
    }
}

/// The steps towards the new build; the failing step and why.
fn forward(a: &Apply<'_>, c: &Changes) -> Result<Vec<(String, UnitState)>, (String, String)> {
    let m = a.manager;
    fn fail(step: &str) -> impl FnOnce(String) -> (String, String) + '_ {
        move |e| (step.to_owned(), e)
    }
    if !c.added.is_empty() {
        unit_dir::link(a.unit_dir, a.home, &c.added)
            .map_err(|e| e.to_string())
            .map_err(fail("link the new units"))?;
        if reduced(a, c) {
            sandbox::write_reduced(a.unit_dir, &c.added)
                .map_err(|e| e.to_string())
                .map_err(fail("reduce the new units' sandbox"))?;
        }
    }
    if !c.removed.is_empty() {
        m.stop(&c.removed)
            .map_err(|e| e.to_string())
            .map_err(fail("stop the removed units"))?;
        unit_dir::unlink_units(a.unit_dir, a.home, &c.removed)
            .map_err(|e| e.to_string())
            .map_err(fail("unlink the removed units"))?;
        sandbox::remove(a.unit_dir, &c.removed)
            .map_err(|e| e.to_string())
            .map_err(fail("remove the removed units' drop-ins"))?;
    }
    if c.reload || !c.added.is_empty() || !c.removed.is_empty() {
        m.daemon_reload()
            .map_err(|e| e.to_string())
            .map_err(fail("reload the user's systemd"))?;
    }
    let restart = c.units();
    if !restart.is_empty() {
        m.restart(&restart, false)
            .map_err(|e| e.to_string())
            .map_err(fail(&format!("restart {}", names(&restart))))?;
    }
    if !c.added.is_empty() {
        m.start(&c.added, false)
            .map_err(|e| e.to_string())
            .map_err(fail(&format!("start {}", names(&c.added))))?;
    }
    let mut watched = restart;
    watched.extend(c.added.iter().cloned());
    settle(m, &watched, a.settle, a.poll).map_err(fail("start the changed units"))
}

/// Whether the deployment runs with the reduced sandbox (a drop-in beside a kept unit).
fn reduced(a: &Apply<'_>, c: &Changes) -> bool {
    c.restart
        .iter()
        .map(|(u, _)| u)
        .chain(c.removed.iter())
        .any(|u| sandbox::drop_in(a.unit_dir, u).exists())
}

/// Back to `previous`: switch the home, undo the unit changes, restart the old units.
fn back(a: &Apply<'_>, c: &Changes, previous: &str, step: String, cause: String) -> RolledBack {
    let m = a.manager;
    let mut failures = Vec::new();
    let mut note = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(format!("{what}: {e}"));
        }
    };
    note(
        "switch the home back",
        crate::home::switch_back(a.home, previous).map_err(|e| e.to_string()),
    );
    if !c.added.is_empty() {
        note(
            "stop the new units",
            m.stop(&c.added).map_err(|e| e.to_string()),
        );
        note(
            "unlink the new units",
            unit_dir::unlink_units(a.unit_dir, a.home, &c.added)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
        note(
            "remove the new units' drop-ins",
            sandbox::remove(a.unit_dir, &c.added)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    if !c.removed.is_empty() {
        note(
            "link the removed units again",
            unit_dir::link(a.unit_dir, a.home, &c.removed)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    if c.reload || !c.added.is_empty() || !c.removed.is_empty() {
        note(
            "reload the user's systemd",
            m.daemon_reload().map_err(|e| e.to_string()),
        );
    }
    let mut old = c.units();
    old.extend(c.removed.iter().cloned());
    if !old.is_empty() {
        note(
            &format!("restart {}", names(&old)),
            m.restart(&old, false).map_err(|e| e.to_string()),
        );
        note(
            "start the old units",
            settle(m, &old, a.settle, a.poll).map(drop),
        );
    }
    RolledBack {
        step,
        cause,
        restored: previous.to_owned(),
        failures,
    }
}

fn names(units: &[String]) -> String {
    units
        .iter()
        .map(|u| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
