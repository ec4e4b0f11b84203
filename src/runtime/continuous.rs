//! Continuous recording: one long-lived capture stream in the recording worker, rotated into
//! files at exact sample boundaries aligned to the wall clock; each finished file is handed
//! to the `record` task's follow-ups exactly like a duty-cycle recording.
//!
//! In: the program (its `record` task has a `continuous` schedule), a transport and a
//! shutdown token. Out: follow-up task messages with each `Recorded` as argument. Runs only
//! inside the task's windows, and only while staging is under its budget (the stream ends
//! after the file that fills it, and starts again once file management has made room); a
//! failing device is reopened with backoff; an absent one is polled with the same backoff,
//! recorded missing in the state directory with one warning, and cleared when it opens;
//! overruns are counted by the rotator and logged.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::beat::schedule::Clock;
use super::beat::signature;
use super::celery::TaskMessage;
use super::tasks::Services;
use super::tasks::record::{microphone, serial};
use super::worker::Connector;
use crate::audio::record::{RecordPlan, Rotator};
use crate::audio::{AudioError, open::open, synthetic::Pacing};
use crate::spec::{Program, Schedule, Worker};

/// Whether `worker` is the one that must run the continuous recorder.
pub fn applies(program: &Program, worker: &Worker) -> bool {
    program.task(crate::spec::tasks::RECORD).is_some_and(|t| {
        matches!(t.schedule, Schedule::Continuous { .. }) && worker.queues.contains(&t.queue)
    })
}

/// Stores `rec` in the metadata store, then publishes the `record` task's follow-ups with it
/// as their argument. A recording that cannot be stored stays in staging (the error is logged
/// with its path) and is still handed on.
async fn hand_on(
    broker: &super::transport::Broker,
    services: &Arc<Services>,
    task: &crate::spec::Task,
    rec: &crate::audio::record::Recorded,
) {
    let program = &services.program;
    match super::tasks::deployment::current(services).await {
        Ok(d) => {
            let _ = super::tasks::record::store(services, rec, d, None).await;
        }
        Err(e) => {
            tracing::error!(error = %e, path = %rec.path, "the recording was kept in staging but could not be stored");
        }
    }
    let value = match serde_json::to_value(rec) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a recording");
            return;
        }
    };
    tracing::info!(path = %rec.path, overruns = rec.overruns, "recorded");
    if rec.overruns > 0 {
        tracing::warn!(overruns = rec.overruns, path = %rec.path, "samples were lost: the recorder fell behind the device");
    }
    super::tasks::record::tally(&program.paths.state, rec);
    for f in &task.follow_ups {
        let sig = signature(program, f, 1);
        let mut msg = TaskMessage::new(f.clone(), vec![value.clone()], serde_json::Map::new());
        msg.callbacks = sig.link.clone();
        let queue = sig.queue.clone().unwrap_or_else(|| task.queue.clone());
        if let Err(e) = broker.publish(&queue, &msg.encode()).await {
            tracing::error!(error = %e, follow_up = %f, path = %rec.path, "could not hand the recording on");
        }
    }
}

/// Why a capture stream ended with an error.
enum Stopped {
    /// The microphone (named) is absent, for this reason: wait for it without an error.
    Missing(String, String),
    /// Anything else: logged as an error, then the stream is reopened.
    Failed(String),
}

/// How often a paused recorder looks at staging again.
const BUDGET_POLL: Duration = Duration::from_secs(2);

/// Why the next file would pass the staging budget, if it would (measuring staging on a
/// blocking thread). A staging directory that cannot be measured does not pause recording:
/// the recorder's own writes report that problem.
async fn staging_full(services: &Arc<Services>) -> Option<String> {
    let program = Arc::clone(&services.program);
    tokio::task::spawn_blocking(move || super::tasks::record::over_budget(&program))
        .await
        .ok()?
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot measure staging against its budget");
            None
        })
}

