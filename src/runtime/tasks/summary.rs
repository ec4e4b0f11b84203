//! `summary`: digests the detections of the last interval into acoupi's summary messages.
//!
//! In: the program's `summary` spec (`statistics`, `thresholds`), the `summary` task's interval
//! and the predicted tags of the model outputs made in the window (now − interval, now] (on
//! `model_output.created_on`, as acoupi's summarisers query it). Out: one message per enabled
//! summariser, of type `summary`, added to the outbox (with `messaging`), and returned as
//! `{"statistics": …, "thresholds": …}`; `null` for a program without `summary`.
//!
//! The payloads are acoupi's summariser dicts, keyed by tag value (tags of different keys with
//! the same value are counted together, as acoupi counts them), with the window as
//! `"timeinterval": {"starttime", "endtime"}` in Python's `isoformat()`:
//! - `statistics`: per value `{"mean", "min", "max", "count"}` of the confidence scores, the
//!   mean rounded to 3 decimals;
//! - `thresholds`: per value `count_low_threshold`, `count_mid_threshold`,
//!   `count_high_threshold` and the `mean_*_threshold` of each band (3 decimals). Each of the
//!   manifest's thresholds is its band's **lower** bound: low is [low, mid), mid is
//!   [mid, high), high is [high, 1]; a score below `low` is in no band. An empty band's mean
//!   is `null` (acoupi's summariser fails on one; its bands were ≤ low, (low, mid] and > mid).
//!
//! An empty window still gives each message, holding only `timeinterval`, as in acoupi.
//! Message ids derive from the task id and the summariser, so a redelivered task stores each
//! message once.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value as Json, json};

use super::{TaskContext, TaskError, TaskFuture};
use crate::messaging::MessageKind;
use crate::messaging::messages::message_id;
use crate::spec::data::PredictedTag;
use crate::spec::{Schedule, Thresholds, isotime, tasks};
use crate::store::NewMessage;

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let services = &ctx.services;
        let program = ctx.program();
        let Some(spec) = program.summary.clone() else {
            return Ok(Json::Null);
        };
        let every_ms = match program.task(tasks::SUMMARY).map(|t| &t.schedule) {
            Some(Schedule::Interval { every_ms, .. }) => *every_ms,
            _ => {
                return Err(TaskError::Permanent(
                    "the `summary` task has no interval in program.json, so no window to summarise: rebuild the home".into(),
                ));
            }
        };
        let end = isotime::to_micros(services.clock.now());
        let start = end - SignedDuration::from_millis(i64::try_from(every_ms).unwrap_or(i64::MAX));
        let tags = services
            .with_store(move |s, _| s.predicted_tags_between(start, end))
            .await?;

        let mut payloads = Map::new();
        if spec.statistics {
            payloads.insert("statistics".into(), statistics(&tags, start, end));
        }
        if let Some(bands) = spec.thresholds {
            payloads.insert("thresholds".into(), thresholds(&tags, bands, start, end));
        }
        let messages: Vec<NewMessage> = payloads
            .iter()
            .map(|(name, payload)| NewMessage {
                id: message_id(&format!("summary/{name}/{}", ctx.task_id)),
                kind: MessageKind::Summary,
                content: payload.to_string(),
                created_on: end,
                recording: None,
            })
            .collect();
        let queued = match program.messaging {
            Some(_) => services.push_messages(messages).await?,
            None => 0,
        };
        tracing::info!(
            program = %program.name,
            from = %start,
            to = %end,
            tags = tags.len(),
            queued,
            "summary"
        );
        Ok(Json::Object(payloads))
    })
}

/// The scores of each tag value, values in order.
fn by_value(tags: &[PredictedTag]) -> BTreeMap<&str, Vec<f64>> {
    let mut out: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for t in tags {
        out.entry(t.tag.value.as_str())
            .or_default()
            .push(t.confidence_score);
    }
    out
}

/// `{"starttime", "endtime"}` as acoupi writes them.
fn time_interval(start: Timestamp, end: Timestamp) -> Json {
    json!({
        "starttime": isotime::isoformat(start),
        "endtime": isotime::isoformat(end),
    })
}

/// The mean of `scores` rounded to 3 decimals, or `None` for none.
fn mean3(scores: &[f64]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    Some((mean * 1000.0).round() / 1000.0)
}

