//! The `send-messages` task through the built-in registry, on a real outbox file, against a real
//! local HTTP server and the real Mosquitto: a refused message backs off while the others are
//! delivered, and expires after `max-attempts`; an unreachable destination costs one failed
//! response and no attempts, and its messages go out in order once it answers; with two
//! destinations a message is sent only when both have it, and the one that already has it is
//! not sent it again, and a message every remaining destination has is marked sent when one
//! is removed; messages past `max-age` expire without being sent.

mod common;

use std::sync::Arc;

use acoupi::messaging::MessageKind;
use acoupi::runtime::tasks::{Clock, Registry, Services, TaskContext};
use acoupi::spec::Program;
use acoupi::store::{NewMessage, Outbox};
use camino::Utf8Path;
use common::http_server::{HttpServer, Reply};
use common::mosquitto::{Subscriber, require_shared, unique_topic};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value as Json, json};
use uuid::Uuid;

fn program(dir: &Utf8Path, messaging: &str) -> Arc<Program> {
    let manifest = format!(
        "program \"send\"\nmicrophone \"m\" {{ synthetic \"sine\" }}\nmessaging {{\n{messaging}\n}}\n"
    );
    let mut program = common::runtime::program(&manifest);
    program.home = dir.join("home");
    program.paths.metadata = dir.join("metadata.db");
    program.paths.messages = dir.join("messages.db");
    program.paths.state = dir.join("home/state");
    Arc::new(program)
}

const T0: &str = "2026-06-01T22:00:00Z";

fn at(offset_s: i64) -> Timestamp {
    T0.parse::<Timestamp>().expect("time") + SignedDuration::from_secs(offset_s)
}

/// `n` detection messages made a second apart from `T0`; their payloads say their number.
fn queue(program: &Program, n: u32) -> Vec<NewMessage> {
    let messages: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage {
            id: Uuid::now_v7(),
            kind: MessageKind::Detection,
            content: json!({ "n": i }).to_string(),
            created_on: at(i64::from(i)),
            recording: None,
        })
        .collect();
    Outbox::open(&program.paths.messages)
        .expect("outbox")
        .push(&messages)
        .expect("push");
    messages
}

async fn send(program: &Arc<Program>, now: Timestamp) -> Json {
    let handler = Registry::builtin()
        .get("send-messages")
        .expect("a send-messages handler");
    let ctx = TaskContext {
        services: Services::with_clock(Arc::clone(program), Clock::Fixed(now)),
        task_id: Uuid::new_v4().to_string(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, Vec::new(), serde_json::Map::new())
        .await
        .expect("send-messages never fails on a network error")
}

/// The `n` of each request's JSON body, in arrival order.
fn numbers(server: &HttpServer) -> Vec<u64> {
    server
        .requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Json>(&r.body).expect("a JSON body")["n"]
                .as_u64()
                .expect("n")
        })
        .collect()
}

