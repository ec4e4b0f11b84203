//! The metadata store: one SQLite file that acoupi (the Python original) can read and write.
//!
//! In: a path, and the `spec::data` values the tasks produce. Out: the same values read back,
//! filtered for `acoupi db`, and a health summary ([`Info`]). The file holds exactly acoupi's
//! tables (`deployment`, `recording`, `model_output`, `detection`, `predicted_tag`; UUIDs as
//! 16-byte BLOBs, times as Python `isoformat()` text, `PRAGMA user_version = 1`) plus tables of
//! ours, prefixed `acoupi_rs_`, for what acoupi's schema loses: a recording's task id, time
//! expansion, staging path and deletion time, and our own schema version (acoupi rewrites
//! `user_version` every time it opens a file, so ours cannot live there).
//!
//! This is the only module that names rusqlite. A [`Store`] holds one connection and is `Send`:
//! async callers wrap it in a mutex and call it from `spawn_blocking`. Every write is one
//! transaction, so a failure never leaves half a model output behind.

mod activity;
mod deployments;
mod info;
mod outbox;
mod outputs;
mod query;
mod recordings;
mod schema;
mod staging;

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use rusqlite::{Connection, OpenFlags};

pub use activity::{Activity, ActivityMark};
pub use info::{Info, TableCount};
pub use outbox::{
    BACKOFF_BASE_MS, BACKOFF_MAX_MS, Backlog, NewMessage, OUTBOX_SCHEMA_VERSION, Outbox, Queued,
    Tally, backoff_ms,
};
pub use outputs::OutputSummary;
pub use query::{Filter, FoundDetection};
pub use recordings::{Inserted, StoredRecording};
pub use schema::SCHEMA_VERSION;
pub use staging::DetectionState;

/// How long a statement waits for another process's lock before giving up.
///
/// Three worker processes (recording, detection, default) write the same file, and a reader
/// such as `acoupi db` may hold a snapshot meanwhile. Writes are small (one recording, one model
/// output), so a lock is normally held for milliseconds; the generous bound covers a slow SD
/// card flushing a WAL checkpoint, where giving up would lose a task's result.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache per connection, in KiB (SQLite's negative `cache_size`): three worker processes
/// hold one each, a small share of a Raspberry Pi's memory.
const CACHE_KIB: i64 = -16 * 1024;

