//! `record`: one duty-cycle recording from the program's microphone into the staging
//! directory; its result (the `Recorded` JSON: id, path, start, duration, rate, channels) is
//! the argument of the follow-up `detect` (or `manage-files`) task.
//!
//! Each recording is stored in the metadata store under the current deployment, with the id of
//! the task that made it. Idempotent: a task the broker redelivers after it already recorded
//! (its acknowledgement lost with the connection or the process) finds its recording in the
//! store and returns it instead of recording and storing a second one.
//!
//! A microphone that is absent (no device matches, its file does not exist) skips the slot
//! rather than failing it: the task returns `null`, the state directory records it missing
//! (one warning, see [`crate::runtime::microphone`]) and the next slot tries again.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::{Services, TaskContext, TaskError, TaskFuture};
use crate::audio::record::{RecordPlan, Recorded, record_once};
use crate::audio::synthetic::Pacing;
use crate::audio::{AudioError, open::open};
use crate::spec::Program;
use crate::spec::data::Deployment;
use crate::spec::layout::State;

/// The microphone the program records with.
pub(crate) fn microphone(program: &Program) -> Result<&crate::spec::Microphone, TaskError> {
    program
        .microphones
        .iter()
        .find(|m| m.name == program.recording.microphone)
        .ok_or_else(|| {
            TaskError::Permanent(format!(
                "microphone `{}` is not in the program",
                program.recording.microphone
            ))
        })
}

/// A serial for GUANO: this machine and the microphone.
pub(crate) fn serial(host: &crate::host::Host, mic: &str) -> String {
    format!("{}/{mic}", host.hostname)
}

/// Whether a recording failure may pass (a device that comes back, space that frees up). An
/// absent microphone is not a failure of the task; the handler skips the slot before this.
pub(crate) fn classify(e: AudioError) -> TaskError {
    match e {
        AudioError::Format(m) => TaskError::Permanent(m),
        other => TaskError::Transient(other.to_string()),
    }
}

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let services = Arc::clone(&ctx.services);
        let task_id = ctx.task_id.clone();
        let earlier = services
            .with_store(move |store, _| store.recording_for_task(&task_id))
            .await?;
        if let Some(stored) = earlier {
            let previous = Recorded::from_recording(&stored.recording, stored.staged_path.as_ref());
            tracing::info!(id = %ctx.task_id, path = %previous.path, "already recorded by an earlier delivery");
            return to_json(&previous);
        }
        // Before recording: without a deployment there is nothing to file the recording under.
        let deployment = super::deployment::current(&services).await?;
        if let Some(paused) = over_budget(&services.program)? {
            // Detection is behind: this slot is skipped, not failed; its follow-ups get `null`.
            tracing::warn!("{paused}");
            return Ok(Json::Null);
        }
        let recorder = Arc::clone(&services);
        let recorded =
            tokio::task::spawn_blocking(move || -> Result<Option<Recorded>, TaskError> {
                let program = &recorder.program;
                let state = &program.paths.state;
                let mic = microphone(program)?;
                let plan = RecordPlan::for_program(program, mic, serial(&recorder.host, &mic.name));
                let mut source = match open(mic, Pacing::RealTime) {
                    Ok(source) => source,
                    Err(AudioError::Missing(why)) => {
                        let now = recorder.clock.now();
                        crate::runtime::microphone::missing(state, &mic.name, now, &why);
                        return Ok(None);
                    }
                    Err(e) => return Err(classify(e)),
                };
                crate::runtime::microphone::present(state, &mic.name);
                record_once(source.as_mut(), &plan)
                    .map(Some)
                    .map_err(classify)
            })
            .await
            .map_err(|e| TaskError::Transient(format!("the recording thread failed: {e}")))??;
        // The microphone is missing: this slot is skipped, not failed (one warning said so
        // when it went missing); its follow-ups get `null`.
        let Some(recorded) = recorded else {
            return Ok(Json::Null);
        };
        // The store keeps microseconds: the result is what a redelivery would read back.
        let mut recorded = recorded;
        recorded.start = crate::spec::isotime::to_micros(recorded.start);
        tracing::info!(path = %recorded.path, duration_s = recorded.duration_s, "recorded");
        store(&services, &recorded, deployment, Some(ctx.task_id.clone())).await?;
        tally(&services.program.paths.state, &recorded);
        to_json(&recorded)
    })
}

