//! Reading the store back through one [`Filter`], for `acoupi db` and for tasks.
//!
//! In: a filter (time window, minimum score, a tag, a detector, a row limit). Out: recordings,
//! model outputs or detections, newest first. Times filter as acoupi's queries do: recordings
//! on their start (`recording.datetime`), model outputs and detections on when the model ran
//! (`model_output.created_on`), with `since` inclusive and `until` exclusive. Score, tag and
//! detector keep a recording or output when one of its detections matches all of them; an
//! output is returned whole.

use std::collections::HashMap;

use jiff::Timestamp;
use rusqlite::types::Value;
use serde::Serialize;
use uuid::Uuid;

use super::outputs::{DETECTION_COLUMNS, RawDetection};
use super::recordings::{self, RawRecording, StoredRecording};
use super::{Error, Store};
use crate::spec::data::{Detection, ModelOutput, Tag};
use crate::spec::isotime;

/// Which rows to return. The default returns everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only rows at or after this time.
    pub since: Option<Timestamp>,
    /// Only rows before this time.
    pub until: Option<Timestamp>,
    /// Only detections scoring at least this.
    pub min_score: Option<f64>,
    /// Only detections carrying this tag.
    pub tag: Option<Tag>,
    /// Only outputs of the model with this name.
    pub detector: Option<String>,
    /// At most this many rows (the newest).
    pub limit: Option<u64>,
}

/// A detection with the model output it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundDetection {
    /// The detection, in acoupi's shape.
    #[serde(flatten)]
    pub detection: Detection,
    /// Its model output's id.
    pub model_output_id: Uuid,
    /// The model's name.
    pub name_model: String,
    /// The recording the model ran on.
    pub recording_id: Uuid,
    /// When the model ran.
    pub created_on: Timestamp,
}

/// SQL conditions and their parameters, built up from a filter.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn push(&mut self, clause: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }

    /// `column` within `[since, until)`.
    fn window(&mut self, column: &str, f: &Filter) {
        if let Some(t) = f.since {
            self.push(
                format!("{column} >= ?"),
                [Value::Text(isotime::isoformat(t))],
            );
        }
        if let Some(t) = f.until {
            self.push(
                format!("{column} < ?"),
                [Value::Text(isotime::isoformat(t))],
            );
        }
    }

    /// The score and tag conditions on detection alias `d`.
    fn detection(&mut self, f: &Filter) {
        if let Some(s) = f.min_score {
            self.push("d.detection_score >= ?", [Value::Real(s)]);
        }
        if let Some(t) = &f.tag {
            self.push(
                "EXISTS (SELECT 1 FROM predicted_tag AS pt \
                 WHERE pt.detection_id = d.id AND pt.key = ? AND pt.value = ?)",
                [Value::Text(t.key.clone()), Value::Text(t.value.clone())],
            );
        }
    }

    fn detector(&mut self, f: &Filter) {
        if let Some(name) = &f.detector {
            self.push("mo.model_name = ?", [Value::Text(name.clone())]);
        }
    }

    /// ` WHERE a AND b`, or nothing.
    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn limit(&mut self, f: &Filter) -> &'static str {
        match f.limit {
            Some(n) => {
                self.params
                    .push(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
                " LIMIT ?"
            }
            None => "",
        }
    }
}

fn wants_detection(f: &Filter) -> bool {
    f.min_score.is_some() || f.tag.is_some()
}

impl Store {
    /// Recordings started in the window that (when asked) a detector's output or a matching
    /// detection refers to, newest first.
    pub fn recordings(&self, f: &Filter) -> Result<Vec<StoredRecording>, Error> {
        let mut w = Where::default();
        w.window("r.datetime", f);
        if f.detector.is_some() || wants_detection(f) {
            let mut inner = Where::default();
            inner.push("mo.recording_id = r.id", []);
            inner.detector(f);
            let join = if wants_detection(f) {
                inner.detection(f);
                " JOIN detection AS d ON d.model_output_id = mo.id"
            } else {
                ""
            };
            w.push(
                format!(
                    "EXISTS (SELECT 1 FROM model_output AS mo{join}{})",
                    inner.sql()
                ),
                inner.params,
            );
        }
        let sql = format!(
            "{}{} ORDER BY r.datetime DESC{}",
            recordings::SELECT,
            w.sql(),
            w.limit(f)
        );
        let raw = self.rows(&sql, w.params, RawRecording::read)?;
        raw.into_iter().map(|r| r.decode(self)).collect()
    }

