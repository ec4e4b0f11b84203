//! Cross-checks the Celery message codec (`acoupi::runtime::celery`) against real Celery 5.7.0.
//!
//! In: messages that Celery itself publishes (`send_task`, `as_task_v2`, a chain, pickle,
//! compression, protocol v1), printed by `tests/celery/make_message.py make`; and messages that
//! acoupi encodes, handed to `make_message.py check`, which consumes them the way a Celery
//! worker does and executes them in process.
//! Out: every field Celery sent decodes as expected; Celery's worker accepts our messages, parses
//! the same fields, and the callbacks and retries it publishes decode into exactly what
//! `TaskMessage::follow_up` and `TaskMessage::retry` build.
//!
//! Needs a Python with `celery==5.7.0`: `ACOUPI_CELERY_PYTHON`, else
//! `target/celery-venv/bin/python`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use acoupi::runtime::celery::{DecodeError, Envelope, Json, Signature, TaskMessage};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, json};

fn run_script(args: &[&str]) -> Json {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/celery/make_message.py");
    let out = Command::new(common::celery_python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run the Celery helper script");
    assert!(
        out.status.success(),
        "make_message.py {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "make_message.py printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Celery's own messages, built once per test binary.
fn made() -> &'static Json {
    static MADE: OnceLock<Json> = OnceLock::new();
    MADE.get_or_init(|| {
        let made = run_script(&["make"]);
        assert_eq!(
            made["celery"],
            json!("5.7.0"),
            "the helper must run Celery 5.7.0"
        );
        made
    })
}

fn case(name: &str) -> &'static Json {
    let c = &made()["cases"][name];
    assert!(c.is_object(), "no case `{name}` in the helper's output");
    c
}

/// A raw message as the helper prints it (what sat on the queue) as an [`Envelope`].
fn envelope_of(raw: &Json) -> Envelope {
    let props = &raw["properties"];
    Envelope {
        headers: raw["headers"]
            .as_object()
            .expect("headers")
            .clone()
            .into_iter()
            .collect(),
        body: raw["body"]
            .as_array()
            .expect("body bytes")
            .iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .expect("a byte")
            })
            .collect(),
        content_type: raw["content_type"].as_str().unwrap_or_default().to_owned(),
        content_encoding: raw["content_encoding"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        correlation_id: props["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        priority: props["priority"]
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0),
    }
}

