//! `heartbeat`: says the program is alive, as acoupi's `Heartbeat` with this device's metrics.
//!
//! In: the program, this machine ([`crate::host`]), the metadata store, the outbox, and in the
//! state directory the previous heartbeat (`heartbeat.json`) and the recording tally. Out:
//! acoupi's `Heartbeat` JSON (`sent_on`, `device_id`, `status` `OK`, `metrics`), returned and,
//! when the program has `messaging`, added to the outbox as a `heartbeat` message, so a
//! heartbeat made offline is delivered later (without `messaging` there is nowhere to send it);
//! one log line; and `state/heartbeat.json` for `acoupi status` (`timestamp`, the recording
//! tally, the staging backlog, the missing microphone or `null`, the metrics, and the marks
//! the next heartbeat counts from).
//!
//! | Metric | Unit | What |
//! |---|---|---|
//! | `cpu_usage` | percent | system CPU use (all cores) since the previous heartbeat; the first one samples 200 ms |
//! | `free_memory` | bytes | memory available without swapping (`MemAvailable`, acoupi's name) |
//! | `staging_free`, `storage_free` | bytes | free space on the staging and recordings file systems |
//! | `temperature` | celsius | CPU or SoC temperature, when the machine has a readable sensor |
//! | `uptime` | seconds | since the machine booted |
//! | `recordings`, `detections`, `kept_recordings` | count | stored (kept) since the previous heartbeat |
//! | `audio_overruns` | samples | lost because the recorder fell behind, since the previous heartbeat |
//! | `staging_files`, `staging_bytes` | count, bytes | recordings waiting in staging |
//! | `microphone_missing_s` | seconds | how long the microphone has been missing (only while it is) |
//! | `outbox_unsent`, `outbox_expired` | count | messages waiting to be sent, messages given up on (with `messaging`) |
//!
//! A metric that cannot be read is left out; it never fails the task. The counts come from
//! the marks the previous heartbeat left in the state file (the first heartbeat counts from
//! the store's start): see [`crate::store::Activity`]. The message id is derived from the task
//! id, so a redelivered heartbeat is stored once; a heartbeat the outbox refused fails the task
//! (transient) and leaves the marks where they were, so the next one counts its span too.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::{TaskContext, TaskError, TaskFuture};
use crate::host::metrics::{self as host, CpuTimes};
use crate::messaging::MessageKind;
use crate::messaging::messages::message_id;
use crate::spec::data::{Heartbeat, Metric};
use crate::spec::isotime;
use crate::spec::layout::State;
use crate::store::{ActivityMark, NewMessage};

/// How long the CPU is sampled when there is no usable sample from the previous heartbeat.
const FIRST_SAMPLE: Duration = Duration::from_millis(200);

/// What a heartbeat leaves for the next one to count from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Marks {
    /// The store's counts.
    #[serde(default)]
    store: Option<ActivityMark>,
    /// The recording tally's overruns.
    #[serde(default)]
    overruns: Option<u64>,
    /// The CPU counters.
    #[serde(default)]
    cpu: Option<CpuTimes>,
    /// The machine's uptime when the CPU was sampled (a smaller one later means a reboot).
    #[serde(default)]
    uptime: Option<f64>,
}

/// The metrics of one heartbeat, all captured at its time.
struct Metrics {
    at: Timestamp,
    list: Vec<Metric>,
}

