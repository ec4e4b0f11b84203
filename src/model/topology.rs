//! The task graph and worker topology: derived from what the manifest configures, then
//! adjusted by the optional `workers` block.
//!
//! In: the validated recording, detectors, messaging and summary, and the AST's `workers`
//! node. Out: tasks (queue, schedule, follow-ups, limits), the queues they use and the
//! workers consuming them. Checks that every task's queue has a consumer and that overrides
//! name real tasks and queues.

use std::time::Duration;

use miette::SourceSpan;

use super::audio::check_length;
use super::check_names;
use super::processing::{MessagingOut, SummaryOut, heartbeat_every};
use crate::diagnostic::{Diagnostics, Issue, Spanned, did_you_mean};
use crate::manifest::Ast;
use crate::manifest::ast::TaskNode;
use crate::spec::{self, RecordingMode, Schedule, Task, tasks};
use crate::units::format_duration;

/// What the task graph is derived from.
pub(super) struct Needs<'a> {
    pub(super) recording: &'a spec::Recording,
    pub(super) windows: Vec<spec::Window>,
    pub(super) detectors: &'a [spec::Detector],
    pub(super) messaging: Option<&'a MessagingOut>,
    pub(super) summary: Option<&'a SummaryOut>,
}

/// The derived graph.
pub(super) struct Graph {
    pub(super) tasks: Vec<Task>,
    pub(super) queues: Vec<spec::Queue>,
    pub(super) workers: Vec<spec::Worker>,
}

/// Queue names of the derived topology.
pub(crate) const RECORDING_QUEUE: &str = "recording";
const DETECTION_QUEUE: &str = "detection";
const DEFAULT_QUEUE: &str = "default";
/// How often the file-management sweep runs besides following each recording.
const MANAGE_FILES_EVERY: Duration = Duration::from_secs(120);

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn interval(every: Duration, windows: Vec<spec::Window>) -> Schedule {
    Schedule::Interval {
        every_ms: ms(every),
        offset_ms: 0,
        windows,
    }
}

fn task(
    name: &str,
    queue: &str,
    schedule: Schedule,
    follow_ups: &[&str],
    retries: u32,
    limit: Duration,
) -> Task {
    Task {
        name: name.into(),
        queue: queue.into(),
        schedule,
        follow_ups: follow_ups.iter().map(|s| (*s).to_owned()).collect(),
        retries,
        soft_time_limit_ms: ms(limit.saturating_sub(Duration::from_secs(10)).max(limit / 2)),
        time_limit_ms: ms(limit),
    }
}

/// The tasks the configuration calls for, before overrides.
fn derived_tasks(n: &Needs<'_>, heartbeat: Duration) -> Vec<Task> {
    let has_detectors = !n.detectors.is_empty();
    let record_next: &[&str] = if has_detectors {
        &[tasks::DETECT]
    } else {
        &[tasks::MANAGE_FILES]
    };
    let record_schedule = match n.recording.mode {
        RecordingMode::Continuous => Schedule::Continuous {
            windows: n.windows.clone(),
        },
        RecordingMode::DutyCycle => interval(
            Duration::from_millis(n.recording.interval_ms),
            n.windows.clone(),
        ),
    };
    let record_limit = Duration::from_millis(n.recording.duration_ms) + Duration::from_secs(30);
    let mut tasks = vec![task(
        tasks::RECORD,
        RECORDING_QUEUE,
        record_schedule,
        record_next,
        0,
        record_limit,
    )];
    if has_detectors {
        let slowest = n
            .detectors
            .iter()
            .map(|d| match &d.kind {
                // A serve-mode program may first have to start and load its model.
                spec::DetectorKind::Command {
                    timeout_ms,
                    mode,
                    startup_timeout_ms,
                    ..
                } => {
                    let startup = match mode {
                        spec::CommandMode::Serve => *startup_timeout_ms,
                        spec::CommandMode::PerFile => 0,
                    };
                    Duration::from_millis(timeout_ms + startup)
                }
                spec::DetectorKind::BandEnergy { .. } => Duration::from_secs(50),
                // Loading the model takes well under a second; a long recording takes about a
                // second per 3 s of audio on a Raspberry Pi 4.
                spec::DetectorKind::Batdetect2 { .. } => Duration::from_secs(120),
            })
            .sum::<Duration>();
        tasks.push(task(
            tasks::DETECT,
            DETECTION_QUEUE,
            Schedule::Triggered,
            &[tasks::MANAGE_FILES],
            2,
            slowest + Duration::from_secs(10),
        ));
    }
    tasks.push(task(
        tasks::MANAGE_FILES,
        DEFAULT_QUEUE,
        interval(MANAGE_FILES_EVERY, Vec::new()),
        &[],
        2,
        Duration::from_secs(60),
    ));
    if let Some(m) = n.messaging {
        tasks.push(task(
            tasks::SEND_MESSAGES,
            DEFAULT_QUEUE,
            interval(m.send_every, Vec::new()),
            &[],
            0,
            Duration::from_secs(60),
        ));
    }
    tasks.push(task(
        tasks::HEARTBEAT,
        DEFAULT_QUEUE,
        interval(heartbeat, Vec::new()),
        &[],
        0,
        Duration::from_secs(30),
    ));
    if let Some(s) = n.summary {
        tasks.push(task(
            tasks::SUMMARY,
            DEFAULT_QUEUE,
            interval(s.every, Vec::new()),
            &[],
            1,
            Duration::from_secs(60),
        ));
    }
    tasks
}

