//! The runtime's promises, each held by a test that fails when it breaks: a redelivered task
//! this worker already finished is not run again, nor one that expired; a worker runs as many
//! tasks at once as its concurrency; beat never fires a saved slot again after a
//! restart and skips what it missed; a retry does not run before its backoff, nor a task
//! before its `eta`; a task past its soft limit is warned about; at shutdown, deliveries
//! prefetched but not started go back to the queue, at once even while other tasks still
//! run; SIGTERM lets a running task finish and acknowledges it once; a publish is confirmed,
//! and a refused or unroutable one is an error that fails its task instead of stopping the
//! worker or vanishing. The RabbitMQ tests use the shared broker with their own queues,
//! which they delete even when they fail.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use acoupi::runtime::beat::{self, Fired, TimeSource};
use acoupi::runtime::celery::TaskMessage;
use acoupi::runtime::tasks::{Registry, TaskContext, TaskError, TaskFuture};
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::transport::{Broker, dead_letter_queue};
use acoupi::runtime::worker::{self, Connector};
use common::runtime::{
    KillOnDrop, LogCapture, MINIMAL, Queues, amqp, program, rabbit, run_beat, spawn_worker,
    wait_for, wait_for_depth, worker_def,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

static RAN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn counting(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        RAN.lock().unwrap().push(ctx.task_id);
        Ok(Json::Null)
    })
}

fn ran(id: &str) -> usize {
    RAN.lock().unwrap().iter().filter(|r| *r == id).count()
}

/// A message delivered again after it finished here (its acknowledgement lost with the
/// connection, as RabbitMQ then redelivers it) is acknowledged, not run a second time.
#[tokio::test]
async fn a_redelivered_task_that_finished_here_is_acknowledged_without_running_again() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let q = "redelivery";
    let mut registry = Registry::builtin();
    registry.insert("count", counting);
    let w = spawn_worker(
        Connector::Memory(memory.clone()),
        Arc::new(program(MINIMAL)),
        worker_def(q, 1, 1),
        registry,
        worker::Options::default(),
    );
    let task = TaskMessage::new("count", vec![], Map::new());
    broker.publish(q, &task.encode()).await.unwrap();
    wait_for(Duration::from_secs(10), "the task to run", || {
        ran(&task.id) == 1
    })
    .await;
    // The same message again, then a marker: one task at a time, so once the marker ran the
    // redelivery has been handled.
    broker.publish(q, &task.encode()).await.unwrap();
    let marker = TaskMessage::new("count", vec![], Map::new());
    broker.publish(q, &marker.encode()).await.unwrap();
    wait_for(Duration::from_secs(10), "the marker to run", || {
        ran(&marker.id) == 1
    })
    .await;
    assert_eq!(ran(&task.id), 1, "the finished task ran again");
    assert_eq!(w.stats.succeeded.load(Ordering::Relaxed), 2);
    w.stop().await;
    // Acknowledged: an unacknowledged delivery would be back in the queue now.
    assert_eq!(broker.depth(q).await.unwrap(), 0);
    assert_eq!(broker.depth(&dead_letter_queue(q)).await.unwrap(), 0);
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn published(fired: &[Fired]) -> Vec<Timestamp> {
    fired
        .iter()
        .filter(|f| f.task == "heartbeat" && f.published)
        .map(|f| f.slot)
        .collect()
}

/// A program whose one scheduled task is a heartbeat every second.
const HEARTBEAT_EVERY_SECOND: &str = "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nworkers { task \"heartbeat\" every=\"1s\"; }\n";