impl Metrics {
    /// Adds `name` when it has a finite value.
    fn add(&mut self, name: &str, value: Option<f64>, unit: &str) {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            self.list.push(Metric {
                name: name.to_owned(),
                value,
                captured_on: self.at,
                unit: unit.to_owned(),
            });
        }
    }

    /// Adds a count or a size.
    fn add_u64(&mut self, name: &str, value: Option<u64>, unit: &str) {
        self.add(name, value.map(|v| v as f64), unit);
    }
}

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let services = &ctx.services;
        let program = ctx.program();
        let state = State(&program.paths.state);
        let previous: Marks = read_json(&state.heartbeat())
            .and_then(|beat| serde_json::from_value(beat.get("marks")?.clone()).ok())
            .unwrap_or_default();
        let mut marks = Marks::default();

        let (cpu_usage, cpu, uptime) = cpu_usage(&previous).await;
        marks.cpu = cpu;
        marks.uptime = uptime;
        let now = isotime::to_micros(services.clock.now());
        let mut metrics = Metrics {
            at: now,
            list: Vec::new(),
        };
        metrics.add("cpu_usage", cpu_usage, "percent");
        metrics.add_u64("free_memory", host::available_memory(), "bytes");
        metrics.add_u64(
            "staging_free",
            host::free_bytes(&program.paths.staging),
            "bytes",
        );
        metrics.add_u64(
            "storage_free",
            host::free_bytes(&program.paths.recordings),
            "bytes",
        );
        metrics.add("temperature", host::temperature(), "celsius");
        metrics.add("uptime", uptime, "seconds");

        let recordings = program.paths.recordings.clone();
        let since = previous.store;
        match services
            .with_store(move |s, _| s.activity_since(since.as_ref(), &recordings))
            .await
        {
            Ok(a) => {
                metrics.add_u64("recordings", Some(a.recordings), "count");
                metrics.add_u64("detections", Some(a.detections), "count");
                metrics.add_u64("kept_recordings", Some(a.kept_recordings), "count");
                marks.store = Some(a.mark);
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat: no recording or detection counts");
                marks.store = previous.store;
            }
        }

        // What the recording worker tallied: files, overruns (samples lost), the last file.
        let tally = read_json(&state.recording_tally()).unwrap_or(Json::Null);
        marks.overruns = tally.get("overruns").and_then(Json::as_u64);
        let overruns = marks.overruns.map(|now| since_mark(now, previous.overruns));
        metrics.add_u64("audio_overruns", overruns, "samples");

        // A missing microphone: for how long (no metric while it is present).
        let microphone = crate::runtime::microphone::read(&program.paths.state);
        if let Some(m) = &microphone {
            let missing = now.duration_since(m.missing_since).as_secs_f64().max(0.0);
            metrics.add("microphone_missing_s", Some(missing), "seconds");
        }

        // The staging backlog: what waits for detection and file management.
        let staging = match crate::files::space::staging(program) {
            Ok(s) => {
                metrics.add_u64("staging_files", Some(s.files), "count");
                metrics.add_u64("staging_bytes", Some(s.bytes), "bytes");
                json!({
                    "files": s.files,
                    "bytes": s.bytes,
                    "budget": s.budget,
                    "paused": s.bytes > s.budget,
                })
            }
            Err(e) => json!({ "error": format!("{}: {e}", program.paths.staging) }),
        };

        // The outbox before this heartbeat joins it.
        if program.messaging.is_some() {
            match services.with_outbox(|o, _| o.backlog()).await {
                Ok(b) => {
                    metrics.add_u64("outbox_unsent", Some(b.unsent), "count");
                    metrics.add_u64("outbox_expired", Some(b.expired), "count");
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat: no outbox backlog"),
            }
        }

        let heartbeat = Heartbeat {
            sent_on: now,
            device_id: services.host.device_id.clone(),
            status: "OK".to_owned(),
            metrics: metrics.list,
        };
        let content = serde_json::to_string(&heartbeat)
            .map_err(|e| TaskError::Permanent(format!("heartbeat: {e}")))?;
        let queued = match program.messaging {
            Some(_) => {
                let message = NewMessage {
                    id: message_id(&format!("heartbeat/{}", ctx.task_id)),
                    kind: MessageKind::Heartbeat,
                    content: content.clone(),
                    created_on: now,
                    recording: None,
                };
                services.push_messages(vec![message]).await.map(|_| true)
            }
            None => Ok(false),
        };
        if queued.is_err() {
            // Not counted by a message: the next heartbeat counts from the same marks.
            marks.store = previous.store;
            marks.overruns = previous.overruns;
        }

        tracing::info!(
            program = %program.name,
            worker = %ctx.worker,
            queued = queued.as_ref().is_ok_and(|q| *q),
            metrics = %summary(&heartbeat.metrics),
            "heartbeat"
        );
        // The last heartbeat, for `acoupi status` and the next heartbeat.
        let saved = json!({
            "program": program.name,
            "device_id": heartbeat.device_id,
            "timestamp": now.to_string(),
            "worker": ctx.worker,
            "task_id": ctx.task_id,
            "recording": tally,
            "staging": staging,
            "microphone": microphone,
            "status": heartbeat.status,
            "metrics": heartbeat.metrics,
            "marks": marks,
        });
        if let Err(e) =
            crate::fsx::write_atomic(&state.heartbeat(), saved.to_string().as_bytes(), None)
        {
            tracing::warn!(error = %e, "could not record the heartbeat for status");
        }
        queued.map_err(|e| {
            tracing::error!(error = %e, "the heartbeat could not be added to the outbox");
            e
        })?;
        serde_json::to_value(&heartbeat)
            .map_err(|e| TaskError::Permanent(format!("heartbeat: {e}")))
    })
}

