//! `manage-files`: staged recordings kept in date folders or deleted, by the saving rules.
//!
//! In: nothing but the process's services (scheduled), or the result of the recording's
//! `detect` (or `record`) run that prompted it; every run manages every pending recording.
//! Out: a [`Report`] of what was kept, deleted, left waiting and adopted.
//!
//! A run holds an exclusive lock on the home's state directory, so two runs (two task slots,
//! two processes) never move the same file. In order:
//! 1. **Recovery.** Partial copies (`.NAME.part`) a killed run left under `paths.recordings`
//!    are removed.
//! 2. **Staging scan.** Each WAV in `paths.staging` is matched with its store row. A file of a
//!    recording already kept or deleted (a run killed between updating the store and removing
//!    the source) is removed once its kept copy is confirmed. A file with no row (a crash
//!    between writing the file and storing it) is adopted from its GUANO metadata, stored
//!    under the current deployment and analysed here, then managed like the others.
//! 3. **Decision.** A recording whose detectors have all stored an output is kept or deleted
//!    by the saving rules; one still waiting for detection stays in staging; one whose
//!    detection failed for good (or that waited past every retry's time limit) is kept in
//!    the `unanalysed` folder, never deleted unseen.
//! 4. **Moves.** A kept file is copied to `paths.recordings/<folder>/<name>`, fsynced and
//!    renamed, the store updated, then the staged file removed: killed at any point, the next
//!    run finishes the move. A deleted file's row stays, marked deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{Services, TaskContext, TaskError, TaskFuture};
use crate::files::moving;
use crate::files::saving::{self, Decision, Facts, UNANALYSED_FOLDER};
use crate::runtime::beat::schedule::Clock;
use crate::spec::MessageRule;
use crate::spec::data::Recording;
use crate::spec::layout::State;
use crate::spec::payload::Recorded;
use crate::spec::tasks;
use crate::store::{DetectionState, StoredRecording};

/// A staged WAV with no store row is adopted only when it is at least this old: a younger
/// one is probably being stored by the task that just wrote it.
const ADOPT_AFTER: Duration = Duration::from_secs(120);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    /// Recordings moved to `paths.recordings`.
    pub kept: u32,
    /// Recordings whose audio was deleted.
    pub deleted: u32,
    /// Recordings kept in the `unanalysed` folder because detection failed for good.
    pub unanalysed: u32,
    /// Recordings still waiting for their detectors.
    pub waiting: u32,
    /// Staged files with no store row, adopted.
    pub adopted: u32,
    /// Staged copies of recordings already kept or deleted, removed.
    pub leftovers: u32,
    /// Partial copies removed from `paths.recordings`.
    pub partials: u32,
    /// Kept recordings the retention policy deleted.
    pub retention_deleted: u32,
    /// Bytes still over the retention policy's usage limit (recordings it may not delete:
    /// protected, or with messages still to send).
    pub retention_shortfall_bytes: u64,
}

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let report = manage(&ctx.services).await?;
        serde_json::to_value(&report).map_err(|e| TaskError::Permanent(e.to_string()))
    })
}