/// Beat saves the last fired slot; restarted at that very instant, or with the clock behind
/// it (a clock stepped back, an RTC that lost time), it does not fire saved slots again.
/// Restarted after a gap, it reports the missed slots and does not replay them.
#[tokio::test(start_paused = true)]
async fn beat_restarted_across_a_saved_slot_does_not_fire_it_again() {
    let (_d, dir) = common::tempdir();
    let state = dir.join("beat.json");
    let program = Arc::new(program(HEARTBEAT_EVERY_SECOND));
    let broker = MemoryBroker::default();
    let first = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        ts("2026-06-01T10:00:00.250Z"),
        Duration::from_millis(3_000),
    )
    .await;
    assert_eq!(
        published(&first),
        [
            ts("2026-06-01T10:00:01Z"),
            ts("2026-06-01T10:00:02Z"),
            ts("2026-06-01T10:00:03Z")
        ]
    );
    let saved = fs_err::read_to_string(&state).unwrap();
    assert!(saved.contains("2026-06-01T10:00:03Z"), "{saved}");

    // Restarted exactly at the last fired slot: 10:00:03 is due by the clock, but fired.
    let second = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        ts("2026-06-01T10:00:03Z"),
        Duration::from_millis(1_500),
    )
    .await;
    assert_eq!(published(&second), [ts("2026-06-01T10:00:04Z")]);
    // Nothing was missed, so no report (not even one of zero slots).
    assert!(
        second
            .iter()
            .filter(|f| f.task == "heartbeat")
            .all(|f| f.published && f.missed == 0),
        "{second:?}"
    );

    // Restarted with the clock 2.5 s behind the last fired slot (10:00:04): 10:00:02 to
    // 10:00:04 come round again by the clock and must not fire.
    let third = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        ts("2026-06-01T10:00:01.500Z"),
        Duration::from_millis(4_000),
    )
    .await;
    assert_eq!(published(&third), [ts("2026-06-01T10:00:05Z")]);

    // Down from 10:00:05 to 10:00:10.5: the five slots 06..10 are reported, not replayed.
    let fourth = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        ts("2026-06-01T10:00:10.500Z"),
        Duration::from_millis(1_000),
    )
    .await;
    let report: Vec<&Fired> = fourth.iter().filter(|f| f.missed > 0).collect();
    assert_eq!(report.len(), 1, "{fourth:?}");
    assert_eq!(report[0].missed, 5);
    assert!(!report[0].published);
    assert_eq!(published(&fourth), [ts("2026-06-01T10:00:11Z")]);
}

/// Stopped the moment after it fires a slot (a SIGTERM then), beat has saved that slot by the
/// time it returns: its last save is awaited, not left to a background task that the process
/// exit would drop, so a restart cannot fire the slot again.
#[tokio::test(start_paused = true)]
async fn beat_stopped_right_after_a_slot_has_saved_it_when_it_returns() {
    let (_d, dir) = common::tempdir();
    let state = dir.join("beat.json");
    let program = Arc::new(program(HEARTBEAT_EVERY_SECOND));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let options = beat::Options {
        state: state.clone(),
        time: TimeSource::tokio_at(ts("2026-06-01T10:00:00.250Z")),
        fired: Some(tx),
    };
    let handle = tokio::spawn(beat::run(
        Connector::Memory(MemoryBroker::default()),
        program,
        options,
        shutdown.clone(),
        || {},
    ));
    let fired = rx.recv().await.expect("a slot fired");
    assert_eq!(fired.slot, ts("2026-06-01T10:00:01Z"));
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    // Read at once: nothing else of this runtime runs between beat's return and here.
    let saved = fs_err::read_to_string(&state).unwrap_or_default();
    assert!(
        saved.contains("2026-06-01T10:00:01Z"),
        "the slot fired before the stop was not saved: {saved:?}"
    );
}

static ATTEMPTS: Mutex<Vec<(String, u32, tokio::time::Instant)>> = Mutex::new(Vec::new());

fn flaky(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        ATTEMPTS.lock().unwrap().push((
            ctx.task_id.clone(),
            ctx.retries,
            tokio::time::Instant::now(),
        ));
        if ctx.retries < 2 {
            Err(TaskError::Transient(format!("attempt {}", ctx.retries)))
        } else {
            Ok(Json::Null)
        }
    })
}

fn attempts(id: &str) -> Vec<(u32, tokio::time::Instant)> {
    ATTEMPTS
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.0 == id)
        .map(|a| (a.1, a.2))
        .collect()
}

