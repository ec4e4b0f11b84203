//! Recordings: acoupi's `recording` table plus our `acoupi_rs_recording` side row.
//!
//! In: a `spec::data::Recording` and the id of the task that made it; later its new path or its
//! deletion. Out: the row, written once however often the task is delivered (idempotent per
//! task id and per recording id), and [`StoredRecording`]s read back with what acoupi's table
//! cannot hold: task id, time expansion, staging path, deletion time.

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use uuid::Uuid;

use super::deployments::{self, RawDeployment};
use super::{Error, Store};
use crate::spec::data::Recording;
use crate::spec::isotime;

/// What an idempotent insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The id of the row: the new one, or the one already stored for this task or id.
    pub id: Uuid,
    /// `false` when the row was already there and nothing was written.
    pub created: bool,
}

/// A recording as stored, with what acoupi's schema does not keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecording {
    /// The recording, in acoupi's shape.
    #[serde(flatten)]
    pub recording: Recording,
    /// The id of the task that recorded it, when it came through a queue.
    pub task_id: Option<String>,
    /// Where it was first written, before file management moved it.
    pub staged_path: Option<Utf8PathBuf>,
    /// When file management deleted its audio, if it did.
    pub deleted_on: Option<Timestamp>,
}

/// Selects a recording with its deployment and side row; [`RawRecording::read`] reads it.
pub(super) const SELECT: &str = "
SELECT r.id, r.path, r.datetime, r.duration_s, r.samplerate_hz, r.audio_channels,
       d.id, d.name, d.latitude, d.longitude, d.started_on, d.ended_on,
       x.task_id, x.time_expansion, x.staged_path, x.deleted_on
FROM recording AS r
JOIN deployment AS d ON d.id = r.deployment_id
LEFT JOIN acoupi_rs_recording AS x ON x.recording_id = r.id";

