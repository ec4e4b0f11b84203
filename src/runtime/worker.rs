//! A worker: consumes its queues and runs tasks, acknowledging each delivery only after its
//! task finished (acks late).
//!
//! In: a transport, the compiled program, the worker's definition, the handler registry and
//! a shutdown token. Out: tasks run at most `concurrency` at once; results handed to
//! follow-up tasks; transient failures (a follow-up the broker refused among them) retried
//! with backoff up to the task's limit; undecodable, unknown and exhausted tasks moved to the
//! queue's dead-letter queue with the reason. Broker loss: reconnect with backoff forever and
//! consume again. Shutdown: stop consuming, let in-flight tasks finish within the grace
//! period, give the rest back (prefetched or waiting for a slot).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::celery::{Envelope, TaskMessage};
use super::tasks::{Registry, Services, TaskContext, TaskError};
use super::transport::memory::MemoryBroker;
use super::transport::{Broker, Delivery, dead_letter_queue};
use crate::spec::{self, Program};

/// How a worker reaches its broker.
#[derive(Debug, Clone)]
pub enum Connector {
    /// RabbitMQ at this URL (credentials resolved).
    Amqp {
        /// The URL.
        url: String,
        /// Connection name shown in the RabbitMQ management UI.
        name: String,
    },
    /// In-process queues shared by everyone holding a clone.
    Memory(MemoryBroker),
}

impl Connector {
    /// Connects, retrying with backoff until connected or `shutdown` fires (`None`).
    pub async fn connect(&self, shutdown: &CancellationToken) -> Option<Broker> {
        match self {
            Connector::Memory(m) => Some(Broker::Memory(m.clone())),
            Connector::Amqp { url, name } => {
                tokio::select! {
                    b = Broker::connect_amqp(url, name, None) => b.ok(),
                    _ = shutdown.cancelled() => None,
                }
            }
        }
    }
}

/// Counters a worker keeps (reported by heartbeats and benchmarks).
#[derive(Debug, Default)]
pub struct Stats {
    /// Tasks that succeeded.
    pub succeeded: AtomicU64,
    /// Task runs that failed (each retry counts).
    pub failed: AtomicU64,
    /// Retries published.
    pub retried: AtomicU64,
    /// Messages moved to a dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Connections made (1 + reconnects).
    pub connections: AtomicU64,
    /// When the last task succeeded, in microseconds since [`Stats::since`].
    pub last_success_us: AtomicU64,
}

impl Stats {
    /// The reference instant of `last_success_us` (the first time any worker asked for it).
    pub fn since() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }
}

/// Tuning of a worker run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long in-flight tasks may take to finish after shutdown is requested.
    pub grace: Duration,
    /// Retry limit for tasks the program does not define (e.g. `noop`).
    pub default_retries: u32,
    /// Hard time limit for tasks the program does not define.
    pub default_time_limit: Duration,
    /// Base of the exponential retry backoff (doubled per retry, capped at one minute).
    pub retry_backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            grace: Duration::from_secs(30),
            default_retries: 3,
            default_time_limit: Duration::from_secs(60),
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// Ids of tasks that finished here but whose acknowledgement may have been lost with the
/// connection: a redelivery of one of them is acknowledged without running it again.
#[derive(Debug, Default)]
struct Finished {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Finished {
    const CAPACITY: usize = 10_000;

    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }
}

/// Everything a task run needs, shared by the runs of one worker.
struct Shared {
    services: Arc<Services>,
    program: Arc<Program>,
    worker: spec::Worker,
    registry: Arc<Registry>,
    options: Options,
    stats: Arc<Stats>,
    finished: Mutex<Finished>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// What a worker runs with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// How to reach the broker.
    pub connector: Connector,
    /// The process's shared services; their program gives task limits, retries and
    /// follow-up routes.
    pub services: Arc<Services>,
    /// This worker's definition: queues, concurrency, prefetch.
    pub worker: spec::Worker,
    /// The task handlers.
    pub registry: Arc<Registry>,
    /// Tuning.
    pub options: Options,
    /// Counters, shared with whoever wants to read them.
    pub stats: Arc<Stats>,
}

