//! The detector protocol, version 1, as Rust types (`schema/detector-protocol.md`).
//!
//! In: a [`Request`] to send, and the lines (serve mode) or the document (per-file mode) a
//! program writes on its stdout. Out: the request line, and each reply classified as a
//! [`Ready`] announcement or a [`Reply`] whose detections are checked and turned into
//! [`Event`]s. Nothing is clamped: an out-of-range value fails the reply, naming it.

use serde::{Deserialize, Serialize};

use crate::detect::{Event, EventTag, Request};

/// The protocol version this acoupi speaks (the `protocol` member of each request).
pub const VERSION: u32 = 1;

/// One request as sent to a program: a JSON object on one line.
#[derive(Debug, Serialize)]
struct WireRequest<'a> {
    protocol: u32,
    id: &'a str,
    path: &'a str,
    samplerate: u32,
    channels: u16,
    duration: f64,
    time_expansion: f64,
    recorded_at: String,
    threshold: f64,
}

/// `request` as one line of JSON, without the newline.
pub fn request_line(request: &Request) -> String {
    let wire = WireRequest {
        protocol: VERSION,
        id: &request.id,
        path: request.path.as_str(),
        samplerate: request.samplerate,
        channels: request.channels,
        duration: request.duration_s,
        time_expansion: request.time_expansion,
        recorded_at: request.recorded_at.to_string(),
        threshold: request.threshold,
    };
    // A struct of strings and numbers always serialises; a non-finite number becomes `null`.
    serde_json::to_string(&wire).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// What a program announced about itself on its first line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ready {
    /// The program's name for itself, e.g. `BatDetect2`.
    pub name: Option<String>,
    /// The program's (or its model's) version.
    pub version: Option<String>,
    /// The labels (e.g. species) it can give.
    pub labels: Vec<String>,
}

/// A program's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The detections it found, checked.
    Detections(Vec<Event>),
    /// It refused the request with this message.
    Error(String),
}

/// One line of a serve-mode program's stdout.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A readiness announcement.
    Ready(Ready),
    /// The answer to request `id`.
    Reply {
        /// The request id it answers.
        id: String,
        /// The answer.
        reply: Reply,
    },
}

/// Every member any line may hold; which are present says what the line is.
#[derive(Debug, Deserialize)]
struct RawLine {
    ready: Option<serde_json::Value>,
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    id: Option<serde_json::Value>,
    detections: Option<Vec<RawDetection>>,
    error: Option<String>,
}

/// One detection as a program writes it.
#[derive(Debug, Deserialize)]
struct RawDetection {
    start_time: f64,
    end_time: f64,
    low_freq: f64,
    high_freq: f64,
    score: f64,
    #[serde(default)]
    tags: Vec<RawTag>,
}

/// One tag as a program writes it.
#[derive(Debug, Deserialize)]
struct RawTag {
    key: String,
    value: String,
    score: f64,
}

/// Reads one serve-mode stdout line; the error says what is wrong with it.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let raw: RawLine = from_json(line)?;
    if let Some(ready) = raw.ready {
        if ready != serde_json::Value::Bool(true) {
            return Err(format!("`ready` must be `true`, not `{ready}`"));
        }
        return Ok(Line::Ready(Ready {
            name: raw.name,
            version: raw.version,
            labels: raw.labels,
        }));
    }
    let id = match raw.id {
        Some(serde_json::Value::String(id)) => id,
        Some(other) => return Err(format!("`id` must be a string, not `{other}`")),
        None => return Err("the reply has no `id` (nor `ready`)".into()),
    };
    let reply = reply(raw.detections, raw.error)?;
    Ok(Line::Reply { id, reply })
}

/// Reads a per-file program's stdout: a reply object (its `id`, if any, is ignored) or just
/// the detections array.
pub fn parse_document(text: &str) -> Result<Reply, String> {
    if text.trim_start().starts_with('[') {
        let detections: Vec<RawDetection> = from_json(text)?;
        return events(detections).map(Reply::Detections);
    }
    let raw: RawLine = from_json(text)?;
    reply(raw.detections, raw.error)
}

/// The reply made of a line's `detections` or `error` (exactly one of them).
fn reply(detections: Option<Vec<RawDetection>>, error: Option<String>) -> Result<Reply, String> {
    match (detections, error) {
        (Some(_), Some(_)) => Err("the reply has both `detections` and `error`".into()),
        (None, Some(message)) => Ok(Reply::Error(message)),
        (Some(d), None) => events(d).map(Reply::Detections),
        (None, None) => Err("the reply has neither `detections` nor `error`".into()),
    }
}

/// `text` parsed as JSON into `T`, with a hint for Python's non-standard `NaN`.
fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        let hint = if ["NaN", "Infinity"].iter().any(|w| text.contains(w)) {
            " (JSON has no NaN or Infinity: every number must be finite)"
        } else {
            ""
        };
        format!("not valid protocol JSON: {e}{hint}")
    })
}

/// Checks each detection and makes it an event; the first problem fails them all.
fn events(detections: Vec<RawDetection>) -> Result<Vec<Event>, String> {
    detections
        .into_iter()
        .enumerate()
        .map(|(i, d)| event(d).map_err(|e| format!("detection {i}: {e}")))
        .collect()
}

