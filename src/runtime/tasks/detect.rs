//! `detect`: runs the program's detectors on one recording and stores what each found.
//!
//! In: the `Recorded` result of `record` (its recording already in the metadata store), or
//! `null` when the recording was skipped (nothing to do).
//! Out: a [`Detected`]: one outcome per detector, the argument of the follow-up
//! `manage-files`. Each detector's detections under its threshold are dropped; the rest are
//! stored as one acoupi model output per detector, with their tags.
//!
//! Each output's detection messages (the manifest's `message detection` rules) are stored in
//! the outbox right after the output.
//!
//! Idempotent: a detector whose output for this recording is already stored (an earlier
//! delivery of the task got that far) is not run again; its stored output is reported. A
//! detector failure fails the task after the detectors before it have stored their outputs,
//! so a retry runs only what is missing. A file that cannot be read, or that a program
//! refuses, is a permanent failure; a detector that crashed or timed out is retried.

use std::sync::Arc;

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::{Services, TaskContext, TaskError, TaskFuture};
use crate::detect::{self, DetectError, Request};
use crate::spec::payload::{Detected, DetectorOutcome, Recorded, optional_arg};
use crate::store::OutputSummary;

pub(super) fn run(ctx: TaskContext, args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        // No recording (its slot was skipped, e.g. while staging was over its budget): as in
        // Celery, the chain goes on with `null`, and there is nothing to analyse.
        let Some(recorded) = optional_arg::<Recorded>(&args, 0, "a `Recorded`")? else {
            tracing::debug!("no recording to analyse");
            return Ok(Json::Null);
        };
        let id = recorded.id.clone();
        match run_detectors(&ctx.services, recorded).await {
            Ok(detected) => {
                serde_json::to_value(&detected).map_err(|e| TaskError::Permanent(e.to_string()))
            }
            Err((error, detector)) => {
                if is_final(&ctx, &error) {
                    record_failure(&ctx.services, &id, &detector, &error).await;
                }
                Err(error)
            }
        }
    })
}

/// Whether `error` ends this task for good: a permanent failure, or a transient one on the
/// last retry.
fn is_final(ctx: &TaskContext, error: &TaskError) -> bool {
    let retries = ctx
        .program()
        .tasks
        .iter()
        .find(|t| t.name == crate::spec::tasks::DETECT)
        .map_or(0, |t| t.retries);
    matches!(error, TaskError::Permanent(_)) || ctx.retries >= retries
}

/// Records in the store that `detector` failed for good on recording `id`, so file
/// management keeps the recording unanalysed instead of waiting for it (best effort: the
/// task's own error is what matters).
async fn record_failure(services: &Arc<Services>, id: &str, detector: &str, error: &TaskError) {
    let Ok(uuid) = id.parse::<Uuid>() else {
        return;
    };
    let (detector, message) = (detector.to_owned(), error.to_string());
    if let Err(e) = services
        .with_store(move |s, _| s.record_detection_failure(uuid, &detector, &message))
        .await
    {
        tracing::warn!(recording = id, error = %e, "could not record the detection failure");
    }
}

/// Runs every detector of the program on `recorded` and stores their outputs.
pub(crate) async fn detect(
    services: &Arc<Services>,
    recorded: Recorded,
) -> Result<Detected, TaskError> {
    run_detectors(services, recorded).await.map_err(|(e, _)| e)
}

