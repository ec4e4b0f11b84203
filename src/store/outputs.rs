//! Model outputs with their detections and tags: the `model_output`, `detection` and
//! `predicted_tag` tables.
//!
//! In: a `spec::data::ModelOutput`. Out: its rows, written in one transaction (all or none,
//! once per output id), with a box's coordinates split into acoupi's four columns; and the
//! loaders that put detections and tags back together for [`query`](super::query).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Row, TransactionBehavior, params};
use uuid::Uuid;

use super::{Error, Inserted, Store};
use crate::spec::data::{BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Tag};
use crate::spec::isotime;

/// Tags by detection id.
pub(super) type TagMap = HashMap<Uuid, Vec<PredictedTag>>;

/// SQLite's bound-variable budget per statement, as acoupi chunks it.
const CHUNK: usize = 900;

impl Store {
    /// Stores `output`, its detections and their tags in one transaction; nothing if an output
    /// with its id is already stored. Its recording must be stored first, as in acoupi.
    pub fn insert_model_output(&mut self, output: &ModelOutput) -> Result<Inserted, Error> {
        let path = self.path.clone();
        let err = |e| super::classify(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let id = output.id.as_bytes().as_slice();
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM model_output WHERE id = ?1)")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .map_err(err)?;
        if exists {
            return Ok(Inserted {
                id: output.id,
                created: false,
            });
        }
        let recording = output.recording.id;
        let known: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM recording WHERE id = ?1)")
            .and_then(|mut s| s.query_row([recording.as_bytes().as_slice()], |r| r.get(0)))
            .map_err(err)?;
        if !known {
            return Err(Error::UnknownRecording {
                path,
                id: recording,
            });
        }
        insert(&tx, output).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Inserted {
            id: output.id,
            created: true,
        })
    }
}

/// What a stored model output holds, in brief.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSummary {
    /// The model output's id.
    pub id: Uuid,
    /// How many detections it holds.
    pub detections: u32,
    /// The best detection score, when it holds any.
    pub max_score: Option<f64>,
}

impl Store {
    /// The first stored output of model `name_model` on recording `recording`, in brief: how
    /// a redelivered detection finds what an earlier delivery stored.
    pub fn output_summary(
        &self,
        recording: Uuid,
        name_model: &str,
    ) -> Result<Option<OutputSummary>, Error> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT mo.id, COUNT(d.id), MAX(d.detection_score) FROM model_output AS mo \
                 LEFT JOIN detection AS d ON d.model_output_id = mo.id \
                 WHERE mo.recording_id = ?1 AND mo.model_name = ?2 \
                 GROUP BY mo.id ORDER BY mo.rowid LIMIT 1",
            )
            .and_then(|mut s| {
                let mut rows = s.query(params![recording.as_bytes().as_slice(), name_model])?;
                match rows.next()? {
                    Some(r) => Ok(Some((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                    ))),
                    None => Ok(None),
                }
            })
            .map_err(|e| self.error(e))?;
        found
            .map(|(id, n, max_score)| {
                Ok(OutputSummary {
                    id: self.uuid(&id, "model_output.id")?,
                    detections: u32::try_from(n).unwrap_or(u32::MAX),
                    max_score,
                })
            })
            .transpose()
    }
}

fn insert(conn: &Connection, o: &ModelOutput) -> rusqlite::Result<()> {
    let output_id = o.id.as_bytes().as_slice();
    conn.prepare_cached(
        "INSERT INTO model_output (id, model_name, recording_id, created_on) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        output_id,
        o.name_model,
        o.recording.id.as_bytes().as_slice(),
        isotime::isoformat(o.created_on),
    ])?;
    let mut detection = conn.prepare_cached(
        "INSERT INTO detection (id, prediction_type, start_time_s, end_time_s, low_freq_hz,
             high_freq_hz, detection_score, model_output_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut tag = conn.prepare_cached(
        "INSERT INTO predicted_tag (key, value, confidence_score, detection_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut tag_ids: Option<(i64, i64)> = None;
    for d in &o.detections {
        let c = d.location.map(|b| b.coordinates);
        detection.execute(params![
            d.id.as_bytes().as_slice(),
            d.prediction_type.as_str(),
            c.map(|c| c[0]),
            c.map(|c| c[2]),
            c.map(|c| c[1]),
            c.map(|c| c[3]),
            d.detection_score,
            output_id,
        ])?;
        for t in &d.tags {
            tag.execute(params![
                t.tag.key,
                t.tag.value,
                t.confidence_score,
                d.id.as_bytes().as_slice()
            ])?;
            let id = conn.last_insert_rowid();
            tag_ids = Some(tag_ids.map_or((id, id), |(first, _)| (first, id)));
        }
    }
    conn.prepare_cached(
        "INSERT INTO acoupi_rs_model_output (model_output_id, first_tag_id, last_tag_id)
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        output_id,
        tag_ids.map(|t| t.0),
        tag_ids.map(|t| t.1)
    ])?;
    Ok(())
}