/// Runs the worker until `shutdown` fires. `ready` is called once, when it first consumes.
pub async fn run(setup: Setup, shutdown: CancellationToken, ready: impl FnOnce()) {
    let Setup {
        connector,
        services,
        worker,
        registry,
        options,
        stats,
    } = setup;
    let shared = Arc::new(Shared {
        permits: Arc::new(Semaphore::new(worker.concurrency.max(1) as usize)),
        program: Arc::clone(&services.program),
        services,
        worker,
        registry,
        options,
        stats,
        finished: Mutex::default(),
        shutdown: shutdown.clone(),
    });
    let mut ready = Some(ready);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    let tag = format!("acoupi-{}-{}", shared.worker.name, std::process::id());
    let inline = shared.worker.concurrency <= 1;
    while !shutdown.is_cancelled() {
        let Some(broker) = connector.connect(&shutdown).await else {
            break;
        };
        let consumed = async {
            // Its own queues, and those its tasks' follow-ups go to: follow-ups are
            // published mandatory, so their queues must exist before their consumers start.
            let follow_ups = follow_up_queues(&shared.program, &shared.worker.queues);
            for q in shared.worker.queues.iter().chain(&follow_ups) {
                broker.declare(q).await?;
            }
            let prefetch = u16::try_from(shared.worker.prefetch.max(1)).unwrap_or(u16::MAX);
            broker.consume(&shared.worker.queues, prefetch, &tag).await
        };
        let mut rx = match consumed.await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "could not consume; reconnecting");
                broker.close().await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                }
                backoff = reconnect_backoff(backoff);
                continue;
            }
        };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        backoff = Duration::from_millis(100);
        tracing::info!(worker = %shared.worker.name, queues = ?shared.worker.queues, "consuming");
        if let Some(r) = ready.take() {
            r();
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                d = rx.recv() => match d {
                    // One task at a time: run it right here, saving a spawn and a
                    // scheduling round per task (shutdown waits for it either way).
                    Some(d) if inline => {
                        handle(&shared, &broker, d).await;
                        release_idle_memory(&shared);
                    }
                    Some(d) => {
                        let shared = Arc::clone(&shared);
                        let broker = broker.clone();
                        in_flight.spawn(async move { handle(&shared, &broker, d).await });
                    }
                    None => {
                        tracing::warn!(worker = %shared.worker.name, "lost the broker; reconnecting");
                        break;
                    }
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if in_flight.is_empty() {
                        release_idle_memory(&shared);
                    }
                }
            }
        }
        if shutdown.is_cancelled() {
            broker.cancel().await;
            // Deliveries prefetched but not started go back to the queue.
            for d in rx.leftovers(Duration::from_secs(1)).await {
                let _ = d.acker.requeue().await;
            }
            drain(&mut in_flight, shared.options.grace).await;
            broker.close().await;
            break;
        }
    }
    drain(&mut in_flight, shared.options.grace).await;
}

/// No task is running: the stores' caches are freed and what the tasks freed goes back to the
/// kernel, so that an idle worker holds little memory (`scripts/bench-worker-rss`). Done after
/// every task, not after a pause: the caches are then never more than one task's, which left
/// the idle heap smaller (0.64 MB against 0.76 MB); it costs a fraction of a microsecond when
/// there is nothing to free, and a task that uses a store prepares its statements again.
fn release_idle_memory(shared: &Shared) {
    shared.services.release_idle_memory();
    crate::host::memory::give_back();
}

/// How long to wait before the next attempt to consume, `previous` having been waited before
/// the one that just failed: doubled, at most 30 s (a broken broker is not hammered).
fn reconnect_backoff(previous: Duration) -> Duration {
    (previous * 2).min(Duration::from_secs(30))
}

async fn drain(in_flight: &mut JoinSet<()>, grace: Duration) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(
        tasks = in_flight.len(),
        ?grace,
        "waiting for in-flight tasks"
    );
    let all = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            tasks = in_flight.len(),
            "grace period over; abandoning in-flight tasks (the broker redelivers them)"
        );
        in_flight.abort_all();
    }
}

/// Moves a delivery to its queue's dead-letter queue with the reason, then acknowledges it.
async fn dead_letter(shared: &Shared, broker: &Broker, d: Delivery, reason: String) {
    tracing::error!(queue = %d.queue, %reason, "dead-lettering a message");
    let mut env: Envelope = d.envelope;
    env.headers
        .insert("x-acoupi-reason".into(), Json::String(reason));
    env.headers
        .insert("x-acoupi-queue".into(), Json::String(d.queue.clone()));
    env.headers.insert(
        "x-acoupi-worker".into(),
        Json::String(shared.worker.name.clone()),
    );
    env.headers.insert(
        "x-acoupi-failed-at".into(),
        Json::String(jiff::Timestamp::now().to_string()),
    );
    if let Err(e) = broker.publish(&dead_letter_queue(&d.queue), &env).await {
        // Not acknowledged: the broker redelivers it and we try again.
        tracing::warn!(error = %e, "could not dead-letter; leaving the message for redelivery");
        return;
    }
    shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    let _ = d.acker.ack().await;
}

