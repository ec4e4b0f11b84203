//! The runtime against a RabbitMQ that goes away: each test boots a private RabbitMQ node
//! (its own name, ports and data; the shared broker is never touched) and stops it at the
//! end, also on failure.
//!
//! Held here: queues are durable and messages persistent (delivery mode 2), so tasks queued
//! before a broker restart are still there after it and then run; the AMQP header conversion
//! survives the trip through RabbitMQ; after an outage longer than the reconnect backoff's
//! cap, a worker consumes again by itself; beat publishes a slot whose publish failed once
//! it has reconnected, and skips the slots a longer outage spanned.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use acoupi::runtime::beat::{self, Fired};
use acoupi::runtime::celery::{Signature, TaskMessage};
use acoupi::runtime::tasks::Registry;
use acoupi::runtime::transport::dead_letter_queue;
use acoupi::runtime::worker;
use common::private_rabbit::PrivateRabbit;
use common::runtime::{MINIMAL, amqp, program, rabbit_at, spawn_worker, wait_for, worker_def};
use jiff::{SignedDuration, Timestamp};
use lapin::types::AMQPValue;
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A message using every header and body shape we send: eta, expiry, retries, both time
/// limits, root and parent ids, a callback with a link, nested and odd JSON values.
fn elaborate(mark: &str) -> TaskMessage {
    let mut kwargs = Map::new();
    kwargs.insert("mark".into(), json!(mark));
    kwargs.insert(
        "nested".into(),
        json!({"list": [1, -2, 3.5, "four", null, true], "unicode": "é ✓", "big": 9_007_199_254_740_993_i64}),
    );
    let mut msg = TaskMessage::new(
        "noop",
        vec![json!(1), json!("two"), json!({"three": 3.25}), Json::Null],
        kwargs,
    );
    msg.retries = 2;
    msg.eta = Some("2020-01-02T03:04:05Z".parse().unwrap());
    msg.expires = Some("2999-01-02T03:04:05Z".parse().unwrap());
    msg.hard_time_limit = Some(30.5);
    msg.soft_time_limit = Some(20.25);
    msg.root_id = Some("root-1".into());
    msg.parent_id = Some("parent-1".into());
    msg.callbacks = vec![Signature {
        task: "noop".into(),
        args: vec![json!("x")],
        kwargs: Map::new(),
        queue: Some(ELSEWHERE.into()),
        link: vec![Signature {
            task: "heartbeat".into(),
            args: vec![],
            kwargs: Map::new(),
            queue: None,
            link: vec![],
            immutable: true,
        }],
        immutable: false,
    }];
    msg
}

/// Where the elaborate message's callback goes.
const ELSEWHERE: &str = "elsewhere";