/// [`detect`], with the name of the detector a failure came from (`detect` itself when no
/// detector ran).
async fn run_detectors(
    services: &Arc<Services>,
    recorded: Recorded,
) -> Result<Detected, (TaskError, String)> {
    let whole = |e: TaskError| (e, "detect".to_owned());
    let id: Uuid = recorded.id.parse().map_err(|e| {
        whole(TaskError::Permanent(format!(
            "recording id `{}` is not a UUID: {e}",
            recorded.id
        )))
    })?;
    let recording = services
        .with_store(move |store, _| store.recording(id))
        .await
        .map_err(whole)?
        .ok_or_else(|| {
            whole(TaskError::Permanent(format!(
                "recording `{id}` ({}) is not in the metadata store",
                recorded.path
            )))
        })?
        .recording;
    let engines = services.engines();
    let mut outputs = Vec::new();
    for (detector, engine) in engines.iter() {
        let name = detector.name.clone();
        let earlier = {
            let name = name.clone();
            services
                .with_store(move |store, _| store.output_summary(id, &name))
                .await
                .map_err(whole)?
        };
        let summary = match earlier {
            Some(s) => {
                tracing::info!(detector = %name, recording = %id, "already detected by an earlier delivery");
                // Its messages may not have been stored before that delivery stopped.
                if wants_detection_messages(services) {
                    let output_id = s.id;
                    let output = services
                        .with_store(move |store, _| store.model_output(output_id))
                        .await
                        .map_err(whole)?;
                    if let Some(output) = output {
                        push_detection_messages(services, &output)
                            .await
                            .map_err(whole)?;
                    }
                }
                s
            }
            None => {
                let threshold = detect::threshold(detector);
                let request = request(&recorded, threshold);
                let started = std::time::Instant::now();
                let events = engine.detect(&request).await.map_err(|e| {
                    let message = describe(&e, &name, &recorded);
                    let error = match e {
                        DetectError::Unreadable(_) | DetectError::Refused(_) => {
                            TaskError::Permanent(message)
                        }
                        DetectError::Failed(_) => TaskError::Transient(message),
                    };
                    (error, name.clone())
                })?;
                let output = detect::output::model_output(
                    &name,
                    recording.clone(),
                    &events,
                    threshold,
                    services.clock.now(),
                );
                let summary = summarise(&output);
                tracing::info!(
                    detector = %name,
                    path = %recorded.path,
                    events = events.len(),
                    kept = summary.detections,
                    max_score = ?summary.max_score,
                    ms = started.elapsed().as_millis() as u64,
                    "detected"
                );
                let stored = output.clone();
                services
                    .with_store(move |store, _| store.insert_model_output(&stored))
                    .await
                    .map_err(whole)?;
                push_detection_messages(services, &output)
                    .await
                    .map_err(whole)?;
                summary
            }
        };
        outputs.push(DetectorOutcome {
            detector: name,
            model_output: summary.id.to_string(),
            detections: summary.detections,
            max_score: summary.max_score,
        });
    }
    Ok(Detected {
        recording: recorded,
        outputs,
    })
}

/// Whether the program builds detection messages.
fn wants_detection_messages(services: &Services) -> bool {
    services.program.messaging.as_ref().is_some_and(|m| {
        m.messages
            .iter()
            .any(|r| matches!(r, crate::spec::MessageRule::Detection { .. }))
    })
}

/// Stores in the outbox the detection messages the program's rules build from `output`.
async fn push_detection_messages(
    services: &Arc<Services>,
    output: &crate::spec::data::ModelOutput,
) -> Result<(), TaskError> {
    let Some(messaging) = &services.program.messaging else {
        return Ok(());
    };
    let messages =
        crate::messaging::messages::detection_messages(messaging, output, services.clock.now())
            .map_err(|e| TaskError::Permanent(format!("cannot build a detection message: {e}")))?;
    services.push_messages(messages).await.map(drop)
}

/// `e` as a task error message naming the detector and the file once each.
fn describe(e: &DetectError, name: &str, recorded: &Recorded) -> String {
    let mut message = e.to_string();
    if !message.starts_with("detector `") {
        message = format!("detector `{name}`: {message}");
    }
    if !message.contains(recorded.path.as_str()) {
        message.push_str(&format!(" (on {})", recorded.path));
    }
    message
}

/// The detector request for `recorded` at `threshold`.
pub(crate) fn request(recorded: &Recorded, threshold: f64) -> Request {
    Request {
        id: recorded.id.clone(),
        path: recorded.path.clone(),
        samplerate: recorded.samplerate,
        channels: recorded.channels,
        duration_s: recorded.duration_s,
        time_expansion: recorded.time_expansion,
        recorded_at: recorded.start,
        threshold,
    }
}

/// What a model output about to be stored holds, in brief.
fn summarise(output: &crate::spec::data::ModelOutput) -> OutputSummary {
    OutputSummary {
        id: output.id,
        detections: u32::try_from(output.detections.len()).unwrap_or(u32::MAX),
        max_score: output
            .detections
            .iter()
            .map(|d| d.detection_score)
            .reduce(f64::max),
    }
}