fn decode_case(name: &str) -> TaskMessage {
    TaskMessage::decode(&envelope_of(case(name)))
        .unwrap_or_else(|e| panic!("case `{name}` does not decode: {e}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn obj(v: Json) -> Map<String, Json> {
    v.as_object().expect("object").clone()
}

fn sig(
    task: &str,
    args: Vec<Json>,
    kwargs: Json,
    queue: Option<&str>,
    link: Vec<Signature>,
) -> Signature {
    Signature {
        task: task.into(),
        args,
        kwargs: obj(kwargs),
        queue: queue.map(str::to_owned),
        link,
        immutable: false,
    }
}

/// The callback the helper links in `make` (and that `check` links too).
fn detect_callback() -> Signature {
    let store = sig(
        "acoupi.test.store",
        vec![json!(1)],
        json!({"k": "v"}),
        Some("q2"),
        vec![],
    );
    sig(
        "acoupi.test.detect",
        vec![json!("a")],
        json!({}),
        Some("q1"),
        vec![store],
    )
}

fn on_error() -> Signature {
    Signature {
        immutable: true,
        ..sig("acoupi.test.on_error", vec![], json!({}), None, vec![])
    }
}

#[test]
fn send_task_message_decodes_field_by_field() {
    let raw = case("rich");
    let env = envelope_of(raw);
    assert_eq!(env.content_type, "application/json");
    assert_eq!(env.content_encoding, "utf-8");
    assert_eq!(env.priority, 0);
    assert_eq!(raw["properties"]["delivery_mode"], json!(2));
    let m = TaskMessage::decode(&env).expect("decodes");
    let want = TaskMessage {
        id: "11111111-2222-4333-8444-555555555555".into(),
        task: "acoupi.test.rich".into(),
        args: vec![
            json!(1),
            json!("two"),
            json!(3.5),
            Json::Null,
            json!(true),
            json!({"nested": [1, 2]}),
        ],
        kwargs: obj(json!({"slot": "2026-11-24T10:00:00Z", "n": 7})),
        retries: 2,
        eta: Some(ts("2026-11-24T10:00:00.123456Z")),
        expires: Some(ts("2126-11-25T10:00:00Z")),
        hard_time_limit: Some(60.0),
        soft_time_limit: Some(30.5),
        root_id: Some("root-1".into()),
        parent_id: Some("parent-1".into()),
        callbacks: vec![detect_callback()],
        errbacks: vec![on_error()],
    };
    assert_eq!(m, want);
    assert_eq!(env.correlation_id, m.id);
    // Celery sends `timelimit` hard first.
    assert_eq!(env.headers["timelimit"], json!([60, 30.5]));
}

#[test]
fn minimal_message_decodes() {
    let m = decode_case("minimal");
    assert_eq!(
        (m.id.as_str(), m.task.as_str()),
        ("minimal-id", "acoupi.test.minimal")
    );
    assert!(m.args.is_empty() && m.kwargs.is_empty());
    assert_eq!(m.retries, 0);
    assert_eq!((m.eta, m.expires), (None, None));
    assert_eq!((m.hard_time_limit, m.soft_time_limit), (None, None));
    // Celery fills an empty root_id with the task id.
    assert_eq!(
        (m.root_id.as_deref(), m.parent_id.as_deref()),
        (Some("minimal-id"), None)
    );
    assert!(m.callbacks.is_empty() && m.errbacks.is_empty());
}

#[test]
fn countdown_and_relative_expiry_become_absolute_utc() {
    let raw = case("countdown");
    let now = raw["now"]
        .as_str()
        .expect("now")
        .parse::<Timestamp>()
        .expect("python now");
    let m = TaskMessage::decode(&envelope_of(raw)).expect("decodes");
    let eta = m.eta.expect("eta").duration_since(now);
    let expires = m.expires.expect("expires").duration_since(now);
    assert!(
        eta >= SignedDuration::from_secs(29) && eta <= SignedDuration::from_secs(40),
        "{eta:?}"
    );
    assert!(
        expires >= SignedDuration::from_secs(119) && expires <= SignedDuration::from_secs(130),
        "{expires:?}"
    );
    assert!(
        raw["headers"]["eta"]
            .as_str()
            .expect("eta")
            .ends_with("+00:00")
    );
}

#[test]
fn naive_timestamps_are_utc() {
    let raw = case("naive");
    assert_eq!(
        raw["headers"]["eta"],
        json!("2026-11-24T10:00:00.500000"),
        "celery sends naive etas as they are"
    );
    let m = TaskMessage::decode(&envelope_of(raw)).expect("decodes");
    assert_eq!(m.eta, Some(ts("2026-11-24T10:00:00.5Z")));
    assert_eq!(m.expires, Some(ts("2126-01-01T00:00:00Z")));
}

#[test]
fn as_task_v2_message_decodes() {
    let m = decode_case("as_task_v2");
    assert_eq!(m.id, "as-task-v2-id");
    assert_eq!(m.task, "acoupi.test.v2");
    assert_eq!(m.args, vec![json!(4)]);
    assert_eq!(m.kwargs, obj(json!({"x": [1, 2]})));
    assert_eq!(m.retries, 3);
    assert!(m.eta.is_some());
    assert_eq!(m.expires, Some(ts("2126-11-25T10:00:00Z")));
    assert_eq!((m.hard_time_limit, m.soft_time_limit), (Some(120.0), None));
    assert_eq!(
        (m.root_id.as_deref(), m.parent_id.as_deref()),
        (Some("root-2"), Some("parent-2"))
    );
    assert_eq!(m.callbacks, vec![detect_callback()]);
    assert!(m.errbacks.is_empty());
}

#[test]
fn unsupported_celery_messages_are_refused_clearly() {
    let err = |name: &str| match TaskMessage::decode(&envelope_of(case(name))) {
        Ok(m) => panic!("case `{name}` decoded: {m:?}"),
        Err(e) => e,
    };
    let e = err("pickle");
    assert!(
        matches!(&e, DecodeError::UnsupportedContentType(t) if t == "application/x-python-serialize"),
        "{e}"
    );
    assert!(e.to_string().contains("task_serializer='json'"), "{e}");
    let e = err("compressed");
    assert!(
        matches!(&e, DecodeError::Compressed(c) if c == "application/x-gzip"),
        "{e}"
    );
    let e = err("protocol1");
    assert!(matches!(e, DecodeError::ProtocolV1), "{e}");
    assert!(
        e.to_string().contains("protocol v1 is not supported"),
        "{e}"
    );
    let e = err("chain");
    assert!(matches!(e, DecodeError::Unsupported("chain")), "{e}");
    let e = err("group_link");
    assert!(
        matches!(&e, DecodeError::BadSignature { path, .. } if path == "callbacks[0]"),
        "{e}"
    );
    assert!(e.to_string().contains("`subtask_type` `chain`"), "{e}");
}

#[test]
fn our_envelope_has_celerys_properties_and_header_names() {
    let celery = envelope_of(case("rich"));
    let ours = TaskMessage::decode(&celery).expect("decodes").encode();
    assert_eq!(ours.content_type, celery.content_type);
    assert_eq!(ours.content_encoding, celery.content_encoding);
    assert_eq!(ours.priority, celery.priority);
    assert_eq!(ours.correlation_id, celery.correlation_id);
    let names = |e: &Envelope| e.headers.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&celery));
    for (k, v) in &ours.headers {
        let theirs = &celery.headers[k];
        match k.as_str() {
            // send_task sends null (unset) where as_task_v2's default is false.
            // Same items; Celery keeps the caller's dict order, serde_json's map sorts keys.
            "kwargsrepr" => assert_eq!(v, "{'n': 7, 'slot': '2026-11-24T10:00:00Z'}"),
            "ignore_result" => assert_eq!((v, theirs), (&json!(false), &Json::Null)),
            "origin" => {
                let host = |o: &Json| {
                    o.as_str()
                        .and_then(|o| o.split_once('@'))
                        .map(|(_, h)| h.to_owned())
                };
                assert!(v.as_str().is_some_and(|o| o.starts_with("gen")), "{v}");
                assert_eq!(host(v), host(theirs));
            }
            _ => assert_eq!(v, theirs, "header `{k}`"),
        }
    }
    // Same body, byte for byte, once both are parsed.
    let parse = |b: &[u8]| serde_json::from_slice::<Json>(b).expect("json body");
    assert_eq!(parse(&ours.body), parse(&celery.body));
}

