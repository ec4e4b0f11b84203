//! Deploying a built home and stopping it again, step by step, undoing the steps taken when a
//! later one fails.
//!
//! In: a [`Target`] (the home, its program, the user unit directory and the service
//! manager). Out: a running deployment recorded in `config/deployment.json`, or the step that
//! failed with everything before it undone. Refusals (a modified home, a home built by
//! another acoupi, a deployment already running, nothing to stop) happen before any step.

use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use super::deployment::{self, Deployment};
use super::preflight::{self, Finding};
use super::sandbox::{self, Profile};
use super::systemd::{ServiceManager, UnitState};
use super::{unit_dir, verify};
use crate::spec::layout::{BEAT_UNIT, TARGET_UNIT, worker_unit};
use crate::spec::{Broker, Program};

/// What the lifecycle operations act on.
pub struct Target<'a> {
    /// The home (absolute).
    pub home: &'a Utf8Path,
    /// Its compiled program.
    pub program: &'a Program,
    /// The user unit directory.
    pub unit_dir: &'a Utf8Path,
    /// The user's service manager.
    pub manager: &'a dyn ServiceManager,
}

impl Target<'_> {
    /// The service units: one per worker, in worker order, then beat.
    pub fn services(&self) -> Vec<String> {
        service_units(self.program)
    }

    /// Every unit: the services, then the target.
    pub fn all_units(&self) -> Vec<String> {
        let mut all = self.services();
        all.push(TARGET_UNIT.to_owned());
        all
    }
}

/// The service units of `program`: one per worker, in worker order, then beat.
pub fn service_units(program: &Program) -> Vec<String> {
    let mut units: Vec<String> = program
        .workers
        .iter()
        .map(|w| worker_unit(&w.name))
        .collect();
    units.push(BEAT_UNIT.to_owned());
    units
}

/// Why an operation did not happen, or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Refused before any step was taken.
    #[error("{0}")]
    Refused(String),
    /// A step failed; the steps before it were undone.
    #[error("{}", step_message(.0))]
    Step(StepFailure),
    /// The preflight found problems that would make the units fail; nothing was changed.
    #[error("{}", preflight_message(.0))]
    Preflight(Vec<Finding>),
}

fn preflight_message(findings: &[Finding]) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.severity == preflight::Severity::Error)
        .count();
    format!(
        "the preflight found {errors} problem(s) that would make the units fail (above); nothing was changed: fix them, then check again with `acoupi deploy --check`"
    )
}

/// A step that failed, and what was undone because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The step, e.g. ``enable `acoupi.target` ``.
    pub step: String,
    /// Why it failed.
    pub cause: String,
    /// The undo actions that ran, in order.
    pub undone: Vec<String>,
    /// Undo actions that failed, with why.
    pub undo_failures: Vec<String>,
}

fn step_message(f: &StepFailure) -> String {
    let mut text = format!("could not {}: {}", f.step, f.cause);
    if f.undone.is_empty() {
        text.push_str("; nothing had been changed");
    } else {
        text.push_str(&format!("; undone: {}", f.undone.join(", ")));
    }
    if !f.undo_failures.is_empty() {
        text.push_str(&format!("; could not undo: {}", f.undo_failures.join("; ")));
    }
    text
}

type UndoFn<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;

/// The undo actions of the steps taken so far, run in reverse order when a step fails.
struct Rollback<'a> {
    undo: Vec<(String, UndoFn<'a>)>,
}

impl<'a> Rollback<'a> {
    fn new() -> Self {
        Self { undo: Vec::new() }
    }

    /// Registers how to undo the step just taken; `label` says what undoing did.
    fn push(&mut self, label: impl Into<String>, f: impl FnOnce() -> Result<(), String> + 'a) {
        self.undo.push((label.into(), Box::new(f)));
    }

    /// `step` failed with `cause`: undoes everything and describes it.
    fn fail(self, step: impl Into<String>, cause: impl std::fmt::Display) -> Error {
        let mut undone = Vec::new();
        let mut undo_failures = Vec::new();
        for (label, f) in self.undo.into_iter().rev() {
            match f() {
                Ok(()) => undone.push(label),
                Err(e) => undo_failures.push(format!("{label}: {e}")),
            }
        }
        Error::Step(StepFailure {
            step: step.into(),
            cause: cause.to_string(),
            undone,
            undo_failures,
        })
    }
}