impl Store {
    /// Stores `recording` (and its deployment, when missing) unless it is already stored under
    /// `task_id` or under its own id; either way returns the stored recording's id.
    ///
    /// A redelivered task therefore never makes a second row, even if it minted a new
    /// recording id on its second run.
    pub fn insert_recording(
        &mut self,
        recording: &Recording,
        task_id: Option<&str>,
    ) -> Result<Inserted, Error> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| super::classify(&path, e))?;
        let inserted = insert(&tx, recording, task_id).map_err(|e| super::classify(&path, e))?;
        tx.commit().map_err(|e| super::classify(&path, e))?;
        Ok(inserted)
    }

    /// The recording with `id`, if stored.
    pub fn recording(&self, id: Uuid) -> Result<Option<StoredRecording>, Error> {
        let sql = format!("{SELECT} WHERE r.id = ?1");
        let raw = self
            .conn
            .query_row(&sql, [id.as_bytes().as_slice()], RawRecording::read)
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }

    /// The recording whose audio is at `path`, if one is stored (acoupi's schema makes paths
    /// unique and indexes them): how re-analysing a file finds the recording it was stored as.
    pub fn recording_at_path(&self, path: &Utf8Path) -> Result<Option<StoredRecording>, Error> {
        let sql = format!("{SELECT} WHERE r.path = ?1");
        let raw = self
            .conn
            .query_row(&sql, [path.as_str()], RawRecording::read)
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }

    /// The recording the task `task_id` stored, if it stored one: how a redelivered task
    /// finds the result of its earlier run.
    pub fn recording_for_task(&self, task_id: &str) -> Result<Option<StoredRecording>, Error> {
        let sql = format!("{SELECT} WHERE x.task_id = ?1");
        let raw = self
            .conn
            .query_row(&sql, [task_id], RawRecording::read)
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }

    /// Records that the audio of recording `id` now lives at `path` (acoupi's `recording.path`);
    /// in the same transaction, it stops waiting in staging.
    pub fn set_recording_path(&mut self, id: Uuid, path: &Utf8Path) -> Result<(), Error> {
        self.set_recording_paths(&[(id, path.to_owned())])
    }

    /// [`set_recording_path`](Self::set_recording_path) for many recordings, in one
    /// transaction: all or none.
    pub fn set_recording_paths(&mut self, moved: &[(Uuid, Utf8PathBuf)]) -> Result<(), Error> {
        self.update_and_unpend(
            moved.iter().map(|(id, p)| (*id, p.as_str().to_owned())),
            "UPDATE recording SET path = ?2 WHERE id = ?1",
        )
    }

    /// Records that the audio of recording `id` was deleted at `when`. The row stays (acoupi
    /// never deletes rows), with its last path; in the same transaction, it stops waiting in
    /// staging.
    pub fn mark_recording_deleted(&mut self, id: Uuid, when: Timestamp) -> Result<(), Error> {
        self.mark_recordings_deleted(&[id], when)
    }

    /// [`mark_recording_deleted`](Self::mark_recording_deleted) for many recordings, in one
    /// transaction: all or none.
    pub fn mark_recordings_deleted(&mut self, ids: &[Uuid], when: Timestamp) -> Result<(), Error> {
        let when = isotime::isoformat(when);
        self.update_and_unpend(
            ids.iter().map(|id| (*id, when.clone())),
            "INSERT INTO acoupi_rs_recording (recording_id, deleted_on)
             SELECT id, ?2 FROM recording WHERE id = ?1
             ON CONFLICT (recording_id) DO UPDATE SET deleted_on = excluded.deleted_on",
        )
    }

    /// Runs `sql` (parameters: an id, its value) for each pair and removes each recording from
    /// the pending list, in one transaction; an unknown id is an error and changes nothing.
    ///
    /// The commit is durable when this returns: file management removes files on the strength
    /// of it (a staged file once the store points at its kept copy, a file once its recording
    /// is marked deleted), and a power cut must not bring back a row pointing at a file that
    /// is gone. The store's other commits are `synchronous = NORMAL`, which fsyncs the log
    /// only at checkpoints; this one has the log fsynced at the commit (`FULL`).
    fn update_and_unpend(
        &mut self,
        rows: impl Iterator<Item = (Uuid, String)>,
        sql: &str,
    ) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e| super::classify(&path, e);
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        let updated = self.update_and_unpend_in_tx(rows, sql);
        let restored = self.conn.pragma_update(None, "synchronous", "NORMAL");
        updated?;
        restored.map_err(err)
    }

    /// [`update_and_unpend`](Self::update_and_unpend)'s transaction.
    fn update_and_unpend_in_tx(
        &mut self,
        rows: impl Iterator<Item = (Uuid, String)>,
        sql: &str,
    ) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e| super::classify(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut update = tx.prepare_cached(sql).map_err(err)?;
            let mut unpend = tx
                .prepare_cached("DELETE FROM acoupi_rs_pending WHERE recording_id = ?1")
                .map_err(err)?;
            for (id, value) in rows {
                let key = id.as_bytes().as_slice();
                if update.execute(params![key, value]).map_err(err)? == 0 {
                    return Err(Error::UnknownRecording { path, id });
                }
                unpend.execute([key]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

fn insert(conn: &Connection, r: &Recording, task_id: Option<&str>) -> rusqlite::Result<Inserted> {
    let id = r.id.as_bytes().as_slice();
    if let Some(task) = task_id {
        let existing: Option<Uuid> = conn
            .prepare_cached("SELECT recording_id FROM acoupi_rs_recording WHERE task_id = ?1")?
            .query_row([task], |row| row.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(Inserted { id, created: false });
        }
    }
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM recording WHERE id = ?1)")?
        .query_row([id], |row| row.get(0))?;
    if exists {
        // Stored before without this task id (by acoupi, or by a call without one): remember
        // the task now, so its next delivery is found by task id as well.
        conn.prepare_cached(
            "INSERT INTO acoupi_rs_recording (recording_id, task_id) VALUES (?1, ?2)
             ON CONFLICT (recording_id) DO UPDATE SET task_id = coalesce(task_id, excluded.task_id)",
        )?
        .execute(params![id, task_id])?;
        return Ok(Inserted {
            id: r.id,
            created: false,
        });
    }
    deployments::insert_if_missing(conn, &r.deployment)?;
    let datetime = free_datetime(conn, r.created_on)?;
    let path = r.path.as_ref().map(|p| p.as_str());
    conn.prepare_cached(
        "INSERT INTO recording
             (id, path, duration_s, samplerate_hz, audio_channels, datetime, deployment_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        path,
        r.duration,
        r.samplerate,
        r.audio_channels,
        datetime,
        r.deployment.id.as_bytes().as_slice(),
    ])?;
    conn.prepare_cached(
        "INSERT INTO acoupi_rs_recording (recording_id, task_id, time_expansion, staged_path)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, task_id, r.time_expansion, path])?;
    Ok(Inserted {
        id: r.id,
        created: true,
    })
}

/// How far [`free_datetime`] looks for a free microsecond.
const DATETIME_TRIES: i64 = 1_000;

/// `created_on` as acoupi writes it, moved on by a microsecond at a time past the recordings
/// already stored at that time: acoupi's schema makes `recording.datetime` unique, and two
/// files from two recorders started in the same second (analysed together by `acoupi
/// detect --store`), or written within the file system's timestamp granularity, would
/// otherwise refuse each other. Scheduled recordings never meet this.
fn free_datetime(conn: &Connection, created_on: Timestamp) -> rusqlite::Result<String> {
    let mut taken =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM recording WHERE datetime = ?1)")?;
    let mut t = created_on;
    for _ in 0..DATETIME_TRIES {
        let text = isotime::isoformat(t);
        if !taken.query_row([&text], |row| row.get::<_, bool>(0))? {
            return Ok(text);
        }
        t += jiff::SignedDuration::from_micros(1);
    }
    // Every microsecond of the next millisecond is taken: let the constraint say so.
    Ok(isotime::isoformat(created_on))
}

/// A row of [`SELECT`] before its ids and times are decoded.
pub(super) struct RawRecording {
    id: Vec<u8>,
    path: Option<String>,
    datetime: String,
    duration: f64,
    samplerate: u32,
    audio_channels: u32,
    deployment: RawDeployment,
    task_id: Option<String>,
    time_expansion: Option<f64>,
    staged_path: Option<String>,
    deleted_on: Option<String>,
}

impl RawRecording {
    /// Reads the columns of [`SELECT`] starting at column `at`.
    pub(super) fn read_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(RawRecording {
            id: row.get(at)?,
            path: row.get(at + 1)?,
            datetime: row.get(at + 2)?,
            duration: row.get(at + 3)?,
            samplerate: row.get(at + 4)?,
            audio_channels: row.get(at + 5)?,
            deployment: RawDeployment::read_at(row, at + 6)?,
            task_id: row.get(at + 12)?,
            time_expansion: row.get(at + 13)?,
            staged_path: row.get(at + 14)?,
            deleted_on: row.get(at + 15)?,
        })
    }

    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_at(row, 0)
    }

    pub(super) fn decode(self, store: &Store) -> Result<StoredRecording, Error> {
        Ok(StoredRecording {
            recording: Recording {
                created_on: store.time(&self.datetime, "recording.datetime")?,
                duration: self.duration,
                samplerate: self.samplerate,
                deployment: self.deployment.decode(store)?,
                path: self.path.map(Utf8PathBuf::from),
                audio_channels: self.audio_channels,
                time_expansion: self.time_expansion.unwrap_or(1.0),
                id: store.uuid(&self.id, "recording.id")?,
            },
            task_id: self.task_id,
            staged_path: self.staged_path.map(Utf8PathBuf::from),
            deleted_on: self
                .deleted_on
                .map(|t| store.time(&t, "acoupi_rs_recording.deleted_on"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{recording, t0, temp_path};

    #[test]
    fn a_recording_reads_back_with_what_acoupi_loses() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(1);
        let ins = store.insert_recording(&r, Some("task-1")).expect("insert");
        assert_eq!(
            ins,
            Inserted {
                id: r.id,
                created: true
            }
        );
        let got = store.recording(r.id).expect("query").expect("stored");
        assert_eq!(got.recording, r);
        assert_eq!(got.task_id.as_deref(), Some("task-1"));
        assert_eq!(got.staged_path, r.path);
        assert_eq!(got.deleted_on, None);
        assert_eq!(
            store.current_deployment().expect("query"),
            Some(r.deployment.clone()),
            "the recording's deployment was stored with it"
        );
    }

    #[test]
    fn recordings_made_in_the_same_microsecond_are_both_stored() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let a = recording(1);
        let mut b = recording(2);
        b.created_on = a.created_on;
        let mut c = recording(3);
        c.created_on = a.created_on;
        for r in [&a, &b, &c] {
            assert!(store.insert_recording(r, None).expect("insert").created);
        }
        let micros = |r: &Recording| {
            let got = store.recording(r.id).expect("query").expect("stored");
            (got.recording.created_on - a.created_on).as_micros()
        };
        assert_eq!([micros(&a), micros(&b), micros(&c)], [0, 1, 2]);
    }

    #[test]
    fn redelivery_never_makes_a_second_row() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(1);
        store.insert_recording(&r, Some("task-1")).expect("insert");
        // Same task, new recording id (the task ran again): the first row's id comes back.
        let mut again = recording(2);
        again.id = uuid::Uuid::from_u128(0xbeef);
        let ins = store
            .insert_recording(&again, Some("task-1"))
            .expect("again");
        assert_eq!(
            ins,
            Inserted {
                id: r.id,
                created: false
            }
        );
        // Same recording id, no task or another task.
        assert!(!store.insert_recording(&r, None).expect("again").created);
        assert!(
            !store
                .insert_recording(&r, Some("task-9"))
                .expect("again")
                .created
        );
        assert_eq!(store.info().expect("info").count("recording"), Some(1));
        assert_eq!(store.recording(again.id).expect("query"), None);
        // The task finds what its first delivery stored.
        let found = store.recording_for_task("task-1").expect("query");
        assert_eq!(found.map(|f| f.recording), Some(r));
        assert_eq!(store.recording_for_task("task-404").expect("query"), None);
    }

    #[test]
    fn path_and_deletion_are_updated_and_unknown_ids_refused() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(1);
        store.insert_recording(&r, None).expect("insert");
        store
            .set_recording_path(r.id, "/data/2024/01/05/1.wav".into())
            .expect("move");
        let when = t0() + jiff::SignedDuration::from_hours(1);
        store.mark_recording_deleted(r.id, when).expect("delete");
        let got = store.recording(r.id).expect("query").expect("stored");
        assert_eq!(
            got.recording.path.as_deref(),
            Some("/data/2024/01/05/1.wav".into())
        );
        assert_eq!(got.staged_path, r.path);
        assert_eq!(got.deleted_on, Some(when));
        let nobody = uuid::Uuid::from_u128(42);
        let err = store
            .set_recording_path(nobody, "/x.wav".into())
            .expect_err("unknown");
        assert!(matches!(err, Error::UnknownRecording { .. }), "{err}");
        let err = store
            .mark_recording_deleted(nobody, when)
            .expect_err("unknown");
        assert!(matches!(err, Error::UnknownRecording { .. }), "{err}");
        // The commits file management removes files on are fsynced (FULL); the store's
        // others, those refused included, go back to NORMAL (tests/durability.rs sees the
        // fsync itself).
        let synchronous: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(synchronous, 1, "NORMAL after the durable commits");
    }
}
