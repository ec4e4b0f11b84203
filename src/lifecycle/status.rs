//! The health of a deployment, gathered without side effects and without ever opening the
//! microphone: the deployment record, each unit's state and the units' sandbox, each
//! worker's consumers and the queue depths from the broker, the newest recording, free disk
//! space, and whether the home is stale against its manifest.
//!
//! In: a home, its program, the service manager and the user unit directory. Out: a [`Report`] with a verdict
//! ([`Health`]) and the problems behind it.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::deployment::{self, Deployment};
use super::sandbox::{self, Profile};
use super::systemd::{ServiceManager, UnitState};
use super::verify;
use crate::runtime::transport::{Broker, dead_letter_queue};
use crate::spec::Program;
use crate::spec::layout::{TARGET_UNIT, worker_unit};

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Deployed, every unit up, every worker consuming, nothing queued for attention.
    Healthy,
    /// Something needs attention (listed in [`Report::problems`]).
    Degraded,
    /// The service manager could not be asked.
    Unknown,
}

/// One unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// The unit's name.
    pub unit: String,
    /// Its state; `None` when the service manager could not be asked.
    pub state: Option<UnitState>,
    /// The build its running process started from (`run/<unit>.build`), when it runs and
    /// that is known.
    pub build: Option<String>,
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Its unit runs and every queue it consumes has a consumer.
    Consuming,
    /// Its unit runs (or starts) but the broker cannot be reached.
    WaitingForTheBroker,
    /// Its unit is starting.
    Starting,
    /// Its unit runs but some of its queues have no consumer.
    NotConsuming,
    /// Its unit is not running.
    Stopped,
    /// The service manager could not be asked.
    Unknown,
}

impl WorkerState {
    /// How it reads in text.
    pub fn text(self) -> &'static str {
        match self {
            WorkerState::Consuming => "consuming",
            WorkerState::WaitingForTheBroker => "waiting for the broker",
            WorkerState::Starting => "starting",
            WorkerState::NotConsuming => "not consuming",
            WorkerState::Stopped => "stopped",
            WorkerState::Unknown => "unknown",
        }
    }
}

/// One worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    /// The worker's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The queues it consumes.
    pub queues: Vec<String>,
    /// What it is doing.
    pub state: WorkerState,
}

/// One queue, as the broker counts it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// The queue.
    pub name: String,
    /// Messages ready; `None` when unknown.
    pub ready: Option<u32>,
    /// Consumers attached; `None` when unknown.
    pub consumers: Option<u32>,
    /// Its dead-letter queue.
    pub dead_letter: String,
    /// Messages in the dead-letter queue; `None` when unknown.
    pub dead_letters: Option<u32>,
}

/// The broker as seen from here.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReport {
    /// Whether it answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The newest recording.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingReport {
    /// The WAV file.
    pub path: Utf8PathBuf,
    /// Its modification time (RFC 3339, UTC).
    pub time: String,
}

/// Free space on one storage path.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// The path.
    pub path: Utf8PathBuf,
    /// Bytes available to unprivileged users; `None` when unknown.
    pub free_bytes: Option<u64>,
    /// Why it is unknown.
    pub error: Option<String>,
}

/// Staging and storage as file management sees them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageReport {
    /// WAV files in staging.
    pub staged_files: Option<u64>,
    /// Their bytes.
    pub staged_bytes: Option<u64>,
    /// The staging budget in bytes: recording pauses past it.
    pub staging_budget_bytes: Option<u64>,
    /// Recordings the metadata store says wait for detection or file management.
    pub waiting: Option<u64>,
    /// Kept recordings the retention policy deleted in the last 24 hours.
    pub retention_deleted_last_day: Option<u64>,
    /// Why a figure is missing.
    pub error: Option<String>,
}

/// The outbox: messages waiting for their destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessagesReport {
    /// Messages not yet sent to every destination.
    pub unsent: Option<u64>,
    /// Messages given up on (too old, or refused too often).
    pub expired: Option<u64>,
    /// When the oldest unsent message was made.
    pub oldest_unsent: Option<String>,
    /// Why a figure is missing.
    pub error: Option<String>,
}

