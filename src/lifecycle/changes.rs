//! Which units a rebuild touches: the difference between two builds of a home, as the units
//! see it.
//!
//! In: the files of the old and the new build (`.build-<digest>` directories). Out:
//! [`Changes`]: the service units to restart and why, the units added and removed, and
//! whether systemd must reload its unit files. A unit is restarted when its own unit file
//! changed, when a file every unit reads changed (`config/env`, the scripts under `bin/`),
//! or when the part of `config/program.json` it reads changed: for beat, the schedule (the
//! tasks, their queues, the timezone and location); for a worker, its definition, the tasks
//! routed to its queues and the sections their handlers read (a detector's threshold is read
//! by the worker running `detect` only). Files no unit reads (`build.lock`, the manifest
//! copy) restart nothing.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;
use serde_json::{Map, Value};

use crate::spec::layout::{BEAT_UNIT, LOCK_FILE, PROGRAM_FILE, WORKERS_FILE, worker_unit};
use crate::spec::tasks;

/// The files of one build: path relative to the build directory to contents.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Reads every file under `dir` (a build directory).
pub fn read_build(dir: &Utf8Path) -> std::io::Result<Files> {
    fn walk(root: &Utf8Path, dir: &Utf8Path, out: &mut Files) -> std::io::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let entry = entry?;
            let path = camino::Utf8PathBuf::from_path_buf(entry.path()).map_err(|p| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("`{}` is not UTF-8", p.display()),
                )
            })?;
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string();
                out.insert(rel, fs_err::read(&path)?);
            }
        }
        Ok(())
    }
    let mut out = Files::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// What a rebuild changes for the units.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    /// Service units of both builds to restart, each with why.
    pub restart: Vec<(String, String)>,
    /// Service units only the new build has.
    pub added: Vec<String>,
    /// Service units only the old build has.
    pub removed: Vec<String>,
    /// Service units of both builds that read nothing that changed.
    pub unchanged: Vec<String>,
    /// Whether a unit file changed, appeared or went: systemd must reload.
    pub reload: bool,
}

impl Changes {
    /// Whether the running units are already what the new build describes.
    pub fn is_empty(&self) -> bool {
        self.restart.is_empty() && self.added.is_empty() && self.removed.is_empty() && !self.reload
    }

    /// The units to restart.
    pub fn units(&self) -> Vec<String> {
        self.restart.iter().map(|(u, _)| u.clone()).collect()
    }
}

/// Files that every unit reads: all but the program, the unit files and what no unit reads.
fn shared(path: &str) -> bool {
    ![
        LOCK_FILE,
        PROGRAM_FILE,
        WORKERS_FILE,
        crate::plan::MANIFEST_COPY,
    ]
    .contains(&path)
        && !path.starts_with("units/")
}

/// Sections of the program every worker reads.
const WORKER_COMMON: &[&str] = &[
    "schema_version",
    "acoupi_version",
    "name",
    "timezone",
    "location",
    "device_id",
    "home",
    "broker",
    "paths",
    "queues",
];

/// Sections beat reads: the schedule and where to publish it.
const BEAT_SECTIONS: &[&str] = &[
    "schema_version",
    "acoupi_version",
    "name",
    "timezone",
    "location",
    "home",
    "broker",
    "paths",
    "queues",
    "tasks",
];

/// The sections of the program a task's handler reads, besides [`WORKER_COMMON`]; `None`
/// for a handler not listed (it is taken to read everything).
fn handler_sections(task: &str) -> Option<&'static [&'static str]> {
    Some(match task {
        tasks::RECORD => &["microphones", "recording"],
        tasks::DETECT => &["detectors", "messaging"],
        tasks::MANAGE_FILES => &[
            "detectors",
            "messaging",
            "recording",
            "retention",
            "saving",
            "tasks",
        ],
        tasks::SEND_MESSAGES | tasks::HEARTBEAT => &["messaging"],
        tasks::SUMMARY => &["summary", "messaging", "detectors", "tasks"],
        tasks::NOOP => &[],
        _ => return None,
    })
}

fn program(files: &Files) -> Value {
    files
        .get(PROGRAM_FILE)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null)
}

