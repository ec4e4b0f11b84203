//! Recordings waiting in staging for file management, and what their detectors made of them.
//!
//! In: recordings stored by the recorders (marked pending), detection failures, model outputs.
//! Out: the pending recordings, oldest first, and each one's [`DetectionState`]: the best
//! score per detector that stored an output and the detectors that failed for good. Keeping or deleting a recording ends its pending state
//! (`set_recording_path`, `mark_recording_deleted`).
//!
//! The `acoupi_rs_pending` table holds only what waits, so a sensor with a million recordings
//! reads a handful of rows per run; acoupi's `recording` table is never scanned.

use camino::Utf8Path;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::recordings::{RawRecording, SELECT};
use super::{Error, Store, StoredRecording};
use crate::spec::isotime;

/// What the detectors made of one recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectionState {
    /// Each detector that stored an output, with its best detection score (`None` when it
    /// found nothing), in detector name order.
    pub outputs: Vec<(String, Option<f64>)>,
    /// Each detector that failed for good on it, with the error.
    pub failures: Vec<(String, String)>,
}

impl Store {
    /// Marks recording `id` as waiting in staging for file management.
    pub fn mark_pending(&mut self, id: Uuid) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT INTO acoupi_rs_pending (recording_id) VALUES (?1) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute([id.as_bytes().as_slice()]))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// The recordings waiting in staging, oldest first.
    pub fn pending_recordings(&self) -> Result<Vec<StoredRecording>, Error> {
        let sql = format!(
            "{SELECT} JOIN acoupi_rs_pending AS p ON p.recording_id = r.id ORDER BY r.datetime"
        );
        let mut raw = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.error(e))?;
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                raw.push(RawRecording::read(row).map_err(|e| self.error(e))?);
            }
        }
        raw.into_iter().map(|r| r.decode(self)).collect()
    }

    /// The recording whose audio is, or was first written, at `path`: how file management
    /// matches a staged file with its row, before and after the row was moved on.
    pub fn recording_of_staged_file(
        &self,
        path: &Utf8Path,
    ) -> Result<Option<StoredRecording>, Error> {
        if let Some(r) = self.recording_at_path(path)? {
            return Ok(Some(r));
        }
        // A second indexed lookup: an `OR` across the joined tables would scan `recording`.
        let sql = format!(
            "{SELECT} WHERE r.id = (SELECT recording_id FROM acoupi_rs_recording \
             WHERE staged_path = ?1 LIMIT 1)"
        );
        let raw = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([path.as_str()], RawRecording::read).optional())
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }

    /// The recordings kept under `dir` (not deleted), oldest first: id, path and start, with
    /// the values of tag `tag_key` their detections carry (for retention).
    #[allow(clippy::type_complexity)]
    pub fn kept_recordings(
        &self,
        dir: &Utf8Path,
        tag_key: Option<&str>,
    ) -> Result<Vec<(Uuid, camino::Utf8PathBuf, jiff::Timestamp, Vec<String>)>, Error> {
        let (prefix, end) = range_under(dir);
        let run = || -> rusqlite::Result<Vec<(Uuid, camino::Utf8PathBuf, String, Vec<String>)>> {
            let mut out = Vec::new();
            let mut index = std::collections::HashMap::new();
            let mut stmt = self.conn.prepare_cached(
                "SELECT r.id, r.path, r.datetime FROM recording AS r
                 LEFT JOIN acoupi_rs_recording AS x ON x.recording_id = r.id
                 WHERE r.path >= ?1 AND r.path < ?2 AND x.deleted_on IS NULL
                 ORDER BY r.datetime",
            )?;
            let mut rows = stmt.query([prefix.as_str(), end.as_str()])?;
            while let Some(row) = rows.next()? {
                let id: Uuid = row.get(0)?;
                index.insert(id, out.len());
                out.push((
                    id,
                    camino::Utf8PathBuf::from(row.get::<_, String>(1)?),
                    row.get(2)?,
                    Vec::new(),
                ));
            }
            if let Some(key) = tag_key {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT DISTINCT mo.recording_id, t.value FROM predicted_tag AS t
                     JOIN detection AS d ON d.id = t.detection_id
                     JOIN model_output AS mo ON mo.id = d.model_output_id
                     WHERE t.key = ?1",
                )?;
                let mut rows = stmt.query([key])?;
                while let Some(row) = rows.next()? {
                    let id: Uuid = row.get(0)?;
                    if let Some(&i) = index.get(&id) {
                        out[i].3.push(row.get(1)?);
                    }
                }
            }
            Ok(out)
        };
        run()
            .map_err(|e| self.error(e))?
            .into_iter()
            .map(|(id, path, start, tags)| {
                Ok((id, path, self.time(&start, "recording.datetime")?, tags))
            })
            .collect()
    }

    /// How many recordings kept under `dir` were deleted (by retention) at or after `since`.
    pub fn deleted_under_since(
        &self,
        dir: &Utf8Path,
        since: jiff::Timestamp,
    ) -> Result<u64, Error> {
        let (prefix, end) = range_under(dir);
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM recording AS r
                 JOIN acoupi_rs_recording AS x ON x.recording_id = r.id
                 WHERE r.path >= ?1 AND r.path < ?2 AND x.deleted_on >= ?3",
                params![prefix, end, isotime::isoformat(since)],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))?;
        Ok(n.max(0) as u64)
    }

    /// How many recordings wait in staging.
    pub fn pending_count(&self) -> Result<u64, Error> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM acoupi_rs_pending", [], |r| r.get(0))
            .map_err(|e| self.error(e))?;
        Ok(n.max(0) as u64)
    }

    /// Records that `detector` failed for good on recording `id` (kept by file management in
    /// the `unanalysed` folder). The first failure of a detector is kept.
    pub fn record_detection_failure(
        &mut self,
        id: Uuid,
        detector: &str,
        error: &str,
    ) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT INTO acoupi_rs_detection_failure (recording_id, detector, error, failed_on)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.as_bytes().as_slice(),
                    detector,
                    error,
                    isotime::isoformat(jiff::Timestamp::now())
                ])
            })
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// What the detectors made of each pending recording (those with no output and no
    /// failure are absent): one pass over the pending list, not a query per recording.
    pub fn pending_detection_states(
        &self,
    ) -> Result<std::collections::HashMap<Uuid, DetectionState>, Error> {
        let mut states: std::collections::HashMap<Uuid, DetectionState> =
            std::collections::HashMap::new();
        let run =
            |states: &mut std::collections::HashMap<Uuid, DetectionState>| -> rusqlite::Result<()> {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT mo.recording_id, mo.model_name, MAX(d.detection_score)
                 FROM acoupi_rs_pending AS p
                 JOIN model_output AS mo ON mo.recording_id = p.recording_id
                 LEFT JOIN detection AS d ON d.model_output_id = mo.id
                 GROUP BY mo.recording_id, mo.model_name ORDER BY mo.model_name",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let id: Uuid = row.get(0)?;
                    states
                        .entry(id)
                        .or_default()
                        .outputs
                        .push((row.get(1)?, row.get(2)?));
                }
                let mut stmt = self.conn.prepare_cached(
                    "SELECT f.recording_id, f.detector, f.error
                 FROM acoupi_rs_pending AS p
                 JOIN acoupi_rs_detection_failure AS f ON f.recording_id = p.recording_id
                 ORDER BY f.detector",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let id: Uuid = row.get(0)?;
                    states
                        .entry(id)
                        .or_default()
                        .failures
                        .push((row.get(1)?, row.get(2)?));
                }
                Ok(())
            };
        run(&mut states).map_err(|e| self.error(e))?;
        Ok(states)
    }

    /// How many recordings of recording `id`'s deployment started before it (for `keep-if
    /// every`; it reads the deployment's recordings, so it is asked only when that rule is
    /// used).
    pub fn ordinal(&self, id: Uuid) -> Result<u64, Error> {
        let n: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM recording AS o, recording AS r
                 WHERE r.id = ?1 AND o.deployment_id = r.deployment_id
                   AND o.datetime < r.datetime",
            )
            .and_then(|mut s| {
                s.query_row([id.as_bytes().as_slice()], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }
}

/// The paths under `dir` as a half-open text range `[dir/, dir0)` (`0` follows `/`), which
/// SQLite answers through the index on `recording.path`.
pub(super) fn range_under(dir: &Utf8Path) -> (String, String) {
    let base = dir.as_str().trim_end_matches('/');
    (format!("{base}/"), format!("{base}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_under_a_folder_holds_its_files_and_nothing_beside_it() {
        let (from, to) = range_under(Utf8Path::new("/data/recordings/"));
        let inside = |p: &str| from.as_str() <= p && p < to.as_str();
        assert!(inside("/data/recordings/2026/06/01/a.wav"));
        assert!(inside("/data/recordings/unanalysed/a.wav"));
        assert!(!inside("/data/recordings"));
        assert!(!inside("/data/recordings-old/a.wav"));
        assert!(!inside("/data/recordings2/a.wav"));
        assert!(!inside("/data/staging/a.wav"));
    }
}
