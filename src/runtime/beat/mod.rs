//! Beat: publishes each scheduled task at its wall-clock slot.
//!
//! In: the compiled program, a transport, the state file and a shutdown token. Out: one task
//! message per slot (aligned intervals inside the task's daily or sun-relative windows), with
//! the task's follow-ups as Celery callbacks and an expiry at the next slot. The last fired
//! slot per task is saved after every publish, so a restart neither fires a slot twice nor
//! replays slots missed while beat was down (it logs how many it skipped). A slot whose
//! publish fails is published after the reconnect while it is still current; the slots an
//! outage outlasted are logged as lost, not published late. A recording task is not
//! published while the previous one is still queued.

pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use camino::Utf8PathBuf;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::schedule::{BeatState, Clock};
use super::celery::{Signature, TaskMessage};
use super::worker::Connector;
use crate::spec::{Program, Schedule, Task};

/// Where beat reads the time from.
#[derive(Debug, Clone, Copy)]
pub enum TimeSource {
    /// The system clock (re-read after every sleep, so clock steps are followed).
    System,
    /// Tokio's clock, anchored at `base`: with `tokio::time::pause` tests run days in
    /// milliseconds.
    Tokio {
        /// Wall time at `start`.
        base: Timestamp,
        /// Tokio instant at `base`.
        start: tokio::time::Instant,
    },
}