/// How long to wait for units to come up: `ACOUPI_DEPLOY_SETTLE_SECS`, default 10 seconds.
pub fn settle_time() -> Duration {
    Duration::from_secs(
        std::env::var("ACOUPI_DEPLOY_SETTLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    )
}

/// How often to look at the units while waiting for them.
pub const POLL: Duration = Duration::from_millis(250);

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The deployment's name [default: the program's].
    pub name: Option<String>,
    /// Its location [default: the program's].
    pub location: Option<(f64, f64)>,
    /// How long to wait for the units to come up before reporting the ones still starting.
    pub settle: Duration,
    /// How often to look while waiting.
    pub poll: Duration,
    /// The sandbox the units run in.
    pub sandbox: Profile,
    /// How to run the preflight (its sandbox is `sandbox`).
    pub preflight: preflight::Options,
}

/// A deployment that started.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The deployment written to `config/deployment.json`.
    pub deployment: Deployment,
    /// The links made in the unit directory.
    pub linked: Vec<Utf8PathBuf>,
    /// The sandbox the units run in.
    pub sandbox: Profile,
    /// Each service unit and its state when deploy returned.
    pub units: Vec<(String, UnitState)>,
    /// The user whose lingering was checked.
    pub user: String,
    /// The preflight's warnings (lingering off, a broker not answering yet, …).
    pub warnings: Vec<Finding>,
}

/// Refuses a home that must not be deployed; returns nothing when it may be.
fn check_deployable(t: &Target<'_>) -> Result<(), Error> {
    verify::verify(t.home).map_err(|e| Error::Refused(e.to_string()))?;
    if matches!(t.program.broker, Broker::Memory) {
        return Err(Error::Refused(format!(
            "program `{}` uses the in-process broker, which only exists inside `acoupi run`; the units need RabbitMQ: set `broker \"amqp://…\"` in the manifest and rebuild",
            t.program.name
        )));
    }
    if let Some(d) = deployment::read(t.home).map_err(|e| Error::Refused(e.to_string()))?
        && d.is_active()
    {
        return Err(Error::Refused(format!(
            "`{}` is already deployed (deployment `{}`, started {}): stop it first with `acoupi stop`",
            t.home, d.name, d.started_on
        )));
    }
    let state = t
        .manager
        .show(TARGET_UNIT)
        .map_err(|e| Error::Refused(e.to_string()))?;
    if state.is_engaged() {
        return Err(Error::Refused(format!(
            "`{TARGET_UNIT}` is already {} (another acoupi home may be deployed): stop that deployment first with `acoupi stop --home …`",
            state.active_state
        )));
    }
    Ok(())
}

/// What [`deploy`] refuses before taking any step: a home that must not be deployed, or a
/// preflight error. Returns the preflight's warnings. Changes nothing.
pub fn precheck(t: &Target<'_>, options: &DeployOptions) -> Result<Vec<Finding>, Error> {
    check_deployable(t)?;
    let preflight_options = preflight::Options {
        sandbox: options.sandbox,
        ..options.preflight.clone()
    };
    let findings = preflight::preflight(t, &preflight_options);
    if preflight::has_errors(&findings) {
        return Err(Error::Preflight(findings));
    }
    Ok(findings)
}

