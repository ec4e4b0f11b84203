//! The store's tables and their forward migrations.
//!
//! In: an open connection. Out: a file holding acoupi's tables exactly as acoupi 0.8 declares
//! them (its DDL, copied verbatim, so a file acoupi made is adopted untouched and a file we made
//! is one acoupi reads), our `acoupi_rs_*` tables, `PRAGMA user_version = 1` as acoupi sets it,
//! and our schema version in `acoupi_rs_schema`. Every migration is safe to re-run (all
//! `IF NOT EXISTS`), and all pending ones run in one transaction. A file whose version is newer
//! than this binary knows is refused before anything is written.

use camino::Utf8Path;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{Error, classify};

/// Our schema version: the last migration this binary knows.
pub const SCHEMA_VERSION: u32 = 3;

/// The `user_version` acoupi 0.8 sets (and rewrites on every open).
pub(super) const ACOUPI_USER_VERSION: i64 = 1;

/// Acoupi 0.8's `create_base_schema`, verbatim apart from the `user_version` pragma (which
/// [`migrate`] sets). Keep it byte for byte: `sqlite_master` then holds the same DDL text.
const ACOUPI_TABLES: &str = "
        CREATE TABLE IF NOT EXISTS deployment (
            id BLOB PRIMARY KEY,
            name TEXT NOT NULL,
            started_on TEXT NOT NULL UNIQUE,
            ended_on TEXT,
            latitude REAL,
            longitude REAL
        );

        CREATE TABLE IF NOT EXISTS recording (
            id BLOB PRIMARY KEY,
            path TEXT UNIQUE,
            datetime TEXT NOT NULL UNIQUE,
            duration_s REAL NOT NULL,
            samplerate_hz INTEGER NOT NULL,
            audio_channels INTEGER NOT NULL DEFAULT 1,
            deployment_id BLOB NOT NULL,
            FOREIGN KEY (deployment_id) REFERENCES deployment(id)
        );

        CREATE TABLE IF NOT EXISTS model_output (
            id BLOB PRIMARY KEY,
            model_name TEXT NOT NULL,
            recording_id BLOB NOT NULL,
            created_on TEXT NOT NULL,
            FOREIGN KEY (recording_id) REFERENCES recording(id)
        );

        CREATE TABLE IF NOT EXISTS detection (
            id BLOB PRIMARY KEY,
            prediction_type TEXT NOT NULL CHECK (
                prediction_type IN ('presence', 'sequence', 'event')
            ),
            start_time_s REAL,
            end_time_s REAL,
            low_freq_hz REAL,
            high_freq_hz REAL,
            detection_score REAL NOT NULL,
            model_output_id BLOB NOT NULL,
            FOREIGN KEY (model_output_id) REFERENCES model_output(id)
        );

        CREATE TABLE IF NOT EXISTS predicted_tag (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            confidence_score REAL NOT NULL,
            detection_id BLOB NOT NULL,
            FOREIGN KEY (detection_id) REFERENCES detection(id)
        );

        CREATE INDEX IF NOT EXISTS idx_recording_deployment_id
        ON recording(deployment_id);

        CREATE INDEX IF NOT EXISTS idx_model_output_recording_id
        ON model_output(recording_id);

        CREATE INDEX IF NOT EXISTS idx_model_output_created_on
        ON model_output(created_on);

        CREATE INDEX IF NOT EXISTS idx_detection_model_output_id
        ON detection(model_output_id);

        CREATE INDEX IF NOT EXISTS idx_predicted_tag_detection_id
        ON predicted_tag(detection_id);

        CREATE INDEX IF NOT EXISTS idx_predicted_tag_key_value
        ON predicted_tag(key, value);
        ";

/// Our tables. `acoupi_rs_recording` holds what acoupi's `recording` table cannot (acoupi never
/// reads it, and never deletes recordings, so the foreign key never gets in its way).
/// `acoupi_rs_model_output` holds the range of `predicted_tag` ids each output's tags took:
/// acoupi's only way to a detection's tags is the index on `detection_id`, a random UUID, so
/// an hour's tags sit on thousands of scattered pages; their id range is one sequential scan.
const OUR_TABLES: &str = "
CREATE TABLE IF NOT EXISTS acoupi_rs_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS acoupi_rs_recording (
    recording_id BLOB PRIMARY KEY REFERENCES recording(id),
    task_id TEXT UNIQUE,
    time_expansion REAL NOT NULL DEFAULT 1,
    staged_path TEXT,
    deleted_on TEXT
);

CREATE TABLE IF NOT EXISTS acoupi_rs_model_output (
    model_output_id BLOB PRIMARY KEY REFERENCES model_output(id),
    first_tag_id INTEGER,
    last_tag_id INTEGER
);
";

