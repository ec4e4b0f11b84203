//! What the pipeline did lately: the counts a heartbeat reports and the predicted tags a
//! summary digests.
//!
//! In: the [`ActivityMark`] the previous heartbeat took (or none), the recordings folder; or a
//! time window. Out: [`Activity`]: recordings, detections and kept recordings stored since
//! that mark, with the mark to hand to the next heartbeat; or every predicted tag of the model
//! outputs made in the window.
//!
//! Counts go by position, not by time. A recording's time is its start, written when it ends,
//! and the `record` and `heartbeat` tasks fire on the same aligned slots, so a window on
//! `recording.datetime` would miss the recording in progress at every heartbeat. Rows are
//! appended and never deleted (acoupi deletes none), so the last `rowid` of `recording` and
//! `detection` marks what a heartbeat saw, and the next counts the rows after it: each row is
//! counted once, by the first heartbeat after it was stored. A recording is kept when file
//! management moves it under the recordings folder, an update rather than a new row; the rows
//! with a path there (deleted ones keep their last path) only ever grow, so the kept count
//! since the mark is their number now less their number then.

use camino::Utf8Path;
use jiff::Timestamp;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::staging::range_under;
use super::{Error, Store};
use crate::spec::data::{PredictedTag, Tag};
use crate::spec::isotime;

/// Where the store's counts stood when a heartbeat looked, so the next counts what came after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityMark {
    /// The last `recording` row then (its SQLite `rowid`; 0 for none).
    pub recording_row: i64,
    /// The last `detection` row then.
    pub detection_row: i64,
    /// How many recordings had been kept then.
    pub kept: u64,
}

/// What the store gained since a mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Recordings stored.
    pub recordings: u64,
    /// Detections stored.
    pub detections: u64,
    /// Recordings kept (moved under the recordings folder).
    pub kept_recordings: u64,
    /// Where the counts stand now: the mark for the next call.
    pub mark: ActivityMark,
}

impl Store {
    /// What was stored and kept (under `recordings`, the program's recordings folder) since
    /// `previous`; since the store began when there is no mark, or when the store holds fewer
    /// rows than the mark says (the file was replaced). One read snapshot: the counts and the
    /// new mark agree.
    ///
    /// Costs: the new rows of `recording` and `detection`, and one pass over the recording
    /// paths under `recordings` in acoupi's unique index on `recording.path`.
    pub fn activity_since(
        &self,
        previous: Option<&ActivityMark>,
        recordings: &Utf8Path,
    ) -> Result<Activity, Error> {
        let prev = previous.copied().unwrap_or_default();
        let (from, to) = range_under(recordings);
        let run = || -> rusqlite::Result<Activity> {
            // A deferred transaction: every statement below reads the same snapshot.
            let tx = self.conn.unchecked_transaction()?;
            let rows_after = |table: &str, mark: i64| -> rusqlite::Result<(u64, i64)> {
                let last: i64 = tx
                    .prepare_cached(&format!("SELECT COALESCE(MAX(rowid), 0) FROM {table}"))?
                    .query_row([], |r| r.get(0))?;
                let after = if last < mark { 0 } else { mark };
                let n: i64 = tx
                    .prepare_cached(&format!(
                        "SELECT COUNT(*) FROM {table} WHERE rowid > ?1 AND rowid <= ?2"
                    ))?
                    .query_row(params![after, last], |r| r.get(0))?;
                Ok((n.unsigned_abs(), last))
            };
            let (recordings, recording_row) = rows_after("recording", prev.recording_row)?;
            let (detections, detection_row) = rows_after("detection", prev.detection_row)?;
            let kept: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM recording WHERE path >= ?1 AND path < ?2")?
                .query_row(params![from, to], |r| r.get(0))?;
            let kept = kept.unsigned_abs();
            Ok(Activity {
                recordings,
                detections,
                kept_recordings: kept.checked_sub(prev.kept).unwrap_or(kept),
                mark: ActivityMark {
                    recording_row,
                    detection_row,
                    kept,
                },
            })
        };
        run().map_err(|e| self.error(e))
    }

