use super::*;
use crate::messaging::ResponseStatus;

fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("messages.db")).expect("utf-8");
    (dir, path)
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn msg(i: u128, at: &str) -> NewMessage {
    NewMessage {
        id: Uuid::from_u128(i),
        kind: MessageKind::Detection,
        content: format!("{{\"n\":{i}}}"),
        created_on: t(at),
        recording: Some(Uuid::from_u128(1000 + i)),
    }
}

fn ids(q: &[Queued]) -> Vec<u128> {
    q.iter().map(|m| m.id.as_u128()).collect()
}

fn refused() -> Outcome {
    Outcome::Refused {
        status: ResponseStatus::Error,
        detail: "HTTP 500 Internal Server Error".into(),
    }
}

fn unreachable() -> Outcome {
    Outcome::Unreachable {
        status: ResponseStatus::Failed,
        detail: "connection refused".into(),
    }
}

const NOW: &str = "2026-06-01T12:00:00Z";

#[test]
fn messages_come_out_in_the_configured_order_once_each() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    let batch = [
        msg(2, "2026-06-01T10:00:02Z"),
        msg(1, "2026-06-01T10:00:01Z"),
        msg(3, "2026-06-01T10:00:03Z"),
    ];
    assert_eq!(o.push(&batch).expect("push"), 3);
    assert_eq!(
        o.push(&batch).expect("push again"),
        0,
        "known ids are ignored"
    );
    let now = t(NOW);
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [1, 2, 3]
    );
    assert_eq!(
        ids(&o.due(now, 2, MessageOrder::NewestFirst).expect("due")),
        [3, 2]
    );
    let first = &o.due(now, 1, MessageOrder::OldestFirst).expect("due")[0];
    assert_eq!(first.content, b"{\"n\":1}");
    assert_eq!(first.kind, Some(MessageKind::Detection));
    assert_eq!(first.created_on, t("2026-06-01T10:00:01Z"));
}

#[test]
fn a_message_is_sent_once_every_destination_has_it() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    o.push(&[msg(1, "2026-06-01T10:00:00Z")]).expect("push");
    let now = t(NOW);
    let both = ["mqtt://a", "http://b"];
    let id = Uuid::from_u128(1);
    let tally = o
        .record(
            "mqtt://a",
            &[(id, Outcome::Delivered("ok".into()))],
            &both,
            now,
            5,
        )
        .expect("record");
    assert_eq!(tally.sent, 0, "http still lacks it");
    let due = o.due(now, 10, MessageOrder::OldestFirst).expect("due");
    assert_eq!(due[0].delivered_to, ["mqtt://a"]);
    let tally = o
        .record(
            "http://b",
            &[(id, Outcome::Delivered("{}".into()))],
            &both,
            now,
            5,
        )
        .expect("record");
    assert_eq!(tally.sent, 1);
    assert!(
        o.due(now, 10, MessageOrder::OldestFirst)
            .expect("due")
            .is_empty()
    );
    assert_eq!(o.backlog().expect("backlog").unsent, 0);
    // acoupi's view: two responses, both successes.
    let statuses: Vec<i64> = o
        .conn
        .prepare("SELECT status FROM response ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("responses");
    assert_eq!(statuses, [0, 0]);
}

#[test]
fn refusals_back_off_and_expire_while_outages_cost_nothing() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    o.push(&[
        msg(1, "2026-06-01T10:00:00Z"),
        msg(2, "2026-06-01T10:00:01Z"),
    ])
    .expect("push");
    let dest = ["http://b"];
    let mut now = t(NOW);
    let one = Uuid::from_u128(1);
    // An outage, many times over: message 1 stays due, with no refusal counted.
    for _ in 0..10 {
        let tally = o
            .record("http://b", &[(one, unreachable())], &dest, now, 3)
            .expect("record");
        assert_eq!(tally, Tally::default());
    }
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [1, 2]
    );
    // A refusal backs message 1 off for 30 s; message 2 goes on.
    let tally = o
        .record("http://b", &[(one, refused())], &dest, now, 3)
        .expect("record");
    assert_eq!(tally.refused, 1);
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [2]
    );
    now += jiff::SignedDuration::from_millis(BACKOFF_BASE_MS as i64);
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [1, 2]
    );
    // The second refusal doubles the wait; the third (max_attempts = 3) expires it.
    o.record("http://b", &[(one, refused())], &dest, now, 3)
        .expect("record");
    let later = now + jiff::SignedDuration::from_millis(2 * BACKOFF_BASE_MS as i64 - 1);
    assert_eq!(
        ids(&o.due(later, 10, MessageOrder::OldestFirst).expect("due")),
        [2]
    );
    now += jiff::SignedDuration::from_millis(2 * BACKOFF_BASE_MS as i64);
    let tally = o
        .record("http://b", &[(one, refused())], &dest, now, 3)
        .expect("record");
    assert_eq!(tally.expired, 1);
    let far = now + jiff::SignedDuration::from_hours(24);
    assert_eq!(
        ids(&o.due(far, 10, MessageOrder::OldestFirst).expect("due")),
        [2]
    );
    let b = o.backlog().expect("backlog");
    assert_eq!((b.unsent, b.expired), (1, 1));
    assert_eq!(b.oldest_unsent, Some(t("2026-06-01T10:00:01Z")));
    // acoupi's view: 13 failed responses, each naming the destination.
    let (n, named): (i64, i64) = o
        .conn
        .query_row(
            "SELECT COUNT(*), SUM(content LIKE 'http://b: %') FROM response WHERE status != 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("responses");
    assert_eq!((n, named), (13, 13));
}