/// A transient failure is retried with an `eta` of base × 2^retries, and the retry does not
/// run before it; a task published with an `eta` does not run before it either. The clock
/// is paused, so the waits take no real time.
#[tokio::test(start_paused = true)]
async fn retries_and_eta_tasks_do_not_run_before_their_time() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let q = "backoff";
    let mut registry = Registry::builtin();
    registry.insert("flaky", flaky);
    registry.insert("count", counting);
    let base = Duration::from_secs(4);
    let w = spawn_worker(
        Connector::Memory(memory.clone()),
        Arc::new(program(MINIMAL)),
        worker_def(q, 2, 2),
        registry,
        worker::Options {
            retry_backoff: base,
            default_retries: 3,
            ..worker::Options::default()
        },
    );
    let task = TaskMessage::new("flaky", vec![], Map::new());
    broker.publish(q, &task.encode()).await.unwrap();
    wait_for(
        Duration::from_secs(60),
        "the second retry to succeed",
        || attempts(&task.id).len() == 3,
    )
    .await;
    let runs = attempts(&task.id);
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2]);
    // The eta is computed from the wall clock a moment before the retry is published, so
    // allow those few real microseconds.
    let slack = Duration::from_millis(50);
    let first_gap = runs[1].1 - runs[0].1;
    let second_gap = runs[2].1 - runs[1].1;
    assert!(first_gap + slack >= base, "retry 1 ran after {first_gap:?}");
    assert!(
        second_gap + slack >= base * 2,
        "retry 2 ran after {second_gap:?}"
    );
    assert_eq!(w.stats.retried.load(Ordering::Relaxed), 2);

    let mut later = TaskMessage::new("count", vec![], Map::new());
    later.eta = Some(
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(30))
            .unwrap(),
    );
    let published_at = tokio::time::Instant::now();
    broker.publish(q, &later.encode()).await.unwrap();
    let now = TaskMessage::new("count", vec![], Map::new());
    broker.publish(q, &now.encode()).await.unwrap();
    wait_for(Duration::from_secs(120), "the eta task", || {
        ran(&later.id) == 1
    })
    .await;
    let waited = published_at.elapsed();
    assert!(
        waited + slack >= Duration::from_secs(30),
        "ran {waited:?} after publishing, before its eta"
    );
    // Waiting for an eta holds no slot: the task behind it ran meanwhile.
    assert_eq!(ran(&now.id), 1);
    w.stop().await;
}

/// A task past its soft time limit is logged as such and still runs to completion; one that
/// finishes under it is not warned about.
#[test]
fn a_task_past_its_soft_limit_is_warned_about_and_finishes() {
    let logs = LogCapture::default();
    let subscriber = logs.subscriber("warn");
    let (slow_id, quick_id, succeeded) = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let memory = MemoryBroker::default();
            let broker = Broker::Memory(memory.clone());
            let q = "soft";
            let w = spawn_worker(
                Connector::Memory(memory.clone()),
                Arc::new(program(MINIMAL)),
                worker_def(q, 1, 1),
                Registry::builtin(),
                worker::Options::default(),
            );
            let mut kwargs = Map::new();
            kwargs.insert("sleep_ms".into(), json!(3_000));
            let mut slow = TaskMessage::new("noop", vec![], kwargs.clone());
            slow.soft_time_limit = Some(1.0);
            slow.hard_time_limit = Some(10.0);
            let mut quick = TaskMessage::new("noop", vec![], kwargs);
            quick.soft_time_limit = Some(5.0);
            quick.hard_time_limit = Some(10.0);
            broker.publish(q, &slow.encode()).await.unwrap();
            broker.publish(q, &quick.encode()).await.unwrap();
            wait_for(Duration::from_secs(60), "both tasks", || {
                w.stats.succeeded.load(Ordering::Relaxed) == 2
            })
            .await;
            let succeeded = w.stats.succeeded.load(Ordering::Relaxed);
            w.stop().await;
            (slow.id, quick.id, succeeded)
        })
    });
    assert_eq!(succeeded, 2);
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("past its soft time limit"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains(&slow_id), "{text}");
    assert!(warnings[0].contains("WARN"), "{text}");
    assert!(!text.contains(&format!("id={quick_id}")), "{text}");
}