/// Why the next recording would pass the staging budget, if it would: recording pauses (each
/// slot is skipped with a warning) until file management has emptied staging below it.
pub(crate) fn over_budget(program: &Program) -> Result<Option<String>, TaskError> {
    let mic = microphone(program)?;
    let bytes_per_sample: u64 = match mic.sample_format {
        crate::spec::SampleFormat::I16 => 2,
        crate::spec::SampleFormat::I24 => 3,
        crate::spec::SampleFormat::I32 | crate::spec::SampleFormat::F32 => 4,
    };
    let next =
        crate::audio::record::frames_for_ms(program.recording.duration_ms, mic.samplerate_hz)
            .saturating_mul(u64::from(mic.channels) * bytes_per_sample);
    let staging = crate::files::space::staging(program).map_err(|e| {
        TaskError::Transient(format!("cannot measure {}: {e}", program.paths.staging))
    })?;
    // No budget at all means the disk is below `min-free-disk`: the recorder's own check
    // fails the task with that cause.
    if staging.budget == 0 {
        return Ok(None);
    }
    Ok(staging.would_overflow(next).then(|| {
        format!(
            "recording paused: staging {} holds {} files, {} bytes, and its budget is {} bytes; \
             it resumes when detection and file management catch up",
            program.paths.staging, staging.files, staging.bytes, staging.budget
        )
    }))
}

/// Stores `recorded` under `deployment` in the metadata store (idempotent per task id), waiting
/// in staging for file management. On failure the file stays in staging, named in the error,
/// so no audio is lost.
pub(crate) async fn store(
    services: &Arc<Services>,
    recorded: &Recorded,
    deployment: Deployment,
    task_id: Option<String>,
) -> Result<(), TaskError> {
    let row = recorded.to_recording(deployment).map_err(|e| {
        TaskError::Permanent(format!("recording id `{}` is not a UUID: {e}", recorded.id))
    })?;
    services
        .with_store(move |store, _| {
            let inserted = store.insert_recording(&row, task_id.as_deref())?;
            if inserted.created {
                store.mark_pending(inserted.id)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| {
            tracing::error!(path = %recorded.path, error = %e, "the recording was kept in staging but could not be stored");
            e
        })
}

fn to_json(recorded: &Recorded) -> Result<Json, TaskError> {
    serde_json::to_value(recorded).map_err(|e| TaskError::Permanent(e.to_string()))
}

/// Adds `rec` to the recording tally (best effort: a heartbeat detail, never a failure).
pub(crate) fn tally(state: &camino::Utf8Path, rec: &Recorded) {
    let path = State(state).recording_tally();
    let mut t: Json = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| serde_json::json!({"files": 0, "overruns": 0}));
    let add = |t: &mut Json, k: &str, n: u64| {
        let v = t
            .get(k)
            .and_then(Json::as_u64)
            .unwrap_or(0)
            .saturating_add(n);
        t[k] = Json::from(v);
    };
    add(&mut t, "files", 1);
    add(&mut t, "overruns", rec.overruns);
    t["last_file"] = Json::from(rec.path.as_str());
    t["last_start"] = Json::from(rec.start.to_string());
    if let Err(e) = crate::fsx::write_atomic(&path, t.to_string().as_bytes(), None) {
        tracing::warn!(error = %e, "could not update the recording tally");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guano_serial_names_the_machine_and_the_microphone() {
        let host = crate::host::Host {
            hostname: "pi-meadow".into(),
            device_id: "0123456789abcdef".into(),
        };
        assert_eq!(serial(&host, "ultramic"), "pi-meadow/ultramic");
    }
}