/// Records until `shutdown` fires.
pub async fn run(connector: Connector, services: Arc<Services>, shutdown: CancellationToken) {
    let program = Arc::clone(&services.program);
    let Some(task) = program.task(crate::spec::tasks::RECORD).cloned() else {
        return;
    };
    let Schedule::Continuous { windows } = task.schedule.clone() else {
        return;
    };
    let clock = match Clock::new(&program.timezone, program.location) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "continuous recording cannot start");
            return;
        }
    };
    let Some(broker) = connector.connect(&shutdown).await else {
        return;
    };
    // The follow-ups' queues must exist before their workers first start (publishes are
    // mandatory: a message no queue takes is refused).
    for q in super::worker::follow_up_queues(&program, std::slice::from_ref(&task.queue)) {
        if let Err(e) = broker.declare(&q).await {
            tracing::warn!(error = %e, queue = %q, "could not declare a queue");
        }
    }
    let mut backoff = Duration::from_secs(1);
    let mut paused = false;
    while !shutdown.is_cancelled() {
        // Staging over its budget: no new file until detection and file management catch up.
        match staging_full(&services).await {
            Some(why) => {
                if !paused {
                    tracing::warn!("{why}");
                    paused = true;
                }
                tokio::select! { _ = tokio::time::sleep(BUDGET_POLL) => continue, _ = shutdown.cancelled() => break }
            }
            None if paused => {
                tracing::info!("staging is back under its budget: continuous recording resumes");
                paused = false;
            }
            None => {}
        }
        let now = jiff::Timestamp::now();
        if !clock.in_windows(&windows, now) {
            // Outside the windows: wake at the next in-window second (or in a minute).
            let next = clock.next_slot(1_000, 0, &windows, now);
            let wait = next
                .map(|n| Duration::try_from(n.duration_since(now)).unwrap_or_default())
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.cancelled() => break }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, c, w, s) = (
            Arc::clone(&services),
            Arc::clone(&clock),
            windows.clone(),
            Arc::clone(&stop),
        );
        let capture = tokio::task::spawn_blocking(move || -> Result<u64, Stopped> {
            let mic = microphone(&p.program).map_err(|e| Stopped::Failed(e.to_string()))?;
            let plan = RecordPlan::for_program(&p.program, mic, serial(&p.host, &mic.name));
            let mut source = open(mic, Pacing::RealTime).map_err(|e| match e {
                AudioError::Missing(why) => Stopped::Missing(mic.name.clone(), why),
                e => Stopped::Failed(e.to_string()),
            })?;
            crate::runtime::microphone::present(&p.program.paths.state, &mic.name);
            tracing::info!(microphone = %mic.name, "continuous recording started");
            let mut rotator = Rotator::new(plan);
            let result = rotator.run(
                source.as_mut(),
                || s.load(Ordering::Relaxed) || !c.in_windows(&w, jiff::Timestamp::now()),
                |rec| {
                    let _ = tx.send(rec);
                    // The next file would pass the staging budget: end the stream with this
                    // one (a short file after it would pass the budget).
                    if matches!(super::tasks::record::over_budget(&p.program), Ok(Some(_))) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            );
            result
                .map(|()| rotator.files())
                .map_err(|e| Stopped::Failed(e.to_string()))
        });
        tokio::pin!(capture);
        let outcome = loop {
            tokio::select! {
                Some(rec) = rx.recv() => hand_on(&broker, &services, &task, &rec).await,
                r = &mut capture => break r,
                _ = shutdown.cancelled() => stop.store(true, Ordering::Relaxed),
            }
        };
        // Files finished just before the capture ended.
        while let Ok(rec) = rx.try_recv() {
            hand_on(&broker, &services, &task, &rec).await;
        }
        match outcome {
            Ok(Ok(files)) => {
                tracing::info!(files, "continuous recording paused");
                backoff = Duration::from_secs(1);
            }
            Ok(Err(Stopped::Missing(mic, why))) => {
                // One warning when it goes missing; the backoff keeps polling for it.
                let state = &program.paths.state;
                crate::runtime::microphone::missing(state, &mic, jiff::Timestamp::now(), &why);
                tokio::select! { _ = tokio::time::sleep(backoff) => {}, _ = shutdown.cancelled() => break }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Ok(Err(Stopped::Failed(e))) => {
                tracing::error!(error = %e, retry_in = ?backoff, "continuous recording failed; reopening");
                tokio::select! { _ = tokio::time::sleep(backoff) => {}, _ = shutdown.cancelled() => break }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => {
                tracing::error!(error = %e, "the recording thread panicked");
                break;
            }
        }
    }
    broker.close().await;
}