fn count_lines(path: &camino::Utf8Path, prefix: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// Shutdown with deliveries prefetched but not started: the running tasks finish, the held
/// ones go back to the queue unstarted, and nothing is lost or dead-lettered. Run for one
/// task at a time (deliveries wait in the consumer) and for two (deliveries wait for a slot).
async fn shutdown_gives_back_what_it_did_not_start(concurrency: u32, tag: &str) {
    let (_d, dir) = common::tempdir();
    let marks = dir.join("marks.txt");
    let queues = Queues::new(tag);
    let q = queues.name();
    let broker = rabbit("acoupi test requeue publisher").await;
    broker.declare(&q).await.unwrap();
    let prefetch = 6;
    let total = 8;
    let mut kwargs = Map::new();
    // Long enough that no further task can start between the first ones starting and the
    // shutdown, however slowly the test thread notices.
    kwargs.insert("sleep_ms".into(), json!(2_000));
    kwargs.insert("mark".into(), json!(marks.as_str()));
    for _ in 0..total {
        let msg = TaskMessage::new("noop", vec![], kwargs.clone());
        broker.publish(&q, &msg.encode()).await.unwrap();
    }
    let w = spawn_worker(
        amqp(common::runtime::AMQP, &format!("acoupi test {q}")),
        Arc::new(program(MINIMAL)),
        worker_def(&q, concurrency, prefetch),
        Registry::builtin(),
        worker::Options::default(),
    );
    // `prefetch` deliveries held by the worker, `concurrency` of them started.
    wait_for_depth(&broker, &q, total - prefetch, Duration::from_secs(20)).await;
    wait_for(Duration::from_secs(20), "the first tasks to start", || {
        count_lines(&marks, "start") >= concurrency as usize
    })
    .await;
    w.stop().await;
    assert_eq!(
        count_lines(&marks, "start"),
        concurrency as usize,
        "tasks started after shutdown was requested"
    );
    assert_eq!(count_lines(&marks, "done"), concurrency as usize);
    assert_eq!(broker.depth(&q).await.unwrap(), total - concurrency);
    assert_eq!(broker.depth(&dead_letter_queue(&q)).await.unwrap(), 0);
    broker.close().await;
}

#[tokio::test]
async fn rabbitmq_shutdown_requeues_prefetched_deliveries_one_at_a_time() {
    shutdown_gives_back_what_it_did_not_start(1, "requeue1").await;
}

#[tokio::test]
async fn rabbitmq_shutdown_requeues_deliveries_waiting_for_a_slot() {
    shutdown_gives_back_what_it_did_not_start(2, "requeue2").await;
}

/// `hold` tasks started so far, and the permits that let them finish.
static HOLD_STARTED: AtomicUsize = AtomicUsize::new(0);
static HOLD_RELEASE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// Runs until the test releases it (fails after a minute, should the test be gone).
fn hold(_ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        HOLD_STARTED.fetch_add(1, Ordering::SeqCst);
        match tokio::time::timeout(Duration::from_secs(60), HOLD_RELEASE.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(Json::Null)
            }
            _ => Err(TaskError::Permanent("never released".into())),
        }
    })
}

