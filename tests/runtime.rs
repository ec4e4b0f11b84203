//! The runtime against the in-process broker and a real RabbitMQ: chaining, acks late,
//! retries, dead letters, a worker of two queues, the queue operations the commands use, an
//! unreachable broker given up in time, time limits, broker loss, a worker killed mid-task,
//! and beat's slots across restarts. Every RabbitMQ test uses its own queue names, so they
//! run in parallel on one broker, and deletes them even when it fails; a missing broker fails
//! the test with how to start it.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acoupi::runtime::beat::{self, Fired};
use acoupi::runtime::celery::{Envelope, TaskMessage};
use acoupi::runtime::tasks::{Registry, TaskContext, TaskFuture};
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::transport::{Broker, dead_letter_queue};
use acoupi::runtime::worker::{self, Connector};
use common::runtime::{
    AMQP, KillOnDrop, LogCapture, Queues, program, rabbit, run_beat, spawn_worker, wait_for,
    worker_def,
};
use serde_json::{Map, Value as Json, json};

static SEEN: Mutex<Vec<(String, Json)>> = Mutex::new(Vec::new());

fn record_handler(ctx: TaskContext, args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        SEEN.lock()
            .unwrap()
            .push((ctx.task_id.clone(), Json::Array(args.clone())));
        Ok(json!({"recording": ctx.task_id}))
    })
}

fn detect_handler(ctx: TaskContext, args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        SEEN.lock()
            .unwrap()
            .push((ctx.task_id.clone(), Json::Array(args.clone())));
        Ok(json!("detected"))
    })
}

#[tokio::test]
async fn follow_ups_receive_the_result_on_their_own_queue() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\ndetector \"d\" kind=\"band-energy\" { band low=\"1kHz\" high=\"2kHz\" }\n",
    ));
    let mut registry = Registry::builtin();
    registry.insert("record", record_handler);
    registry.insert("detect", detect_handler);
    registry.insert("manage-files", detect_handler);
    let mut msg = TaskMessage::new("record", vec![], Map::new());
    msg.callbacks = vec![beat::signature(&program, "detect", 1)];
    assert_eq!(msg.callbacks[0].queue.as_deref(), Some("detection"));
    broker.publish("recording", &msg.encode()).await.unwrap();
    let mut handles = Vec::new();
    for def in program.workers.clone() {
        handles.push(spawn_worker(
            Connector::Memory(memory.clone()),
            Arc::clone(&program),
            def,
            registry.clone(),
            worker::Options::default(),
        ));
    }
    wait_for(
        Duration::from_secs(10),
        "record -> detect -> manage-files",
        || SEEN.lock().unwrap().len() >= 3,
    )
    .await;
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen[0].0, msg.id);
    // detect got record's result as its first argument, manage-files got detect's.
    assert_eq!(seen[1].1, json!([{"recording": msg.id}]));
    assert_eq!(seen[2].1, json!(["detected"]));
    for w in handles {
        w.stop().await;
    }
}

#[tokio::test]
async fn transient_failures_retry_then_dead_letter() {
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    let q = "retry";
    let options = worker::Options {
        retry_backoff: Duration::from_millis(10),
        default_retries: 2,
        ..worker::Options::default()
    };
    let w = spawn_worker(
        Connector::Memory(memory.clone()),
        Arc::new(program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
        )),
        worker_def(q, 1, 1),
        Registry::builtin(),
        options,
    );
    let mut ok = Map::new();
    ok.insert("fail_until_retry".into(), json!(2));
    broker
        .publish(q, &TaskMessage::new("noop", vec![json!(1)], ok).encode())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "success on the second retry",
        || w.stats.succeeded.load(Ordering::Relaxed) == 1,
    )
    .await;
    assert_eq!(w.stats.retried.load(Ordering::Relaxed), 2);
    let mut bad = Map::new();
    bad.insert("fail".into(), json!("transient"));
    let doomed = TaskMessage::new("noop", vec![], bad);
    broker.publish(q, &doomed.encode()).await.unwrap();
    wait_for(Duration::from_secs(10), "dead letter", || {
        w.stats.dead_lettered.load(Ordering::Relaxed) == 1
    })
    .await;
    let dead = broker
        .get(&dead_letter_queue(q))
        .await
        .unwrap()
        .expect("a dead letter");
    let reason = dead.headers["x-acoupi-reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("failed after 2 retries"), "{reason}");
    assert_eq!(TaskMessage::decode(&dead).unwrap().id, doomed.id);
    w.stop().await;
}