#[test]
fn backoff_doubles_up_to_an_hour() {
    assert_eq!(backoff_ms(0), 30_000);
    assert_eq!(backoff_ms(1), 30_000);
    assert_eq!(backoff_ms(2), 60_000);
    assert_eq!(backoff_ms(4), 240_000);
    assert_eq!(backoff_ms(8), 3_600_000);
    assert_eq!(backoff_ms(u32::MAX), 3_600_000);
}

#[test]
fn old_messages_expire_and_stay_counted() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    o.push(&[
        msg(1, "2026-05-01T00:00:00Z"),
        msg(2, "2026-05-31T00:00:00Z"),
    ])
    .expect("push");
    let now = t(NOW);
    let cutoff = t("2026-05-15T00:00:00Z");
    assert_eq!(o.expire_before(cutoff, now).expect("expire"), 1);
    assert_eq!(o.expire_before(cutoff, now).expect("again"), 0);
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [2]
    );
    assert_eq!(o.backlog().expect("backlog").expired, 1);
}

#[test]
fn recordings_with_unsent_messages_are_listed_until_sent() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    let mut heartbeat = msg(3, "2026-06-01T10:00:03Z");
    heartbeat.kind = MessageKind::Heartbeat;
    heartbeat.recording = None;
    o.push(&[
        msg(1, "2026-06-01T10:00:00Z"),
        msg(2, "2026-06-01T10:00:01Z"),
        heartbeat,
    ])
    .expect("push");
    let want: HashSet<Uuid> = [Uuid::from_u128(1001), Uuid::from_u128(1002)].into();
    assert_eq!(o.recordings_with_unsent().expect("unsent"), want);
    o.record(
        "mqtt://a",
        &[(Uuid::from_u128(1), Outcome::Delivered(String::new()))],
        &["mqtt://a"],
        t(NOW),
        5,
    )
    .expect("record");
    let want: HashSet<Uuid> = [Uuid::from_u128(1002)].into();
    assert_eq!(o.recordings_with_unsent().expect("unsent"), want);
}

#[test]
fn a_message_store_acoupi_made_is_adopted_with_its_unsent_messages() {
    let (_d, path) = temp();
    {
        let conn = Connection::open(path.as_std_path()).expect("sqlite");
        // acoupi 0.6's message store: no message_type, no user_version.
        conn.execute_batch(
            "CREATE TABLE message (id BLOB PRIMARY KEY, content BLOB NOT NULL, created_on TEXT NOT NULL);
             CREATE TABLE response (id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT,
                message_id BLOB NOT NULL, status INTEGER NOT NULL, received_on TEXT NOT NULL,
                FOREIGN KEY (message_id) REFERENCES message(id));
             INSERT INTO message VALUES (X'00000000000000000000000000000001', CAST('{\"a\":1}' AS BLOB), '2024-01-05 03:04:05+00:00');
             INSERT INTO message VALUES (X'00000000000000000000000000000002', CAST('{\"a\":2}' AS BLOB), '2024-01-05 03:04:06.5+00:00');
             INSERT INTO response (content, message_id, status, received_on)
                VALUES ('MQTT_ERR_SUCCESS', X'00000000000000000000000000000001', 0, '2024-01-05 03:04:07+00:00');
             INSERT INTO response (content, message_id, status, received_on)
                VALUES ('refused', X'00000000000000000000000000000002', 1, '2024-01-05 03:04:07+00:00');",
        )
        .expect("acoupi 0.6 file");
    }
    let o = Outbox::open(&path).expect("adopted");
    let due = o.due(t(NOW), 10, MessageOrder::OldestFirst).expect("due");
    assert_eq!(ids(&due), [2]);
    assert_eq!(due[0].kind, None, "acoupi 0.6 stored no type");
    assert_eq!(due[0].created_on, t("2024-01-05T03:04:06.5Z"));
    let user: i64 = o
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(user, 2, "as acoupi 0.8 migrates it");
    drop(o);
    let o = Outbox::open(&path).expect("reopened");
    assert_eq!(o.backlog().expect("backlog").unsent, 1, "adopted once");
}