/// Deploys: runs the preflight (refusing, with nothing changed, when it finds an error), links the units (with the reduced sandbox's drop-ins when asked for, and without
/// any left from before otherwise), reloads, records the deployment (before the units start,
/// so their first recordings are filed under it), enables and starts `acoupi.target` and waits
/// for the units to start. Any failure undoes every step taken.
pub fn deploy(t: &Target<'_>, options: &DeployOptions) -> Result<Deployed, Error> {
    let warnings = precheck(t, options)?;
    let preflight_options = preflight::Options {
        sandbox: options.sandbox,
        ..options.preflight.clone()
    };
    let services = t.services();
    let all = t.all_units();
    let m = t.manager;
    let mut rollback = Rollback::new();

    let linked = match unit_dir::link(t.unit_dir, t.home, &all) {
        Ok(l) => l,
        Err(e) => return Err(rollback.fail(format!("link the units into `{}`", t.unit_dir), e)),
    };
    // Undone in reverse: the links go first, then systemd forgets them.
    rollback.push("systemd reloaded", move || {
        m.daemon_reload().map_err(|e| e.to_string())
    });
    let to_unlink = linked.clone();
    rollback.push(format!("units unlinked from `{}`", t.unit_dir), move || {
        unit_dir::unlink(&to_unlink).map_err(|e| e.to_string())
    });
    match options.sandbox {
        Profile::Reduced => match sandbox::write_reduced(t.unit_dir, &services) {
            Ok(written) => rollback.push("sandbox drop-ins removed", move || {
                sandbox::remove_written(&written).map_err(|e| e.to_string())
            }),
            Err(e) => return Err(rollback.fail("reduce the sandbox", e)),
        },
        // Drop-ins left by an earlier deployment would reduce the sandbox unasked.
        Profile::Full => {
            if let Err(e) = sandbox::remove(t.unit_dir, &services) {
                return Err(rollback.fail("remove the reduced sandbox's drop-ins", e));
            }
        }
    }
    if let Err(e) = m.daemon_reload() {
        return Err(rollback.fail("reload the user's systemd", e));
    }
    let (latitude, longitude) = match options.location {
        Some((lat, lon)) => (Some(lat), Some(lon)),
        None => match t.program.location {
            Some(l) => (Some(l.latitude), Some(l.longitude)),
            None => (None, None),
        },
    };
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| t.program.name.clone());
    let record = Deployment::start(name, latitude, longitude);
    // Recorded before the units start: the workers file their first recordings under it.
    let previous = deployment::read(t.home).ok().flatten();
    if let Err(e) = deployment::write(t.home, &record) {
        return Err(rollback.fail("record the deployment", e));
    }
    let home = t.home;
    rollback.push("the deployment record restored", move || {
        match &previous {
            Some(d) => deployment::write(home, d),
            None => deployment::remove(home),
        }
        .map_err(|e| e.to_string())
    });
    if let Err(e) = m.enable(TARGET_UNIT) {
        return Err(rollback.fail(format!("enable `{TARGET_UNIT}`"), e));
    }
    rollback.push(format!("`{TARGET_UNIT}` disabled"), move || {
        m.disable(TARGET_UNIT).map_err(|e| e.to_string())
    });
    if let Err(e) = m.start(&[TARGET_UNIT.to_owned()], false) {
        return Err(rollback.fail(format!("start `{TARGET_UNIT}`"), e));
    }
    let to_stop = all.clone();
    rollback.push("units stopped", move || {
        m.stop(&to_stop).map_err(|e| e.to_string())
    });
    let units = match settle(m, &services, options.settle, options.poll) {
        Ok(u) => u,
        Err(e) => return Err(rollback.fail("start the units", e)),
    };
    Ok(Deployed {
        deployment: record,
        linked,
        sandbox: options.sandbox,
        units,
        user: preflight_options.user,
        warnings,
    })
}

/// Records the end of `d` in the metadata store too, when the store exists (best effort: the
/// deployment file is the record of truth; a store that cannot take it is reported, and its
/// row is updated the next time the deployment is written there).
fn end_in_store(t: &Target<'_>, d: &Deployment) {
    let path = &t.program.paths.metadata;
    if !path.exists() {
        return;
    }
    let ended = d.to_data().map_err(|e| e.to_string()).and_then(|d| {
        let mut store = crate::store::Store::open(path).map_err(|e| e.to_string())?;
        store.upsert_deployment(&d).map_err(|e| e.to_string())
    });
    if let Err(e) = ended {
        tracing::warn!(error = %e, "the deployment ended, but the metadata store could not record it");
    }
}

/// Waits until every unit is up, one failed to start, or `settle` passed; returns the states
/// seen last, or which unit failed.
pub fn settle(
    m: &dyn ServiceManager,
    units: &[String],
    settle: Duration,
    poll: Duration,
) -> Result<Vec<(String, UnitState)>, String> {
    let deadline = Instant::now() + settle;
    loop {
        let mut states = Vec::with_capacity(units.len());
        for unit in units {
            let state = m.show(unit).map_err(|e| e.to_string())?;
            if state.start_failed() {
                return Err(sandbox::start_failure(unit, &state));
            }
            states.push((unit.clone(), state));
        }
        // A unit with a job pending may still show its state from before the job.
        let settled = states.iter().all(|(_, s)| s.is_up() && s.job.is_empty());
        if settled || Instant::now() >= deadline {
            return Ok(states);
        }
        std::thread::sleep(poll);
    }
}