#[tokio::test]
async fn rabbitmq_poison_messages_go_to_the_dead_letter_queue() {
    let queues = Queues::new("poison");
    let q = queues.name();
    let broker = rabbit("acoupi test poison").await;
    broker.declare(&q).await.unwrap();
    let garbage = Envelope {
        headers: Default::default(),
        body: b"\x00not json".to_vec(),
        content_type: "application/json".into(),
        content_encoding: "utf-8".into(),
        correlation_id: "x".into(),
        priority: 0,
    };
    broker.publish(&q, &garbage).await.unwrap();
    broker
        .publish(
            &q,
            &TaskMessage::new("no-such-task", vec![], Map::new()).encode(),
        )
        .await
        .unwrap();
    broker
        .publish(&q, &TaskMessage::new("noop", vec![], Map::new()).encode())
        .await
        .unwrap();
    let w = spawn_worker(
        Connector::Amqp {
            url: AMQP.into(),
            name: format!("acoupi test {q}"),
        },
        Arc::new(program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
        )),
        worker_def(&q, 1, 1),
        Registry::builtin(),
        worker::Options::default(),
    );
    wait_for(
        Duration::from_secs(20),
        "the good task after two poison ones",
        || {
            w.stats.succeeded.load(Ordering::Relaxed) == 1
                && w.stats.dead_lettered.load(Ordering::Relaxed) == 2
        },
    )
    .await;
    let mut reasons = Vec::new();
    while let Some(env) = broker.get(&dead_letter_queue(&q)).await.unwrap() {
        reasons.push(
            env.headers["x-acoupi-reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("undecodable message"), "{reasons:?}");
    assert_eq!(reasons[1], "unknown task `no-such-task`");
    w.stop().await;
    broker.close().await;
}

/// A worker consuming two RabbitMQ queues, with one prefetch slot each, runs the tasks of
/// both and acknowledges them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_worker_of_two_queues_runs_the_tasks_of_both() {
    let mut queues = Queues::new("twoq");
    let first = queues.name();
    let second = queues.also(format!("{first}b"));
    let broker = rabbit("acoupi test two-queue publisher").await;
    for q in [&first, &second] {
        broker.declare(q).await.unwrap();
        for _ in 0..3 {
            let msg = TaskMessage::new("noop", vec![], Map::new());
            broker.publish(q, &msg.encode()).await.unwrap();
        }
    }
    let mut def = worker_def(&first, 1, 1);
    def.queues.push(second.clone());
    let w = spawn_worker(
        Connector::Amqp {
            url: AMQP.into(),
            name: format!("acoupi test {first}"),
        },
        Arc::new(program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
        )),
        def,
        Registry::builtin(),
        worker::Options::default(),
    );
    wait_for(
        Duration::from_secs(30),
        "the six tasks of both queues",
        || w.stats.succeeded.load(Ordering::Relaxed) == 6,
    )
    .await;
    w.stop().await;
    for q in [&first, &second] {
        assert_eq!(broker.depth(q).await.unwrap(), 0, "{q}");
        assert_eq!(broker.depth(&dead_letter_queue(q)).await.unwrap(), 0, "{q}");
    }
    broker.close().await;
}