/// The queues the follow-ups of the tasks routed to `queues` go to.
pub(crate) fn follow_up_queues(program: &Program, queues: &[String]) -> Vec<String> {
    let mut out: Vec<String> = program
        .tasks
        .iter()
        .filter(|t| queues.contains(&t.queue))
        .flat_map(|t| &t.follow_ups)
        .filter_map(|f| program.task(f).map(|t| t.queue.clone()))
        .filter(|q| !queues.contains(q))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The queue a follow-up task goes to: its signature's, else the program's route for it, else
/// the parent's queue.
fn follow_up_queue(
    program: &Program,
    task: &str,
    explicit: Option<&String>,
    parent_queue: &str,
) -> String {
    explicit
        .cloned()
        .or_else(|| program.task(task).map(|t| t.queue.clone()))
        .unwrap_or_else(|| parent_queue.to_owned())
}

async fn handle(shared: &Shared, broker: &Broker, d: Delivery) {
    let msg = match TaskMessage::decode(&d.envelope) {
        Ok(m) => m,
        Err(e) => return dead_letter(shared, broker, d, format!("undecodable message: {e}")).await,
    };
    let already = shared
        .finished
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ids
        .contains(&msg.id);
    if already {
        tracing::info!(task = %msg.task, id = %msg.id, "redelivered after it finished; acknowledging");
        let _ = d.acker.ack().await;
        return;
    }
    let Some(handler) = shared.registry.get(&msg.task) else {
        let reason = format!("unknown task `{}`", msg.task);
        return dead_letter(shared, broker, d, reason).await;
    };
    let now = jiff::Timestamp::now();
    if msg.expires.is_some_and(|e| e < now) {
        tracing::warn!(task = %msg.task, id = %msg.id, "expired before it ran; dropping");
        let _ = d.acker.ack().await;
        return;
    }
    if let Some(eta) = msg.eta
        && eta > now
    {
        let wait = Duration::try_from(eta.duration_since(now)).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => {
                let _ = d.acker.requeue().await;
                return;
            }
        }
    }
    // A delivery still waiting for a slot when shutdown comes has not started: it goes back
    // to the queue rather than running during the grace period.
    let permit = tokio::select! {
        biased;
        _ = shared.shutdown.cancelled() => None,
        p = Arc::clone(&shared.permits).acquire_owned() => p.ok(),
    };
    let Some(_permit) = permit else {
        let _ = d.acker.requeue().await;
        return;
    };
    let spec_task = shared.program.task(&msg.task);
    let hard = msg
        .hard_time_limit
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .or(spec_task.map(|t| Duration::from_millis(t.time_limit_ms)))
        .unwrap_or(shared.options.default_time_limit);
    let soft = msg
        .soft_time_limit
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .or(spec_task.map(|t| Duration::from_millis(t.soft_time_limit_ms)));
    let max_retries = spec_task
        .map(|t| t.retries)
        .unwrap_or(shared.options.default_retries);
    let ctx = TaskContext {
        services: Arc::clone(&shared.services),
        task_id: msg.id.clone(),
        retries: msg.retries,
        worker: shared.worker.name.clone(),
    };
    let started = std::time::Instant::now();
    let fut = handler(ctx, msg.args.clone(), msg.kwargs.clone());
    let mut outcome = run_limited(fut, &msg, soft, hard).await;
    let refused = match &outcome {
        Ok(result) => publish_follow_ups(shared, broker, &msg, result, &d.queue).await,
        Err(_) => None,
    };
    if let Some(e) = refused {
        outcome = Err(e);
    }
    match outcome {
        Ok(_) => {
            shared
                .finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(msg.id.clone());
            shared.stats.last_success_us.store(
                u64::try_from(Stats::since().elapsed().as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(task = %msg.task, id = %msg.id, elapsed = ?started.elapsed(), "succeeded");
            let _ = d.acker.ack().await;
        }
        Err(e) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            let transient = matches!(e, TaskError::Transient(_));
            if transient && msg.retries < max_retries {
                let backoff = shared
                    .options
                    .retry_backoff
                    .saturating_mul(1u32 << msg.retries.min(16))
                    .min(Duration::from_secs(60));
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::try_from(backoff).unwrap_or_default())
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                tracing::warn!(task = %msg.task, id = %msg.id, error = %e, retry = msg.retries + 1, ?backoff, "failed; retrying");
                if let Err(pe) = broker.publish(&d.queue, &msg.retry(at).encode()).await {
                    tracing::warn!(error = %pe, "could not publish the retry; leaving the message for redelivery");
                    return;
                }
                shared.stats.retried.fetch_add(1, Ordering::Relaxed);
                let _ = d.acker.ack().await;
            } else {
                let why = if transient {
                    format!(
                        "task `{}` failed after {} retries: {e}",
                        msg.task, msg.retries
                    )
                } else {
                    format!("task `{}` failed: {e}", msg.task)
                };
                dead_letter(shared, broker, d, why).await;
            }
        }
    }
}