/// Shutdown while tasks run: the deliveries waiting for a slot go back to RabbitMQ at once,
/// for another worker to take, and are not held until the running tasks have finished and
/// the connection closes; consuming stops, so they are not delivered here again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_shutdown_gives_back_waiting_deliveries_while_tasks_still_run() {
    let queues = Queues::new("giveback");
    let q = queues.name();
    let broker = rabbit("acoupi test give-back publisher").await;
    broker.declare(&q).await.unwrap();
    let total = 6;
    for _ in 0..total {
        let msg = TaskMessage::new("hold", vec![], Map::new());
        broker.publish(&q, &msg.encode()).await.unwrap();
    }
    let mut registry = Registry::builtin();
    registry.insert("hold", hold);
    let w = spawn_worker(
        amqp(common::runtime::AMQP, &format!("acoupi test {q}")),
        Arc::new(program(MINIMAL)),
        worker_def(&q, 2, total),
        registry,
        worker::Options::default(),
    );
    // Every message delivered to the worker, two of them running.
    wait_for_depth(&broker, &q, 0, Duration::from_secs(20)).await;
    wait_for(Duration::from_secs(20), "two tasks to start", || {
        HOLD_STARTED.load(Ordering::SeqCst) == 2
    })
    .await;
    let stats = Arc::clone(&w.stats);
    w.shutdown.cancel();
    // The four that never started are back in the queue while the two running tasks still
    // hold their slots.
    wait_for_depth(&broker, &q, total - 2, Duration::from_secs(20)).await;
    assert_eq!(HOLD_STARTED.load(Ordering::SeqCst), 2);
    assert_eq!(stats.succeeded.load(Ordering::Relaxed), 0);
    HOLD_RELEASE.add_permits(2);
    w.stop().await;
    assert_eq!(stats.succeeded.load(Ordering::Relaxed), 2);
    assert_eq!(broker.depth(&q).await.unwrap(), total - 2);
    assert_eq!(broker.depth(&dead_letter_queue(&q)).await.unwrap(), 0);
    broker.close().await;
}