impl TimeSource {
    /// A tokio-driven clock starting now at `base`.
    pub fn tokio_at(base: Timestamp) -> Self {
        TimeSource::Tokio {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> Timestamp {
        match self {
            TimeSource::System => Timestamp::now(),
            TimeSource::Tokio { base, start } => {
                let elapsed =
                    SignedDuration::try_from(start.elapsed()).unwrap_or(SignedDuration::MAX);
                base.checked_add(elapsed).unwrap_or(*base)
            }
        }
    }

    /// Sleeps until wall time `t` (returns at once if it has passed).
    async fn sleep_until(&self, t: Timestamp) {
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            let wait = Duration::try_from(t.duration_since(now)).unwrap_or_default();
            match self {
                // Tokio's timer has a 1 ms grain and fires late within it: sleep to just
                // short of the slot, then yield until it arrives (at most ~2 ms of polling).
                TimeSource::System if wait <= Duration::from_millis(2) => {
                    tokio::task::yield_now().await
                }
                TimeSource::System => tokio::time::sleep(wait - Duration::from_millis(2)).await,
                TimeSource::Tokio { .. } => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// One publish beat made (or skipped), for tests and benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The task.
    pub task: String,
    /// The slot it was due at.
    pub slot: Timestamp,
    /// When it was published.
    pub at: Timestamp,
    /// Whether it was published (false: skipped because the previous one is still queued,
    /// a report of slots missed while beat was down, or of slots lost in a broker outage).
    pub published: bool,
    /// Slots missed while beat was down (reported once per task at start-up), or lost while
    /// the broker was unreachable (this slot and those during the outage); else 0.
    pub missed: u64,
}

/// Beat's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state file (`state/beat.json`).
    pub state: Utf8PathBuf,
    /// Clock.
    pub time: TimeSource,
    /// Receives every publish, when set.
    pub fired: Option<mpsc::UnboundedSender<Fired>>,
}

/// The task signature of `name` with its follow-ups as links, as a Celery callback.
pub fn signature(program: &Program, name: &str, depth: usize) -> Signature {
    let task = program.task(name);
    Signature {
        task: name.to_owned(),
        args: Vec::new(),
        kwargs: serde_json::Map::new(),
        queue: task.map(|t| t.queue.clone()),
        link: match task {
            Some(t) if depth < 8 => t
                .follow_ups
                .iter()
                .map(|f| signature(program, f, depth + 1))
                .collect(),
            _ => Vec::new(),
        },
        immutable: false,
    }
}

/// The message beat publishes for `task` at `slot`.
pub fn message_for(
    program: &Program,
    task: &Task,
    slot: Timestamp,
    expires: Option<Timestamp>,
) -> TaskMessage {
    let mut msg = TaskMessage::new(task.name.clone(), Vec::new(), serde_json::Map::new());
    msg.kwargs
        .insert("slot".into(), serde_json::Value::String(slot.to_string()));
    msg.expires = expires;
    msg.hard_time_limit = Some(task.time_limit_ms as f64 / 1000.0);
    msg.soft_time_limit = Some(task.soft_time_limit_ms as f64 / 1000.0);
    msg.callbacks = task
        .follow_ups
        .iter()
        .map(|f| signature(program, f, 1))
        .collect();
    msg
}

struct Due {
    task: Task,
    every_ms: u64,
    offset_ms: u64,
    windows: Vec<crate::spec::Window>,
    next: Option<Timestamp>,
}

fn after(t: Timestamp) -> Timestamp {
    t.checked_add(SignedDuration::from_millis(1)).unwrap_or(t)
}

/// Runs beat until `shutdown` fires.
pub async fn run(
    connector: Connector,
    program: Arc<Program>,
    options: Options,
    shutdown: CancellationToken,
    ready: impl FnOnce(),
) -> Result<(), self::schedule::ScheduleError> {
    let clock = Clock::new(&program.timezone, program.location)?;
    let mut state = match BeatState::load(&options.state) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "beat state unreadable; starting afresh");
            BeatState::default()
        }
    };
    let now = options.time.now();
    let mut due: Vec<Due> = Vec::new();
    for task in &program.tasks {
        let Schedule::Interval {
            every_ms,
            offset_ms,
            windows,
        } = &task.schedule
        else {
            continue;
        };
        let last = state.last_fired.get(&task.name).copied();
        let from = match last {
            Some(l) if l >= now => after(l),
            _ => now,
        };
        if let Some(l) = last {
            let missed = clock.slots_between(*every_ms, *offset_ms, windows, l, now, 1_000_000);
            if missed > 0 {
                tracing::warn!(task = %task.name, missed, last_fired = %l, "beat was down: skipping the slots it missed");
                if let Some(tx) = &options.fired {
                    let _ = tx.send(Fired {
                        task: task.name.clone(),
                        slot: l,
                        at: now,
                        published: false,
                        missed,
                    });
                }
            }
        }
        due.push(Due {
            task: task.clone(),
            every_ms: *every_ms,
            offset_ms: *offset_ms,
            windows: windows.clone(),
            next: clock.next_slot(*every_ms, *offset_ms, windows, from),
        });
    }
    let Some(broker) = connector.connect(&shutdown).await else {
        return Ok(());
    };
    let mut broker = broker;
    for q in &program.queues {
        if let Err(e) = broker.declare(&q.name).await {
            tracing::warn!(error = %e, "could not declare queues");
        }
    }
    ready();
    let (saver, saving) = spawn_saver(options.state.clone(), state.clone());
    tracing::info!(tasks = due.len(), "beat started");
    let mut published: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let Some(i) = (0..due.len())
            .filter(|i| due[*i].next.is_some())
            .min_by_key(|i| due[*i].next)
        else {
            tracing::info!("no scheduled task has a future slot; beat idles");
            shutdown.cancelled().await;
            break;
        };
        let slot = due[i].next.unwrap_or_else(|| options.time.now());
        tokio::select! {
            _ = options.time.sleep_until(slot) => {}
            _ = shutdown.cancelled() => break,
        }
        let d = &due[i];
        let mut next = clock.next_slot(d.every_ms, d.offset_ms, &d.windows, after(slot));
        let mut lost = 0;
        let mut ok = true;
        let mut skip = false;
        if d.task.name == crate::spec::tasks::RECORD {
            match broker.depth(&d.task.queue).await {
                Ok(n) if n > 0 => {
                    tracing::warn!(
                        queued = n,
                        "the previous recording task is still queued; skipping this slot"
                    );
                    skip = true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "broker lost");
                    ok = false;
                }
            }
        }
        if ok && !skip {
            let msg = message_for(&program, &d.task, slot, next);
            if let Err(e) = broker.publish(&d.task.queue, &msg.encode()).await {
                tracing::warn!(error = %e, task = %d.task.name, "could not publish");
                ok = false;
            }
        }
        if !ok {
            // Reconnect, then try this slot again while it is still current.
            let Some(b) = connector.connect(&shutdown).await else {
                break;
            };
            broker = b;
            let now = options.time.now();
            if next.is_none_or(|n| now < n) {
                continue;
            }
            // The slot and those that came and went during the outage are lost: beat goes on
            // at the first slot still to come rather than publishing stale ones in a burst.
            lost =
                1 + clock.slots_between(d.every_ms, d.offset_ms, &d.windows, slot, now, 1_000_000);
            next = clock.next_slot(d.every_ms, d.offset_ms, &d.windows, now);
            tracing::warn!(task = %d.task.name, %slot, lost, "slots lost while the broker was unreachable");
        }
        let at = options.time.now();
        if let Some(tx) = &options.fired {
            let _ = tx.send(Fired {
                task: d.task.name.clone(),
                slot,
                at,
                published: ok && !skip,
                missed: lost,
            });
        }
        *published.entry(d.task.name.clone()).or_default() += 1;
        state.last_fired.insert(d.task.name.clone(), slot);
        let _ = saver.send(state.clone());
        due[i].next = next;
    }
    drop(saver);
    let _ = saving.await;
    broker.close().await;
    tracing::info!(?published, "beat stopped");
    Ok(())
}

/// Saves beat state in the background, newest first, so a slow disk (an fsync on an SD
/// card) never delays a slot. Ends, after a last save, when the sender is dropped.
fn spawn_saver(
    path: Utf8PathBuf,
    initial: BeatState,
) -> (
    tokio::sync::watch::Sender<BeatState>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(initial);
    let handle = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let snapshot = rx.borrow_and_update().clone();
            let path = path.clone();
            match tokio::task::spawn_blocking(move || snapshot.save(&path)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "could not save beat state"),
                Err(e) => tracing::error!(error = %e, "beat state saver failed"),
            }
        }
    });
    (tx, handle)
}