/// The queue operations `acoupi status`, `acoupi stop` and the tests' cleanup rely on, on
/// RabbitMQ: a consumer is counted while it consumes and no longer once cancelled, a purge
/// removes the ready messages and counts them, and a delete removes the queue and its
/// dead-letter queue.
#[tokio::test]
async fn rabbitmq_consumers_are_counted_a_purge_empties_and_a_delete_removes() {
    let queues = Queues::new("qops");
    let q = queues.name();
    let broker = rabbit("acoupi test queue operations").await;
    broker.declare(&q).await.unwrap();
    assert_eq!(broker.consumers(&q).await.unwrap(), 0);
    let deliveries = broker
        .consume(std::slice::from_ref(&q), 1, "acoupi-test-qops")
        .await
        .unwrap();
    assert_eq!(broker.consumers(&q).await.unwrap(), 1);
    broker.cancel().await;
    assert_eq!(broker.consumers(&q).await.unwrap(), 0);
    drop(deliveries);
    for _ in 0..3 {
        let msg = TaskMessage::new("noop", vec![], Map::new());
        broker.publish(&q, &msg.encode()).await.unwrap();
    }
    assert_eq!(broker.depth(&q).await.unwrap(), 3);
    assert_eq!(broker.purge(&q).await.unwrap(), 3);
    assert_eq!(broker.depth(&q).await.unwrap(), 0);
    broker.delete(&q).await.unwrap();
    broker.close().await;
    // A passive declare of a missing queue fails and closes its channel: one connection each.
    for gone in [q.clone(), dead_letter_queue(&q)] {
        let check = rabbit("acoupi test queue operations check").await;
        assert!(check.depth(&gone).await.is_err(), "`{gone}` is still there");
        check.close().await;
    }
}

/// A broker that cannot be reached is retried with doubling delays until the time given
/// runs out, and then reported: with one second, the attempts at 0, 0.1, 0.3 and 0.7 s fail
/// and the next (1.5 s) would be too late, so it is retried at most three times.
#[tokio::test]
async fn an_unreachable_broker_is_retried_with_backoff_then_given_up() {
    let logs = LogCapture::default();
    let _subscriber = tracing::subscriber::set_default(logs.subscriber("warn"));
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("amqp://127.0.0.1:{port}/%2f");
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        Broker::connect_amqp(
            &url,
            "acoupi test unreachable",
            Some(Duration::from_secs(1)),
        ),
    )
    .await
    .expect("never gave up");
    let took = start.elapsed();
    assert!(result.is_err(), "connected to nothing");
    assert!(
        took >= Duration::from_millis(700),
        "gave up after {took:?}, before its retries"
    );
    let retries = logs.text().matches("broker unreachable").count();
    assert!(
        (1..=3).contains(&retries),
        "{retries} retries in {took:?}: no backoff"
    );
}

#[tokio::test]
async fn rabbitmq_hung_task_is_stopped_at_its_hard_limit() {
    let queues = Queues::new("hang");
    let q = queues.name();
    let broker = rabbit("acoupi test hang").await;
    broker.declare(&q).await.unwrap();
    let mut kwargs = Map::new();
    kwargs.insert("sleep_ms".into(), json!(60_000));
    let mut hung = TaskMessage::new("noop", vec![], kwargs);
    hung.hard_time_limit = Some(0.5);
    hung.soft_time_limit = Some(0.2);
    broker.publish(&q, &hung.encode()).await.unwrap();
    broker
        .publish(&q, &TaskMessage::new("noop", vec![], Map::new()).encode())
        .await
        .unwrap();
    let w = spawn_worker(
        Connector::Amqp {
            url: AMQP.into(),
            name: format!("acoupi test {q}"),
        },
        Arc::new(program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
        )),
        worker_def(&q, 1, 1),
        Registry::builtin(),
        worker::Options {
            default_retries: 0,
            ..worker::Options::default()
        },
    );
    wait_for(
        Duration::from_secs(20),
        "the next task after the hung one",
        || {
            w.stats.succeeded.load(Ordering::Relaxed) == 1
                && w.stats.dead_lettered.load(Ordering::Relaxed) == 1
        },
    )
    .await;
    let dead = broker
        .get(&dead_letter_queue(&q))
        .await
        .unwrap()
        .expect("dead letter");
    // Stopped at the message's 0.5 s limit (the 60 s sleep would outlast the wait above).
    let reason = dead.headers["x-acoupi-reason"].as_str().unwrap();
    assert!(reason.contains("time limit of 500ms"), "{reason}");
    w.stop().await;
    broker.close().await;
}