/// Manages every staged recording once; see the module docs.
pub(crate) async fn manage(services: &Arc<Services>) -> Result<Report, TaskError> {
    let program = Arc::clone(&services.program);
    let lock_path = State(&program.paths.state).manage_files_lock();
    let _lock = blocking(move || crate::fsx::lock_exclusive(&lock_path).map_err(transient)).await?;
    let mut report = Report::default();
    let recordings = program.paths.recordings.clone();
    report.partials = blocking(move || {
        moving::sweep_partials(&recordings, None)
            .map(|removed| removed.len() as u32)
            .map_err(|e| transient(e.to_string()))
    })
    .await?;
    let pending = services.with_store(|s, _| s.pending_recordings()).await?;
    let known: std::collections::HashSet<Utf8PathBuf> = pending
        .iter()
        .filter_map(|p| p.recording.path.clone())
        .collect();
    let pending = if scan_staging(services, &known, &mut report).await? {
        services.with_store(|s, _| s.pending_recordings()).await?
    } else {
        pending
    };
    let clock = Clock::new(&program.timezone, program.location)
        .map_err(|e| TaskError::Permanent(format!("the program's clock: {e}")))?;
    let every = program
        .saving
        .rules
        .iter()
        .any(|r| matches!(r, crate::spec::SaveRule::Every { .. }));
    let ids: Vec<uuid::Uuid> = pending.iter().map(|p| p.recording.id).collect();
    // One store call, one pass, for the whole backlog.
    let states = services
        .with_store(move |s, _| {
            let mut all = s.pending_detection_states()?;
            ids.iter()
                .map(|id| {
                    let ordinal = if every { s.ordinal(*id)? } else { 0 };
                    Ok((all.remove(id).unwrap_or_default(), ordinal))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let now = services.clock.now();
    let (mut keeps, mut deletes) = (Vec::new(), Vec::new());
    for (stored, (state, ordinal)) in pending.into_iter().zip(states) {
        match outcome(services, &clock, &stored, &state, ordinal, now) {
            Outcome::Wait => report.waiting += 1,
            Outcome::Keep { folder, why } => keeps.push((stored, folder, why)),
            Outcome::Delete(why) => deletes.push((stored, why)),
        }
    }
    report.deleted = delete(services, deletes).await?;
    let (kept, unanalysed) = keep(services, keeps).await?;
    report.kept = kept;
    report.unanalysed = unanalysed;
    if let Some(policy) = program.retention.clone() {
        retain(services, &policy, &mut report).await?;
    }
    if report != Report::default() {
        tracing::info!(?report, "managed staged recordings");
    }
    Ok(report)
}

/// What to do with one pending recording.
enum Outcome {
    Wait,
    Keep { folder: Utf8PathBuf, why: String },
    Delete(String),
}

fn outcome(
    services: &Services,
    clock: &Clock,
    stored: &StoredRecording,
    state: &DetectionState,
    ordinal: u64,
    now: Timestamp,
) -> Outcome {
    let program = &services.program;
    let r = &stored.recording;
    let render = |prefix: Option<&str>| {
        let folder = saving::folder(
            &program.saving.folder,
            clock.timezone(),
            r.created_on,
            &program.name,
            &program.recording.microphone,
        )
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "using the recording's date as its folder");
            Utf8PathBuf::from(r.created_on.strftime("%Y-%m-%d").to_string())
        });
        match prefix {
            Some(p) => Utf8PathBuf::from(p).join(folder),
            None => folder,
        }
    };
    if let Some((detector, error)) = state.failures.first() {
        return Outcome::Keep {
            folder: render(Some(UNANALYSED_FOLDER)),
            why: format!("detector `{detector}` failed for good: {error}"),
        };
    }
    // No detector failed: those without an output have yet to report.
    let missing: Vec<&str> = program
        .detectors
        .iter()
        .map(|d| d.name.as_str())
        .filter(|name| !state.outputs.iter().any(|(n, _)| n == name))
        .collect();
    if !missing.is_empty() {
        let waited = now.duration_since(r.created_on);
        if waited.unsigned_abs() > stale_after(program) && waited.is_positive() {
            return Outcome::Keep {
                folder: render(Some(UNANALYSED_FOLDER)),
                why: format!(
                    "no result from {} after {:.0} s, past every retry's time limit",
                    missing.join(", "),
                    waited.as_secs_f64()
                ),
            };
        }
        return Outcome::Wait;
    }
    let facts = Facts {
        start: r.created_on,
        best: state.outputs.clone(),
        ordinal,
    };
    match saving::decide(&program.saving, clock, &facts) {
        Decision::Keep(why) => Outcome::Keep {
            folder: render(None),
            why,
        },
        Decision::Delete(why) => Outcome::Delete(why),
    }
}

/// How long a recording may wait for its detectors before it counts as unanalysed: every
/// delivery of `detect` at its time limit, and a quarter of an hour for the queue.
fn stale_after(program: &crate::spec::Program) -> Duration {
    let detect = program.tasks.iter().find(|t| t.name == tasks::DETECT);
    let per_run = detect.map_or(0, |t| t.time_limit_ms);
    let runs = detect.map_or(1, |t| u64::from(t.retries) + 1);
    Duration::from_millis(per_run.saturating_mul(runs)) + Duration::from_secs(15 * 60)
}

/// Moves each recording's staged file into its folder under `paths.recordings`: every copy
/// placed (fsynced, renamed) first, then the store updated for all in one transaction, then
/// the staged files removed. Returns how many were kept, and of them how many unanalysed. A
/// failed placement leaves its recording pending for the next run; the first such error fails
/// the task after the others are done.
async fn keep(
    services: &Arc<Services>,
    keeps: Vec<(StoredRecording, Utf8PathBuf, String)>,
) -> Result<(u32, u32), TaskError> {
    if keeps.is_empty() {
        return Ok((0, 0));
    }
    let staging = services.program.paths.staging.clone();
    let recordings = services.program.paths.recordings.clone();
    let now = services.clock.now();
    // What the `message recording` rule reports, by id (the kept path filled in below).
    let about: HashMap<uuid::Uuid, Recording> = match &services.program.messaging {
        Some(m)
            if m.messages
                .iter()
                .any(|r| matches!(r, MessageRule::Recording)) =>
        {
            keeps
                .iter()
                .map(|(s, _, _)| (s.recording.id, s.recording.clone()))
                .collect()
        }
        _ => HashMap::new(),
    };
    let placed = blocking(move || {
        let mut out = Placements::default();
        for (stored, folder, why) in keeps {
            let id = stored.recording.id;
            let Some(src) = stored.recording.path else {
                out.gone.push(id);
                continue;
            };
            if !src.starts_with(&staging) {
                // Moved by an earlier run that was stopped before it cleared the pending mark.
                out.moved.push((id, src.clone(), src, why, folder));
                continue;
            }
            let name = src.file_name().unwrap_or("recording.wav").to_owned();
            match moving::place(&src, &recordings.join(&folder), &name) {
                Ok(p) => out.moved.push((id, src, p.path, why, folder)),
                Err(e) if e.is_source_missing() => {
                    tracing::warn!(recording = %id, error = %e, "the staged file is missing");
                    out.gone.push(id);
                }
                Err(e) => {
                    tracing::error!(recording = %id, error = %e, "could not keep the recording; it stays in staging");
                    out.error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        Ok(out)
    })
    .await?;
    let Placements { moved, gone, error } = placed;
    // The messages go in first: a run stopped after this re-keeps the same recordings and
    // pushes the same ids again, while one stopped after the store update would never
    // revisit them.
    if let Some(messaging) = &services.program.messaging {
        let mut messages = Vec::new();
        for (id, _, to, _, _) in &moved {
            if let Some(r) = about.get(id) {
                let kept = Recording {
                    path: Some(to.clone()),
                    ..r.clone()
                };
                messages.extend(
                    crate::messaging::messages::recording_message(messaging, &kept, now).map_err(
                        |e| TaskError::Permanent(format!("cannot build a recording message: {e}")),
                    )?,
                );
            }
        }
        services.push_messages(messages).await?;
    }
    let paths: Vec<(uuid::Uuid, Utf8PathBuf)> = moved
        .iter()
        .map(|(id, _, to, _, _)| (*id, to.clone()))
        .collect();
    services
        .with_store(move |s, _| {
            s.set_recording_paths(&paths)?;
            s.mark_recordings_deleted(&gone, now)
        })
        .await?;
    let unanalysed = moved
        .iter()
        .filter(|(_, _, _, _, folder)| folder.starts_with(UNANALYSED_FOLDER))
        .count() as u32;
    let kept = moved.len() as u32 - unanalysed;
    blocking(move || {
        for (id, from, to, why, _) in &moved {
            if from != to {
                moving::remove_source(from).map_err(|e| transient(e.to_string()))?;
            }
            tracing::info!(recording = %id, path = %to, reason = why.as_str(), "kept");
        }
        Ok(())
    })
    .await?;
    match error {
        Some(e) => Err(TaskError::Transient(e)),
        None => Ok((kept, unanalysed)),
    }
}

/// What [`keep`] placed: (id, staged path, kept path, reason, folder) per recording, the
/// recordings whose staged file was gone, and the first placement error.
#[derive(Default)]
struct Placements {
    moved: Vec<(uuid::Uuid, Utf8PathBuf, Utf8PathBuf, String, Utf8PathBuf)>,
    gone: Vec<uuid::Uuid>,
    error: Option<String>,
}

/// Deletes the recordings' staged files; the rows stay, marked deleted first (all in one
/// transaction), so a crash leaves files the next run removes, never an unmarked row pointing
/// at nothing. Returns how many were deleted.
async fn delete(
    services: &Arc<Services>,
    deletes: Vec<(StoredRecording, String)>,
) -> Result<u32, TaskError> {
    if deletes.is_empty() {
        return Ok(0);
    }
    let ids: Vec<uuid::Uuid> = deletes.iter().map(|(s, _)| s.recording.id).collect();
    let now = services.clock.now();
    services
        .with_store(move |s, _| s.mark_recordings_deleted(&ids, now))
        .await?;
    let n = deletes.len() as u32;
    blocking(move || {
        for (stored, why) in &deletes {
            if let Some(src) = &stored.recording.path {
                moving::remove_source(src).map_err(|e| transient(e.to_string()))?;
            }
            tracing::info!(recording = %stored.recording.id, reason = why.as_str(), "deleted");
        }
        Ok(())
    })
    .await?;
    Ok(n)
}

/// Applies the retention policy to the recordings kept under `paths.recordings`: each deletion
/// is marked in the store (one transaction) before its file is removed, and logged with its
/// reason. A recording with messages still in the outbox is never deleted.
async fn retain(
    services: &Arc<Services>,
    policy: &crate::spec::Retention,
    report: &mut Report,
) -> Result<(), TaskError> {
    use crate::files::retention::{self, FsUsage, Kept};
    let dir = services.program.paths.recordings.clone();
    let key = policy.keep_newest.as_ref().map(|k| k.per_tag_key.clone());
    let listed = {
        let dir = dir.clone();
        services
            .with_store(move |s, _| s.kept_recordings(&dir, key.as_deref()))
            .await?
    };
    // Recordings whose messages still wait in the outbox keep their files.
    let unsent: HashSet<uuid::Uuid> = if services.program.messaging.is_some() {
        services
            .with_outbox(|o, _| o.recordings_with_unsent())
            .await?
    } else {
        HashSet::new()
    };
    let fs_dir = dir.clone();
    let tag_key = policy
        .keep_newest
        .as_ref()
        .map(|k| k.per_tag_key.clone())
        .unwrap_or_default();
    let (kept, fs) = blocking(move || {
        let kept: Vec<Kept> = listed
            .into_iter()
            .map(|(id, path, start, values)| Kept {
                bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
                tags: values.into_iter().map(|v| (tag_key.clone(), v)).collect(),
                messages_pending: unsent.contains(&id),
                id,
                path,
                start,
            })
            .collect();
        let fs = crate::files::space::fs_stats(&fs_dir)
            .map_err(|e| transient(format!("{fs_dir}: {e}")))?;
        Ok((kept, fs))
    })
    .await?;
    let usage = FsUsage {
        total: fs.total,
        used: fs.total.saturating_sub(fs.free),
    };
    let plan = retention::plan(policy, &kept, usage, services.clock.now());
    report.retention_shortfall_bytes = plan.shortfall_bytes;
    if plan.shortfall_bytes > 0 {
        tracing::warn!(
            bytes = plan.shortfall_bytes,
            "retention cannot bring usage under its limit: what is left is protected"
        );
    }
    if plan.deletions.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = plan.deletions.iter().map(|d| d.id).collect();
    let now = services.clock.now();
    services
        .with_store(move |s, _| s.mark_recordings_deleted(&ids, now))
        .await?;
    report.retention_deleted = plan.deletions.len() as u32;
    blocking(move || {
        for d in &plan.deletions {
            moving::remove_source(&d.path).map_err(|e| transient(e.to_string()))?;
            tracing::info!(recording = %d.id, path = %d.path, reason = ?d.reason, "deleted by retention");
        }
        Ok(())
    })
    .await
}

/// Matches the WAVs in staging that are not `known` pending recordings with the store (see
/// the module docs, step 2); true when it made more recordings pending.
async fn scan_staging(
    services: &Arc<Services>,
    known: &std::collections::HashSet<Utf8PathBuf>,
    report: &mut Report,
) -> Result<bool, TaskError> {
    let staging = services.program.paths.staging.clone();
    let mut files = blocking(move || staged_wavs(&staging)).await?;
    files.retain(|(path, _)| !known.contains(path));
    if files.is_empty() {
        return Ok(false);
    }
    let mut more = false;
    // One store call for every file: a backlog of thousands costs one thread hop.
    let rows = services
        .with_store(move |s, _| {
            files
                .into_iter()
                .map(|(path, age)| Ok((s.recording_of_staged_file(&path)?, path, age)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    for (row, path, age) in rows {
        match row {
            Some(r) if r.deleted_on.is_some() => {
                remove_leftover(path, report).await?;
            }
            Some(r) if r.recording.path.as_ref() != Some(&path) => {
                // Kept: the store points at the copy; the staged file is a leftover once the
                // copy is there.
                let kept = r.recording.path.clone();
                if kept.as_ref().is_some_and(|k| k.exists()) {
                    remove_leftover(path, report).await?;
                }
            }
            Some(r) => {
                let id = r.recording.id;
                services.with_store(move |s, _| s.mark_pending(id)).await?;
                more = true;
            }
            None if age >= ADOPT_AFTER => {
                adopt(services, &path).await?;
                report.adopted += 1;
                more = true;
            }
            None => {}
        }
    }
    Ok(more)
}

async fn remove_leftover(path: Utf8PathBuf, report: &mut Report) -> Result<(), TaskError> {
    tracing::info!(path = %path, "removing the staged copy of a recording already managed");
    blocking(move || moving::remove_source(&path).map_err(|e| transient(e.to_string()))).await?;
    report.leftovers += 1;
    Ok(())
}

/// Stores a staged file nothing stored, from its GUANO metadata and header, and analyses it.
async fn adopt(services: &Arc<Services>, path: &Utf8Path) -> Result<(), TaskError> {
    let file = path.to_owned();
    let recorded = blocking(move || recorded_from_file(&file)).await;
    let recorded = match recorded {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "a staged file that is not a readable recording is left alone");
            return Ok(());
        }
    };
    tracing::warn!(path = %path, id = %recorded.id, "adopting a staged recording that was never stored");
    let deployment = super::deployment::current(services).await?;
    super::record::store(services, &recorded, deployment, None).await?;
    let id: uuid::Uuid = recorded
        .id
        .parse()
        .map_err(|e| TaskError::Permanent(format!("{e}")))?;
    services.with_store(move |s, _| s.mark_pending(id)).await?;
    if !services.program.detectors.is_empty()
        && let Err(e) = super::detect::detect(services, recorded).await
    {
        tracing::warn!(path = %path, error = %e, "the adopted recording could not be analysed");
        let message = e.to_string();
        services
            .with_store(move |s, _| s.record_detection_failure(id, "adoption", &message))
            .await?;
    }
    Ok(())
}

/// What a staged file says about itself: GUANO `acoupi|Id`, `Timestamp`, `TE`, and the header.
fn recorded_from_file(path: &Utf8Path) -> Result<Recorded, TaskError> {
    let info = crate::audio::wav_reader::probe(path).map_err(|e| transient(e.to_string()))?;
    let guano = crate::audio::wav::read_guano(path)
        .ok()
        .flatten()
        .unwrap_or_default();
    let field = |key: &str| {
        guano.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let te = field("TE")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(1.0);
    let start = field("Timestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .or_else(|| {
            let m = std::fs::metadata(path).ok()?.modified().ok()?;
            Timestamp::try_from(m).ok()
        })
        .unwrap_or_else(Timestamp::now);
    let samplerate = (f64::from(info.samplerate) * te).round() as u32;
    Ok(Recorded {
        id: field("acoupi|Id")
            .filter(|i| i.parse::<uuid::Uuid>().is_ok())
            .unwrap_or_else(|| crate::spec::data::new_id().to_string()),
        path: path.to_owned(),
        start: crate::spec::isotime::to_micros(start),
        duration_s: info.frames as f64 / f64::from(samplerate.max(1)),
        samplerate,
        channels: info.channels,
        frames: info.frames,
        time_expansion: te,
        overruns: 0,
    })
}

/// The finished WAVs in `staging` (hidden `.part` files being written are skipped), with
/// their age.
fn staged_wavs(staging: &Utf8Path) -> Result<Vec<(Utf8PathBuf, Duration)>, TaskError> {
    let entries = match staging.read_dir_utf8() {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(transient(format!("cannot list {staging}: {e}"))),
    };
    let now = std::time::SystemTime::now();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| transient(format!("cannot list {staging}: {e}")))?;
        let name = entry.file_name();
        if name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".wav") {
            continue;
        }
        let age = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        out.push((entry.into_path(), age));
    }
    out.sort();
    Ok(out)
}

fn transient(e: impl std::fmt::Display) -> TaskError {
    TaskError::Transient(e.to_string())
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TaskError::Transient(format!("the file thread failed: {e}")))?
}