/// How long the oldest unsent message may wait before status calls the sensor degraded.
const MESSAGES_LATE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The manifest the home was built from.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestReport {
    /// Its path at build time.
    pub path: String,
    /// Whether it changed since; `None` when unknown.
    pub stale: Option<bool>,
    /// Why it is unknown, or another remark.
    pub note: Option<String>,
}

/// Everything `acoupi status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The verdict.
    pub health: Health,
    /// What makes it degraded or unknown, one line each.
    pub problems: Vec<String>,
    /// The home.
    pub home: Utf8PathBuf,
    /// The program's name.
    pub program: String,
    /// The deployment record, when there is one.
    pub deployment: Option<Deployment>,
    /// The target and every service unit.
    pub units: Vec<UnitReport>,
    /// The build the home holds now (`.build-<digest>`), which running units are compared
    /// with.
    pub built: Option<String>,
    /// The sandbox of the linked units (`reduced` when their drop-ins are in the user unit
    /// directory); `None` when they are not linked there.
    pub sandbox: Option<Profile>,
    /// The broker.
    pub broker: BrokerReport,
    /// Each worker.
    pub workers: Vec<WorkerReport>,
    /// Each queue.
    pub queues: Vec<QueueReport>,
    /// The last heartbeat; `None` when unknown.
    pub last_heartbeat: Option<String>,
    /// The recording microphone while it is missing (`missing_since`); `None` when present.
    pub microphone: Option<crate::runtime::microphone::Missing>,
    /// The newest recording; `None` when there is none.
    pub last_recording: Option<RecordingReport>,
    /// Free space on the recordings and staging paths.
    pub disk: Vec<DiskReport>,
    /// The smallest free space the program wants before recording, in bytes.
    pub min_free_disk_bytes: u64,
    /// Staging against its budget, and what file management has to do and did.
    pub storage: StorageReport,
    /// The outbox; `None` when the program sends no messages.
    pub messages: Option<MessagesReport>,
    /// The manifest.
    pub manifest: ManifestReport,
}

/// Counts of one queue.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ready: u32,
    consumers: u32,
}

/// Asks the broker for the counts of `queues`; absent queues are left out. `Err` when the
/// broker cannot be reached.
fn query_broker(url: &str, queues: &[String]) -> Result<BTreeMap<String, Counts>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let connect = || async {
            match tokio::time::timeout(
                Duration::from_secs(5),
                Broker::connect_amqp(url, "acoupi status", Some(Duration::from_secs(3))),
            )
            .await
            {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 5s".to_owned()),
            }
        };
        let mut broker = connect().await?;
        let mut out = BTreeMap::new();
        for q in queues {
            let counts = async {
                let ready = broker.depth(q).await?;
                let consumers = broker.consumers(q).await?;
                Ok::<_, crate::runtime::transport::BrokerError>(Counts { ready, consumers })
            }
            .await;
            match counts {
                Ok(c) => {
                    out.insert(q.clone(), c);
                }
                Err(_) => {
                    // An absent queue closes the channel: start again on a new connection.
                    broker.close().await;
                    broker = connect().await?;
                }
            }
        }
        broker.close().await;
        Ok(out)
    })
}