/// (status, content) of every acoupi response row, in insertion order.
fn responses(program: &Program) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(program.paths.messages.as_std_path()).expect("outbox");
    let mut stmt = conn
        .prepare("SELECT status, content FROM response ORDER BY id")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn backlog(program: &Program) -> (u64, u64) {
    let b = Outbox::open_read_only(&program.paths.messages)
        .and_then(|o| o.backlog())
        .expect("backlog");
    (b.unsent, b.expired)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_backs_off_while_the_rest_are_delivered() {
    let (_d, dir) = common::tempdir();
    // The second request of each run is refused; everything else is accepted.
    let server = HttpServer::start(vec![
        Reply::ok("{}"),
        Reply::status(500, "Internal Server Error", "model store down"),
        Reply::ok("{}"),
    ]);
    let program = program(
        &dir,
        &format!(
            "http url=\"{}\"\nsend max-attempts=2",
            server.url("/messages")
        ),
    );
    queue(&program, 3);
    let report = send(&program, at(60)).await;
    assert_eq!(report["selected"], 3, "{report}");
    assert_eq!(report["sent"], 2, "{report}");
    assert_eq!(report["refused"], 1, "{report}");
    let dest = &report["destinations"][server.url("/messages")];
    assert_eq!(
        (&dest["delivered"], &dest["refused"]),
        (&json!(2), &json!(1)),
        "{report}"
    );
    assert_eq!(numbers(&server), [0, 1, 2]);
    assert_eq!(backlog(&program), (1, 0));
    let stored = responses(&program);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].0, 2, "acoupi's ERROR status");
    assert!(stored[1].1.contains("HTTP 500") && stored[1].1.contains("model store down"));

    // Within the first backoff (30 s) the refused message waits.
    let report = send(&program, at(75)).await;
    assert_eq!(report["selected"], 0, "{report}");
    // After it, it is sent again, and accepted this time.
    let report = send(&program, at(91)).await;
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(numbers(&server), [0, 1, 2, 1]);
    assert_eq!(backlog(&program), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_max_attempts_times_expires_and_is_reported() {
    let (_d, dir) = common::tempdir();
    let server = HttpServer::start(vec![
        Reply::status(422, "Unprocessable Entity", "bad payload"),
        Reply::status(422, "Unprocessable Entity", "bad payload"),
    ]);
    let program = program(
        &dir,
        &format!(
            "http url=\"{}\"\nsend max-attempts=2",
            server.url("/messages")
        ),
    );
    queue(&program, 1);
    let first = send(&program, at(60)).await;
    assert_eq!(
        (first["refused"].as_u64(), first["expired"].as_u64()),
        (Some(1), Some(0))
    );
    let second = send(&program, at(120)).await;
    assert_eq!(
        (second["refused"].as_u64(), second["expired"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(backlog(&program), (0, 1));
    let third = send(&program, at(3600)).await;
    assert_eq!(
        third["selected"], 0,
        "an expired message is not sent: {third}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_destination_costs_one_response_and_its_messages_wait_in_order() {
    let (_d, dir) = common::tempdir();
    let port = common::mosquitto::free_port();
    let program = program(
        &dir,
        &format!("http url=\"http://127.0.0.1:{port}/messages\"\nsend max-attempts=1"),
    );
    queue(&program, 5);
    for run in 0..3 {
        let report = send(&program, at(60 + run)).await;
        assert_eq!(report["selected"], 5, "{report}");
        assert_eq!(report["sent"], 0, "{report}");
        assert_eq!(
            report["expired"], 0,
            "an outage costs no attempts: {report}"
        );
        let dest = report["destinations"]
            .as_object()
            .and_then(|d| d.values().next())
            .expect("one destination");
        assert!(dest["unreachable"].is_string(), "{report}");
    }
    let stored = responses(&program);
    assert_eq!(stored.len(), 3, "one failed response per run: {stored:?}");
    assert!(stored.iter().all(|(status, _)| *status == 1));
    assert_eq!(backlog(&program), (5, 0));

    // The destination answers again, on the same port: everything goes, oldest first.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port again");
    let server = HttpServer::start_on(listener, Vec::new());
    let report = send(&program, at(100)).await;
    assert_eq!(report["sent"], 5, "{report}");
    assert_eq!(numbers(&server), [0, 1, 2, 3, 4]);
    assert_eq!(backlog(&program), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_destinations_a_message_is_sent_when_both_have_it_and_once_each() {
    require_shared();
    let (_d, dir) = common::tempdir();
    let topic = unique_topic("send-task");
    let mut sub = Subscriber::start(1883, &topic, None).await;
    let server = HttpServer::start(vec![Reply::status(503, "Service Unavailable", "")]);
    let program = program(
        &dir,
        &format!(
            "mqtt host=\"127.0.0.1\" port=1883 topic=\"{topic}\"\nhttp url=\"{}\"",
            server.url("/m")
        ),
    );
    queue(&program, 2);
    let report = send(&program, at(60)).await;
    assert_eq!(report["sent"], 1, "HTTP refused message 0: {report}");
    assert_eq!(backlog(&program), (1, 0));
    let got = sub.take(2, std::time::Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "MQTT has both");
    // After the backoff, only HTTP is sent message 0; MQTT already has it.
    let report = send(&program, at(120)).await;
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(numbers(&server), [0, 1, 0]);
    assert!(
        sub.take(1, std::time::Duration::from_millis(500))
            .await
            .is_empty(),
        "MQTT was sent a message it had"
    );
    assert_eq!(backlog(&program), (0, 0));
}

/// A message every destination still in the program has is marked sent, without being sent
/// again: here the MQTT broker that could not be reached was removed from the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_remaining_destinations_have_is_marked_sent_when_one_is_removed() {
    let (_d, dir) = common::tempdir();
    let server = HttpServer::start(Vec::new());
    let url = server.url("/m");
    let port = common::mosquitto::free_port();
    let both = program(
        &dir,
        &format!("http url=\"{url}\"\nmqtt host=\"127.0.0.1\" port={port}"),
    );
    queue(&both, 1);
    let report = send(&both, at(60)).await;
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(report["destinations"][&url]["delivered"], 1, "{report}");
    assert_eq!(backlog(&both), (1, 0));
    let one = program(&dir, &format!("http url=\"{url}\""));
    let report = send(&one, at(120)).await;
    assert_eq!(report["selected"], 1, "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(
        numbers(&server),
        [0],
        "sent again to a destination that had it"
    );
    assert_eq!(backlog(&one), (0, 0));
    let report = send(&one, at(180)).await;
    assert_eq!(report["selected"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_max_age_expire_unsent() {
    let (_d, dir) = common::tempdir();
    let server = HttpServer::start(Vec::new());
    let program = program(
        &dir,
        &format!("http url=\"{}\"\nsend max-age=\"1h\"", server.url("/m")),
    );
    queue(&program, 3);
    let report = send(&program, at(3600 + 2)).await;
    assert_eq!(
        report["expired"], 2,
        "made at T0 and T0+1s, now older than an hour: {report}"
    );
    assert_eq!(numbers(&server), [2]);
    assert_eq!(backlog(&program), (0, 2));
}