    /// Model outputs made in the window (by the detector, with a matching detection, when
    /// asked), each whole with its recording and detections, newest first.
    pub fn model_outputs(&self, f: &Filter) -> Result<Vec<ModelOutput>, Error> {
        let mut w = Where::default();
        w.window("mo.created_on", f);
        w.detector(f);
        if wants_detection(f) {
            let mut inner = Where::default();
            inner.push("d.model_output_id = mo.id", []);
            inner.detection(f);
            w.push(
                format!("EXISTS (SELECT 1 FROM detection AS d{})", inner.sql()),
                inner.params,
            );
        }
        let limit = w.limit(f);
        self.load_outputs(w, limit)
    }

    /// The model output `id`, whole, if stored.
    pub fn model_output(&self, id: Uuid) -> Result<Option<ModelOutput>, Error> {
        let mut w = Where::default();
        w.push("mo.id = ?", [Value::Blob(id.as_bytes().to_vec())]);
        Ok(self.load_outputs(w, "")?.pop())
    }

    /// The model outputs `w` selects, newest first, each with its recording and detections.
    fn load_outputs(
        &self,
        w: Where,
        limit: impl std::fmt::Display,
    ) -> Result<Vec<ModelOutput>, Error> {
        let sql = format!(
            "SELECT mo.id, mo.model_name, mo.recording_id, mo.created_on FROM model_output AS mo\
             {} ORDER BY mo.created_on DESC{limit}",
            w.sql(),
        );
        let rows = self.rows(&sql, w.params, |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let output_ids: Vec<Vec<u8>> = rows.iter().map(|r| r.0.clone()).collect();
        let mut detections = self.detections_of(&output_ids)?;
        let mut recording_ids: Vec<Vec<u8>> = rows.iter().map(|r| r.2.clone()).collect();
        recording_ids.sort_unstable();
        recording_ids.dedup();
        let mut recordings = HashMap::new();
        let sql = format!("{} WHERE r.id IN ({{}})", recordings::SELECT);
        let mut raw = Vec::new();
        self.in_chunks(&recording_ids, &sql, |row| {
            raw.push(RawRecording::read(row)?);
            Ok(())
        })?;
        for r in raw {
            let r = r.decode(self)?.recording;
            recordings.insert(r.id, r);
        }
        rows.into_iter()
            .map(|(id, name_model, recording_id, created_on)| {
                let recording_id = self.uuid(&recording_id, "model_output.recording_id")?;
                let recording = recordings.get(&recording_id).cloned().ok_or_else(|| {
                    Error::BadValue {
                        path: self.path.clone(),
                        detail: format!(
                            "model output refers to recording `{recording_id}`, which is missing"
                        ),
                    }
                })?;
                Ok(ModelOutput {
                    id: self.uuid(&id, "model_output.id")?,
                    name_model,
                    recording,
                    detections: detections.remove(&id).unwrap_or_default(),
                    created_on: self.time(&created_on, "model_output.created_on")?,
                })
            })
            .collect()
    }

    /// Detections whose model ran in the window (and that match score, tag and detector),
    /// newest output first, in stored order within an output.
    pub fn detections(&self, f: &Filter) -> Result<Vec<FoundDetection>, Error> {
        let mut w = Where::default();
        w.window("mo.created_on", f);
        w.detector(f);
        w.detection(f);
        let sql = format!(
            "SELECT {DETECTION_COLUMNS}, mo.id, mo.model_name, mo.recording_id, mo.created_on \
             FROM model_output AS mo JOIN detection AS d ON d.model_output_id = mo.id\
             {} ORDER BY mo.created_on DESC, d.rowid{}",
            w.sql(),
            w.limit(f)
        );
        // Rows come grouped by output: its columns are read and decoded once per output.
        let mut outputs: Vec<(Vec<u8>, String, Uuid, String)> = Vec::new();
        let rows = self.rows(&sql, w.params, |r| {
            let output = r.get_ref(7)?.as_blob()?;
            if outputs.last().is_none_or(|o| o.0 != output) {
                outputs.push((output.to_vec(), r.get(8)?, r.get(9)?, r.get(10)?));
            }
            Ok((RawDetection::read_at(r, 0)?, outputs.len() - 1))
        })?;
        let pairs: Vec<(&[u8], Uuid)> = rows
            .iter()
            .map(|(d, o)| (outputs[*o].0.as_slice(), d.id))
            .collect();
        let ids: Vec<Vec<u8>> = outputs.iter().map(|o| o.0.clone()).collect();
        let mut tags = self.tags_of(&ids, &pairs)?;
        let context = outputs
            .iter()
            .map(|(id, name, recording, created_on)| {
                Ok((
                    self.uuid(id, "model_output.id")?,
                    name,
                    *recording,
                    self.time(created_on, "model_output.created_on")?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        rows.into_iter()
            .map(|(d, o)| {
                let (model_output_id, name, recording_id, created_on) = context[o];
                Ok(FoundDetection {
                    detection: d.decode(self, &mut tags)?,
                    model_output_id,
                    name_model: name.clone(),
                    recording_id,
                    created_on,
                })
            })
            .collect()
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: Vec<Value>,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, Error> {
        let run = || -> rusqlite::Result<Vec<T>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), read)?;
            rows.collect()
        };
        run().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{output, recording, temp_path};
    use jiff::SignedDuration;

    /// Recordings 0..4, each with one 4-detection output; recording 3's model is `other`.
    fn filled() -> (tempfile::TempDir, Store, Vec<ModelOutput>) {
        let (d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let mut outputs = Vec::new();
        for i in 0..4 {
            let r = recording(i);
            store.insert_recording(&r, None).expect("recording");
            let mut o = output(&r, 100 + u128::from(i), 4);
            if i == 3 {
                o.name_model = "other".into();
            }
            store.insert_model_output(&o).expect("output");
            outputs.push(o);
        }
        (d, store, outputs)
    }

    fn ids<T>(rows: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
        rows.iter().map(id).collect()
    }

    #[test]
    fn windows_are_inclusive_exclusive_and_newest_first() {
        let (_d, store, outputs) = filled();
        let f = Filter {
            since: Some(outputs[1].created_on),
            until: Some(outputs[3].created_on),
            ..Filter::default()
        };
        let got = store.model_outputs(&f).expect("query");
        assert_eq!(ids(&got, |o| o.id), [outputs[2].id, outputs[1].id]);
        let f = Filter {
            since: Some(outputs[1].recording.created_on),
            until: Some(outputs[2].recording.created_on + SignedDuration::from_micros(1)),
            ..Filter::default()
        };
        let got = store.recordings(&f).expect("query");
        assert_eq!(
            ids(&got, |r| r.recording.id),
            [outputs[2].recording.id, outputs[1].recording.id]
        );
        let all = store.detections(&Filter::default()).expect("query");
        assert_eq!(all.len(), 16);
        assert_eq!(all[0].model_output_id, outputs[3].id);
        assert_eq!(all[0].detection, outputs[3].detections[0]);
    }

    #[test]
    fn score_tag_detector_and_limit_filter() {
        let (_d, store, outputs) = filled();
        let myotis = Tag {
            key: "species".into(),
            value: "Myotis".into(),
        };
        let f = Filter {
            min_score: Some(0.25),
            tag: Some(myotis.clone()),
            detector: Some("band-energy".into()),
            ..Filter::default()
        };
        let got = store.detections(&f).expect("query");
        // Per output, only detection 3 (score 0.4) is a Myotis above 0.25; output 3 is `other`.
        assert_eq!(
            ids(&got, |d| d.detection.id),
            [2, 1, 0].map(|i| outputs[i].detections[3].id)
        );
        let got = store.model_outputs(&f).expect("query");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], outputs[2], "an output comes back whole");
        let got = store.recordings(&f).expect("query");
        assert_eq!(got.len(), 3);
        let none = Filter {
            min_score: Some(0.5),
            tag: Some(myotis),
            ..Filter::default()
        };
        assert!(store.detections(&none).expect("query").is_empty());
        let only_other = Filter {
            detector: Some("other".into()),
            ..Filter::default()
        };
        let got = store.recordings(&only_other).expect("query");
        assert_eq!(ids(&got, |r| r.recording.id), [outputs[3].recording.id]);
        let newest = Filter {
            limit: Some(2),
            ..Filter::default()
        };
        assert_eq!(store.model_outputs(&newest).expect("query").len(), 2);
        assert_eq!(store.recordings(&newest).expect("query").len(), 2);
        assert_eq!(store.detections(&newest).expect("query").len(), 2);
    }
}