/// Version 3: what file management needs. `acoupi_rs_pending` lists the recordings waiting in
/// staging (so a run never scans acoupi's `recording` table), `acoupi_rs_detection_failure`
/// the detectors that failed for good on a recording (kept, never deleted unseen), and an
/// index on our `staged_path` finds the row of a staged file once it has moved on (acoupi's
/// own unique constraint on `recording.path` indexes the current path; acoupi's tables get
/// nothing of ours).
const FILE_MANAGEMENT: &str = "
CREATE TABLE IF NOT EXISTS acoupi_rs_pending (
    recording_id BLOB PRIMARY KEY REFERENCES recording(id)
);

CREATE TABLE IF NOT EXISTS acoupi_rs_detection_failure (
    recording_id BLOB NOT NULL REFERENCES recording(id),
    detector TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_on TEXT NOT NULL,
    PRIMARY KEY (recording_id, detector)
);

CREATE INDEX IF NOT EXISTS acoupi_rs_recording_staged_path ON acoupi_rs_recording (staged_path);
";

/// One forward step. Its SQL must be safe to run again on a file that already has it.
struct Migration {
    /// The schema version after this step.
    version: u32,
    sql: &'static str,
}

/// Every migration, in order; the last one's version is [`SCHEMA_VERSION`].
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: ACOUPI_TABLES,
    },
    Migration {
        version: 2,
        sql: OUR_TABLES,
    },
    Migration {
        version: 3,
        sql: FILE_MANAGEMENT,
    },
];

/// acoupi's tables, in the order `info` lists them.
pub(super) const ACOUPI_TABLE_NAMES: [&str; 5] = [
    "deployment",
    "recording",
    "model_output",
    "detection",
    "predicted_tag",
];

/// The versions a file says it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Versions {
    /// Ours, 0 when the file has no `acoupi_rs_schema` (new, or made by acoupi).
    pub(super) schema: i64,
    /// acoupi's `PRAGMA user_version`.
    pub(super) user: i64,
}