    /// Every predicted tag of the detections of the model outputs made after `after` and at
    /// or before `before`, in the order they were stored. Times compare as acoupi compares
    /// them, as `isoformat()` text on `model_output.created_on` (acoupi's summarisers take
    /// both ends; this window leaves out its start, so back-to-back windows share no output).
    pub fn predicted_tags_between(
        &self,
        after: Timestamp,
        before: Timestamp,
    ) -> Result<Vec<PredictedTag>, Error> {
        let run = || -> rusqlite::Result<Vec<PredictedTag>> {
            // CROSS JOIN keeps this join order: the window through acoupi's index on
            // `created_on`, then its indexes down to the tags. Left to itself, SQLite walks
            // the whole `predicted_tag` table in `id` order to save the final sort.
            let mut stmt = self.conn.prepare_cached(
                "SELECT pt.key, pt.value, pt.confidence_score FROM model_output AS mo
                 CROSS JOIN detection AS d ON d.model_output_id = mo.id
                 CROSS JOIN predicted_tag AS pt ON pt.detection_id = d.id
                 WHERE mo.created_on > ?1 AND mo.created_on <= ?2
                 ORDER BY pt.id",
            )?;
            let rows = stmt.query_map(
                params![isotime::isoformat(after), isotime::isoformat(before)],
                |r| {
                    Ok(PredictedTag {
                        tag: Tag {
                            key: r.get(0)?,
                            value: r.get(1)?,
                        },
                        confidence_score: r.get(2)?,
                    })
                },
            )?;
            rows.collect()
        };
        run().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::store::fixtures::{output, recording, temp_path};

    const KEPT: &str = "/data/recordings";

    fn keep(store: &mut Store, i: u32) {
        let id = recording(i).id;
        store
            .set_recording_path(id, &Utf8Path::new(KEPT).join(format!("2024/01/05/{i}.wav")))
            .expect("kept");
    }

    #[test]
    fn counts_are_what_came_after_the_mark() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let kept = Utf8Path::new(KEPT);
        let empty = store.activity_since(None, kept).expect("activity");
        assert_eq!(empty, Activity::default());

        for i in 0..3 {
            store.insert_recording(&recording(i), None).expect("rec");
        }
        for i in 0..2 {
            store
                .insert_model_output(&output(&recording(i), 100 + u128::from(i), 3))
                .expect("output");
        }
        keep(&mut store, 0);
        keep(&mut store, 1);
        let first = store.activity_since(None, kept).expect("activity");
        assert_eq!(
            (first.recordings, first.detections, first.kept_recordings),
            (3, 6, 2)
        );
        assert_eq!(first.mark.kept, 2);

        // One recording made, stored with two detections and kept; an earlier one kept now;
        // a kept one deleted by retention (kept once, counted once).
        store.insert_recording(&recording(3), None).expect("rec");
        store
            .insert_model_output(&output(&recording(3), 103, 2))
            .expect("output");
        keep(&mut store, 3);
        keep(&mut store, 2);
        store
            .mark_recording_deleted(recording(0).id, recording(9).created_on)
            .expect("deleted");
        let second = store
            .activity_since(Some(&first.mark), kept)
            .expect("activity");
        assert_eq!(
            (second.recordings, second.detections, second.kept_recordings),
            (1, 2, 2)
        );
        let third = store
            .activity_since(Some(&second.mark), kept)
            .expect("activity");
        assert_eq!(
            (third.recordings, third.detections, third.kept_recordings),
            (0, 0, 0)
        );
        assert_eq!(third.mark, second.mark);

        // A mark past the store's rows: the file was replaced, so everything counts.
        let stale = ActivityMark {
            recording_row: 1000,
            detection_row: 1000,
            kept: 1000,
        };
        let fresh = store.activity_since(Some(&stale), kept).expect("activity");
        assert_eq!(
            (fresh.recordings, fresh.detections, fresh.kept_recordings),
            (4, 8, 4)
        );
        // Recordings kept elsewhere are not under this folder.
        let other = store
            .activity_since(None, Utf8Path::new("/data/rec"))
            .expect("activity");
        assert_eq!(other.kept_recordings, 0);
    }

    #[test]
    fn predicted_tags_are_those_of_outputs_inside_the_window() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let mut times = Vec::new();
        for i in 0..3 {
            let r = recording(i);
            store.insert_recording(&r, None).expect("rec");
            let o = output(&r, 200 + u128::from(i), 2);
            times.push(o.created_on);
            store.insert_model_output(&o).expect("output");
        }
        // Each output: detection 0 with two tags, detection 1 with one.
        let values = |after: Timestamp, before: Timestamp| -> Vec<(String, f64)> {
            store
                .predicted_tags_between(after, before)
                .expect("tags")
                .into_iter()
                .map(|t| (t.tag.value, t.confidence_score))
                .collect()
        };
        let all = values(times[0] - SignedDuration::from_secs(1), times[2]);
        assert_eq!(all.len(), 9, "{all:?}");
        assert_eq!(
            all[..3],
            [
                ("Pipistrellus pipistrellus".to_owned(), 0.8),
                ("echolocation".to_owned(), 0.5),
                ("Myotis".to_owned(), 0.3)
            ]
        );
        // The start is left out, the end taken in.
        assert_eq!(values(times[0], times[1]).len(), 3);
        assert_eq!(values(times[0], times[2]).len(), 6);
        assert!(values(times[2], times[2] + SignedDuration::from_secs(60)).is_empty());
        let micro = SignedDuration::from_micros(1);
        assert_eq!(values(times[1] - micro, times[1]).len(), 3);
        assert!(values(times[1] - micro * 2, times[1] - micro).is_empty());
    }
}