/// Why the store could not do what was asked. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `open_read_only` was given a path with no file.
    #[error("no store at `{path}`")]
    Missing {
        /// The path.
        path: Utf8PathBuf,
    },
    /// The directory of a new store could not be created.
    #[error("cannot create the directory of store `{path}`: {detail}")]
    CreateDir {
        /// The store's path.
        path: Utf8PathBuf,
        /// The I/O error.
        detail: String,
    },
    /// The file exists but could not be opened.
    #[error("cannot open store `{path}`: {detail}")]
    CannotOpen {
        /// The path.
        path: Utf8PathBuf,
        /// SQLite's reason.
        detail: String,
    },
    /// The file is not an SQLite database at all.
    #[error("`{path}` is not a store: file is not a database")]
    NotADatabase {
        /// The path.
        path: Utf8PathBuf,
    },
    /// An SQLite database without acoupi's tables.
    #[error("`{path}` is an SQLite database but not an acoupi store (no `{table}` table)")]
    NotAStore {
        /// The path.
        path: Utf8PathBuf,
        /// The first missing table.
        table: &'static str,
    },
    /// The file is damaged (truncated, overwritten).
    #[error("store `{path}` is corrupt: {detail}")]
    Corrupt {
        /// The path.
        path: Utf8PathBuf,
        /// SQLite's reason.
        detail: String,
    },
    /// The file, its directory or its file system cannot be written.
    #[error("store `{path}` cannot be written (read-only file or file system): {detail}")]
    ReadOnly {
        /// The path.
        path: Utf8PathBuf,
        /// SQLite's reason.
        detail: String,
    },
    /// No space left for the write.
    #[error("store `{path}`: the disk is full")]
    DiskFull {
        /// The path.
        path: Utf8PathBuf,
    },
    /// Another process held a lock for longer than the busy timeout.
    #[error("store `{path}` is locked by another process (waited {waited:?})")]
    Locked {
        /// The path.
        path: Utf8PathBuf,
        /// How long this process waited.
        waited: Duration,
    },
    /// The file was written by a newer acoupi (ours or the Python original).
    #[error(
        "store `{path}` has {which} version {found}, newer than the {known} this acoupi knows; it was left untouched: upgrade acoupi"
    )]
    NewerSchema {
        /// The path.
        path: Utf8PathBuf,
        /// `schema` (ours) or `user_version` (acoupi's).
        which: &'static str,
        /// The version in the file.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// A recording id the store does not hold (acoupi refuses model outputs of one too).
    #[error("store `{path}` has no recording `{id}`")]
    UnknownRecording {
        /// The path.
        path: Utf8PathBuf,
        /// The recording id.
        id: uuid::Uuid,
    },
    /// A row breaks a constraint (e.g. two recordings with the same start time).
    #[error("store `{path}`: {detail}")]
    Constraint {
        /// The path.
        path: Utf8PathBuf,
        /// SQLite's reason.
        detail: String,
    },
    /// A stored value this acoupi cannot read (a malformed time, an unknown prediction type).
    #[error("store `{path}` holds a value this acoupi cannot read: {detail}")]
    BadValue {
        /// The path.
        path: Utf8PathBuf,
        /// What and where.
        detail: String,
    },
    /// Any other SQLite failure.
    #[error("store `{path}`: {detail}")]
    Sqlite {
        /// The path.
        path: Utf8PathBuf,
        /// SQLite's reason.
        detail: String,
    },
}

/// A connection to one metadata store file.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: Utf8PathBuf,
}

impl Store {
    /// Opens the store at `path` for reading and writing, creating the file and its parent
    /// directories when missing, and migrates it to [`SCHEMA_VERSION`].
    ///
    /// A file acoupi created is adopted as is: its tables are kept, ours are added. A file with
    /// a newer schema (ours or acoupi's) is refused before anything is written to it.
    pub fn open(path: &Utf8Path) -> Result<Store, Error> {
        let mut conn = open_writable(path, |conn| schema::check(conn, path, false))?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing store for reading only: never writes, never migrates.
    ///
    /// A missing file, a file that is not an acoupi store and a file with a newer schema are
    /// refused. A file acoupi made and we never opened reads as one without our extras (no
    /// task ids, time expansion 1).
    pub fn open_read_only(path: &Utf8Path) -> Result<Store, Error> {
        if !path.exists() {
            return Err(Error::Missing {
                path: path.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let store = Store::connect(path, flags)?;
        schema::check(&store.conn, path, true)?;
        schema::shadow_missing(&store.conn).map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// The path of the file.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Frees what the connection caches (see [`release_memory`]).
    pub fn release_memory(&self) {
        release_memory(&self.conn);
    }

    fn connect(path: &Utf8Path, flags: OpenFlags) -> Result<Store, Error> {
        Ok(Store {
            conn: connect(path, flags)?,
            path: path.to_owned(),
        })
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        classify(&self.path, e)
    }
}

/// Frees what `conn` caches and can do without: its page cache and its prepared statements,
/// read and prepared again on next use. An idle worker calls it between tasks, so that the
/// pages its last task read do not stay resident until the next (a few hundred kilobytes for
/// the metadata store and the outbox together; the file's pages stay in the kernel's cache).
pub(crate) fn release_memory(conn: &Connection) {
    conn.flush_prepared_statement_cache();
    // Fails only on a misuse SQLite reports (a closed connection); nothing is lost either way.
    let _ = conn.release_memory();
}

/// A connection to `path` with the busy timeout and page cache every store uses.
fn connect(path: &Utf8Path, flags: OpenFlags) -> Result<Connection, Error> {
    let conn =
        Connection::open_with_flags(path.as_std_path(), flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, e))?;
    // Per connection, nothing is written. acoupi's UUID keys scatter every index, so the
    // default 2 MiB page cache misses on nearly every lookup in a store of a few months.
    conn.pragma_update(None, "cache_size", CACHE_KIB)
        .map_err(|e| classify(path, e))?;
    Ok(conn)
}

/// A writing connection to `path`, creating the file and its parent directories when
/// missing: `check` (the caller's schema checks, which must not write) runs first, so a
/// refused file does not even get its journal mode changed; then the file must really be
/// writable (SQLite silently falls back to reading), and the writing pragmas are set.
fn open_writable(
    path: &Utf8Path,
    check: impl FnOnce(&Connection) -> Result<(), Error>,
) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| Error::CreateDir {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = connect(path, flags)?;
    check(&conn)?;
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| classify(path, e))?
    {
        return Err(Error::ReadOnly {
            path: path.to_owned(),
            detail: "the file cannot be opened for writing".to_owned(),
        });
    }
    write_pragmas(&conn).map_err(|e| classify(path, e))?;
    Ok(conn)
}

/// What a writing connection sets: WAL (readers never block the writer), foreign keys, and
/// `synchronous = NORMAL` (a power cut loses at most the last commits, never the file). The
/// commits that files are removed on are fsynced all the same (see `update_and_unpend`).
fn write_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some(format!(
                "cannot switch to WAL (journal mode stays `{mode}`)"
            )),
        ));
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
}