/// acoupi's `StatisticsDetectionsSummariser` payload.
fn statistics(tags: &[PredictedTag], start: Timestamp, end: Timestamp) -> Json {
    let mut out = Map::new();
    for (value, scores) in by_value(tags) {
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.insert(
            value.to_owned(),
            json!({
                "mean": mean3(&scores),
                "min": min,
                "max": max,
                "count": scores.len(),
            }),
        );
    }
    out.insert("timeinterval".into(), time_interval(start, end));
    Json::Object(out)
}

/// acoupi's `ThresholdsDetectionsSummariser` payload, each threshold a band's lower bound.
fn thresholds(tags: &[PredictedTag], bands: Thresholds, start: Timestamp, end: Timestamp) -> Json {
    let mut out = Map::new();
    for (value, scores) in by_value(tags) {
        let band = |from: f64, to: Option<f64>| -> Vec<f64> {
            scores
                .iter()
                .copied()
                .filter(|s| *s >= from && to.is_none_or(|to| *s < to))
                .collect()
        };
        let low = band(bands.low, Some(bands.mid));
        let mid = band(bands.mid, Some(bands.high));
        let high = band(bands.high, None);
        out.insert(
            value.to_owned(),
            json!({
                "count_low_threshold": low.len(),
                "count_mid_threshold": mid.len(),
                "count_high_threshold": high.len(),
                "mean_low_threshold": mean3(&low),
                "mean_mid_threshold": mean3(&mid),
                "mean_high_threshold": mean3(&high),
            }),
        );
    }
    out.insert("timeinterval".into(), time_interval(start, end));
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::data::Tag;

    fn tags(list: &[(&str, &str, f64)]) -> Vec<PredictedTag> {
        list.iter()
            .map(|(key, value, score)| PredictedTag {
                tag: Tag {
                    key: (*key).into(),
                    value: (*value).into(),
                },
                confidence_score: *score,
            })
            .collect()
    }

    fn window() -> (Timestamp, Timestamp) {
        (
            "2026-06-01T21:00:00Z".parse().expect("time"),
            "2026-06-01T22:00:00.5Z".parse().expect("time"),
        )
    }

    #[test]
    fn statistics_group_by_value_across_keys() {
        let (start, end) = window();
        let t = tags(&[
            ("species", "Myotis", 0.9),
            ("species", "Pipistrellus", 0.5),
            ("genus", "Myotis", 0.3),
            ("species", "Myotis", 0.4),
        ]);
        assert_eq!(
            statistics(&t, start, end),
            json!({
                "Myotis": {"mean": 0.533, "min": 0.3, "max": 0.9, "count": 3},
                "Pipistrellus": {"mean": 0.5, "min": 0.5, "max": 0.5, "count": 1},
                "timeinterval": {
                    "starttime": "2026-06-01T21:00:00+00:00",
                    "endtime": "2026-06-01T22:00:00.500000+00:00"
                }
            })
        );
        assert_eq!(
            statistics(&[], start, end),
            json!({"timeinterval": {
                "starttime": "2026-06-01T21:00:00+00:00",
                "endtime": "2026-06-01T22:00:00.500000+00:00"
            }})
        );
    }

    #[test]
    fn each_threshold_is_its_bands_lower_bound() {
        let (start, end) = window();
        let bands = Thresholds {
            low: 0.3,
            mid: 0.6,
            high: 0.9,
        };
        let t = tags(&[
            ("s", "a", 0.29),
            ("s", "a", 0.3),
            ("s", "a", 0.58),
            ("s", "a", 0.6),
            ("s", "a", 0.9),
            ("s", "a", 1.0),
            ("s", "b", 0.1),
        ]);
        let got = thresholds(&t, bands, start, end);
        assert_eq!(
            got["a"],
            json!({
                "count_low_threshold": 2,
                "count_mid_threshold": 1,
                "count_high_threshold": 2,
                "mean_low_threshold": 0.44,
                "mean_mid_threshold": 0.6,
                "mean_high_threshold": 0.95,
            })
        );
        assert_eq!(
            got["b"],
            json!({
                "count_low_threshold": 0,
                "count_mid_threshold": 0,
                "count_high_threshold": 0,
                "mean_low_threshold": null,
                "mean_mid_threshold": null,
                "mean_high_threshold": null,
            }),
            "below the low band: counted nowhere"
        );
        assert_eq!(
            got["timeinterval"]["starttime"],
            "2026-06-01T21:00:00+00:00"
        );
    }
}