/// Gathers the report. `unit_dir` is the user unit directory, when known; `broker_url` is
/// the program's broker with its secrets resolved (or why it could not be).
pub fn gather(
    home: &Utf8Path,
    program: &Program,
    manager: &dyn ServiceManager,
    unit_dir: Option<&Utf8Path>,
    broker_url: Result<Option<String>, String>,
) -> Report {
    let mut problems = Vec::new();
    let mut manager_reachable = true;

    let deployment = match deployment::read(home) {
        Ok(d) => d,
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    match &deployment {
        None => problems.push("not deployed: deploy with `acoupi deploy`".to_owned()),
        Some(d) if !d.is_active() => problems.push(format!(
            "deployment `{}` ended {}",
            d.name,
            d.ended_on.as_deref().unwrap_or("")
        )),
        Some(_) => {}
    }

    let built = crate::home::current_build(home);
    let mut unit_names = vec![TARGET_UNIT.to_owned()];
    unit_names.extend(super::deploy::service_units(program));
    let mut units = Vec::new();
    for unit in unit_names {
        let state = if manager_reachable {
            match manager.show(&unit) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("cannot ask systemd: {e}"));
                    manager_reachable = false;
                    None
                }
            }
        } else {
            None
        };
        if let Some(s) = &state
            && !s.is_up()
        {
            let restarts = match s.n_restarts {
                Some(n) if n > 0 => format!(", {n} restarts"),
                _ => String::new(),
            };
            let doing = if s.job.is_empty() { "" } else { "starting: " };
            let exit = match s.exit_status {
                Some(e) => format!(", exit status {}", super::sandbox::exit_status_text(e)),
                None => String::new(),
            };
            problems.push(format!(
                "`{unit}` is {doing}{}/{}{restarts}{exit}",
                s.active_state, s.sub_state
            ));
        }
        let build = match &state {
            Some(s) if s.is_up() && unit != TARGET_UNIT => super::running::read(home, &unit),
            _ => None,
        };
        if let (Some(runs), Some(built)) = (&build, &built)
            && runs != built
        {
            problems.push(format!(
                "`{unit}` runs the spec of build `{runs}`, not the one built (`{built}`): restart it with `systemctl --user restart {unit}`"
            ));
        }
        units.push(UnitReport { unit, state, build });
    }

    let mut all_queues = Vec::new();
    for q in &program.queues {
        all_queues.push(q.name.clone());
        all_queues.push(dead_letter_queue(&q.name));
    }
    let counts = match broker_url {
        Ok(Some(url)) => query_broker(&url, &all_queues),
        Ok(None) => Err(
            "the program uses the in-process broker, which only exists inside `acoupi run`"
                .to_owned(),
        ),
        Err(e) => Err(e),
    };
    let broker = match &counts {
        Ok(_) => BrokerReport {
            reachable: true,
            error: None,
        },
        Err(e) => {
            problems.push(format!("the broker cannot be reached: {e}"));
            BrokerReport {
                reachable: false,
                error: Some(e.clone()),
            }
        }
    };
    let count = |q: &str| counts.as_ref().ok().and_then(|c| c.get(q).copied());
    let queues: Vec<QueueReport> = program
        .queues
        .iter()
        .map(|q| {
            let dl = dead_letter_queue(&q.name);
            let c = count(&q.name);
            let d = count(&dl);
            QueueReport {
                name: q.name.clone(),
                ready: c.map(|c| c.ready),
                consumers: c.map(|c| c.consumers),
                dead_letter: dl,
                dead_letters: d.map(|d| d.ready),
            }
        })
        .collect();
    for q in &queues {
        if let Some(n) = q.dead_letters.filter(|n| *n > 0) {
            problems.push(format!(
                "{n} dead letters in `{}`: tasks that failed for good",
                q.dead_letter
            ));
        }
    }

    let workers: Vec<WorkerReport> = program
        .workers
        .iter()
        .map(|w| {
            let unit = worker_unit(&w.name);
            let state = units
                .iter()
                .find(|u| u.unit == unit)
                .and_then(|u| u.state.clone());
            let consumed = w
                .queues
                .iter()
                .all(|q| count(q).is_some_and(|c| c.consumers > 0));
            let state = match state {
                None => WorkerState::Unknown,
                Some(s) if !s.is_engaged() => WorkerState::Stopped,
                Some(_) if counts.is_err() => WorkerState::WaitingForTheBroker,
                Some(_) if consumed => WorkerState::Consuming,
                Some(s) if s.active_state == "activating" => WorkerState::Starting,
                Some(_) => WorkerState::NotConsuming,
            };
            if !matches!(state, WorkerState::Consuming | WorkerState::Unknown) {
                problems.push(format!("worker `{}` is {}", w.name, state.text()));
            }
            WorkerReport {
                name: w.name.clone(),
                unit,
                queues: w.queues.clone(),
                state,
            }
        })
        .collect();

    let last_recording = newest_wav(&[&program.paths.staging, &program.paths.recordings]);

    let mut disk = Vec::new();
    for path in [&program.paths.recordings, &program.paths.staging] {
        if disk.iter().any(|d: &DiskReport| &d.path == path) {
            continue;
        }
        let report = match free_bytes(path) {
            Ok(free) => {
                if free < program.recording.min_free_disk_bytes {
                    problems.push(format!(
                        "only {} free on `{path}`, below the {} the program wants",
                        human_bytes(free),
                        human_bytes(program.recording.min_free_disk_bytes)
                    ));
                }
                DiskReport {
                    path: path.clone(),
                    free_bytes: Some(free),
                    error: None,
                }
            }
            Err(e) => DiskReport {
                path: path.clone(),
                free_bytes: None,
                error: Some(e),
            },
        };
        disk.push(report);
    }

    let storage = storage(program, &mut problems);
    let messages = messages(program, &mut problems);

    let manifest = match verify::read_lock(home) {
        Ok(lock) => {
            let (stale, note) = match verify::manifest_stale(&lock) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            let other_version = lock.acoupi_version != env!("CARGO_PKG_VERSION");
            if stale == Some(true) || other_version {
                problems.push(format!(
                    "the home is stale: {}; rebuild it with `{}`",
                    if other_version {
                        format!("built by acoupi {}", lock.acoupi_version)
                    } else {
                        format!("`{}` changed since it was built", lock.source.path)
                    },
                    verify::rebuild_command(&lock, home)
                ));
            }
            ManifestReport {
                path: lock.source.path,
                stale: if other_version { Some(true) } else { stale },
                note,
            }
        }
        Err(e) => ManifestReport {
            path: String::new(),
            stale: None,
            note: Some(e.to_string()),
        },
    };

    let microphone = crate::runtime::microphone::read(&program.paths.state);
    if let Some(m) = &microphone {
        problems.push(format!(
            "microphone `{}` missing since {}: recording is paused until it is back ({})",
            m.microphone, m.missing_since, m.error
        ));
    }

    let health = if !manager_reachable {
        Health::Unknown
    } else if problems.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded
    };
    Report {
        schema_version: 1,
        health,
        problems,
        home: home.to_owned(),
        program: program.name.clone(),
        deployment,
        units,
        built,
        sandbox: unit_dir.and_then(|dir| linked_sandbox(dir, home, program)),
        broker,
        workers,
        queues,
        last_heartbeat: last_heartbeat(&program.paths.state),
        microphone,
        last_recording,
        disk,
        min_free_disk_bytes: program.recording.min_free_disk_bytes,
        storage,
        messages,
        manifest,
    }
}