/// Runs `check` on messages acoupi encodes and returns the verdicts by case name.
fn check(messages: &[(&str, &TaskMessage)]) -> BTreeMap<String, Json> {
    let cases: Vec<Json> = messages
        .iter()
        .map(|(name, m)| {
            let env = m.encode();
            json!({"name": name, "envelope": {
                "headers": env.headers,
                "body": env.body,
                "content_type": env.content_type,
                "content_encoding": env.content_encoding,
                "correlation_id": env.correlation_id,
                "priority": env.priority,
            }})
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("messages.json");
    std::fs::write(&path, json!({"cases": cases}).to_string()).expect("write messages");
    let out = run_script(&["check", path.to_str().expect("utf-8 temp path")]);
    let verdicts: BTreeMap<String, Json> = out["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|v| (v["name"].as_str().expect("name").to_owned(), v.clone()))
        .collect();
    for (name, v) in &verdicts {
        assert_eq!(
            v["problems"],
            json!([]),
            "celery found problems with `{name}`:\n{:#}",
            v["problems"]
        );
    }
    assert_eq!(verdicts.len(), messages.len());
    verdicts
}

fn rich_for_python(task: &str) -> TaskMessage {
    let mut m = TaskMessage::new(
        task,
        vec![
            json!(1),
            json!(2.5),
            json!("it's"),
            Json::Null,
            json!({"k": [1]}),
        ],
        obj(json!({"slot": "2026-11-24T10:00:00Z", "ünï": "côdé", "n": 7})),
    );
    m.retries = 1;
    m.eta = Some(ts("2026-01-02T03:04:05.678901Z"));
    m.expires = Some(ts("2126-01-01T00:00:00Z"));
    m.hard_time_limit = Some(60.0);
    m.soft_time_limit = Some(30.5);
    m.root_id = Some("root-9".into());
    m.parent_id = Some("parent-9".into());
    let notify = Signature {
        immutable: true,
        ..sig(
            "acoupi.test.notify",
            vec![json!("done")],
            json!({}),
            None,
            vec![],
        )
    };
    m.callbacks = vec![detect_callback(), notify];
    m.errbacks = vec![on_error()];
    m
}

#[test]
fn celery_worker_runs_our_messages() {
    let add = rich_for_python("acoupi.test.add");
    let flaky = rich_for_python("acoupi.test.flaky");
    let plain = TaskMessage::new("acoupi.test.add", vec![], Map::new());
    let verdicts = check(&[("add", &add), ("flaky", &flaky), ("plain", &plain)]);

    // What Celery's Request parsed.
    let parsed = &verdicts["add"]["parsed"];
    assert_eq!(parsed["id"], json!(add.id));
    assert_eq!(parsed["task"], json!(add.task));
    assert_eq!(parsed["args"], json!(add.args));
    assert_eq!(parsed["kwargs"], json!(add.kwargs));
    assert_eq!(parsed["eta"], json!("2026-01-02T03:04:05.678901+00:00"));
    assert_eq!(parsed["expires"], json!("2126-01-01T00:00:00+00:00"));
    assert_eq!(parsed["time_limits"], json!([60, 30.5]));
    assert_eq!(parsed["root_id"], json!("root-9"));
    assert_eq!(parsed["parent_id"], json!("parent-9"));
    assert_eq!(parsed["retries"], json!(1));
    assert_eq!(parsed["correlation_id"], json!(add.id));
    let dicts = |s: &[Signature]| Json::Array(s.iter().map(Signature::to_json).collect());
    assert_eq!(parsed["callbacks"], dicts(&add.callbacks));
    assert_eq!(parsed["errbacks"], dicts(&add.errbacks));

    // The callbacks Celery published after running it are what follow_up builds.
    let retval = &verdicts["add"]["retval"];
    assert_eq!(
        retval,
        &json!({"sum": 3.5, "kwargs": ["n", "slot", "ünï"], "retries": 1})
    );
    let published = verdicts["add"]["published"].as_array().expect("published");
    assert_eq!(published.len(), add.callbacks.len(), "{published:#?}");
    for raw in published {
        let got =
            TaskMessage::decode(&envelope_of(raw)).expect("celery's callback message decodes");
        let cb = add
            .callbacks
            .iter()
            .find(|c| c.task == got.task)
            .expect("a callback we linked");
        let want = TaskMessage {
            id: got.id.clone(),
            ..add.follow_up(cb, retval)
        };
        assert_eq!(got, want);
        let queue = cb.queue.as_deref().unwrap_or("celery");
        assert_eq!(
            raw["queue"],
            json!(queue),
            "callback `{}` routed by its `queue` option",
            cb.task
        );
    }

    // The retry Celery published is what retry builds (Celery computed its own eta).
    let published = verdicts["flaky"]["published"]
        .as_array()
        .expect("published");
    assert_eq!(published.len(), 1, "{published:#?}");
    let got =
        TaskMessage::decode(&envelope_of(&published[0])).expect("celery's retry message decodes");
    let at = got.eta.expect("a retry has an eta");
    assert_eq!(got, flaky.retry(at));
    let wait = at.duration_since(Timestamp::now());
    assert!(
        wait > SignedDuration::from_secs(60) && wait <= SignedDuration::from_secs(90),
        "{wait:?}"
    );

    let plain_verdict = &verdicts["plain"];
    assert_eq!(plain_verdict["parsed"]["time_limits"], json!([null, null]));
    assert_eq!(plain_verdict["parsed"]["eta"], Json::Null);
    assert_eq!(plain_verdict["published"], json!([]));
}