/// Closes this test's RabbitMQ connections (and only those) with rabbitmqctl.
fn close_connections_named(fragment: &str) -> usize {
    let out = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut closed = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if !line.contains(fragment) {
            continue;
        }
        let pid = line.split_whitespace().next().expect("pid column");
        let ok = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "acoupi test"])
            .status()
            .expect("rabbitmqctl");
        closed += usize::from(ok.success());
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_connection_cut_mid_drain_loses_nothing() {
    let queues = Queues::new("cut");
    let q = queues.name();
    let broker = rabbit("acoupi test cut publisher").await;
    broker.declare(&q).await.unwrap();
    let n = 10_000;
    let mut ids = BTreeSet::new();
    for _ in 0..n {
        let msg = TaskMessage::new("count", vec![], Map::new());
        ids.insert(msg.id.clone());
        broker.publish(&q, &msg.encode()).await.unwrap();
    }
    // Past a third of the tasks, runs hold until the connection is cut, so the cut lands
    // mid-drain whatever the machine's speed.
    let done = Arc::new(Mutex::new(BTreeSet::new()));
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let mut registry = Registry::builtin();
    let seen = Arc::clone(&done);
    registry.insert("count", move |ctx: TaskContext, _args, _kwargs| {
        let (done, mut cut) = (Arc::clone(&seen), cut_rx.clone());
        Box::pin(async move {
            if done.lock().unwrap().len() >= n / 3 {
                let _ = cut.wait_for(|c| *c).await;
            }
            done.lock().unwrap().insert(ctx.task_id);
            Ok(Json::Null)
        }) as TaskFuture
    });
    let name = format!("acoupi-cut-worker-{q}");
    let w = spawn_worker(
        Connector::Amqp {
            url: AMQP.into(),
            name: name.clone(),
        },
        Arc::new(program(
            "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
        )),
        worker_def(&q, 4, 16),
        registry,
        worker::Options::default(),
    );
    wait_for(Duration::from_secs(60), "a third of the tasks", || {
        w.stats.succeeded.load(Ordering::Relaxed) >= (n / 3) as u64
    })
    .await;
    let closed = close_connections_named(&name);
    assert_eq!(closed, 1, "expected to cut the worker's one connection");
    cut_tx.send(true).unwrap();
    wait_for(Duration::from_secs(120), "every task after the cut", || {
        ids.iter().all(|id| done.lock().unwrap().contains(id))
    })
    .await;
    assert!(
        w.stats.connections.load(Ordering::Relaxed) >= 2,
        "the worker did not reconnect"
    );
    w.stop().await;
    assert_eq!(broker.depth(&q).await.unwrap(), 0);
    assert_eq!(broker.depth(&dead_letter_queue(&q)).await.unwrap(), 0);
    broker.close().await;
}