fn worker_names(program: &Value) -> Vec<String> {
    program["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| w["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The service units of a program: one per worker, then beat.
fn services(program: &Value) -> Vec<String> {
    let mut out: Vec<String> = worker_names(program)
        .iter()
        .map(|w| worker_unit(w))
        .collect();
    out.push(BEAT_UNIT.to_owned());
    out
}

fn pick(program: &Value, keys: &BTreeSet<&str>) -> Map<String, Value> {
    keys.iter()
        .map(|k| ((*k).to_owned(), program[*k].clone()))
        .collect()
}

/// What the worker `name` reads of `program`.
fn worker_view(program: &Value, name: &str) -> Map<String, Value> {
    let worker = program["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == name))
        .cloned()
        .unwrap_or(Value::Null);
    let queues: Vec<&str> = worker["queues"]
        .as_array()
        .map(|q| q.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let routed: Vec<Value> = program["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["queue"].as_str().is_some_and(|q| queues.contains(&q)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut keys: BTreeSet<&str> = WORKER_COMMON.iter().copied().collect();
    for task in &routed {
        match handler_sections(task["name"].as_str().unwrap_or_default()) {
            Some(sections) => keys.extend(sections.iter().copied()),
            None => {
                if let Some(all) = program.as_object() {
                    keys.extend(all.keys().map(String::as_str));
                }
            }
        }
    }
    let mut view = pick(program, &keys);
    view.insert("worker".into(), worker);
    view.insert("routed".into(), Value::Array(routed));
    view
}

/// The top-level keys whose values differ between two views, in order.
fn differing(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| match k.as_str() {
            "worker" => "its definition".to_owned(),
            "routed" => "its tasks".to_owned(),
            other => format!("`{other}`"),
        })
        .collect()
}

/// Compares two builds; see the module documentation.
pub fn changes(old: &Files, new: &Files) -> Changes {
    let (old_p, new_p) = (program(old), program(new));
    let (old_s, new_s) = (services(&old_p), services(&new_p));
    let unit_file = |files: &Files, unit: &str| files.get(&format!("units/{unit}")).cloned();
    let units: BTreeSet<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|p| p.starts_with("units/"))
        .collect();
    let reload = units.iter().any(|p| old.get(*p) != new.get(*p));
    let shared_changed: Vec<&String> = old
        .keys()
        .chain(new.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| shared(p) && old.get(*p) != new.get(*p))
        .collect();
    let mut out = Changes {
        reload,
        added: new_s
            .iter()
            .filter(|u| !old_s.contains(u))
            .cloned()
            .collect(),
        removed: old_s
            .iter()
            .filter(|u| !new_s.contains(u))
            .cloned()
            .collect(),
        ..Changes::default()
    };
    for unit in new_s.iter().filter(|u| old_s.contains(u)) {
        let mut why = Vec::new();
        if unit_file(old, unit) != unit_file(new, unit) {
            why.push("its unit file changed".to_owned());
        }
        if let Some(path) = shared_changed.first() {
            why.push(format!("`{path}` changed"));
        }
        let spec = if unit == BEAT_UNIT {
            let keys: BTreeSet<&str> = BEAT_SECTIONS.iter().copied().collect();
            differing(&pick(&old_p, &keys), &pick(&new_p, &keys))
        } else {
            let name = worker_names(&new_p)
                .into_iter()
                .find(|w| worker_unit(w) == *unit)
                .unwrap_or_default();
            differing(&worker_view(&old_p, &name), &worker_view(&new_p, &name))
        };
        if !spec.is_empty() {
            let what = if unit == BEAT_UNIT {
                "its schedule"
            } else {
                "its spec"
            };
            why.push(format!("{what} changed ({})", spec.join(", ")));
        }
        if why.is_empty() {
            out.unchanged.push(unit.clone());
        } else {
            out.restart.push((unit.clone(), why.join("; ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_unit_reads_restarts_it() {
        let program = |threshold: f64, interval: u64| {
            serde_json::json!({
                "name": "p", "timezone": "UTC", "description": "d",
                "detectors": [{"name": "bats", "threshold": threshold}],
                "recording": {"duration_ms": 3000},
                "tasks": [
                    {"name": "record", "queue": "rec", "schedule": {"every_ms": interval}},
                    {"name": "detect", "queue": "det"}
                ],
                "workers": [
                    {"name": "r", "queues": ["rec"]},
                    {"name": "d", "queues": ["det"]}
                ]
            })
        };
        let files = |p: Value, unit: &str| {
            let mut f = Files::new();
            f.insert(PROGRAM_FILE.into(), serde_json::to_vec(&p).expect("json"));
            f.insert("units/acoupi-worker-r.service".into(), unit.into());
            f.insert("units/acoupi-worker-d.service".into(), b"d".to_vec());
            f.insert("units/acoupi-beat.service".into(), b"b".to_vec());
            f.insert("bin/acoupi".into(), b"launcher".to_vec());
            f
        };
        let old = files(program(0.5, 10_000), "r");
        assert!(changes(&old, &old).is_empty());

        let c = changes(&old, &files(program(0.6, 10_000), "r"));
        assert_eq!(c.units(), ["acoupi-worker-d.service"]);
        assert!(c.restart[0].1.contains("`detectors`"), "{c:?}");
        assert!(!c.reload);

        let c = changes(&old, &files(program(0.5, 20_000), "r"));
        assert_eq!(
            c.units(),
            ["acoupi-worker-r.service", "acoupi-beat.service"]
        );
        assert!(c.restart[1].1.starts_with("its schedule changed"), "{c:?}");

        let c = changes(&old, &files(program(0.5, 10_000), "r2"));
        assert_eq!(c.units(), ["acoupi-worker-r.service"]);
        assert!(c.reload);

        let mut shared = files(program(0.5, 10_000), "r");
        shared.insert("bin/acoupi".into(), b"other".to_vec());
        assert_eq!(changes(&old, &shared).units().len(), 3);

        let mut p = program(0.5, 10_000);
        p["description"] = "changed".into();
        assert!(changes(&old, &files(p, "r")).is_empty());
    }
}