fn derived_workers(has_detectors: bool) -> Vec<spec::Worker> {
    let w = |name: &str, concurrency: u32| spec::Worker {
        name: name.into(),
        queues: vec![name.into()],
        concurrency,
        prefetch: concurrency,
    };
    let mut out = vec![w(RECORDING_QUEUE, 1)];
    if has_detectors {
        out.push(w(DETECTION_QUEUE, 1));
    }
    out.push(w(DEFAULT_QUEUE, 2));
    out
}

pub(super) fn derive(ast: &Ast, needs: Needs<'_>, diags: &mut Diagnostics) -> Graph {
    let heartbeat = heartbeat_every(ast, diags);
    let mut tasks = derived_tasks(&needs, heartbeat);
    let node = ast.workers.as_ref();
    let custom = node.is_some_and(|w| !w.workers.is_empty());
    let workers = match node {
        Some(w) if custom => {
            check_names(
                "worker",
                w.workers.iter().filter_map(|w| w.name.as_ref()),
                diags,
            );
            w.workers
                .iter()
                .filter_map(|wn| {
                    let name = wn.name.as_ref()?.value.clone();
                    for q in &wn.queues {
                        if !super::valid_name(&q.value) {
                            diags.push(Issue::InvalidName {
                                what: "queue",
                                name: q.value.clone(),
                                span: q.span,
                            });
                        }
                    }
                    let concurrency = wn.concurrency.as_ref().map(|c| c.value as u32).unwrap_or(1);
                    Some(spec::Worker {
                        name,
                        queues: wn.queues.iter().map(|q| q.value.clone()).collect(),
                        concurrency,
                        prefetch: wn
                            .prefetch
                            .as_ref()
                            .map(|p| p.value as u32)
                            .unwrap_or(concurrency),
                    })
                })
                .collect()
        }
        _ => derived_workers(!needs.detectors.is_empty()),
    };
    let consumed: Vec<&str> = workers
        .iter()
        .flat_map(|w| w.queues.iter().map(String::as_str))
        .collect();
    let mut override_spans: Vec<(String, SourceSpan)> = Vec::new();
    let overrides = node.map(|w| w.tasks.as_slice()).unwrap_or_default();
    for (i, t) in overrides.iter().enumerate() {
        let first = t.name.as_ref().and_then(|n| {
            overrides[..i]
                .iter()
                .filter_map(|o| o.name.as_ref())
                .find(|o| o.value == n.value)
        });
        if let (Some(n), Some(first)) = (&t.name, first) {
            diags.push(Issue::DuplicateName {
                what: "task override",
                name: n.value.clone(),
                span: n.span,
                first: first.span,
                help: Some("put all settings of a task in one `task` node".into()),
            });
            continue;
        }
        if let Some(span) = apply_override(t, &mut tasks, &consumed, diags) {
            override_spans.push(span);
        }
    }
    // Every task's queue needs a consumer.
    let anchor = node.map(|w| w.span).unwrap_or(ast.start);
    for t in &tasks {
        if consumed.contains(&t.queue.as_str()) {
            continue;
        }
        if override_spans.iter().any(|(name, _)| *name == t.name) {
            continue; // already reported as an undeclared queue at the override
        }
        diags.push(Issue::UnconsumedQueue {
            queue: t.queue.clone(),
            task: t.name.clone(),
            span: anchor,
            help: Some(format!(
                "add `{}` to a worker's `queues`, or route the task elsewhere with `task \"{}\" queue=\"…\"`",
                t.queue, t.name
            )),
        });
    }
    if custom && let Some(w) = node {
        for wn in &w.workers {
            let Some(name) = &wn.name else { continue };
            for q in &wn.queues {
                if !tasks.iter().any(|t| t.queue == q.value) && super::valid_name(&q.value) {
                    diags.push(Issue::UnusedQueue {
                        queue: q.value.clone(),
                        worker: name.value.clone(),
                        span: q.span,
                        help: Some(
                            "remove it, or route a task to it with `task \"NAME\" queue=\"…\"`"
                                .into(),
                        ),
                    });
                }
            }
        }
    }
    // The microphone is exclusive: whoever records must do so one task at a time.
    if let Some(rec) = tasks.iter().find(|t| t.name == tasks::RECORD) {
        for w in workers
            .iter()
            .filter(|w| w.concurrency > 1 && w.queues.contains(&rec.queue))
        {
            let written = node
                .and_then(|n| {
                    n.workers
                        .iter()
                        .find(|wn| wn.name.as_ref().is_some_and(|x| x.value == w.name))
                })
                .and_then(|wn| wn.concurrency.as_ref().map(|c| c.span));
            let routed = node
                .and_then(|n| {
                    n.tasks
                        .iter()
                        .find(|t| t.name.as_ref().is_some_and(|x| x.value == tasks::RECORD))
                })
                .and_then(|t| t.queue.as_ref().map(|q| q.span));
            diags.push(Issue::OutOfRange {
                what: format!("the concurrency of worker `{}`, which records", w.name),
                value: w.concurrency.to_string(),
                span: written.or(routed).unwrap_or(anchor),
                expected: "expected 1".into(),
                help: Some(format!(
                    "queue `{}` carries `record`; one microphone records one thing at a time",
                    rec.queue
                )),
            });
        }
    }
    let mut queues: Vec<spec::Queue> = Vec::new();
    for t in &tasks {
        if !queues.iter().any(|q| q.name == t.queue) {
            queues.push(spec::Queue {
                name: t.queue.clone(),
                dead_letter: format!("{}.dead-letter", t.queue),
            });
        }
    }
    Graph {
        tasks,
        queues,
        workers,
    }
}