#[test]
fn rabbitmq_worker_killed_mid_task_redelivers_and_completes_once() {
    let (_d, dir) = common::tempdir();
    let mut queues = Queues::new("kill");
    let q = queues.name();
    queues.also(format!("{q}r"));
    let manifest = format!(
        "program \"kill\"\nmicrophone \"m\" {{ synthetic \"sine\" }}\nworkers {{\n worker \"w\" queues=\"{q},{q}r\"\n task \"record\" queue=\"{q}r\"\n task \"manage-files\" queue=\"{q}\"\n task \"heartbeat\" queue=\"{q}\"\n}}\n"
    );
    let path = common::write(&dir, "kill.kdl", manifest);
    let home = dir.join("home");
    let out = common::run(&["build", path.as_str(), "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let marks = dir.join("marks.txt");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker = rt.block_on(rabbit("acoupi test kill publisher"));
    rt.block_on(broker.declare(&q)).unwrap();
    let mut kwargs = Map::new();
    kwargs.insert("sleep_ms".into(), json!(1500));
    kwargs.insert("mark".into(), json!(marks.as_str()));
    let msg = TaskMessage::new("noop", vec![], kwargs);
    rt.block_on(broker.publish(&q, &msg.encode())).unwrap();
    let spawn = || {
        KillOnDrop(
            common::acoupi()
                .args(["--home", home.as_str(), "worker", "w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("worker starts"),
        )
    };
    let read = || std::fs::read_to_string(&marks).unwrap_or_default();
    let mut first = spawn();
    let start = Instant::now();
    while !read().contains("start") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.0.kill().expect("SIGKILL");
    let _ = first.0.wait();
    assert!(
        !read().contains("done"),
        "the task finished before the kill"
    );
    let mut second = spawn();
    while !read().contains("done") {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the redelivered task never finished: {}",
            read()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: the second worker drains and exits 0.
    let pid = second.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = second.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let text = read();
    assert_eq!(
        text.matches(&format!("start {}", msg.id)).count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches(&format!("done {}", msg.id)).count(),
        1,
        "{text}"
    );
    rt.block_on(broker.close());
}

#[tokio::test(start_paused = true)]
async fn beat_fires_on_aligned_slots_and_never_twice_across_restarts() {
    let (_d, dir) = common::tempdir();
    let state = dir.join("beat.json");
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nworkers { task \"heartbeat\" every=\"1s\"; }\n",
    ));
    let broker = MemoryBroker::default();
    let base: jiff::Timestamp = "2026-06-01T10:00:00.250Z".parse().unwrap();
    // First run: 1000 heartbeat slots.
    let first = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        base,
        Duration::from_millis(1000 * 1000),
    )
    .await;
    let beats: Vec<&Fired> = first.iter().filter(|f| f.task == "heartbeat").collect();
    assert_eq!(beats.len(), 1000);
    let mut lateness: Vec<i64> = beats
        .iter()
        .map(|f| f.at.duration_since(f.slot).as_millis() as i64)
        .collect();
    lateness.sort_unstable();
    assert!(lateness[989] <= 5, "p99 lateness {} ms", lateness[989]);
    for f in &beats {
        assert_eq!(
            f.slot.as_millisecond() % 1000,
            0,
            "slot {} is not aligned to the second",
            f.slot
        );
    }
    // Restarted right away: the next slot is the next one, not one already fired.
    let last = beats.last().unwrap().slot;
    let restart_at = base
        .checked_add(jiff::SignedDuration::from_millis(1000 * 1000 + 100))
        .unwrap();
    let second = run_beat(
        Arc::clone(&program),
        broker.clone(),
        &state,
        restart_at,
        Duration::from_millis(3000),
    )
    .await;
    let again: Vec<&Fired> = second
        .iter()
        .filter(|f| f.task == "heartbeat" && f.published)
        .collect();
    assert!(again.iter().all(|f| f.slot > last), "a slot fired twice");
    assert_eq!(again.len(), 3);
    // Restarted after a gap: the missed slots are reported, not replayed.
    let last = again.last().unwrap().slot;
    let later = last
        .checked_add(jiff::SignedDuration::from_millis(10_500))
        .unwrap();
    let third = run_beat(
        Arc::clone(&program),
        broker,
        &state,
        later,
        Duration::from_millis(1000),
    )
    .await;
    let report = third
        .iter()
        .find(|f| f.task == "heartbeat" && f.missed > 0)
        .expect("missed slots reported");
    assert_eq!(report.missed, 10);
    assert!(third.iter().filter(|f| f.published).all(|f| f.slot > later));
}

#[tokio::test(start_paused = true)]
async fn beat_skips_a_recording_slot_while_the_previous_is_queued() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n",
    ));
    let broker = MemoryBroker::default();
    let base: jiff::Timestamp = "2026-06-01T10:00:05Z".parse().unwrap();
    let fired = run_beat(
        program,
        broker.clone(),
        &dir.join("beat.json"),
        base,
        Duration::from_secs(31),
    )
    .await;
    let record: Vec<&Fired> = fired.iter().filter(|f| f.task == "record").collect();
    assert_eq!(record.len(), 3, "{record:?}");
    assert!(record[0].published);
    assert!(
        !record[1].published && !record[2].published,
        "published on top of a queued recording"
    );
    assert_eq!(Broker::Memory(broker).depth("recording").await.unwrap(), 1);
}