#[test]
fn a_newer_outbox_is_refused_untouched_and_reading_needs_no_writes() {
    let (_d, path) = temp();
    Outbox::open(&path)
        .expect("open")
        .push(&[msg(1, "2026-06-01T10:00:00Z")])
        .expect("push");
    let o = Outbox::open_read_only(&path).expect("read-only");
    assert_eq!(o.backlog().expect("backlog").unsent, 1);
    drop(o);
    {
        let conn = Connection::open(path.as_std_path()).expect("sqlite");
        conn.execute("UPDATE acoupi_rs_schema SET version = 99", [])
            .expect("bump");
    }
    let err = Outbox::open(&path).expect_err("newer");
    assert!(matches!(err, Error::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("messages.db"), "{err}");
}

#[test]
fn times_are_written_as_acoupis_message_store_writes_them() {
    assert_eq!(
        message_time(t("2024-01-05T03:04:05.25Z")),
        "2024-01-05 03:04:05.250000+00:00"
    );
    let long = "é".repeat(3000);
    let text = response_text("http://x", &long);
    assert!(text.len() <= RESPONSE_TEXT_MAX && text.starts_with("http://x: é"));
}

#[test]
fn a_message_every_remaining_destination_has_is_marked_sent_once() {
    let (_d, path) = temp();
    let mut o = Outbox::open(&path).expect("open");
    o.push(&[
        msg(1, "2026-06-01T10:00:00Z"),
        msg(2, "2026-06-01T10:00:01Z"),
    ])
    .expect("push");
    let now = t(NOW);
    let one = Uuid::from_u128(1);
    let delivered = [(one, Outcome::Delivered("ok".into()))];
    let both = ["mqtt://a", "http://b"];
    let tally = o
        .record("mqtt://a", &delivered, &both, now, 5)
        .expect("record");
    assert_eq!(tally.sent, 0, "http still lacks it");
    // `http://b` is removed from the manifest: message 1 is now with every destination.
    assert_eq!(o.mark_sent(&[one], now).expect("mark"), 1);
    assert_eq!(o.mark_sent(&[one], now).expect("mark again"), 0);
    assert_eq!(
        ids(&o.due(now, 10, MessageOrder::OldestFirst).expect("due")),
        [2]
    );
    assert_eq!(o.backlog().expect("backlog").unsent, 1);
    // A delivery of a message already sent (a destination answering late) is not counted.
    let tally = o
        .record("mqtt://a", &delivered, &["mqtt://a"], now, 5)
        .expect("record");
    assert_eq!(tally, Tally::default());
}

#[test]
fn reading_a_file_without_the_outbox_tables_is_refused_naming_the_first_missing() {
    let (_d, path) = temp();
    Connection::open(path.as_std_path())
        .and_then(|c| c.execute_batch("CREATE TABLE other (x INTEGER);"))
        .expect("an sqlite file");
    let err = Outbox::open_read_only(&path).expect_err("no message table");
    assert!(
        matches!(
            err,
            Error::NotAStore {
                table: "message",
                ..
            }
        ),
        "{err}"
    );
    // acoupi's message store, not yet adopted by a writable open.
    Connection::open(path.as_std_path())
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE message (id BLOB PRIMARY KEY, content BLOB NOT NULL,
                    created_on TEXT NOT NULL, message_type TEXT);",
            )
        })
        .expect("acoupi's tables");
    let err = Outbox::open_read_only(&path).expect_err("no table of ours");
    assert!(
        matches!(
            err,
            Error::NotAStore {
                table: "acoupi_rs_message",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_long_response_is_cut_at_a_character_boundary() {
    // An 11-byte prefix puts the limit inside a two-byte character.
    let text = response_text("http://xy", &"é".repeat(3000));
    assert_eq!(text.len(), RESPONSE_TEXT_MAX - 1);
    assert!(text.starts_with("http://xy: é"));
}