/// Reads both versions without writing.
pub(super) fn versions(conn: &Connection) -> rusqlite::Result<Versions> {
    let user: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let schema = if table_exists(conn, "acoupi_rs_schema")? {
        conn.query_row(
            "SELECT version FROM acoupi_rs_schema WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0)
    } else {
        0
    };
    Ok(Versions { schema, user })
}

pub(super) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Refuses a file this binary cannot handle, without writing to it: a newer schema of ours or
/// of acoupi's, and (for `existing`, i.e. read-only opens) a database that is not a store.
pub(super) fn check(conn: &Connection, path: &Utf8Path, existing: bool) -> Result<(), Error> {
    let v = versions(conn).map_err(|e| classify(path, e))?;
    refuse_newer(v, path)?;
    if existing {
        for table in ACOUPI_TABLE_NAMES {
            if !table_exists(conn, table).map_err(|e| classify(path, e))? {
                return Err(Error::NotAStore {
                    path: path.to_owned(),
                    table,
                });
            }
        }
    }
    Ok(())
}

fn refuse_newer(v: Versions, path: &Utf8Path) -> Result<(), Error> {
    let newer = |which, found, known| Error::NewerSchema {
        path: path.to_owned(),
        which,
        found,
        known,
    };
    if v.schema > i64::from(SCHEMA_VERSION) {
        return Err(newer("schema", v.schema, i64::from(SCHEMA_VERSION)));
    }
    if v.user > ACOUPI_USER_VERSION {
        return Err(newer("user_version", v.user, ACOUPI_USER_VERSION));
    }
    Ok(())
}

/// Brings the file to [`SCHEMA_VERSION`] in one immediate transaction. An up-to-date file is
/// not written at all.
pub(super) fn migrate(conn: &mut Connection, path: &Utf8Path) -> Result<(), Error> {
    let err = |e| classify(path, e);
    if versions(conn).map_err(err)? == current() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    // Another process may have migrated (or upgraded) the file since the check above.
    let found = versions(&tx).map_err(err)?;
    refuse_newer(found, path)?;
    for m in MIGRATIONS
        .iter()
        .filter(|m| i64::from(m.version) > found.schema)
    {
        tx.execute_batch(m.sql).map_err(err)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {ACOUPI_USER_VERSION}"))
        .map_err(err)?;
    tx.execute(
        "INSERT INTO acoupi_rs_schema (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)
}

fn current() -> Versions {
    Versions {
        schema: i64::from(SCHEMA_VERSION),
        user: ACOUPI_USER_VERSION,
    }
}

/// For a read-only connection to a file acoupi made and we never migrated: empty temporary
/// stand-ins for our tables, so the same queries run. The temp schema is private to the
/// connection; the file is not touched.
pub(super) fn shadow_missing(conn: &Connection) -> rusqlite::Result<()> {
    if table_exists(conn, "acoupi_rs_model_output")? {
        return Ok(());
    }
    conn.execute_batch(&OUR_TABLES.replace(
        "CREATE TABLE IF NOT EXISTS",
        "CREATE TEMP TABLE IF NOT EXISTS",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::fixtures::temp_path;

    /// Every table, index and column declaration of the file, as SQLite reports them.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
            .expect("sqlite_master");
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?.unwrap_or_default()
                ))
            })
            .expect("rows");
        for r in rows {
            out.push(r.expect("row"));
        }
        out
    }

    #[test]
    fn a_new_file_has_acoupis_tables_and_ours() {
        let (_d, path) = temp_path();
        let store = Store::open(&path).expect("open");
        let v = versions(&store.conn).expect("versions");
        assert_eq!(v, current());
        for table in ACOUPI_TABLE_NAMES.iter().chain(&[
            "acoupi_rs_schema",
            "acoupi_rs_recording",
            "acoupi_rs_model_output",
        ]) {
            assert!(table_exists(&store.conn, table).expect("query"), "{table}");
        }
        let journal: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(journal, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(fk, 1);
    }

    #[test]
    fn a_file_acoupi_created_is_adopted() {
        let (_d, path) = temp_path();
        {
            // What acoupi's SqliteStore does on construction, verbatim.
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(ACOUPI_TABLES).expect("acoupi DDL");
            conn.execute_batch("PRAGMA user_version = 1")
                .expect("pragma");
            conn.execute(
                "INSERT INTO deployment (id, started_on, name, latitude, longitude, ended_on)
                 VALUES (?1, '2024-01-05T03:04:05.123456+00:00', 'python', NULL, NULL, NULL)",
                [uuid::Uuid::from_u128(7).as_bytes().as_slice()],
            )
            .expect("a row");
        }
        let acoupi_shape = shape(&Connection::open(&path).expect("reopen"));
        let store = Store::open(&path).expect("adopt");
        assert_eq!(versions(&store.conn).expect("versions"), current());
        let ours = shape(&store.conn);
        for line in &acoupi_shape {
            assert!(ours.contains(line), "acoupi's `{line}` changed");
        }
        let d = store
            .current_deployment()
            .expect("query")
            .expect("the python deployment");
        assert_eq!(d.name, "python");
        assert_eq!(
            d.started_on,
            "2024-01-05T03:04:05.123456Z"
                .parse::<jiff::Timestamp>()
                .expect("ts")
        );
    }

    #[test]
    fn migrations_rerun_on_a_migrated_file_change_nothing() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let before = shape(&store.conn);
        // As if our version row were lost (or acoupi recreated its tables): run them all again.
        store
            .conn
            .execute("DELETE FROM acoupi_rs_schema", [])
            .expect("forget");
        migrate(&mut store.conn, &path).expect("re-run every migration");
        assert_eq!(shape(&store.conn), before);
        assert_eq!(versions(&store.conn).expect("versions"), current());
        drop(store);
        let again = Store::open(&path).expect("open again");
        assert_eq!(shape(&again.conn), before);
    }

    #[test]
    fn a_newer_schema_is_refused_and_the_file_left_untouched() {
        let (_d, path) = temp_path();
        drop(Store::open(&path).expect("open"));
        {
            let conn = Connection::open(&path).expect("reopen");
            conn.execute(
                "UPDATE acoupi_rs_schema SET version = ?1",
                [SCHEMA_VERSION + 1],
            )
            .expect("bump");
            // Leave a plain rollback-journal file, so a changed journal mode would show.
            conn.execute_batch("PRAGMA journal_mode = DELETE")
                .expect("journal mode");
        }
        let bytes = std::fs::read(&path).expect("read");
        let err = Store::open(&path).expect_err("refused");
        assert!(
            matches!(
                err,
                Error::NewerSchema {
                    which: "schema",
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(path.as_str()) && msg.contains("upgrade acoupi"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "file modified");
        let err = Store::open_read_only(&path).expect_err("refused read-only too");
        assert!(matches!(err, Error::NewerSchema { .. }), "{err}");
    }

    #[test]
    fn a_newer_acoupi_user_version_is_refused() {
        let (_d, path) = temp_path();
        drop(Store::open(&path).expect("open"));
        Connection::open(&path)
            .expect("reopen")
            .execute_batch("PRAGMA user_version = 2")
            .expect("bump");
        let err = Store::open(&path).expect_err("refused");
        assert!(
            matches!(
                err,
                Error::NewerSchema {
                    which: "user_version",
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}
