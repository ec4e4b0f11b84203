//! Cross-checks the outbox (`acoupi::store::Outbox`) against acoupi 0.8.0's own Python
//! `SqliteMessageStore`, run by `tests/acoupi/messages.py`.
//!
//! In: an outbox our runtime wrote (messages of several kinds, one delivered); a message store
//! acoupi wrote (one answered with success, one with an error). Out: acoupi's unsent messages
//! in our file are exactly ours not yet delivered, byte for byte, with their types and times;
//! we adopt acoupi's file with its unsent messages in acoupi's order; and each still opens the
//! file after the other has.
//!
//! Needs a Python with `acoupi==0.8.0` and pydantic: `ACOUPI_PYTHON_ACOUPI`, else
//! `target/acoupi-venv/bin/python` (which `scripts/test` creates).

mod common;

use acoupi::messaging::{MessageKind, Outcome};
use acoupi::spec::MessageOrder;
use acoupi::store::{NewMessage, Outbox};
use camino::Utf8PathBuf;
use jiff::Timestamp;
use serde_json::{Value as Json, json};
use uuid::Uuid;

/// Runs `messages.py` with `args` and parses the JSON it prints.
fn acoupi(args: &[&str]) -> Json {
    common::acoupi_script("messages.py", args)
}

fn temp_outbox() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("messages.db")).expect("a UTF-8 path");
    (dir, path)
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a valid timestamp literal")
}

#[test]
fn acoupi_reads_the_messages_we_have_not_delivered() {
    let (_d, path) = temp_outbox();
    let mut outbox = Outbox::open(&path).expect("open");
    let made = [
        (MessageKind::Heartbeat, "2026-06-01T22:00:00Z"),
        (MessageKind::Detection, "2026-06-01T22:00:01.5Z"),
        (MessageKind::Summary, "2026-06-01T22:00:02.123456Z"),
        (MessageKind::Recording, "2026-06-01T22:00:03Z"),
    ];
    let messages: Vec<NewMessage> = made
        .iter()
        .enumerate()
        .map(|(i, (kind, at))| NewMessage {
            id: Uuid::now_v7(),
            kind: *kind,
            content: json!({"n": i, "note": "façade ✓"}).to_string(),
            created_on: ts(at),
            recording: None,
        })
        .collect();
    outbox.push(&messages).expect("push");
    outbox
        .record(
            "mqtt://broker:1883/acoupi",
            &[(messages[0].id, Outcome::Delivered("acknowledged".into()))],
            &["mqtt://broker:1883/acoupi"],
            ts("2026-06-01T22:01:00Z"),
            20,
        )
        .expect("record");
    drop(outbox);

    let unsent = acoupi(&["unsent", path.as_str()]);
    let want: Vec<Json> = messages[1..]
        .iter()
        .map(|m| {
            json!({
                "id": m.id.to_string(),
                "content": m.content,
                "created_on": acoupi::spec::isotime::isoformat(m.created_on),
                "message_type": m.kind.as_str(),
            })
        })
        .collect();
    assert_eq!(unsent, Json::Array(want));
    assert_eq!(
        acoupi(&["unsent", path.as_str(), "1"])
            .as_array()
            .map(Vec::len),
        Some(1),
        "acoupi's limit works on our file"
    );

    // acoupi opened (and migrated, as it does every time) our file: we still open it.
    let outbox = Outbox::open(&path).expect("reopened after acoupi");
    assert_eq!(outbox.backlog().expect("backlog").unsent, 3);
}

#[test]
fn we_adopt_acoupis_unsent_messages_in_its_order() {
    let (_d, path) = temp_outbox();
    let written = acoupi(&["write", path.as_str()]);
    let written = written.as_array().expect("a list");
    let outbox = Outbox::open(&path).expect("adopt");
    let due = outbox
        .due(ts("2026-06-01T00:00:00Z"), 100, MessageOrder::OldestFirst)
        .expect("due");
    let got: Vec<(String, Option<MessageKind>, String, Timestamp)> = due
        .iter()
        .map(|q| {
            (
                q.id.to_string(),
                q.kind,
                String::from_utf8(q.content.clone()).expect("utf-8"),
                q.created_on,
            )
        })
        .collect();
    let want: Vec<(String, Option<MessageKind>, String, Timestamp)> = written[1..]
        .iter()
        .map(|m| {
            (
                m["id"].as_str().expect("id").to_owned(),
                m["message_type"].as_str().and_then(MessageKind::from_name),
                m["content"].as_str().expect("content").to_owned(),
                m["created_on"]
                    .as_str()
                    .expect("time")
                    .parse()
                    .expect("an RFC 3339 time"),
            )
        })
        .collect();
    assert_eq!(got, want, "the answered message is not sent again");
    drop(outbox);
    // And acoupi still reads the file after we adopted it.
    assert_eq!(
        acoupi(&["unsent", path.as_str()]).as_array().map(Vec::len),
        Some(2)
    );
}