fn lines(path: &camino::Utf8Path, prefix: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// Tasks queued before `stop_app`/`start_app` are still queued after it, as persistent
/// messages in a durable queue, decode to what was sent, and run.
#[test]
fn queued_tasks_survive_a_broker_restart_and_then_run() {
    let mut node = PrivateRabbit::start("durable");
    let url = node.url();
    let rt = runtime();
    let (_d, dir) = common::tempdir();
    let marks = dir.join("marks.txt");
    let q = "survivors";
    let probe_raw = elaborate(marks.as_str());
    let probe_decoded = elaborate(marks.as_str());
    let tasks: Vec<TaskMessage> = (0..3)
        .map(|i| {
            if i == 0 {
                elaborate(marks.as_str())
            } else {
                let mut kwargs = Map::new();
                kwargs.insert("mark".into(), json!(marks.as_str()));
                TaskMessage::new("noop", vec![json!(i)], kwargs)
            }
        })
        .collect();
    rt.block_on(async {
        let broker = rabbit_at(&url, "acoupi test durable publisher").await;
        broker.declare(q).await.unwrap();
        broker.declare(ELSEWHERE).await.unwrap();
        for msg in [&probe_raw, &probe_decoded].into_iter().chain(&tasks) {
            broker.publish(q, &msg.encode()).await.unwrap();
        }
        broker.close().await;
    });
    let expect = |node: &PrivateRabbit, when: &str| {
        let rows = node.queues(q, &["durable", "messages", "messages_persistent"]);
        let by_name = |name: &str| {
            rows.iter()
                .find(|r| r[0] == name)
                .unwrap_or_else(|| panic!("queue `{name}` is gone {when}: {rows:?}"))
                .clone()
        };
        assert_eq!(by_name(q)[1..], ["true", "5", "5"], "{when}");
        assert_eq!(
            by_name(&dead_letter_queue(q))[1..],
            ["true", "0", "0"],
            "{when}"
        );
    };
    expect(&node, "before the restart");
    node.stop_app();
    node.start_app();
    expect(&node, "after the restart");

    rt.block_on(async {
        // What RabbitMQ holds, read with a plain AMQP client: persistent, JSON, and headers
        // of the AMQP types Celery's own publisher uses.
        let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let got = ch
            .basic_get(q.into(), lapin::options::BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("the first probe");
        let props = &got.delivery.properties;
        assert_eq!(*props.delivery_mode(), Some(2), "not persistent");
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            props.correlation_id().as_ref().map(|s| s.as_str()),
            Some(probe_raw.id.as_str())
        );
        let headers = props.headers().as_ref().expect("headers").inner();
        let header = |k: &str| {
            headers
                .get(k)
                .unwrap_or_else(|| panic!("no `{k}` header: {headers:?}"))
        };
        assert!(matches!(header("task"), AMQPValue::LongString(s) if s.to_string() == "noop"));
        assert!(matches!(header("id"), AMQPValue::LongString(s) if s.to_string() == probe_raw.id));
        assert!(matches!(header("retries"), AMQPValue::LongLongInt(2)));
        assert!(
            matches!(header("timelimit"), AMQPValue::FieldArray(a)
                if a.as_slice() == [AMQPValue::Double(30.5), AMQPValue::Double(20.25)]),
            "{:?}",
            header("timelimit")
        );
        assert!(matches!(header("eta"), AMQPValue::LongString(_)));
        conn.close(200, "bye".into()).await.unwrap();

        // Through our own path: the second probe decodes to exactly what was sent.
        let broker = rabbit_at(&url, "acoupi test durable reader").await;
        let env = broker.get(q).await.unwrap().expect("the second probe");
        assert_eq!(TaskMessage::decode(&env).unwrap(), probe_decoded);

        // The queued tasks run.
        let w = spawn_worker(
            amqp(&url, "acoupi test durable worker"),
            Arc::new(program(MINIMAL)),
            worker_def(q, 1, 4),
            Registry::builtin(),
            worker::Options::default(),
        );
        wait_for(Duration::from_secs(30), "the queued tasks to run", || {
            w.stats.succeeded.load(Ordering::Relaxed) == 3
        })
        .await;
        w.stop().await;
        for t in &tasks {
            let text = std::fs::read_to_string(&marks).unwrap_or_default();
            assert!(text.contains(&format!("done {}", t.id)), "{text}");
        }
        assert_eq!(lines(&marks, "done"), 3);
        // The elaborate task's callback, published with its result.
        let env = broker.get(ELSEWHERE).await.unwrap().expect("the follow-up");
        let follow = TaskMessage::decode(&env).unwrap();
        assert_eq!(follow.parent_id.as_deref(), Some(tasks[0].id.as_str()));
        assert_eq!(follow.args[0], json!(1));
        assert_eq!(broker.depth(q).await.unwrap(), 0);
        assert_eq!(broker.depth(&dead_letter_queue(q)).await.unwrap(), 0);
        broker.close().await;
    });
}

/// The broker is down for longer than the reconnect backoff's cap (30 s); when it is back,
/// the worker reconnects and consumes again without being restarted.
#[test]
fn a_worker_consumes_again_by_itself_after_a_long_outage() {
    const OUTAGE: Duration = Duration::from_secs(35);
    let mut node = PrivateRabbit::start("outage");
    let url = node.url();
    let rt = runtime();
    let q = "outage";
    let w = rt.block_on(async {
        let w = spawn_worker(
            amqp(&url, "acoupi test outage worker"),
            Arc::new(program(MINIMAL)),
            worker_def(q, 1, 1),
            Registry::builtin(),
            worker::Options::default(),
        );
        let broker = rabbit_at(&url, "acoupi test outage publisher").await;
        broker.declare(q).await.unwrap();
        broker
            .publish(q, &TaskMessage::new("noop", vec![], Map::new()).encode())
            .await
            .unwrap();
        wait_for(Duration::from_secs(20), "the first task", || {
            w.stats.succeeded.load(Ordering::Relaxed) == 1
        })
        .await;
        broker.close().await;
        w
    });
    node.stop_app();
    // The outage itself, not a synchronisation: the worker retries with growing delays.
    std::thread::sleep(OUTAGE);
    assert!(
        !w.handle.is_finished(),
        "the worker gave up during the outage"
    );
    assert_eq!(w.stats.connections.load(Ordering::Relaxed), 1);
    node.start_app();
    let back = Timestamp::now();
    rt.block_on(async {
        let broker = rabbit_at(&url, "acoupi test outage publisher 2").await;
        broker.declare(q).await.unwrap();
        broker
            .publish(q, &TaskMessage::new("noop", vec![], Map::new()).encode())
            .await
            .unwrap();
        // The backoff is capped at 30 s: the worker is back well within a minute.
        wait_for(
            Duration::from_secs(60),
            "the worker to consume again",
            || w.stats.succeeded.load(Ordering::Relaxed) == 2,
        )
        .await;
        assert_eq!(w.stats.connections.load(Ordering::Relaxed), 2);
        eprintln!(
            "consumed again {} after the broker came back",
            Timestamp::now().duration_since(back)
        );
        w.stop().await;
        broker.close().await;
    });
}

/// Waits for beat's next publish (or report of a lost slot).
fn next_fired(
    rt: &tokio::runtime::Runtime,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Fired>,
    within: Duration,
) -> Fired {
    rt.block_on(async {
        tokio::time::timeout(within, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("beat fired nothing within {within:?}"))
            .expect("beat runs")
    })
}

/// Sleeps until wall time `t`: where a fault is placed in time, not a synchronisation.
fn sleep_until(t: Timestamp) {
    if let Ok(wait) = Duration::try_from(t.duration_since(Timestamp::now())) {
        std::thread::sleep(wait);
    }
}

/// Beat across broker outages. A slot whose publish fails is published once beat has
/// reconnected, when that is before the next slot. An outage past the next slot loses the
/// slots it spans: beat reports how many and goes on at the first slot still to come,
/// instead of publishing every stale slot in a burst.
#[test]
fn beat_retries_a_slot_after_a_short_outage_and_skips_the_slots_of_a_long_one() {
    const EVERY: SignedDuration = SignedDuration::from_secs(10);
    let mut node = PrivateRabbit::start("beat");
    let url = node.url();
    let rt = runtime();
    let (_d, dir) = common::tempdir();
    let mut program = program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nworkers { task \"heartbeat\" every=\"10s\"; }\n",
    );
    program.tasks.retain(|t| t.name == "heartbeat");
    let queue = program.tasks[0].queue.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let handle = rt.spawn(beat::run(
        amqp(&url, "acoupi test beat"),
        Arc::new(program),
        beat::Options {
            state: dir.join("beat.json"),
            time: beat::TimeSource::System,
            fired: Some(tx),
        },
        shutdown.clone(),
        || {},
    ));
    let first = next_fired(&rt, &mut rx, Duration::from_secs(30));
    assert!(first.published, "{first:?}");

    // A short outage: the broker goes away now and comes back just after the next slot,
    // whose publish fails. Beat's reconnect backoff (0.1 s doubling) reaches it about 3 or
    // 6 s after the slot, well before the one after: the slot is published then.
    node.stop_app();
    let second_slot = first.slot + EVERY;
    sleep_until(second_slot + SignedDuration::from_millis(500));
    node.start_app();
    let second = next_fired(&rt, &mut rx, Duration::from_secs(20));
    assert_eq!(second.slot, second_slot, "{second:?}");
    assert!(
        second.published,
        "the slot is retried after the reconnect: {second:?}"
    );
    assert!(
        second.at > second_slot + SignedDuration::from_millis(500),
        "published after the outage, not at its time: {second:?}"
    );
    let third = next_fired(&rt, &mut rx, Duration::from_secs(20));
    assert_eq!(third.slot, second_slot + EVERY, "{third:?}");
    assert!(third.published, "{third:?}");

    // A long outage: from just after a published slot to 11 s past the next one. The
    // reconnect comes at least two slots late.
    node.stop_app();
    let fourth_slot = third.slot + EVERY;
    sleep_until(fourth_slot + SignedDuration::from_secs(11));
    node.start_app();
    let lost = next_fired(&rt, &mut rx, Duration::from_secs(40));
    assert_eq!(lost.slot, fourth_slot, "{lost:?}");
    assert!(
        !lost.published,
        "a slot past its time is not published: {lost:?}"
    );
    // Every slot up to the reconnect is lost: the one in flight and those during the outage.
    let spanned = lost.at.duration_since(fourth_slot).as_secs() / EVERY.as_secs();
    assert!(
        spanned >= 1,
        "the reconnect came after the next slot: {lost:?}"
    );
    assert_eq!(lost.missed, 1 + spanned as u64, "{lost:?}");
    let resumed = next_fired(&rt, &mut rx, Duration::from_secs(20));
    assert_eq!(
        resumed.slot,
        fourth_slot + EVERY * (1 + spanned as i32),
        "beat goes on at the first slot still to come: {resumed:?}"
    );
    assert!(resumed.published, "{resumed:?}");
    assert!(
        resumed.at < resumed.slot + SignedDuration::from_secs(1),
        "published on time: {resumed:?}"
    );
    shutdown.cancel();
    rt.block_on(handle).unwrap().unwrap();
    // What reached the queue: the four slots published, each once.
    rt.block_on(async {
        let broker = rabbit_at(&url, "acoupi test beat reader").await;
        assert_eq!(broker.depth(&queue).await.unwrap(), 4);
        broker.close().await;
    });
    if let Ok(f) = rx.try_recv() {
        panic!("beat fired more than it should: {f:?}");
    }
}
