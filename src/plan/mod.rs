//! Stage 3, lower: the validated [`Model`] to a [`Plan`]. Infallible: every check on user
//! input happened in `model`.
//!
//! In: the model and the [`BuildContext`] (home, binary, source). Out: the resolved
//! `spec::Program` (absolute paths under the home filled in) and one serialisable view per
//! emitted artifact, which `emit` renders without further decisions.

use camino::Utf8PathBuf;
use serde::Serialize;

use crate::model::Model;
use crate::spec::{self, Program, WorkersFile, layout};

/// What a build needs besides the manifest.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The ACOUPI_HOME being built (absolute).
    pub home: Utf8PathBuf,
    /// The acoupi binary the launcher runs (absolute).
    pub exe: Utf8PathBuf,
    /// The manifest's absolute path.
    pub source_path: Utf8PathBuf,
}

/// Everything `emit::render` turns into files.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `config/program.json`.
    pub program: Program,
    /// `config/workers.json`.
    pub workers: WorkersFile,
    /// `config/env`, in order.
    pub env: Vec<EnvVar>,
    /// Context shared by the scripts.
    pub scripts: ScriptsView,
    /// One view per systemd unit.
    pub units: Vec<UnitView>,
    /// The systemd target that wants every unit.
    pub target: TargetView,
}

/// One `KEY=VALUE` of `config/env`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    /// Variable name (a fixed identifier, never from the manifest).
    pub key: &'static str,
    /// Its value.
    pub value: String,
}

/// Context of the launcher and the helper scripts.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptsView {
    /// The acoupi binary.
    pub exe: String,
    /// The home.
    pub home: String,
    /// The generated launcher, `$home/bin/acoupi`.
    pub launcher: String,
    /// Worker unit names, in worker order.
    pub worker_units: Vec<String>,
    /// The beat unit's name.
    pub beat_unit: String,
}

/// A service unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    /// File name under `units/`.
    pub file: String,
    /// `Description=` (free text from the manifest, quoted by the template's filter).
    pub description: String,
    /// The launcher's subcommand and arguments.
    pub args: Vec<String>,
    /// The generated launcher.
    pub launcher: String,
    /// `WorkingDirectory=`.
    pub home: String,
    /// `EnvironmentFile=` (generated).
    pub env_file: String,
    /// Optional `EnvironmentFile=-` for user-provided secrets.
    pub secrets_file: String,
    /// `TimeoutStopSec=` in seconds: long enough to drain the longest task.
    pub stop_timeout_s: u64,
    /// `ReadWritePaths=`: the home, then the storage directories (staging, recordings and the
    /// directories holding the metadata and message databases), without repeats. Everything
    /// else is read-only to the unit.
    pub read_write_paths: Vec<String>,
    /// The storage directories (staging, recordings, the databases' directories), created
    /// outside the sandbox before the unit starts so that `ReadWritePaths=` can name them.
    pub storage_dirs: Vec<String>,
    /// Whether the unit records from an audio input device: it keeps the host's `/dev` (ALSA
    /// device nodes) instead of `PrivateDevices=`, and may open netlink sockets.
    pub audio_device: bool,
    /// Whether the unit runs external detector commands, whose interpreters may need
    /// writable-executable memory (JITs) and the `@resources` system calls (thread affinity,
    /// nice): the unit does without `MemoryDenyWriteExecute=` and that filter.
    pub external_commands: bool,
    /// `PrivateTmp=`: off when a read-write path, the acoupi binary, a secret file, a detector
    /// program or a replayed WAV file lies under `/tmp` or `/var/tmp`, which a private `/tmp`
    /// would hide (and other units could not share).
    pub private_tmp: bool,
}

/// The target unit.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// `Description=`.
    pub description: String,
    /// Every service unit it wants.
    pub units: Vec<String>,
}

pub use crate::spec::layout::{BEAT_UNIT, TARGET_UNIT, worker_unit};