/// The sandbox of `program`'s units linked into `dir` from `home`; `None` when none is.
fn linked_sandbox(dir: &Utf8Path, home: &Utf8Path, program: &Program) -> Option<Profile> {
    let services = super::deploy::service_units(program);
    let linked = services
        .iter()
        .any(|u| super::unit_dir::entry(dir, home, u) == super::unit_dir::Entry::Ours);
    let reduced = services.iter().any(|u| sandbox::drop_in(dir, u).exists());
    match (linked, reduced) {
        (false, _) => None,
        (true, false) => Some(Profile::Full),
        (true, true) => Some(Profile::Reduced),
    }
}

/// The last heartbeat the runtime recorded in `state/heartbeat.json` (`{"timestamp": …}`),
/// when it records one.
fn last_heartbeat(state: &Utf8Path) -> Option<String> {
    let text = std::fs::read_to_string(crate::spec::layout::State(state).heartbeat()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("timestamp")?.as_str().map(str::to_owned)
}

/// Most entries looked at when searching for the newest recording.
const MAX_SCANNED: usize = 500_000;

/// The newest `.wav` file under `roots` (links not followed).
fn newest_wav(roots: &[&Utf8PathBuf]) -> Option<RecordingReport> {
    let mut best: Option<(std::time::SystemTime, Utf8PathBuf)> = None;
    let mut stack: Vec<Utf8PathBuf> = roots.iter().map(|r| (*r).clone()).collect();
    let mut scanned = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            scanned += 1;
            if scanned > MAX_SCANNED {
                break;
            }
            let Ok(path) = Utf8PathBuf::from_path_buf(entry.path()) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
                && let Ok(modified) = meta.modified()
                && best.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                best = Some((modified, path));
            }
        }
    }
    best.and_then(|(t, path)| {
        let ts = jiff::Timestamp::try_from(t).ok()?;
        Some(RecordingReport {
            path,
            time: ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    })
}

/// A size for people, rounded to one decimal in the largest binary unit that fits
/// (`11.5GiB`, `512B`).
pub fn human_bytes(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1u64 << shift {
            let value = bytes as f64 / (1u64 << shift) as f64;
            let text = format!("{value:.1}");
            return format!("{}{unit}", text.trim_end_matches(".0"));
        }
    }
    format!("{bytes}B")
}