/// Every message beat publishes, by queue, decoded.
async fn drain(broker: &MemoryBroker, queue: &str) -> Vec<TaskMessage> {
    let broker = Broker::Memory(broker.clone());
    let mut out = Vec::new();
    while let Some(env) = broker.get(queue).await.unwrap() {
        out.push(TaskMessage::decode(&env).expect("a task message"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn beat_publishes_each_slot_with_its_expiry_time_limits_and_follow_ups() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\ndetector \"d\" kind=\"band-energy\" { band low=\"1kHz\" high=\"2kHz\" }\nworkers { task \"heartbeat\" every=\"1s\" time-limit=\"7s\" soft-time-limit=\"5s\"; }\n",
    ));
    let broker = MemoryBroker::default();
    let base: jiff::Timestamp = "2026-06-01T10:00:05.500Z".parse().unwrap();
    run_beat(
        Arc::clone(&program),
        broker.clone(),
        &dir.join("beat.json"),
        base,
        Duration::from_millis(5_000),
    )
    .await;
    let ts = |s: &str| -> jiff::Timestamp { s.parse().unwrap() };
    // Heartbeat: one message a slot, its slot in the kwargs, expiring at the next slot, with
    // the task's time limits in seconds.
    let queue = &program.task("heartbeat").unwrap().queue;
    let beats = drain(&broker, queue).await;
    let beats: Vec<&TaskMessage> = beats.iter().filter(|m| m.task == "heartbeat").collect();
    let slots: Vec<Json> = beats.iter().map(|m| m.kwargs["slot"].clone()).collect();
    assert_eq!(
        slots,
        [
            "2026-06-01T10:00:06Z",
            "2026-06-01T10:00:07Z",
            "2026-06-01T10:00:08Z",
            "2026-06-01T10:00:09Z",
            "2026-06-01T10:00:10Z"
        ]
        .map(Json::from)
    );
    for (m, expires) in beats.iter().zip([
        "2026-06-01T10:00:07Z",
        "2026-06-01T10:00:08Z",
        "2026-06-01T10:00:09Z",
        "2026-06-01T10:00:10Z",
        "2026-06-01T10:00:11Z",
    ]) {
        assert_eq!(m.expires, Some(ts(expires)), "{m:?}");
        assert_eq!(m.hard_time_limit, Some(7.0), "{m:?}");
        assert_eq!(m.soft_time_limit, Some(5.0), "{m:?}");
    }
    // Record, at 10:00:10: expires at its next slot; detect follows on the detection queue,
    // and manage-files follows detect.
    let record = drain(&broker, "recording").await;
    assert_eq!(record.len(), 1, "{record:?}");
    assert_eq!(record[0].kwargs["slot"], json!("2026-06-01T10:00:10Z"));
    assert_eq!(record[0].expires, Some(ts("2026-06-01T10:00:20Z")));
    let detect = &record[0].callbacks;
    assert_eq!(detect.len(), 1, "{detect:?}");
    assert_eq!(detect[0].task, "detect");
    assert_eq!(detect[0].queue.as_deref(), Some("detection"));
    assert_eq!(detect[0].link.len(), 1, "{detect:?}");
    assert_eq!(detect[0].link[0].task, "manage-files");
    assert_eq!(
        detect[0].link[0].queue.as_ref(),
        Some(&program.task("manage-files").unwrap().queue)
    );
}

/// A follow-up cycle (a task following itself) is cut after eight links instead of
/// recursing without end.
#[test]
fn a_follow_up_cycle_is_cut_at_eight_links() {
    let mut program = program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nworkers { task \"heartbeat\" every=\"1s\"; }\n",
    );
    for t in &mut program.tasks {
        if t.name == "heartbeat" {
            t.follow_ups = vec!["heartbeat".into()];
        }
    }
    let task = program.task("heartbeat").expect("heartbeat").clone();
    let msg = beat::message_for(
        &program,
        &task,
        "2026-06-01T10:00:00Z".parse().unwrap(),
        None,
    );
    let mut depth = 0;
    let mut links = &msg.callbacks;
    while let Some(sig) = links.first() {
        assert_eq!(sig.task, "heartbeat");
        assert_eq!(links.len(), 1);
        depth += 1;
        links = &sig.link;
    }
    assert_eq!(depth, 8);
}

/// On the system clock, beat publishes at each aligned slot, never before it: it sleeps to
/// just short of the slot and yields through the last milliseconds.
#[tokio::test]
async fn beat_on_the_system_clock_fires_at_the_slot_not_before() {
    let (_d, dir) = common::tempdir();
    let mut program = program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nworkers { task \"heartbeat\" every=\"1s\"; }\n",
    );
    program.tasks.retain(|t| t.name == "heartbeat");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = beat::Options {
        state: dir.join("beat.json"),
        time: beat::TimeSource::System,
        fired: Some(tx),
    };
    let handle = tokio::spawn(beat::run(
        Connector::Memory(MemoryBroker::default()),
        Arc::new(program),
        options,
        shutdown.clone(),
        || {},
    ));
    let mut fired = Vec::new();
    while fired.len() < 2 {
        let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a slot within 10 s")
            .expect("beat runs");
        fired.push(f);
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    for f in &fired {
        assert!(f.published, "{f:?}");
        assert_eq!(f.slot.as_millisecond() % 1000, 0, "{f:?}");
        assert!(f.at >= f.slot, "fired before its slot: {f:?}");
    }
    assert_eq!(
        fired[1].slot.duration_since(fired[0].slot),
        jiff::SignedDuration::from_secs(1)
    );
}

#[test]
fn run_in_the_foreground_with_in_process_queues_and_stop_on_ctrl_c() {
    let (_d, dir) = common::tempdir();
    let home = dir.join("home");
    let (mut child, rx) = common::spawn_logged(&[
        "--home",
        home.as_str(),
        "run",
        "examples/quickstart.kdl",
        "--broker",
        "memory",
    ]);
    let seen = common::wait_for_lines(&rx, "the workers to consume", |l| {
        l.iter().filter(|l| l.contains("consuming")).count() >= 3
    });
    assert!(
        home.join("config/program.json").exists(),
        "run did not build the home first"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen:#?}");
}

#[test]
fn task_list_and_task_run() {
    let (_d, dir) = common::tempdir();
    let home = dir.join("home");
    let out = common::run(&["build", "examples/detection.kdl", "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let out = common::run(&["--home", home.as_str(), "task", "list"]);
    assert_eq!(common::code(&out), 0);
    let list = common::stdout(&out);
    assert!(
        list.lines().any(|l| l.starts_with("record")
            && l.contains("recording")
            && l.contains("every 10s in sunset-30m-sunrise+30m")
            && l.ends_with("detect")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("detect") && l.contains("after record")),
        "{list}"
    );
    let out = common::run(&["--home", home.as_str(), "task", "run", "heartbeat"]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let beat: Json = serde_json::from_str(&common::stdout(&out)).expect("json result");
    assert_eq!(beat["status"], "OK", "{beat}");
    assert!(
        beat["metrics"].as_array().is_some_and(|m| !m.is_empty()),
        "{beat}"
    );
    let out = common::run(&[
        "--home",
        home.as_str(),
        "task",
        "run",
        "noop",
        "--arg",
        "{\"x\": 1}",
    ]);
    assert_eq!(
        serde_json::from_str::<Json>(&common::stdout(&out)).unwrap(),
        json!({"x": 1})
    );
    let out = common::run(&[
        "--home",
        home.as_str(),
        "task",
        "run",
        "noop",
        "--kwargs",
        "{\"fail\": \"permanent\"}",
    ]);
    assert_eq!(common::code(&out), 1);
    let out = common::run(&["--home", home.as_str(), "task", "run", "nope"]);
    assert_eq!(common::code(&out), 2);
    assert!(common::stderr(&out).contains("no task handler named `nope`"));
}