/// A real `acoupi worker` process given SIGTERM while a task runs: the task completes, is
/// acknowledged once (nothing left in the queue, no channel error), and the process exits 0.
#[test]
fn rabbitmq_sigterm_lets_the_running_task_finish_and_exits_0() {
    let (_d, dir) = common::tempdir();
    let queues = Queues::new("term");
    let q = queues.name();
    let manifest = format!(
        "program \"term\"\nmicrophone \"m\" {{ synthetic \"sine\" }}\nworkers {{\n worker \"w\" queues=\"{q}\"\n task \"record\" queue=\"{q}\"\n task \"manage-files\" queue=\"{q}\"\n task \"heartbeat\" queue=\"{q}\"\n}}\n"
    );
    let path = common::write(&dir, "term.kdl", manifest);
    let home = dir.join("home");
    let out = common::run(&["build", path.as_str(), "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let marks = dir.join("marks.txt");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker = rt.block_on(rabbit("acoupi test term publisher"));
    rt.block_on(broker.declare(&q)).unwrap();
    let mut kwargs = Map::new();
    kwargs.insert("sleep_ms".into(), json!(2_500));
    kwargs.insert("mark".into(), json!(marks.as_str()));
    let msg = TaskMessage::new("noop", vec![], kwargs);
    rt.block_on(broker.publish(&q, &msg.encode())).unwrap();
    let (child, rx) = common::spawn_logged(&["--home", home.as_str(), "worker", "w"]);
    let mut child = KillOnDrop(child);
    let start = std::time::Instant::now();
    while count_lines(&marks, "start") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(count_lines(&marks, "done"), 0, "finished before the signal");
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    let log: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{log:#?}");
    assert_eq!(count_lines(&marks, "start"), 1);
    assert_eq!(
        count_lines(&marks, "done"),
        1,
        "the running task was cut short"
    );
    // Exited: an unacknowledged delivery would be back in the queue by now.
    assert_eq!(rt.block_on(broker.depth(&q)).unwrap(), 0, "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("PRECONDITION") || l.contains("unknown delivery tag")),
        "acknowledged twice: {log:#?}"
    );
    rt.block_on(broker.close());
}

/// Declares `queue` with a plain AMQP client as a durable queue that holds `max` messages and
/// refuses publishes past that; returns the connection, to close at the end of the test.
async fn bounded_queue(queue: &str, max: i64) -> lapin::Connection {
    let conn = lapin::Connection::connect(
        common::runtime::AMQP,
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap_or_else(|e| {
        panic!("RabbitMQ is not reachable ({e}); start it with `rabbitmq-server -detached`")
    });
    let ch = conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-max-length".into(),
        lapin::types::AMQPValue::LongLongInt(max),
    );
    args.insert(
        "x-overflow".into(),
        lapin::types::AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions::durable(),
        args,
    )
    .await
    .unwrap();
    conn
}

/// Publishes are confirmed: `publish` returns once RabbitMQ took the message, and a message
/// RabbitMQ refuses (here a full queue that rejects publishes) is an error, not a silent
/// loss.
#[tokio::test]
async fn rabbitmq_publish_is_confirmed_and_a_refusal_is_an_error() {
    let queues = Queues::new("confirm");
    let q = queues.name();
    // A queue that holds one message and refuses more, declared with a plain AMQP client.
    let conn = bounded_queue(&q, 1).await;
    let broker = rabbit("acoupi test confirm").await;
    let first = TaskMessage::new("noop", vec![], Map::new());
    broker.publish(&q, &first.encode()).await.unwrap();
    // Confirmed: the message is in the queue as soon as `publish` returned.
    assert_eq!(broker.depth(&q).await.unwrap(), 1);
    let second = TaskMessage::new("noop", vec![], Map::new());
    let refused = broker.publish(&q, &second.encode()).await;
    let err = refused.expect_err("a refused message must not look published");
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(broker.depth(&q).await.unwrap(), 1);
    broker.close().await;
    conn.close(200, "bye".into()).await.unwrap();
}

/// A follow-up RabbitMQ refuses fails its task transiently: retried, then dead-lettered with
/// the reason, and the worker carries on with the next task (left unacknowledged, the
/// delivery held the worker's only prefetch slot and the worker stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_refused_follow_up_does_not_stop_the_worker() {
    let mut queues = Queues::new("refused");
    let q = queues.name();
    let full = queues.also(format!("{q}full"));
    let conn = bounded_queue(&full, 0).await;
    let broker = rabbit("acoupi test refused publisher").await;
    broker.declare(&q).await.unwrap();
    let mut parent = TaskMessage::new("noop", vec![], Map::new());
    parent.callbacks = vec![acoupi::runtime::celery::Signature {
        task: "noop".into(),
        args: vec![],
        kwargs: Map::new(),
        queue: Some(full.clone()),
        link: vec![],
        immutable: false,
    }];
    broker.publish(&q, &parent.encode()).await.unwrap();
    let next = TaskMessage::new("noop", vec![], Map::new());
    broker.publish(&q, &next.encode()).await.unwrap();
    let w = spawn_worker(
        amqp(common::runtime::AMQP, &format!("acoupi test {q}")),
        Arc::new(program(MINIMAL)),
        worker_def(&q, 1, 1),
        Registry::builtin(),
        worker::Options {
            retry_backoff: Duration::from_millis(10),
            default_retries: 1,
            ..worker::Options::default()
        },
    );
    wait_for(
        Duration::from_secs(30),
        "the next task and the refused one dead-lettered",
        || {
            w.stats.succeeded.load(Ordering::Relaxed) == 1
                && w.stats.dead_lettered.load(Ordering::Relaxed) == 1
        },
    )
    .await;
    w.stop().await;
    let dead = broker
        .get(&dead_letter_queue(&q))
        .await
        .unwrap()
        .expect("the refused task, dead-lettered");
    assert_eq!(TaskMessage::decode(&dead).unwrap().id, parent.id);
    let reason = dead.headers["x-acoupi-reason"].as_str().unwrap_or_default();
    assert!(reason.contains("could not publish follow-up"), "{reason}");
    assert_eq!(broker.depth(&q).await.unwrap(), 0);
    broker.close().await;
    conn.close(200, "bye".into()).await.unwrap();
}

/// A follow-up addressed to a queue that does not exist is not dropped by RabbitMQ in
/// silence (publishes are mandatory): its task fails, is retried, then dead-lettered with
/// the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_follow_up_no_queue_takes_is_not_lost_in_silence() {
    let mut queues = Queues::new("noqueue");
    let q = queues.name();
    let nowhere = queues.also(format!("{q}nowhere"));
    let broker = rabbit("acoupi test no-queue publisher").await;
    broker.declare(&q).await.unwrap();
    let mut parent = TaskMessage::new("noop", vec![], Map::new());
    parent.callbacks = vec![acoupi::runtime::celery::Signature {
        task: "noop".into(),
        args: vec![],
        kwargs: Map::new(),
        queue: Some(nowhere.clone()),
        link: vec![],
        immutable: false,
    }];
    broker.publish(&q, &parent.encode()).await.unwrap();
    let w = spawn_worker(
        amqp(common::runtime::AMQP, &format!("acoupi test {q}")),
        Arc::new(program(MINIMAL)),
        worker_def(&q, 1, 1),
        Registry::builtin(),
        worker::Options {
            retry_backoff: Duration::from_millis(10),
            default_retries: 1,
            ..worker::Options::default()
        },
    );
    wait_for(Duration::from_secs(30), "the task dead-lettered", || {
        w.stats.dead_lettered.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(w.stats.succeeded.load(Ordering::Relaxed), 0);
    w.stop().await;
    let dead = broker
        .get(&dead_letter_queue(&q))
        .await
        .unwrap()
        .expect("the task, dead-lettered");
    assert_eq!(TaskMessage::decode(&dead).unwrap().id, parent.id);
    let reason = dead.headers["x-acoupi-reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("no queue `{nowhere}`")),
        "{reason}"
    );
    broker.close().await;
}

/// A task whose `expires` has passed when it is delivered is acknowledged and dropped without
/// running or being dead-lettered; one that expires later runs.
#[tokio::test]
async fn an_expired_task_is_acknowledged_without_running() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let q = "expired";
    let mut registry = Registry::builtin();
    registry.insert("count", counting);
    let w = spawn_worker(
        Connector::Memory(memory.clone()),
        Arc::new(program(MINIMAL)),
        worker_def(q, 1, 1),
        registry,
        worker::Options::default(),
    );
    let mut stale = TaskMessage::new("count", vec![], Map::new());
    stale.expires = Some(
        Timestamp::now()
            .checked_sub(SignedDuration::from_secs(60))
            .unwrap(),
    );
    let mut fresh = TaskMessage::new("count", vec![], Map::new());
    fresh.expires = Some(
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(3600))
            .unwrap(),
    );
    broker.publish(q, &stale.encode()).await.unwrap();
    broker.publish(q, &fresh.encode()).await.unwrap();
    // One task at a time: once the fresh one ran, the stale one has been handled.
    wait_for(Duration::from_secs(10), "the unexpired task to run", || {
        ran(&fresh.id) == 1
    })
    .await;
    assert_eq!(ran(&stale.id), 0, "the expired task ran");
    assert_eq!(w.stats.succeeded.load(Ordering::Relaxed), 1);
    w.stop().await;
    // Acknowledged: an unacknowledged delivery would be back in the queue now.
    assert_eq!(broker.depth(q).await.unwrap(), 0);
    assert_eq!(broker.depth(&dead_letter_queue(q)).await.unwrap(), 0);
}

static TOGETHER: LazyLock<tokio::sync::Barrier> = LazyLock::new(|| tokio::sync::Barrier::new(2));

/// Succeeds once a second `together` task is running at the same time; fails alone.
fn together(_ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        tokio::time::timeout(Duration::from_secs(5), TOGETHER.wait())
            .await
            .map(|_| Json::Null)
            .map_err(|_| TaskError::Permanent("ran alone".into()))
    })
}

/// A worker of concurrency 2 runs two tasks at once (each waits for the other to start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_as_many_tasks_at_once_as_its_concurrency() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let q = "together";
    let mut registry = Registry::builtin();
    registry.insert("together", together);
    let w = spawn_worker(
        Connector::Memory(memory.clone()),
        Arc::new(program(MINIMAL)),
        worker_def(q, 2, 2),
        registry,
        worker::Options::default(),
    );
    for _ in 0..2 {
        let task = TaskMessage::new("together", vec![], Map::new());
        broker.publish(q, &task.encode()).await.unwrap();
    }
    wait_for(Duration::from_secs(30), "both tasks to finish", || {
        w.stats.succeeded.load(Ordering::Relaxed) + w.stats.dead_lettered.load(Ordering::Relaxed)
            == 2
    })
    .await;
    assert_eq!(
        w.stats.succeeded.load(Ordering::Relaxed),
        2,
        "the two tasks did not run at the same time"
    );
    w.stop().await;
}