/// Applies a `task` override; returns the task name and span when it re-routed the task to
/// a queue no worker consumes (reported here).
fn apply_override(
    t: &TaskNode,
    tasks: &mut [Task],
    consumed: &[&str],
    diags: &mut Diagnostics,
) -> Option<(String, SourceSpan)> {
    let name = t.name.as_ref()?;
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    let Some(task) = tasks.iter_mut().find(|x| x.name == name.value) else {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        diags.push(Issue::UnknownTask {
            name: name.value.clone(),
            span: name.span,
            help: Some(
                did_you_mean(&name.value, &refs)
                    .unwrap_or_else(|| format!("this program's tasks: {}", refs.join(", "))),
            ),
        });
        return None;
    };
    let mut undeclared = None;
    if let Some(q) = &t.queue {
        if !consumed.contains(&q.value.as_str()) {
            diags.push(Issue::UndeclaredReference {
                what: "queue",
                name: q.value.clone(),
                span: q.span,
                help: did_you_mean(&q.value, consumed).or_else(|| {
                    Some(format!(
                        "queues consumed by workers: {}",
                        consumed.join(", ")
                    ))
                }),
            });
            undeclared = Some((task.name.clone(), q.span));
        }
        task.queue = q.value.clone();
    }
    if let Some(every) = &t.every {
        schedule_override(task, every, t.offset.as_ref(), diags);
    } else if let Some(offset) = &t.offset {
        schedule_override_offset(task, offset, diags);
    }
    if let Some(r) = &t.retries {
        task.retries = r.value as u32;
    }
    let max = Duration::from_secs(86_400);
    let soft = t.soft_time_limit.as_ref();
    let hard = t.time_limit.as_ref();
    if check_length(
        soft,
        "the soft time limit",
        Duration::from_secs(1),
        max,
        diags,
    ) && let Some(s) = soft
    {
        task.soft_time_limit_ms = ms(s.value);
    }
    if check_length(hard, "the time limit", Duration::from_secs(1), max, diags)
        && let Some(h) = hard
    {
        task.time_limit_ms = ms(h.value);
    }
    if task.soft_time_limit_ms > task.time_limit_ms {
        let (span, other) = match (soft, hard) {
            (Some(s), Some(h)) => (s.span, h.span),
            (Some(s), None) => (s.span, name.span),
            (None, Some(h)) => (h.span, name.span),
            (None, None) => (name.span, name.span),
        };
        diags.push(Issue::ConflictingSettings {
            message: format!(
                "the soft time limit {} of task `{}` is above its time limit {}",
                format_duration(Duration::from_millis(task.soft_time_limit_ms)),
                task.name,
                format_duration(Duration::from_millis(task.time_limit_ms))
            ),
            span,
            label: "soft limit".into(),
            other,
            help: Some(
                "the soft limit warns before the hard limit stops the task; keep it lower".into(),
            ),
        });
    }
    undeclared
}