/// What `stop` did.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The deployment it ended, if there was one.
    pub deployment: Option<Deployment>,
    /// The units stopped.
    pub stopped: Vec<String>,
    /// The links removed from the unit directory.
    pub unlinked: Vec<Utf8PathBuf>,
    /// The reduced sandbox's drop-ins removed with them.
    pub drop_ins: Vec<Utf8PathBuf>,
}

/// Stops and disables the units (waiting while workers drain), unlinks them and removes
/// their sandbox drop-ins, and ends the deployment. Refuses when nothing is deployed.
pub fn stop(t: &Target<'_>) -> Result<Stopped, Error> {
    let current = deployment::read(t.home).map_err(|e| Error::Refused(e.to_string()))?;
    let active = current.as_ref().filter(|d| d.is_active()).cloned();
    let all = t.all_units();
    // `systemctl disable` also removes the link of the unit it disables: note them all now.
    let ours: Vec<Utf8PathBuf> = all
        .iter()
        .filter(|u| unit_dir::entry(t.unit_dir, t.home, u) == unit_dir::Entry::Ours)
        .map(|u| t.unit_dir.join(u))
        .collect();
    let linked = !ours.is_empty();
    if active.is_none() && !linked {
        return Err(Error::Refused(format!(
            "`{}` is not deployed: nothing to stop",
            t.home
        )));
    }
    let m = t.manager;
    // `systemctl stop` refuses units it cannot load (their links may be gone already).
    let mut loaded = Vec::new();
    for unit in &all {
        let state = m.show(unit).map_err(|e| Error::Refused(e.to_string()))?;
        if state.load_state != "not-found" {
            loaded.push(unit.clone());
        }
    }
    let mut rollback = Rollback::new();
    if !loaded.is_empty() {
        if let Err(e) = m.stop(&loaded) {
            return Err(rollback.fail("stop the units", e));
        }
        rollback.push("units started again", move || {
            m.start(&[TARGET_UNIT.to_owned()], false)
                .map_err(|e| e.to_string())
        });
    }
    if linked {
        if let Err(e) = m.disable(TARGET_UNIT) {
            return Err(rollback.fail(format!("disable `{TARGET_UNIT}`"), e));
        }
        rollback.push(format!("`{TARGET_UNIT}` enabled again"), move || {
            m.enable(TARGET_UNIT).map_err(|e| e.to_string())
        });
    }
    if let Err(e) = unit_dir::unlink_units(t.unit_dir, t.home, &all) {
        return Err(rollback.fail(format!("unlink the units from `{}`", t.unit_dir), e));
    }
    rollback.push("systemd reloaded", move || {
        m.daemon_reload().map_err(|e| e.to_string())
    });
    let drop_ins = match sandbox::remove(t.unit_dir, &t.services()) {
        Ok(removed) => removed,
        Err(e) => return Err(rollback.fail("remove the reduced sandbox's drop-ins", e)),
    };
    let restore = drop_ins.clone();
    rollback.push("sandbox drop-ins written again", move || {
        sandbox::rewrite(&restore).map_err(|e| e.to_string())
    });
    let (home, dir, relink) = (t.home, t.unit_dir, all.clone());
    rollback.push(
        format!("units linked again into `{}`", t.unit_dir),
        move || {
            unit_dir::link(dir, home, &relink)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
    if let Err(e) = m.daemon_reload() {
        return Err(rollback.fail("reload the user's systemd", e));
    }
    let ended = match active {
        Some(mut d) => {
            d.ended_on = Some(deployment::now());
            if let Err(e) = deployment::write(t.home, &d) {
                return Err(rollback.fail("record the end of the deployment", e));
            }
            end_in_store(t, &d);
            Some(d)
        }
        None => None,
    };
    Ok(Stopped {
        deployment: ended,
        stopped: loaded,
        unlinked: ours,
        drop_ins,
    })
}