/// The detection columns [`RawDetection::read_at`] reads, for table alias `d`.
pub(super) const DETECTION_COLUMNS: &str = "d.id, d.prediction_type, d.start_time_s, \
    d.end_time_s, d.low_freq_hz, d.high_freq_hz, d.detection_score";

/// A detection row before its id and type are decoded.
pub(super) struct RawDetection {
    pub(super) id: Uuid,
    prediction_type: String,
    start: Option<f64>,
    end: Option<f64>,
    low: Option<f64>,
    high: Option<f64>,
    score: f64,
}

impl RawDetection {
    /// Reads [`DETECTION_COLUMNS`] starting at column `at`.
    pub(super) fn read_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(RawDetection {
            id: row.get(at)?,
            prediction_type: row.get(at + 1)?,
            start: row.get(at + 2)?,
            end: row.get(at + 3)?,
            low: row.get(at + 4)?,
            high: row.get(at + 5)?,
            score: row.get(at + 6)?,
        })
    }

    /// The detection, with its tags taken from `tags`. Like acoupi, a box needs all four
    /// coordinates; any missing one means no location.
    pub(super) fn decode(self, store: &Store, tags: &mut TagMap) -> Result<Detection, Error> {
        let prediction_type =
            PredictionType::from_name(&self.prediction_type).ok_or_else(|| Error::BadValue {
                path: store.path.clone(),
                detail: format!(
                    "`detection.prediction_type` is `{}`, not presence, sequence or event",
                    self.prediction_type
                ),
            })?;
        let location = match (self.start, self.low, self.end, self.high) {
            (Some(s), Some(l), Some(e), Some(h)) => Some(BoundingBox::new(s, l, e, h)),
            _ => None,
        };
        Ok(Detection {
            id: self.id,
            prediction_type,
            location,
            detection_score: self.score,
            tags: tags.remove(&self.id).unwrap_or_default(),
        })
    }
}