/// Lowers the model for the given build context.
pub fn lower(model: Model, ctx: &BuildContext) -> Plan {
    let home = &ctx.home;
    let data = home.join(layout::DATA_DIR);
    let or = |p: Option<Utf8PathBuf>, default: &str| p.unwrap_or_else(|| data.join(default));
    let paths = spec::Paths {
        staging: or(model.paths.staging, layout::DEFAULT_STAGING),
        recordings: or(model.paths.recordings, layout::DEFAULT_RECORDINGS),
        metadata: or(model.paths.metadata, layout::DEFAULT_METADATA),
        messages: or(model.paths.messages, layout::DEFAULT_MESSAGES),
        log: home.join(layout::LOG_DIR),
        run: home.join(layout::RUN_DIR),
        state: home.join(layout::STATE_DIR),
    };
    let program = Program {
        schema_version: spec::SCHEMA_VERSION,
        acoupi_version: env!("CARGO_PKG_VERSION").to_owned(),
        name: model.name,
        description: model.description,
        timezone: model.timezone,
        location: model.location,
        device_id: model.device_id,
        home: home.clone(),
        broker: model.broker,
        paths,
        microphones: model.microphones,
        recording: model.recording,
        detectors: model.detectors,
        saving: model.saving,
        messaging: model.messaging,
        summary: model.summary,
        retention: model.retention,
        tasks: model.tasks,
        queues: model.queues,
        workers: model.workers,
    };
    let workers = WorkersFile {
        schema_version: spec::SCHEMA_VERSION,
        workers: program.workers.clone(),
    };
    let launcher = home.join(layout::LAUNCHER).into_string();
    let env_file = home.join(layout::ENV_FILE).into_string();
    let secrets_file = home.join(layout::SECRETS_FILE).into_string();
    let storage_dirs = storage_dirs(&program.paths);
    let mut read_write_paths = vec![home.to_string()];
    for dir in &storage_dirs {
        if !read_write_paths.contains(dir) {
            read_write_paths.push(dir.clone());
        }
    }
    let private_tmp = !read_write_paths
        .iter()
        .map(camino::Utf8Path::new)
        .chain(read_paths(&program, &ctx.exe))
        .any(|p| p.starts_with("/tmp") || p.starts_with("/var/tmp"));
    let unit = |file: String,
                description: String,
                args: Vec<String>,
                stop_timeout_s: u64,
                audio_device: bool,
                external_commands: bool| UnitView {
        file,
        description,
        args,
        launcher: launcher.clone(),
        home: home.to_string(),
        env_file: env_file.clone(),
        secrets_file: secrets_file.clone(),
        stop_timeout_s,
        read_write_paths: read_write_paths.clone(),
        storage_dirs: storage_dirs.clone(),
        audio_device,
        external_commands,
        private_tmp,
    };
    let mut units: Vec<UnitView> = program
        .workers
        .iter()
        .map(|w| {
            let drain = longest_limit_s(&program, w);
            unit(
                worker_unit(&w.name),
                format!("acoupi worker {} of {}", w.name, program.name),
                vec!["worker".into(), w.name.clone()],
                drain + 15,
                records_from_device(&program, w),
                runs_commands(&program, w),
            )
        })
        .collect();
    units.push(unit(
        BEAT_UNIT.into(),
        format!("acoupi beat of {}", program.name),
        vec!["beat".into()],
        15,
        false,
        false,
    ));
    let scripts = ScriptsView {
        exe: ctx.exe.to_string(),
        home: home.to_string(),
        launcher: launcher.clone(),
        worker_units: program
            .workers
            .iter()
            .map(|w| worker_unit(&w.name))
            .collect(),
        beat_unit: BEAT_UNIT.into(),
    };
    let target = TargetView {
        description: format!("acoupi program {}", program.name),
        units: units.iter().map(|u| u.file.clone()).collect(),
    };
    let env = vec![
        EnvVar {
            key: "ACOUPI_HOME",
            value: home.to_string(),
        },
        EnvVar {
            key: "ACOUPI_LOG",
            value: "info".into(),
        },
    ];
    Plan {
        program,
        workers,
        env,
        scripts,
        units,
        target,
    }
}

/// The directories the runtime writes to besides the home: staging, recordings and the
/// directories of the two databases, without repeats.
fn storage_dirs(paths: &spec::Paths) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let dirs = [
        Some(paths.staging.as_path()),
        Some(paths.recordings.as_path()),
        paths.metadata.parent(),
        paths.messages.parent(),
    ];
    for dir in dirs.into_iter().flatten() {
        let dir = dir.to_string();
        if !dir.is_empty() && !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

/// The files the units read besides the home: the acoupi binary, secret files, detector
/// programs and replayed WAV files.
fn read_paths<'a>(
    program: &'a Program,
    exe: &'a camino::Utf8Path,
) -> impl Iterator<Item = &'a camino::Utf8Path> {
    let mut out = vec![exe];
    out.extend(program.secrets().into_iter().filter_map(|(_, s)| match s {
        spec::Secret::File(p) => Some(p.as_path()),
        _ => None,
    }));
    for d in &program.detectors {
        match &d.kind {
            spec::DetectorKind::Command { argv, .. } => {
                if let Some(cmd) = argv.first() {
                    out.push(camino::Utf8Path::new(cmd));
                }
            }
            spec::DetectorKind::Batdetect2 {
                model: Some(model), ..
            } => out.push(model.as_path()),
            _ => {}
        }
    }
    for m in &program.microphones {
        if let spec::Source::File { path, .. } = &m.source {
            out.push(path.as_path());
        }
    }
    out.into_iter()
}

/// Whether `worker` consumes the queue of a task named `name`.
fn consumes_task(program: &Program, worker: &spec::Worker, name: &str) -> bool {
    program
        .tasks
        .iter()
        .any(|t| t.name == name && worker.queues.contains(&t.queue))
}

/// Whether `worker` runs the `record` task with a microphone that is an audio device.
fn records_from_device(program: &Program, worker: &spec::Worker) -> bool {
    let device = program
        .microphones
        .iter()
        .find(|m| m.name == program.recording.microphone)
        .is_some_and(|m| matches!(m.source, spec::Source::Device { .. }));
    device && consumes_task(program, worker, spec::tasks::RECORD)
}

/// Whether `worker` runs the `detect` task with at least one external detector command.
fn runs_commands(program: &Program, worker: &spec::Worker) -> bool {
    let commands = program
        .detectors
        .iter()
        .any(|d| matches!(d.kind, spec::DetectorKind::Command { .. }));
    commands && consumes_task(program, worker, spec::tasks::DETECT)
}

/// The longest hard time limit among the tasks a worker consumes, in whole seconds.
fn longest_limit_s(program: &Program, worker: &spec::Worker) -> u64 {
    program
        .tasks
        .iter()
        .filter(|t| worker.queues.contains(&t.queue))
        .map(|t| t.time_limit_ms.div_ceil(1000))
        .max()
        .unwrap_or(30)
}

/// The manifest's file name inside the home.
pub const MANIFEST_COPY: &str = "acoupi.kdl";
