//! Wire compatibility with Python Celery 5.7.0 over a real RabbitMQ (the shared broker,
//! unique queues deleted even on failure), where kombu's in-memory transport cannot fill in
//! what our messages might lack: a task published by acoupi is run by a real Celery worker,
//! which then publishes its callback back to us; a task sent by Celery's `send_task` is run
//! by our worker, whose follow-up carries Celery's task as its parent.
//!
//! Needs a Python with `celery==5.7.0`: `ACOUPI_CELERY_PYTHON`, else
//! `target/celery-venv/bin/python` (scripts/test installs it).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use acoupi::runtime::celery::{Json, Signature, TaskMessage};
use acoupi::runtime::tasks::Registry;
use acoupi::runtime::worker;
use common::runtime::{AMQP, MINIMAL, Queues, amqp, program, rabbit, spawn_worker, wait_for};
use serde_json::{Map, json};

fn peer() -> Command {
    let mut cmd = Command::new(common::celery_python());
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/celery/amqp_peer.py"));
    cmd
}

/// The Celery worker process, killed when dropped (everything it did is checked before; its
/// own shutdown takes seconds).
struct CeleryWorker(Child);

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// acoupi publishes to RabbitMQ, a real Celery worker consumes and runs the task, parsing
/// every field as sent, and publishes the callback, which we decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_worker_runs_what_acoupi_publishes_on_rabbitmq() {
    let (_d, dir) = common::tempdir();
    let out = dir.join("seen.jsonl");
    let log = dir.join("celery.log");
    let mut queues = Queues::new("celin");
    let q = queues.name();
    let cbq = queues.also(format!("{q}cb"));
    let broker = rabbit("acoupi test celery publisher").await;
    broker.declare(&q).await.unwrap();
    broker.declare(&cbq).await.unwrap();
    let mut kwargs = Map::new();
    kwargs.insert("k".into(), json!({"nested": [1, 2.5, "three", null]}));
    let mut msg = TaskMessage::new("acoupi.test.echo", vec![json!(7), json!("seven")], kwargs);
    msg.hard_time_limit = Some(30.0);
    msg.soft_time_limit = Some(20.0);
    msg.expires = Some("2999-01-01T00:00:00Z".parse().unwrap());
    msg.callbacks = vec![Signature {
        task: "acoupi.test.store".into(),
        args: vec![json!("from-callback")],
        kwargs: Map::new(),
        queue: Some(cbq.clone()),
        link: vec![],
        immutable: false,
    }];
    broker.publish(&q, &msg.encode()).await.unwrap();
    let url = AMQP.replacen("amqp://", "amqp://guest:guest@", 1);
    let _celery = CeleryWorker(
        peer()
            .args(["worker", &url, &q, &cbq, out.as_str()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the Celery worker starts"),
    );
    let start = Instant::now();
    let seen: Json = loop {
        if let Some(line) = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            break serde_json::from_str(&line).expect("a JSON line");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the Celery worker did not run the task:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen["id"], json!(msg.id));
    assert_eq!(seen["task"], json!("acoupi.test.echo"));
    assert_eq!(seen["args"], json!([7, "seven"]));
    assert_eq!(
        seen["kwargs"],
        json!({"k": {"nested": [1, 2.5, "three", null]}})
    );
    assert_eq!(seen["retries"], json!(0));
    let limits: Vec<f64> = seen["timelimit"]
        .as_array()
        .expect("time limits")
        .iter()
        .filter_map(Json::as_f64)
        .collect();
    assert_eq!(limits, [30.0, 20.0], "{seen}");
    assert_eq!(seen["correlation_id"], json!(msg.id));
    assert_eq!(seen["routing_key"], json!(q));
    assert_eq!(seen["callbacks"][0]["task"], json!("acoupi.test.store"));
    assert!(
        seen["expires"]
            .as_str()
            .unwrap_or("")
            .starts_with("2999-01-01"),
        "{seen}"
    );
    // The callback Celery published after the task, decoded by us.
    let start = Instant::now();
    let follow = loop {
        if let Some(env) = broker.get(&cbq).await.unwrap() {
            break TaskMessage::decode(&env).expect("Celery's callback decodes");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Celery published no callback"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(follow.task, "acoupi.test.store");
    assert_eq!(
        follow.args,
        [json!({"echo": [7, "seven"]}), json!("from-callback")]
    );
    assert_eq!(follow.parent_id.as_deref(), Some(msg.id.as_str()));
    assert_eq!(follow.root_id.as_deref(), Some(msg.id.as_str()));
    assert_eq!(broker.depth(&q).await.unwrap(), 0);
    broker.close().await;
}

/// Celery's `send_task` publishes to RabbitMQ, our worker runs the task and publishes its
/// follow-up with the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acoupi_worker_runs_what_celery_sends_on_rabbitmq() {
    let (_d, dir) = common::tempdir();
    let marks = dir.join("marks.txt");
    let mut queues = Queues::new("celout");
    let q = queues.name();
    let cbq = queues.also(format!("{q}cb"));
    let broker = rabbit("acoupi test celery reader").await;
    broker.declare(&q).await.unwrap();
    broker.declare(&cbq).await.unwrap();
    let url = AMQP.replacen("amqp://", "amqp://guest:guest@", 1);
    let out = peer()
        .args(["send", &url, &q, &cbq, marks.as_str()])
        .output()
        .expect("run the Celery sender");
    assert!(
        out.status.success(),
        "send_task failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Json = serde_json::from_slice(&out.stdout).expect("the sender prints JSON");
    let id = sent["id"].as_str().expect("an id").to_owned();
    let w = spawn_worker(
        amqp(AMQP, &format!("acoupi test {q}")),
        Arc::new(program(MINIMAL)),
        common::runtime::worker_def(&q, 1, 1),
        Registry::builtin(),
        worker::Options::default(),
    );
    wait_for(
        Duration::from_secs(30),
        "our worker to run Celery's task",
        || w.stats.succeeded.load(Ordering::Relaxed) == 1,
    )
    .await;
    w.stop().await;
    let text = std::fs::read_to_string(&marks).unwrap_or_default();
    assert_eq!(
        text,
        format!("start {id}\ndone {id}\n"),
        "Celery sent {sent}"
    );
    let env = broker.get(&cbq).await.unwrap().expect("our follow-up");
    let follow = TaskMessage::decode(&env).unwrap();
    assert_eq!(follow.task, "noop");
    assert_eq!(follow.args, [json!({"x": 1, "y": [1.5, "z"]})]);
    assert_eq!(follow.parent_id.as_deref(), Some(id.as_str()));
    assert_eq!(broker.depth(&q).await.unwrap(), 0);
    assert_eq!(
        broker
            .depth(&acoupi::runtime::transport::dead_letter_queue(&q))
            .await
            .unwrap(),
        0
    );
    broker.close().await;
}
