//! The outbox's tables and their forward migrations.
//!
//! In: an open connection to the message store. Out: acoupi 0.8's `message` and `response`
//! tables exactly as its `create_message_schema` declares them (so a file acoupi made is
//! adopted untouched, and acoupi's `SqliteMessageStore` reads a file we made), `PRAGMA
//! user_version = 2` as acoupi sets it, and our `acoupi_rs_*` tables: each message's delivery
//! state (pending, sent, expired), refusals, next attempt and the recording it is about, and
//! which destinations have it. Our version lives in `acoupi_rs_schema`, as in the metadata
//! store. Every migration is safe to re-run; all pending ones run in one transaction.

use camino::Utf8Path;
use rusqlite::{Connection, TransactionBehavior};

use crate::store::schema::table_exists;
use crate::store::{Error, classify};

/// Our outbox schema version.
pub const OUTBOX_SCHEMA_VERSION: u32 = 1;

/// The `user_version` acoupi 0.8's message store sets.
const ACOUPI_USER_VERSION: i64 = 2;

/// acoupi 0.8's message store DDL, verbatim.
const ACOUPI_TABLES: &str = "
        CREATE TABLE IF NOT EXISTS message (
            id BLOB PRIMARY KEY,
            content BLOB NOT NULL,
            created_on TEXT NOT NULL,
            message_type TEXT
        );

        CREATE TABLE IF NOT EXISTS response (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            content TEXT,
            message_id BLOB NOT NULL,
            status INTEGER NOT NULL,
            received_on TEXT NOT NULL,
            FOREIGN KEY (message_id) REFERENCES message(id)
        );

        CREATE INDEX IF NOT EXISTS idx_response_message_id
        ON response(message_id);

        CREATE INDEX IF NOT EXISTS idx_response_status
        ON response(status);
        ";

/// Ours. `state`: 0 pending, 1 sent (every destination has it), 2 expired. Times are
/// microseconds since the epoch, so ordering and age need no text parsing. The partial
/// indexes hold pending messages only: a sensor's outbox is mostly sent messages, and the
/// send task and retention only ever look at the pending ones.
const OUR_TABLES: &str = "
CREATE TABLE IF NOT EXISTS acoupi_rs_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS acoupi_rs_message (
    message_id BLOB PRIMARY KEY REFERENCES message(id),
    created_us INTEGER NOT NULL,
    recording_id BLOB,
    state INTEGER NOT NULL DEFAULT 0,
    refusals INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_us INTEGER
);

CREATE INDEX IF NOT EXISTS acoupi_rs_message_pending
ON acoupi_rs_message (created_us, message_id) WHERE state = 0;

CREATE INDEX IF NOT EXISTS acoupi_rs_message_pending_recording
ON acoupi_rs_message (recording_id) WHERE state = 0 AND recording_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS acoupi_rs_message_done
ON acoupi_rs_message (state, done_us) WHERE state != 0;

CREATE TABLE IF NOT EXISTS acoupi_rs_delivery (
    message_id BLOB NOT NULL REFERENCES message(id),
    destination TEXT NOT NULL,
    delivered_us INTEGER NOT NULL,
    PRIMARY KEY (message_id, destination)
) WITHOUT ROWID;
";

/// Refuses a file newer than this binary knows, without writing to it.
pub(super) fn check(conn: &Connection, path: &Utf8Path) -> Result<(), Error> {
    let err = |e| classify(path, e);
    let (schema, user) = versions(conn).map_err(err)?;
    let newer = |which, found, known| Error::NewerSchema {
        path: path.to_owned(),
        which,
        found,
        known,
    };
    if schema > i64::from(OUTBOX_SCHEMA_VERSION) {
        return Err(newer("schema", schema, i64::from(OUTBOX_SCHEMA_VERSION)));
    }
    if user > ACOUPI_USER_VERSION {
        return Err(newer("user_version", user, ACOUPI_USER_VERSION));
    }
    Ok(())
}

/// Whether the file has acoupi's `message` table (a read-only open needs it).
pub(super) fn has_messages(conn: &Connection) -> rusqlite::Result<bool> {
    table_exists(conn, "message")
}

/// Whether the file has our tables.
pub(super) fn has_ours(conn: &Connection) -> rusqlite::Result<bool> {
    table_exists(conn, "acoupi_rs_message")
}

/// Ours (0 when absent) and acoupi's `user_version`, read as the metadata store reads its own.
fn versions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let v = crate::store::schema::versions(conn)?;
    Ok((v.schema, v.user))
}

/// Brings the file to [`OUTBOX_SCHEMA_VERSION`] in one immediate transaction: acoupi's tables
/// (and its 0.8 `message_type` column on a 0.6 file), then ours. An up-to-date file is not
/// written.
pub(super) fn migrate(conn: &mut Connection, path: &Utf8Path) -> Result<(), Error> {
    let err = |e| classify(path, e);
    let current = (i64::from(OUTBOX_SCHEMA_VERSION), ACOUPI_USER_VERSION);
    if versions(conn).map_err(err)? == current {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    check(&tx, path)?;
    tx.execute_batch(ACOUPI_TABLES).map_err(err)?;
    // A message store of acoupi 0.6 has no `message_type` (acoupi 0.8 adds it the same way).
    let has_type: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('message') WHERE name = 'message_type')",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !has_type {
        tx.execute_batch("ALTER TABLE message ADD COLUMN message_type TEXT;")
            .map_err(err)?;
    }
    tx.execute_batch(OUR_TABLES).map_err(err)?;
    tx.execute_batch(&format!("PRAGMA user_version = {ACOUPI_USER_VERSION}"))
        .map_err(err)?;
    tx.execute(
        "INSERT INTO acoupi_rs_schema (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [OUTBOX_SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)
}