/// System CPU use in percent since the previous heartbeat's sample, or over a short sample
/// when there is none from this boot; with the sample and the uptime to leave for the next.
async fn cpu_usage(previous: &Marks) -> (Option<f64>, Option<CpuTimes>, Option<f64>) {
    let uptime = host::uptime();
    let same_boot = matches!((previous.uptime, uptime), (Some(then), Some(now)) if now >= then);
    let Some(mut sample) = host::cpu_times() else {
        return (None, None, uptime);
    };
    let mut usage = previous
        .cpu
        .filter(|_| same_boot)
        .and_then(|p| sample.usage_since(&p));
    if usage.is_none() {
        let first = sample;
        tokio::time::sleep(FIRST_SAMPLE).await;
        if let Some(later) = host::cpu_times() {
            sample = later;
            usage = later.usage_since(&first);
        }
    }
    (
        usage.map(hundredths),
        Some(sample),
        host::uptime().or(uptime),
    )
}

/// `value` rounded to two decimals, as the CPU use is reported.
fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A cumulative count's growth since `mark`; all of it when there is no mark or the count
/// went back (its file was reset).
fn since_mark(now: u64, mark: Option<u64>) -> u64 {
    mark.and_then(|m| now.checked_sub(m)).unwrap_or(now)
}

/// A JSON file's contents, or `None` when it is missing or not JSON.
fn read_json(path: &camino::Utf8Path) -> Option<Json> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// `name=value unit` for each metric, for the log line.
fn summary(metrics: &[Metric]) -> String {
    metrics
        .iter()
        .map(|m| format!("{}={} {}", m.name, m.value, m.unit))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_since_a_mark_starts_over_when_the_count_went_back() {
        assert_eq!(since_mark(10, None), 10);
        assert_eq!(since_mark(10, Some(4)), 6);
        assert_eq!(since_mark(10, Some(10)), 0);
        assert_eq!(since_mark(3, Some(10)), 3, "the tally was reset");
    }

    #[test]
    fn cpu_use_is_reported_to_the_hundredth() {
        assert_eq!(hundredths(37.126), 37.13);
        assert_eq!(hundredths(0.004), 0.0);
        assert_eq!(hundredths(100.0), 100.0);
        assert_eq!(hundredths(4.5), 4.5);
    }

    #[test]
    fn unreadable_or_non_finite_metrics_are_left_out() {
        let at: Timestamp = "2026-06-01T22:00:00Z".parse().expect("time");
        let mut m = Metrics {
            at,
            list: Vec::new(),
        };
        m.add("a", None, "count");
        m.add("b", Some(f64::NAN), "percent");
        m.add("c", Some(f64::INFINITY), "percent");
        m.add_u64("d", Some(7), "count");
        assert_eq!(m.list.len(), 1);
        assert_eq!(
            (
                m.list[0].name.as_str(),
                m.list[0].value,
                m.list[0].captured_on
            ),
            ("d", 7.0, at)
        );
        assert_eq!(summary(&m.list), "d=7 count");
    }

    #[test]
    fn the_first_cpu_sample_is_short_and_a_reboot_forgets_the_last() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (usage, sample, uptime) = rt.block_on(cpu_usage(&Marks::default()));
        let usage = usage.expect("two samples 200 ms apart");
        assert!((0.0..=100.0).contains(&usage), "{usage}");
        let sample = sample.expect("a sample to keep");
        let uptime = uptime.expect("an uptime");
        // A sample from a later boot (a larger uptime) is not compared with this one.
        let rebooted = Marks {
            cpu: Some(CpuTimes { busy: 0, total: 1 }),
            uptime: Some(uptime + 1e9),
            ..Marks::default()
        };
        let started = std::time::Instant::now();
        let (again, _, _) = rt.block_on(cpu_usage(&rebooted));
        assert!(again.is_some());
        assert!(started.elapsed() >= FIRST_SAMPLE, "sampled afresh");
        // The previous heartbeat's sample is used as is: no waiting.
        let kept = Marks {
            cpu: Some(CpuTimes {
                busy: sample.busy.saturating_sub(1),
                total: sample.total.saturating_sub(10),
            }),
            uptime: Some(uptime),
            ..Marks::default()
        };
        let started = std::time::Instant::now();
        let (since, _, _) = rt.block_on(cpu_usage(&kept));
        assert!(since.is_some());
        assert!(started.elapsed() < FIRST_SAMPLE, "no second sample needed");
    }
}