/// Bytes available to unprivileged users on the file system holding `path` (or its nearest
/// existing ancestor).
fn free_bytes(path: &Utf8Path) -> Result<u64, String> {
    let mut probe = path;
    loop {
        match rustix::fs::statvfs(probe.as_std_path()) {
            Ok(s) => return Ok(s.f_bavail.saturating_mul(s.f_frsize)),
            Err(e) if e == rustix::io::Errno::NOENT => match probe.parent() {
                Some(parent) => probe = parent,
                None => return Err(format!("cannot check free space on `{path}`: {e}")),
            },
            Err(e) => return Err(format!("cannot check free space on `{path}`: {e}")),
        }
    }
}

/// The outbox's backlog (read only; absent before the first message).
fn messages(program: &crate::spec::Program, problems: &mut Vec<String>) -> Option<MessagesReport> {
    program.messaging.as_ref()?;
    let mut report = MessagesReport::default();
    if !program.paths.messages.exists() {
        report.unsent = Some(0);
        report.expired = Some(0);
        return Some(report);
    }
    match crate::store::Outbox::open_read_only(&program.paths.messages).and_then(|o| o.backlog()) {
        Ok(b) => {
            report.unsent = Some(b.unsent);
            report.expired = Some(b.expired);
            if let Some(oldest) = b.oldest_unsent {
                report.oldest_unsent = Some(oldest.to_string());
                if jiff::Timestamp::now().duration_since(oldest) > MESSAGES_LATE_AFTER {
                    problems.push(format!(
                        "{} messages wait to be sent, the oldest since {oldest}: is the network or the server down?",
                        b.unsent
                    ));
                }
            }
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    Some(report)
}

/// Staging against its budget, from the directory; waiting and retention figures from the
/// metadata store (read only; absent before the first recording).
fn storage(program: &crate::spec::Program, problems: &mut Vec<String>) -> StorageReport {
    let mut report = StorageReport::default();
    match crate::files::space::staging(program) {
        Ok(s) => {
            if s.bytes > s.budget {
                problems.push(format!(
                    "staging holds {} of its {} budget: recording is paused until detection catches up",
                    human_bytes(s.bytes),
                    human_bytes(s.budget)
                ));
            }
            report.staged_files = Some(s.files);
            report.staged_bytes = Some(s.bytes);
            report.staging_budget_bytes = Some(s.budget);
        }
        Err(e) => report.error = Some(format!("{}: {e}", program.paths.staging)),
    }
    if program.paths.metadata.exists() {
        let day_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
        match crate::store::Store::open_read_only(&program.paths.metadata).and_then(|s| {
            Ok((
                s.pending_count()?,
                s.deleted_under_since(&program.paths.recordings, day_ago)?,
            ))
        }) {
            Ok((waiting, deleted)) => {
                report.waiting = Some(waiting);
                report.retention_deleted_last_day = Some(deleted);
            }
            Err(e) => report.error = Some(e.to_string()),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(2048), "2KiB");
        assert_eq!(human_bytes(3 * (1 << 30) / 2), "1.5GiB");
        assert_eq!(human_bytes(12_345_678_901), "11.5GiB");
    }

    #[test]
    fn the_newest_wav_is_found_below_the_roots() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf-8");
        let nested = root.join("2025/05/01");
        std::fs::create_dir_all(&nested).expect("dirs");
        let old = root.join("a.wav");
        std::fs::write(&old, "RIFF").expect("old");
        let times = std::fs::FileTimes::new()
            .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_times(times))
            .expect("set time");
        std::fs::write(nested.join("b.WAV"), "RIFF").expect("new");
        std::fs::write(nested.join("c.json"), "{}").expect("other");
        let newest = newest_wav(&[&root, &root.join("absent")]).expect("found");
        assert_eq!(newest.path, nested.join("b.WAV"));
        assert!(newest.time.ends_with('Z'));
    }
}