/// Publishes the follow-ups of a task that succeeded with `result`. A follow-up that cannot
/// be published fails the task transiently (retried with backoff, then dead-lettered; handlers
/// are idempotent): left unacknowledged on a connection that stays up, the delivery would
/// hold its prefetch slot for good, and a worker at prefetch 1 would stop.
async fn publish_follow_ups(
    shared: &Shared,
    broker: &Broker,
    msg: &TaskMessage,
    result: &Json,
    parent_queue: &str,
) -> Option<TaskError> {
    for sig in &msg.callbacks {
        let child = msg.follow_up(sig, result);
        let queue = follow_up_queue(&shared.program, &sig.task, sig.queue.as_ref(), parent_queue);
        if let Err(e) = broker.publish(&queue, &child.encode()).await {
            tracing::warn!(error = %e, follow_up = %sig.task, "could not publish a follow-up");
            return Some(TaskError::Transient(format!(
                "could not publish follow-up `{}` to `{queue}`: {e}",
                sig.task
            )));
        }
    }
    None
}

/// Runs a handler under its soft limit (a warning) and hard limit (stopped; a transient
/// failure).
async fn run_limited(
    fut: super::tasks::TaskFuture,
    msg: &TaskMessage,
    soft: Option<Duration>,
    hard: Duration,
) -> Result<Json, TaskError> {
    let hard_timer = tokio::time::sleep(hard);
    tokio::pin!(hard_timer, fut);
    if let Some(soft) = soft.filter(|s| *s < hard) {
        tokio::select! {
            r = &mut fut => return r,
            _ = tokio::time::sleep(soft) => {
                tracing::warn!(task = %msg.task, id = %msg.id, ?soft, "past its soft time limit");
            }
        }
    }
    tokio::select! {
        r = &mut fut => r,
        _ = &mut hard_timer => {
            tracing::error!(task = %msg.task, id = %msg.id, ?hard, "stopped at its time limit");
            Err(TaskError::Transient(format!("stopped at its time limit of {}", crate::units::format_duration(hard))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(manifest: &str) -> Program {
        let source = crate::compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.into());
        let model = crate::compile::check(&source)
            .model
            .expect("a valid manifest");
        let ctx = crate::plan::BuildContext {
            home: "/home/pi/.acoupi".into(),
            exe: "/usr/bin/acoupi".into(),
            source_path: "/t.kdl".into(),
        };
        crate::plan::lower(model, &ctx).program
    }

    #[test]
    fn reconnecting_backs_off_doubling_up_to_30_s() {
        let mut waits = vec![Duration::from_millis(100)];
        for _ in 0..10 {
            waits.push(reconnect_backoff(*waits.last().expect("one wait")));
        }
        assert_eq!(waits[1], Duration::from_millis(200));
        assert_eq!(waits[4], Duration::from_millis(1600));
        assert_eq!(waits[10], Duration::from_secs(30));
    }

    #[test]
    fn finished_forgets_the_oldest_id_past_its_capacity_and_no_other() {
        let mut f = Finished::default();
        for i in 0..Finished::CAPACITY {
            f.insert(i.to_string());
        }
        // A repeat is not a new entry: nothing is forgotten.
        f.insert("0".into());
        assert_eq!(f.ids.len(), Finished::CAPACITY);
        assert!(f.ids.contains("0"));
        f.insert("new".into());
        assert_eq!(f.ids.len(), Finished::CAPACITY);
        assert_eq!(f.order.len(), Finished::CAPACITY);
        assert!(!f.ids.contains("0"), "the oldest id is forgotten");
        assert!(f.ids.contains("1") && f.ids.contains("new"));
    }

    #[test]
    fn a_worker_declares_the_queues_its_tasks_follow_ups_go_to() {
        let p = program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\ndetector \"d\" kind=\"band-energy\" { band low=\"1kHz\" high=\"2kHz\" }\n",
        );
        // record -> detect (detection) -> manage-files (default).
        assert_eq!(follow_up_queues(&p, &["recording".into()]), ["detection"]);
        assert_eq!(follow_up_queues(&p, &["detection".into()]), ["default"]);
        assert!(follow_up_queues(&p, &["default".into()]).is_empty());
        // Queues the worker consumes itself are declared anyway.
        assert!(follow_up_queues(&p, &["recording".into(), "detection".into()]) == ["default"]);
        assert!(follow_up_queues(&p, &["elsewhere".into()]).is_empty());
    }
}