/// An SQLite error as an [`Error`] naming `path`, by its primary result code.
fn classify(path: &Utf8Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let path = path.to_owned();
    let rusqlite::Error::SqliteFailure(failure, message) = &e else {
        return Error::Sqlite {
            path,
            detail: e.to_string(),
        };
    };
    let detail = message.clone().unwrap_or_else(|| failure.to_string());
    match failure.code {
        C::NotADatabase => Error::NotADatabase { path },
        C::DatabaseCorrupt => Error::Corrupt { path, detail },
        C::ReadOnly => Error::ReadOnly { path, detail },
        C::DiskFull => Error::DiskFull { path },
        C::DatabaseBusy | C::DatabaseLocked => Error::Locked {
            path,
            waited: BUSY_TIMEOUT,
        },
        C::CannotOpen => Error::CannotOpen { path, detail },
        C::ConstraintViolation => Error::Constraint { path, detail },
        _ => Error::Sqlite { path, detail },
    }
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{output, recording, temp_path};

    /// What every connection is opened with, read back from SQLite: the page cache's size,
    /// the busy timeout, and for a writer WAL, foreign keys and `synchronous = NORMAL`.
    #[test]
    fn connections_are_opened_with_the_documented_settings() {
        let (_d, path) = temp_path();
        let store = Store::open(&path).expect("open");
        let pragma = |name: &str| -> String {
            store
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .expect("pragma")
        };
        assert_eq!(pragma("cache_size"), "-16384", "16 MiB of page cache");
        assert_eq!(pragma("busy_timeout"), "10000");
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("synchronous"), "1", "NORMAL");
        drop(store);
        let reader = Store::open_read_only(&path).expect("open read-only");
        let cache: i64 = reader
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(cache, -16384);
    }

    /// A store with a few hundred rows, closed, so the file alone holds them.
    fn written(path: &Utf8Path) {
        let mut store = Store::open(path).expect("open");
        for i in 0..50 {
            let r = recording(i);
            store.insert_recording(&r, None).expect("recording");
            store
                .insert_model_output(&output(&r, 1000 + u128::from(i), 10))
                .expect("output");
        }
    }

    #[test]
    fn a_store_whose_caches_were_released_reads_and_writes_as_before() {
        let (_d, path) = temp_path();
        written(&path);
        let mut store = Store::open(&path).expect("open");
        let first = recording(0);
        let before = store.recording(first.id).expect("read").expect("stored");
        store.release_memory();
        let after = store
            .recording(first.id)
            .expect("read again")
            .expect("stored");
        assert_eq!(before.recording.path, after.recording.path);
        let more = recording(50);
        store
            .insert_recording(&more, None)
            .expect("insert after the release");
        store.release_memory();
        assert!(store.recording(more.id).expect("read").is_some());
    }

    #[test]
    fn open_creates_parent_directories() {
        let (_d, path) = temp_path();
        let deep = path.parent().expect("a parent").join("a/b/metadata.db");
        Store::open(&deep).expect("open");
        assert!(deep.is_file());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_by_name() {
        let (_d, path) = temp_path();
        std::fs::write(
            &path,
            "not sqlite at all, just some text long enough to have a header.\n".repeat(20),
        )
        .expect("write");
        let before = std::fs::read(&path).expect("read");
        for err in [
            Store::open(&path).expect_err("corrupt"),
            Store::open_read_only(&path).expect_err("corrupt"),
        ] {
            assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(path.as_str()) && msg.contains("file is not a database"),
                "{msg}"
            );
        }
        assert_eq!(std::fs::read(&path).expect("read"), before, "file modified");
    }

    #[test]
    fn a_truncated_database_is_reported_corrupt() {
        let (_d, path) = temp_path();
        written(&path);
        let len = std::fs::metadata(&path).expect("stat").len();
        assert!(
            len > 16 * 4096,
            "the store should span many pages ({len} bytes)"
        );
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(len / 2).expect("truncate");
        drop(file);
        // Opening reads only the first pages, so it may succeed; reading everything must not.
        let result = Store::open_read_only(&path).and_then(|s| {
            let info = s.info()?;
            s.detections(&Filter::default())?;
            Ok(info)
        });
        match result {
            Err(err) => {
                assert!(matches!(err, Error::Corrupt { .. }), "{err}");
                assert!(err.to_string().contains(path.as_str()), "{err}");
            }
            Ok(info) => assert!(!info.is_ok(), "integrity check passed a truncated file"),
        }
    }

    /// A store SQLite cannot open (a directory stands at its path) is an error naming it.
    #[test]
    fn a_store_that_cannot_be_opened_says_so() {
        let (_d, path) = temp_path();
        std::fs::create_dir_all(&path).expect("a directory");
        let err = Store::open(&path).expect_err("cannot open");
        assert!(matches!(err, Error::CannotOpen { .. }), "{err}");
        assert!(err.to_string().contains(path.as_str()), "{err}");
    }

    #[test]
    fn a_read_only_file_is_refused_for_writing_and_read_without_writes() {
        let (_d, path) = temp_path();
        written(&path);
        let _guard = ReadOnlyFile::new(&path);
        let before = std::fs::read(&path).expect("read");
        let err = Store::open(&path).expect_err("read-only");
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        assert!(err.to_string().contains(path.as_str()), "{err}");
        let mut store = Store::open_read_only(&path).expect("reading needs no writes");
        assert_eq!(
            store.recordings(&Filter::default()).expect("query").len(),
            50
        );
        // A write through the read-only connection is refused by SQLite, and said so.
        let err = store
            .insert_recording(&recording(99), None)
            .expect_err("no writes");
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        drop(store);
        assert_eq!(std::fs::read(&path).expect("read"), before, "file modified");
    }

    /// Makes a file read-only for this process: mode 0444 for other users; root ignores modes,
    /// so it also sets the immutable attribute (`chattr +i`), removed again on drop.
    struct ReadOnlyFile {
        path: Utf8PathBuf,
        immutable: bool,
    }

    impl ReadOnlyFile {
        fn new(path: &Utf8Path) -> ReadOnlyFile {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
            let writable = std::fs::OpenOptions::new().write(true).open(path).is_ok();
            let immutable = writable && {
                let status = std::process::Command::new("chattr")
                    .arg("+i")
                    .arg(path)
                    .status();
                assert!(
                    matches!(status, Ok(s) if s.success()),
                    "running as root, and `chattr +i {path}` failed ({status:?}): run the tests \
                     as a normal user, or on a file system that supports the immutable attribute"
                );
                true
            };
            ReadOnlyFile {
                path: path.to_owned(),
                immutable,
            }
        }
    }

    impl Drop for ReadOnlyFile {
        fn drop(&mut self) {
            if self.immutable {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&self.path)
                    .status();
            }
        }
    }

    #[test]
    fn a_full_disk_is_named_and_rolls_back() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(0);
        store.insert_recording(&r, None).expect("recording");
        // Cap the file at its current size: the next growth fails as a full disk would.
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .expect("page_count");
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .expect("cap");
        let err = store
            .insert_model_output(&output(&r, 1, 2_000))
            .expect_err("full");
        assert!(matches!(err, Error::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains(path.as_str()), "{err}");
        assert_eq!(store.info().expect("info").count("detection"), Some(0));
    }

    #[test]
    fn a_lock_held_too_long_is_named() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        store
            .conn
            .busy_timeout(Duration::from_millis(50))
            .expect("short timeout");
        let other = Connection::open(&path).expect("second connection");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("hold the write lock");
        let err = store
            .insert_recording(&recording(0), None)
            .expect_err("locked");
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        other.execute_batch("ROLLBACK").expect("release");
        store
            .insert_recording(&recording(0), None)
            .expect("now free");
    }

    #[test]
    fn read_only_refuses_a_missing_file_and_creates_nothing() {
        let (_d, path) = temp_path();
        let err = Store::open_read_only(&path).expect_err("missing");
        assert!(matches!(err, Error::Missing { .. }), "{err}");
        assert!(err.to_string().contains(path.as_str()), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn read_only_reads_a_file_only_acoupi_wrote() {
        let (_d, path) = temp_path();
        written(&path);
        {
            // Strip our tables: what a file made by acoupi alone looks like.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "DROP TABLE acoupi_rs_recording; DROP TABLE acoupi_rs_model_output; \
                 DROP TABLE acoupi_rs_schema; PRAGMA journal_mode = DELETE;",
            )
            .expect("strip");
        }
        let before = std::fs::read(&path).expect("read");
        let store = Store::open_read_only(&path).expect("open");
        let got = store.recordings(&Filter::default()).expect("query");
        assert_eq!(got.len(), 50);
        assert_eq!(
            got[0].recording.time_expansion, 1.0,
            "acoupi does not keep it"
        );
        assert_eq!(got[0].task_id, None);
        assert_eq!(store.info().expect("info").schema_version, 0);
        drop(store);
        assert_eq!(std::fs::read(&path).expect("read"), before, "file modified");
    }

    #[test]
    fn a_plain_sqlite_file_is_not_a_store() {
        let (_d, path) = temp_path();
        Connection::open(&path)
            .expect("create")
            .execute_batch("CREATE TABLE other (x)")
            .expect("table");
        let err = Store::open_read_only(&path).expect_err("not a store");
        assert!(
            matches!(
                err,
                Error::NotAStore {
                    table: "deployment",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn three_processes_worth_of_connections_open_and_write_one_new_file() {
        let (_d, path) = temp_path();
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut store = Store::open(&path).expect("open concurrently");
                    for i in 0..20 {
                        let r = recording(w * 100 + i);
                        store.insert_recording(&r, None).expect("recording");
                        store
                            .insert_model_output(&output(&r, u128::from(w * 100 + i), 3))
                            .expect("output");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("a writer panicked");
        }
        let info = Store::open_read_only(&path)
            .expect("open")
            .info()
            .expect("info");
        assert_eq!(info.count("model_output"), Some(60));
        assert_eq!(info.count("detection"), Some(180));
        assert!(info.is_ok());
    }

    #[test]
    fn a_store_is_send() {
        fn send<T: Send>() {}
        send::<Store>();
    }
}