impl Store {
    /// The tags of the detections `detections` of the model outputs `outputs`, each list in
    /// insertion order (acoupi's `rowid` order). May hold the tags of other detections of the
    /// same outputs too.
    ///
    /// Outputs we wrote have their tag id range in `acoupi_rs_model_output`: consecutive
    /// ranges are merged and read in sequential scans. The detections of outputs acoupi wrote
    /// are looked up through its `detection_id` index.
    pub(super) fn tags_of(
        &self,
        outputs: &[Vec<u8>],
        detections: &[(&[u8], Uuid)],
    ) -> Result<TagMap, Error> {
        let mut ranged = HashSet::with_capacity(outputs.len());
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        self.in_chunks(
            outputs,
            "SELECT model_output_id, first_tag_id, last_tag_id FROM acoupi_rs_model_output \
             WHERE model_output_id IN ({})",
            |row| {
                ranged.insert(row.get::<_, Vec<u8>>(0)?);
                if let (Some(first), Some(last)) = (row.get(1)?, row.get(2)?) {
                    ranges.push((first, last));
                }
                Ok(())
            },
        )?;
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        let mut out = TagMap::with_capacity(detections.len());
        let mut push = |row: &Row<'_>| -> rusqlite::Result<()> {
            out.entry(row.get(0)?).or_default().push(PredictedTag {
                tag: Tag {
                    key: row.get(1)?,
                    value: row.get(2)?,
                },
                confidence_score: row.get(3)?,
            });
            Ok(())
        };
        let scan = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT detection_id, key, value, confidence_score FROM predicted_tag \
                 WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
            )?;
            for (first, last) in merged {
                let mut rows = stmt.query([first, last])?;
                while let Some(row) = rows.next()? {
                    push(row)?;
                }
            }
            Ok(())
        };
        scan().map_err(|e| self.error(e))?;
        let rest: Vec<Vec<u8>> = detections
            .iter()
            .filter(|(output, _)| !ranged.contains(*output))
            .map(|(_, detection)| detection.as_bytes().to_vec())
            .collect();
        self.in_chunks(
            &rest,
            "SELECT detection_id, key, value, confidence_score FROM predicted_tag \
             WHERE detection_id IN ({}) ORDER BY id",
            push,
        )?;
        Ok(out)
    }

    /// The detections of the model outputs `ids`, with their tags, by output id.
    pub(super) fn detections_of(
        &self,
        ids: &[Vec<u8>],
    ) -> Result<HashMap<Vec<u8>, Vec<Detection>>, Error> {
        let mut raw = Vec::new();
        let sql = format!(
            "SELECT d.model_output_id, {DETECTION_COLUMNS} FROM detection AS d \
             WHERE d.model_output_id IN ({{}}) ORDER BY d.rowid"
        );
        self.in_chunks(ids, &sql, |row| {
            raw.push((row.get::<_, Vec<u8>>(0)?, RawDetection::read_at(row, 1)?));
            Ok(())
        })?;
        let pairs: Vec<(&[u8], Uuid)> = raw.iter().map(|(o, d)| (o.as_slice(), d.id)).collect();
        let mut tags = self.tags_of(ids, &pairs)?;
        let mut out: HashMap<Vec<u8>, Vec<Detection>> = HashMap::new();
        for (output, d) in raw {
            out.entry(output)
                .or_default()
                .push(d.decode(self, &mut tags)?);
        }
        Ok(out)
    }

    /// Runs `sql`, whose `{}` is replaced by placeholders, once per chunk of `ids`.
    pub(super) fn in_chunks(
        &self,
        ids: &[Vec<u8>],
        sql: &str,
        mut each: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), Error> {
        for chunk in ids.chunks(CHUNK) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut run = || -> rusqlite::Result<()> {
                let mut stmt = self
                    .conn
                    .prepare_cached(&sql.replace("{}", &placeholders))?;
                let mut rows = stmt.query(rusqlite::params_from_iter(chunk))?;
                while let Some(row) = rows.next()? {
                    each(row)?;
                }
                Ok(())
            };
            run().map_err(|e| self.error(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filter;
    use crate::store::fixtures::{output, recording, temp_path};

    #[test]
    fn an_output_reads_back_whole_and_is_stored_once() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(1);
        store.insert_recording(&r, None).expect("recording");
        let o = output(&r, 77, 5);
        assert!(store.insert_model_output(&o).expect("insert").created);
        assert!(!store.insert_model_output(&o).expect("again").created);
        let got = store.model_outputs(&Filter::default()).expect("query");
        assert_eq!(got, vec![o]);
        let info = store.info().expect("info");
        assert_eq!(info.count("detection"), Some(5));
        assert_eq!(info.count("predicted_tag"), Some(8));
    }

    #[test]
    fn tags_read_back_whether_we_or_acoupi_wrote_the_output() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let mut written = Vec::new();
        for i in 0..4 {
            let r = recording(i);
            store.insert_recording(&r, None).expect("recording");
            let o = output(&r, 10 + u128::from(i), 3);
            store.insert_model_output(&o).expect("output");
            written.push(o);
        }
        // Outputs 1 and 2 as acoupi leaves them: no tag range of ours.
        for o in &written[1..3] {
            store
                .conn
                .execute(
                    "DELETE FROM acoupi_rs_model_output WHERE model_output_id = ?1",
                    [o.id.as_bytes().as_slice()],
                )
                .expect("forget the range");
        }
        written.reverse();
        assert_eq!(
            store.model_outputs(&Filter::default()).expect("query"),
            written
        );
        let found = store.detections(&Filter::default()).expect("query");
        let expected: Vec<_> = written.iter().flat_map(|o| o.detections.clone()).collect();
        let got: Vec<_> = found.into_iter().map(|f| f.detection).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn an_unknown_recording_is_refused() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let o = output(&recording(1), 77, 2);
        let err = store.insert_model_output(&o).expect_err("no recording");
        assert!(matches!(err, Error::UnknownRecording { id, .. } if id == o.recording.id));
        assert!(err.to_string().contains(path.as_str()), "{err}");
    }

    #[test]
    fn a_failure_mid_insert_leaves_nothing() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(1);
        store.insert_recording(&r, None).expect("recording");
        let mut o = output(&r, 77, 4);
        // The fourth detection repeats the second's id: its insert fails after the output row,
        // three detections and their tags are written.
        o.detections[3].id = o.detections[1].id;
        let err = store
            .insert_model_output(&o)
            .expect_err("duplicate detection id");
        assert!(matches!(err, Error::Constraint { .. }), "{err}");
        let info = store.info().expect("info");
        for table in ["model_output", "detection", "predicted_tag"] {
            assert_eq!(info.count(table), Some(0), "{table} has rows");
        }
        // And the store still works.
        o.detections[3].id = uuid::Uuid::from_u128(999);
        assert!(store.insert_model_output(&o).expect("insert").created);
    }
}