fn not_schedulable(task: &Task, key: &str, span: SourceSpan, diags: &mut Diagnostics) -> bool {
    let why = match (&task.schedule, task.name.as_str()) {
        (_, tasks::RECORD) => {
            "the recording schedule is set in the `recording` block (`interval`, `window`)"
        }
        (Schedule::Triggered, _) => {
            "it runs as a follow-up of another task and has no schedule of its own"
        }
        (Schedule::Continuous { .. }, _) => "it runs continuously",
        _ => return false,
    };
    diags.push(Issue::InvalidValue {
        value: key.into(),
        what: format!("setting for task `{}`", task.name),
        span,
        help: Some(why.to_owned()),
    });
    true
}

fn schedule_override(
    task: &mut Task,
    every: &Spanned<Duration>,
    offset: Option<&Spanned<Duration>>,
    diags: &mut Diagnostics,
) {
    if not_schedulable(task, "every", every.span, diags)
        || !check_length(
            Some(every),
            "the task interval",
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
            diags,
        )
    {
        return;
    }
    if let Schedule::Interval { every_ms, .. } = &mut task.schedule {
        *every_ms = ms(every.value);
    }
    if let Some(o) = offset {
        schedule_override_offset(task, o, diags);
    }
}

fn schedule_override_offset(task: &mut Task, offset: &Spanned<Duration>, diags: &mut Diagnostics) {
    if not_schedulable(task, "offset", offset.span, diags) {
        return;
    }
    if let Schedule::Interval {
        every_ms,
        offset_ms,
        ..
    } = &mut task.schedule
    {
        if ms(offset.value) >= *every_ms {
            diags.push(Issue::OutOfRange {
                what: "the task offset".into(),
                value: format_duration(offset.value),
                span: offset.span,
                expected: format!(
                    "expected less than the interval {}",
                    format_duration(Duration::from_millis(*every_ms))
                ),
                help: None,
            });
            return;
        }
        *offset_ms = ms(offset.value);
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{MIC, codes};

    #[test]
    fn duplicate_worker_names() {
        let src = format!(
            "program \"p\"\n{MIC}workers {{\n worker \"a\" queues=\"recording\"\n worker \"a\" queues=\"default\"\n}}\n"
        );
        assert_eq!(codes(&src), ["model::duplicate_name"]);
    }

    #[test]
    fn queue_no_worker_consumes() {
        let src =
            format!("program \"p\"\n{MIC}workers {{\n worker \"r\" queues=\"recording\"\n}}\n");
        // manage-files and heartbeat both need `default`
        assert_eq!(
            codes(&src),
            ["model::unconsumed_queue", "model::unconsumed_queue"]
        );
    }

    #[test]
    fn task_override_to_undeclared_queue() {
        let src =
            format!("program \"p\"\n{MIC}workers {{\n task \"heartbeat\" queue=\"defualt\"\n}}\n");
        assert_eq!(codes(&src), ["model::undeclared_reference"]);
    }

    #[test]
    fn unknown_task() {
        let src = format!("program \"p\"\n{MIC}workers {{\n task \"hearbeat\" every=\"5m\"\n}}\n");
        assert_eq!(codes(&src), ["model::unknown_task"]);
    }

    #[test]
    fn recording_on_a_concurrent_worker_is_refused() {
        let src =
            format!("program \"p\"\n{MIC}workers {{\n task \"record\" queue=\"default\"\n}}\n");
        assert_eq!(codes(&src), ["model::out_of_range"]);
    }

    #[test]
    fn repeated_task_override() {
        let src = format!(
            "program \"p\"\n{MIC}workers {{\n task \"heartbeat\" every=\"5m\"\n task \"heartbeat\" offset=\"1m\"\n}}\n"
        );
        assert_eq!(codes(&src), ["model::duplicate_name"]);
    }

    #[test]
    fn unused_queue_is_a_warning() {
        let src = format!(
            "program \"p\"\n{MIC}workers {{\n worker \"r\" queues=\"recording\"\n worker \"d\" queues=\"default,extra\"\n}}\n"
        );
        assert_eq!(codes(&src), ["model::unused_queue"]);
    }
}
