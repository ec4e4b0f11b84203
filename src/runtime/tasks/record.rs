//! `record`: one duty-cycle recording from the program's microphone into the staging
//! directory; its result (the `Recorded` JSON: id, path, start, duration, rate, channels) is
//! the argument of the follow-up `detect` (or `manage-files`) task.
//!
//! Idempotent: the result is kept under `state/recorded/<task id>.json`, so a task the broker
//! redelivers after it already recorded (its acknowledgement lost with the connection or the
//! process) returns the same recording instead of storing a second one.

use serde_json::{Map, Value as Json};

use super::{TaskContext, TaskError, TaskFuture};
use crate::audio::record::{RecordPlan, Recorded, record_once};
use crate::audio::synthetic::Pacing;
use crate::audio::{AudioError, open::open};
use crate::spec::Program;
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

/// Whether a recording failure may pass (a device that comes back, space that frees up).
pub(crate) fn classify(e: AudioError) -> TaskError {
    match e {
        AudioError::Format(m) => TaskError::Permanent(m),
        other => TaskError::Transient(other.to_string()),
    }
}

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let done_dir = ctx.program().paths.state.join("recorded");
        let done = done_dir.join(format!("{}.json", ctx.task_id.replace(['/', '.'], "_")));
        if let Ok(text) = std::fs::read_to_string(&done)
            && let Ok(previous) = serde_json::from_str::<Recorded>(&text)
        {
            tracing::info!(id = %ctx.task_id, path = %previous.path, "already recorded by an earlier delivery");
            return serde_json::to_value(previous).map_err(|e| TaskError::Permanent(e.to_string()));
        }
        let services = ctx.services.clone();
        let recorded = tokio::task::spawn_blocking(move || -> Result<Recorded, TaskError> {
            let program = &services.program;
            let mic = microphone(program)?;
            let plan = RecordPlan::for_program(program, mic, serial(&services.host, &mic.name));
            let mut source = open(mic, Pacing::RealTime).map_err(classify)?;
            record_once(source.as_mut(), &plan).map_err(classify)
        })
        .await
        .map_err(|e| TaskError::Transient(format!("the recording thread failed: {e}")))??;
        tracing::info!(path = %recorded.path, duration_s = recorded.duration_s, "recorded");
        tally(&ctx.program().paths.state, &recorded);
        let value =
            serde_json::to_value(&recorded).map_err(|e| TaskError::Permanent(e.to_string()))?;
        if let Err(e) = std::fs::create_dir_all(&done_dir)
            .and_then(|()| std::fs::write(&done, value.to_string()))
        {
            tracing::warn!(error = %e, "could not remember the recording for redeliveries");
        }
        Ok(value)
    })
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