/// One detection checked: finite numbers, `0 <= start <= end`, `0 <= low <= high`, scores
/// in 0..=1.
fn event(d: RawDetection) -> Result<Event, String> {
    for (name, v) in [
        ("start_time", d.start_time),
        ("end_time", d.end_time),
        ("low_freq", d.low_freq),
        ("high_freq", d.high_freq),
        ("score", d.score),
    ] {
        if !v.is_finite() {
            return Err(format!("`{name}` is not a finite number"));
        }
    }
    if d.start_time < 0.0 {
        return Err(format!("`start_time` {} is negative", d.start_time));
    }
    if d.end_time < d.start_time {
        return Err(format!(
            "`end_time` {} is before `start_time` {}",
            d.end_time, d.start_time
        ));
    }
    if d.low_freq < 0.0 {
        return Err(format!("`low_freq` {} is negative", d.low_freq));
    }
    if d.high_freq < d.low_freq {
        return Err(format!(
            "`high_freq` {} is below `low_freq` {}",
            d.high_freq, d.low_freq
        ));
    }
    check_score("`score`", d.score)?;
    let tags = d
        .tags
        .into_iter()
        .enumerate()
        .map(|(j, t)| {
            if t.key.is_empty() {
                return Err(format!("tag {j}: `key` is empty"));
            }
            check_score(&format!("tag {j} (`{}`): `score`", t.key), t.score)?;
            Ok(EventTag {
                key: t.key,
                value: t.value,
                score: t.score,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Event {
        start_s: d.start_time,
        end_s: d.end_time,
        low_hz: d.low_freq,
        high_hz: d.high_freq,
        score: d.score,
        tags,
    })
}

/// Fails unless `v` is a finite number from 0 to 1.
fn check_score(what: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{what} {v} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(extra: &str) -> String {
        format!(
            r#"{{"id": "r1", "detections": [{{"start_time": 0.1, "end_time": 0.2, "low_freq": 20000, "high_freq": 40000, "score": 0.9{extra}}}]}}"#
        )
    }

    #[test]
    fn request_line_names_every_member() {
        let request = Request {
            id: "r1".into(),
            path: "/tmp/a.wav".into(),
            samplerate: 384_000,
            channels: 1,
            duration_s: 3.0,
            time_expansion: 1.0,
            recorded_at: "2025-06-01T21:00:00Z".parse().unwrap(),
            threshold: 0.4,
        };
        let v: serde_json::Value = serde_json::from_str(&request_line(&request)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"protocol": 1, "id": "r1", "path": "/tmp/a.wav",
                "samplerate": 384000, "channels": 1, "duration": 3.0, "time_expansion": 1.0,
                "recorded_at": "2025-06-01T21:00:00Z", "threshold": 0.4})
        );
    }

    #[test]
    fn ready_line() {
        let line = parse_line(r#"{"ready": true, "name": "x", "labels": ["a", "b"]}"#).unwrap();
        assert_eq!(
            line,
            Line::Ready(Ready {
                name: Some("x".into()),
                version: None,
                labels: vec!["a".into(), "b".into()]
            })
        );
        assert!(
            parse_line(r#"{"ready": false}"#)
                .unwrap_err()
                .contains("`ready` must be `true`")
        );
    }

    #[test]
    fn reply_with_tags() {
        let line = parse_line(&detection(
            r#", "tags": [{"key": "species", "value": "Myotis", "score": 0.5}]"#,
        ))
        .unwrap();
        let Line::Reply {
            id,
            reply: Reply::Detections(events),
        } = line
        else {
            panic!("not detections: {line:?}")
        };
        assert_eq!(id, "r1");
        assert_eq!(events[0].start_s, 0.1);
        assert_eq!(events[0].high_hz, 40000.0);
        assert_eq!(events[0].tags[0].value, "Myotis");
    }

    #[test]
    fn error_reply() {
        assert_eq!(
            parse_line(r#"{"id": "r1", "error": "cannot read"}"#).unwrap(),
            Line::Reply {
                id: "r1".into(),
                reply: Reply::Error("cannot read".into())
            }
        );
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = |extra: &str, json: &str| {
            let line = if json.is_empty() {
                detection(extra)
            } else {
                json.to_owned()
            };
            parse_line(&line).unwrap_err()
        };
        assert!(bad("", r#"{"id": "r1", "detections": [{"start_time": 0.3, "end_time": 0.2, "low_freq": 1, "high_freq": 2, "score": 0.5}]}"#)
            .contains("detection 0: `end_time` 0.2 is before `start_time` 0.3"));
        assert!(bad("", r#"{"id": "r1", "detections": [{"start_time": 0, "end_time": 0.2, "low_freq": 3, "high_freq": 2, "score": 0.5}]}"#)
            .contains("`high_freq` 2 is below `low_freq` 3"));
        assert!(bad("", r#"{"id": "r1", "detections": [{"start_time": 0, "end_time": 0.2, "low_freq": 1, "high_freq": 2, "score": 1.5}]}"#)
            .contains("`score` 1.5 is not between 0 and 1"));
        assert!(
            bad(
                r#", "tags": [{"key": "species", "value": "x", "score": -0.1}]"#,
                ""
            )
            .contains("tag 0 (`species`): `score` -0.1")
        );
        assert!(bad("", r#"{"id": "r1", "detections": [{"start_time": NaN}]}"#).contains("NaN"));
        assert!(bad("", "hello").contains("not valid protocol JSON"));
        assert!(bad("", r#"{"detections": []}"#).contains("no `id`"));
        assert!(bad("", r#"{"id": 3, "detections": []}"#).contains("`id` must be a string"));
        assert!(bad("", r#"{"id": "r1"}"#).contains("neither"));
    }

    #[test]
    fn per_file_documents() {
        assert_eq!(parse_document("[]").unwrap(), Reply::Detections(vec![]));
        assert_eq!(
            parse_document("{\"detections\": []}\n").unwrap(),
            Reply::Detections(vec![])
        );
        assert_eq!(
            parse_document(r#"{"error": "no"}"#).unwrap(),
            Reply::Error("no".into())
        );
        assert!(parse_document("").is_err());
    }
}
