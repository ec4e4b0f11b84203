//! Celery message protocol v2 (JSON serialiser): encoding and decoding task messages.
//!
//! In: a [`TaskMessage`] (task name, args, kwargs, eta, limits, callbacks…) to publish, or an
//! [`Envelope`] (AMQP headers, properties and body bytes) that arrived from a queue.
//! Out: the [`Envelope`] a Celery worker would accept, or the decoded [`TaskMessage`], or a
//! [`DecodeError`] naming what is wrong with the message.
//!
//! The wire shape is what Celery 5.7's `app.amqp.as_task_v2` builds and kombu's JSON serialiser
//! publishes: task metadata in the AMQP application headers (`task`, `id`, `eta`, `expires`,
//! `retries`, `timelimit` = `[hard, soft]`, `root_id`, `parent_id`, …), properties
//! `content_type` = `application/json`, `content_encoding` = `utf-8`, `correlation_id` = task
//! id, and the body `[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]`.
//! Callbacks are Celery signature dicts (`{"task", "args", "kwargs", "options", "subtask_type",
//! "immutable"}`) whose `options` may carry `queue` and `link` (the callback's own callbacks).
//! This module knows no broker: the transport carries the [`Envelope`] as it is.

mod python;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jiff::Timestamp;
use serde_json::Map;

use self::python::repr_capped;
use crate::spec::isotime::{isoformat, parse_iso};

/// A JSON value: task arguments, results and header values.
pub type Json = serde_json::Value;

/// The only content type accepted and produced: Celery's JSON serialiser.
pub const CONTENT_TYPE: &str = "application/json";

/// The content encoding of JSON task messages.
pub const CONTENT_ENCODING: &str = "utf-8";

/// Longest excerpt of a bad input quoted in an error message, in characters.
const QUOTE_MAX: usize = 60;

/// AMQP-level view of one message, broker-independent: what the transport must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// AMQP application headers (Celery's task metadata lives here in protocol v2).
    pub headers: BTreeMap<String, Json>,
    /// The serialised body, `[args, kwargs, embed]` as UTF-8 JSON.
    pub body: Vec<u8>,
    /// AMQP `content_type` property; `application/json` for every message we accept.
    pub content_type: String,
    /// AMQP `content_encoding` property; `utf-8`.
    pub content_encoding: String,
    /// AMQP `correlation_id` property: the task id.
    pub correlation_id: String,
    /// AMQP `priority` property (Celery's default is 0).
    pub priority: u8,
}

/// A follow-up task to publish with the parent's result prepended to its args.
///
/// (De)serialises to and from Celery's signature dict: `{"task", "args", "kwargs", "options":
/// {"queue", "link"}, "subtask_type": null, "immutable"}`; unknown keys are ignored on input.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Registered task name.
    pub task: String,
    /// Positional arguments, after the parent's result unless `immutable`.
    pub args: Vec<Json>,
    /// Keyword arguments.
    pub kwargs: Map<String, Json>,
    /// Queue to publish to (`options.queue`); `None` lets the router decide.
    pub queue: Option<String>,
    /// This task's own callbacks (`options.link`).
    pub link: Vec<Signature>,
    /// When true the parent's result is not prepended to `args`.
    pub immutable: bool,
}

/// One task message, decoded: what a worker needs to run the task and its follow-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// Task id (a UUID for messages we create; any string is accepted).
    pub id: String,
    /// Registered task name.
    pub task: String,
    /// Positional arguments.
    pub args: Vec<Json>,
    /// Keyword arguments.
    pub kwargs: Map<String, Json>,
    /// How many times this task has been retried already.
    pub retries: u32,
    /// Do not run before this instant.
    pub eta: Option<Timestamp>,
    /// Do not run after this instant.
    pub expires: Option<Timestamp>,
    /// Hard time limit in seconds (Celery's `time_limit`).
    pub hard_time_limit: Option<f64>,
    /// Soft time limit in seconds (Celery's `soft_time_limit`).
    pub soft_time_limit: Option<f64>,
    /// Id of the first task of the workflow this one belongs to.
    pub root_id: Option<String>,
    /// Id of the task whose callback this is.
    pub parent_id: Option<String>,
    /// Tasks to publish with this task's result when it succeeds.
    pub callbacks: Vec<Signature>,
    /// Tasks to publish when this task fails.
    pub errbacks: Vec<Signature>,
}

/// Why an [`Envelope`] is not a task message we can run.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON (for example Celery's default pickle before 4.0, or msgpack).
    #[error(
        "unsupported content type `{0}`: only JSON task messages are accepted; configure Celery with `task_serializer='json'`"
    )]
    UnsupportedContentType(String),
    /// The body is JSON in an encoding other than UTF-8.
    #[error("unsupported content encoding `{0}`: JSON task messages must be `utf-8`")]
    UnsupportedContentEncoding(String),
    /// The body was compressed by the sender (kombu's `compression` header).
    #[error(
        "compressed task messages (`{0}`) are not supported; turn off Celery's `task_compression`"
    )]
    Compressed(String),
    /// The body bytes are not UTF-8.
    #[error("message body is not valid UTF-8 (bad byte at offset {0})")]
    NotUtf8(usize),
    /// The body is not JSON.
    #[error("message body is not valid JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    /// The body is a protocol v1 dict (with a `task` key) rather than a v2 array.
    #[error(
        "celery message protocol v1 is not supported (the body is a dict with a `task` key); send with `task_protocol=2`, celery's default"
    )]
    ProtocolV1,
    /// The body is JSON of the wrong shape.
    #[error("malformed message body: {0}")]
    BadBody(String),
    /// A required header is absent.
    #[error("missing `{0}` header")]
    MissingHeader(&'static str),
    /// A header has the wrong type or an impossible value.
    #[error("header `{name}` must be {expected}, found {found}")]
    BadHeader {
        /// Header name.
        name: &'static str,
        /// What it should have been.
        expected: &'static str,
        /// What it was.
        found: String,
    },
    /// The `eta` header is not an ISO-8601 date-time.
    #[error("invalid `eta` header `{value}`: {reason}")]
    BadEta {
        /// The header's text.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The `expires` header is not an ISO-8601 date-time.
    #[error("invalid `expires` header `{value}`: {reason}")]
    BadExpires {
        /// The header's text.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A callback or errback is not a plain task signature.
    #[error("invalid signature at `{path}`: {reason}")]
    BadSignature {
        /// Where in the body, e.g. `callbacks[0].options.link[1]`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body uses a Celery canvas feature the runtime does not run (`chain`, `chord`).
    #[error(
        "`{0}` in the message body is not supported; link follow-up tasks as callbacks (`link=`) instead"
    )]
    Unsupported(&'static str),
}

impl Signature {
    /// Celery's signature dict for this signature (`options` holds `queue` and `link` only
    /// when set, as `Signature.dict()` does).
    pub fn to_json(&self) -> Json {
        let mut options = Map::new();
        if let Some(queue) = &self.queue {
            options.insert("queue".into(), Json::String(queue.clone()));
        }
        if !self.link.is_empty() {
            options.insert(
                "link".into(),
                Json::Array(self.link.iter().map(Signature::to_json).collect()),
            );
        }
        let mut d = Map::new();
        d.insert("task".into(), Json::String(self.task.clone()));
        d.insert("args".into(), Json::Array(self.args.clone()));
        d.insert("kwargs".into(), Json::Object(self.kwargs.clone()));
        d.insert("options".into(), Json::Object(options));
        d.insert("subtask_type".into(), Json::Null);
        d.insert("immutable".into(), Json::Bool(self.immutable));
        Json::Object(d)
    }

    /// Reads a Celery signature dict; missing `args`, `kwargs`, `options` and `immutable`
    /// default to empty / false, unknown keys are ignored, canvas signatures (groups, chains,
    /// chords) are refused.
    pub fn from_json(value: &Json) -> Result<Self, DecodeError> {
        Self::from_json_at(value, "signature")
    }

    fn from_json_at(value: &Json, path: &str) -> Result<Self, DecodeError> {
        let bad = |at: &str, reason: String| DecodeError::BadSignature {
            path: format!("{path}{at}"),
            reason,
        };
        let Json::Object(d) = value else {
            return Err(bad(
                "",
                format!("expected a signature dict, found {}", describe(value)),
            ));
        };
        let task = match d.get("task") {
            Some(Json::String(t)) if !t.is_empty() => t.clone(),
            Some(other) => {
                return Err(bad(
                    ".task",
                    format!("expected a task name, found {}", describe(other)),
                ));
            }
            None => return Err(bad("", "missing `task`".into())),
        };
        match d.get("subtask_type") {
            None | Some(Json::Null) => {}
            Some(Json::String(kind)) => {
                return Err(bad(
                    "",
                    format!(
                        "canvas signature `{}` (`subtask_type` `{}`) is not supported; only plain task signatures are",
                        quote(&task),
                        quote(kind)
                    ),
                ));
            }
            Some(other) => {
                return Err(bad(
                    ".subtask_type",
                    format!("expected null, found {}", describe(other)),
                ));
            }
        }
        let args = match d.get("args") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a.clone(),
            Some(other) => {
                return Err(bad(
                    ".args",
                    format!("expected an array, found {}", describe(other)),
                ));
            }
        };
        let kwargs = match d.get("kwargs") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(k)) => k.clone(),
            Some(other) => {
                return Err(bad(
                    ".kwargs",
                    format!("expected an object, found {}", describe(other)),
                ));
            }
        };
        let immutable = match d.get("immutable") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(
                    ".immutable",
                    format!("expected a boolean, found {}", describe(other)),
                ));
            }
        };
        let empty = Map::new();
        let options = match d.get("options") {
            None | Some(Json::Null) => &empty,
            Some(Json::Object(o)) => o,
            Some(other) => {
                return Err(bad(
                    ".options",
                    format!("expected an object, found {}", describe(other)),
                ));
            }
        };
        let queue = match options.get("queue") {
            None | Some(Json::Null) => None,
            Some(Json::String(q)) => Some(q.clone()),
            Some(other) => {
                return Err(bad(
                    ".options.queue",
                    format!("expected a queue name, found {}", describe(other)),
                ));
            }
        };
        let link = match options.get("link") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Self::from_json_at(item, &format!("{path}.options.link[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(one @ Json::Object(_)) => {
                vec![Self::from_json_at(one, &format!("{path}.options.link"))?]
            }
            Some(other) => {
                return Err(bad(
                    ".options.link",
                    format!("expected a list of signatures, found {}", describe(other)),
                ));
            }
        };
        Ok(Self {
            task,
            args,
            kwargs,
            queue,
            link,
            immutable,
        })
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_json(), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <Json as serde::Deserialize>::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

impl TaskMessage {
    /// A new message with a fresh UUID v4 id (root_id = id), no eta, no limits, no callbacks.
    pub fn new(task: impl Into<String>, args: Vec<Json>, kwargs: Map<String, Json>) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            root_id: Some(id.clone()),
            id,
            task: task.into(),
            args,
            kwargs,
            retries: 0,
            eta: None,
            expires: None,
            hard_time_limit: None,
            soft_time_limit: None,
            parent_id: None,
            callbacks: Vec::new(),
            errbacks: Vec::new(),
        }
    }

    /// The Celery protocol v2 message for this task, with every header `as_task_v2` sends.
    ///
    /// Timestamps are written like Python's `isoformat()` (`+00:00`, microseconds), so
    /// sub-microsecond precision is dropped; a missing `root_id` is sent as the task id, as
    /// Celery does.
    pub fn encode(&self) -> Envelope {
        let root_id = match &self.root_id {
            Some(r) if !r.is_empty() => r.clone(),
            _ => self.id.clone(),
        };
        let opt_str =
            |s: &Option<String>| s.as_ref().map_or(Json::Null, |s| Json::String(s.clone()));
        let opt_time = |t: &Option<Timestamp>| t.map_or(Json::Null, |t| Json::String(isoformat(t)));
        let kwargs = Json::Object(self.kwargs.clone());
        let mut headers = BTreeMap::new();
        let mut put = |k: &str, v: Json| {
            headers.insert(k.to_owned(), v);
        };
        put("lang", Json::from("py"));
        put("task", Json::String(self.task.clone()));
        put("id", Json::String(self.id.clone()));
        put("shadow", Json::Null);
        put("eta", opt_time(&self.eta));
        put("expires", opt_time(&self.expires));
        put("group", Json::Null);
        put("group_index", Json::Null);
        put("retries", Json::from(self.retries));
        put(
            "timelimit",
            Json::Array(vec![
                seconds(self.hard_time_limit),
                seconds(self.soft_time_limit),
            ]),
        );
        put("root_id", Json::String(root_id));
        put("parent_id", opt_str(&self.parent_id));
        // `as_task_v2` turns empty args into `()`.
        let argsrepr = if self.args.is_empty() {
            "()".to_owned()
        } else {
            repr_capped(&Json::Array(self.args.clone()))
        };
        put("argsrepr", Json::String(argsrepr));
        put("kwargsrepr", Json::String(repr_capped(&kwargs)));
        put("origin", Json::String(origin().to_owned()));
        put("ignore_result", Json::Bool(false));
        put("replaced_task_nesting", Json::from(0));
        put("stamped_headers", Json::Null);
        put("stamps", Json::Object(Map::new()));

        let sigs = |list: &[Signature]| {
            if list.is_empty() {
                Json::Null
            } else {
                Json::Array(list.iter().map(Signature::to_json).collect())
            }
        };
        let mut embed = Map::new();
        embed.insert("callbacks".into(), sigs(&self.callbacks));
        embed.insert("errbacks".into(), sigs(&self.errbacks));
        embed.insert("chain".into(), Json::Null);
        embed.insert("chord".into(), Json::Null);
        let body = Json::Array(vec![
            Json::Array(self.args.clone()),
            kwargs,
            Json::Object(embed),
        ]);

        Envelope {
            headers,
            body: body.to_string().into_bytes(),
            content_type: CONTENT_TYPE.into(),
            content_encoding: CONTENT_ENCODING.into(),
            correlation_id: self.id.clone(),
            priority: 0,
        }
    }

    /// Reads a Celery protocol v2 JSON message, as sent by [`TaskMessage::encode`] or by
    /// Python's `send_task` / `apply_async`. Optional headers may be missing; a naive `eta` or
    /// `expires` is UTC; a zero time limit means none, as in Celery.
    pub fn decode(env: &Envelope) -> Result<Self, DecodeError> {
        check_content_type(env)?;
        if let Some(c) = env.headers.get("compression").filter(|c| !c.is_null()) {
            let name = c.as_str().map_or_else(|| describe(c), quote);
            return Err(DecodeError::Compressed(name));
        }
        let text =
            std::str::from_utf8(&env.body).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
        let body: Json = serde_json::from_str(text).map_err(DecodeError::BadJson)?;
        let parts = match body {
            Json::Array(parts) if parts.len() == 3 => parts,
            Json::Object(d) if d.contains_key("task") => return Err(DecodeError::ProtocolV1),
            other => {
                return Err(DecodeError::BadBody(format!(
                    "expected a 3-element array `[args, kwargs, embed]`, found {}",
                    describe(&other)
                )));
            }
        };
        let mut parts = parts.into_iter();
        let (args, kwargs, embed) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(k), Some(e)) => (a, k, e),
            _ => {
                return Err(DecodeError::BadBody(
                    "expected a 3-element array `[args, kwargs, embed]`".into(),
                ));
            }
        };
        let args = match args {
            Json::Array(a) => a,
            other => {
                return Err(DecodeError::BadBody(format!(
                    "`args` must be an array, found {}",
                    describe(&other)
                )));
            }
        };
        let kwargs = match kwargs {
            Json::Object(k) => k,
            Json::Null => Map::new(),
            other => {
                return Err(DecodeError::BadBody(format!(
                    "`kwargs` must be an object, found {}",
                    describe(&other)
                )));
            }
        };
        let embed = match embed {
            Json::Object(e) => e,
            Json::Null => Map::new(),
            other => {
                return Err(DecodeError::BadBody(format!(
                    "`embed` must be an object, found {}",
                    describe(&other)
                )));
            }
        };
        for key in ["chain", "chord"] {
            match embed.get(key) {
                None | Some(Json::Null) => {}
                Some(Json::Array(a)) if a.is_empty() => {}
                Some(_) => return Err(DecodeError::Unsupported(key)),
            }
        }
        let callbacks = signatures(&embed, "callbacks")?;
        let errbacks = signatures(&embed, "errbacks")?;

        let h = &env.headers;
        let id = required_str(h, "id")?;
        let task = required_str(h, "task")?;
        let retries = match h.get("retries") {
            None | Some(Json::Null) => 0,
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad_header("retries", "a non-negative integer", v))?,
        };
        let (hard_time_limit, soft_time_limit) = match h.get("timelimit") {
            None | Some(Json::Null) => (None, None),
            Some(Json::Array(pair)) if pair.len() == 2 => (limit(&pair[0])?, limit(&pair[1])?),
            Some(v) => {
                return Err(bad_header(
                    "timelimit",
                    "`[hard, soft]` (numbers or nulls)",
                    v,
                ));
            }
        };
        let eta = timestamp(h, "eta")?;
        let expires = timestamp(h, "expires")?;
        let root_id = optional_str(h, "root_id")?;
        let parent_id = optional_str(h, "parent_id")?;

        Ok(Self {
            id,
            task,
            args,
            kwargs,
            retries,
            eta,
            expires,
            hard_time_limit,
            soft_time_limit,
            root_id,
            parent_id,
            callbacks,
            errbacks,
        })
    }

    /// The message for a callback `sig` of this task, given this task's result: args = [result] + sig.args (unless immutable), callbacks = sig.link, parent_id = self.id, root_id = self.root_id or self.id.
    ///
    /// The new message has a fresh id and no eta, limits or errbacks, as Celery's
    /// `signature(cb).apply_async((result,), parent_id=…, root_id=…)` does for a plain
    /// callback; `sig.queue` is for the caller to route by.
    pub fn follow_up(&self, sig: &Signature, result: &Json) -> TaskMessage {
        let mut args = Vec::with_capacity(sig.args.len() + 1);
        if !sig.immutable {
            args.push(result.clone());
        }
        args.extend(sig.args.iter().cloned());
        let mut child = TaskMessage::new(sig.task.clone(), args, sig.kwargs.clone());
        child.root_id = Some(match &self.root_id {
            Some(r) if !r.is_empty() => r.clone(),
            _ => self.id.clone(),
        });
        child.parent_id = Some(self.id.clone());
        child.callbacks = sig.link.clone();
        child
    }

    /// A copy for a retry: same id, retries+1, eta = Some(at).
    ///
    /// Everything else (args, limits, expiry, callbacks, errbacks, root and parent) is kept,
    /// as Celery's `Task.retry` does.
    pub fn retry(&self, at: Timestamp) -> TaskMessage {
        let mut again = self.clone();
        again.retries = self.retries.saturating_add(1);
        again.eta = Some(at);
        again
    }
}

fn check_content_type(env: &Envelope) -> Result<(), DecodeError> {
    let mime = env
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if !mime.eq_ignore_ascii_case(CONTENT_TYPE) {
        return Err(DecodeError::UnsupportedContentType(quote(
            &env.content_type,
        )));
    }
    let enc = env.content_encoding.trim();
    if !(enc.is_empty() || enc.eq_ignore_ascii_case("utf-8") || enc.eq_ignore_ascii_case("utf8")) {
        return Err(DecodeError::UnsupportedContentEncoding(quote(
            &env.content_encoding,
        )));
    }
    Ok(())
}

fn signatures(embed: &Map<String, Json>, key: &'static str) -> Result<Vec<Signature>, DecodeError> {
    match embed.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| Signature::from_json_at(item, &format!("{key}[{i}]")))
            .collect(),
        Some(one @ Json::Object(_)) => Ok(vec![Signature::from_json_at(one, key)?]),
        Some(other) => Err(DecodeError::BadSignature {
            path: key.into(),
            reason: format!(
                "expected a list of signatures or null, found {}",
                describe(other)
            ),
        }),
    }
}

fn bad_header(name: &'static str, expected: &'static str, found: &Json) -> DecodeError {
    DecodeError::BadHeader {
        name,
        expected,
        found: describe(found),
    }
}

fn required_str(h: &BTreeMap<String, Json>, name: &'static str) -> Result<String, DecodeError> {
    match h.get(name) {
        None => Err(DecodeError::MissingHeader(name)),
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(bad_header(name, "a non-empty string", other)),
    }
}

fn optional_str(
    h: &BTreeMap<String, Json>,
    name: &'static str,
) -> Result<Option<String>, DecodeError> {
    match h.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.is_empty() => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_header(name, "a string or null", other)),
    }
}

/// One element of `timelimit`: seconds, or `None` for null or 0 (Celery's "not set").
fn limit(v: &Json) -> Result<Option<f64>, DecodeError> {
    match v {
        Json::Null => Ok(None),
        Json::Number(n) => match n.as_f64() {
            Some(0.0) => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(s)),
            _ => Err(bad_header(
                "timelimit",
                "`[hard, soft]` (non-negative numbers or nulls)",
                v,
            )),
        },
        _ => Err(bad_header(
            "timelimit",
            "`[hard, soft]` (numbers or nulls)",
            v,
        )),
    }
}

fn timestamp(
    h: &BTreeMap<String, Json>,
    name: &'static str,
) -> Result<Option<Timestamp>, DecodeError> {
    let text = match h.get(name) {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(s)) if s.is_empty() => return Ok(None),
        Some(Json::String(s)) => s,
        Some(other) => {
            return Err(bad_header(
                name,
                "an ISO-8601 date-time string or null",
                other,
            ));
        }
    };
    parse_iso(text).map(Some).map_err(|reason| {
        let value = quote(text);
        if name == "eta" {
            DecodeError::BadEta { value, reason }
        } else {
            DecodeError::BadExpires { value, reason }
        }
    })
}

/// A time limit as JSON: an integer when whole (as Python sends `60`), null when unset or not
/// finite.
fn seconds(limit: Option<f64>) -> Json {
    match limit {
        Some(s) if s.is_finite() && s.fract() == 0.0 && s.abs() < 9.0e15 => Json::from(s as i64),
        Some(s) => serde_json::Number::from_f64(s).map_or(Json::Null, Json::Number),
        None => Json::Null,
    }
}

/// `gen<pid>@<hostname>`, Celery's `anon_nodename()`.
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("gen{}@{host}", std::process::id())
    })
}

/// A short description of a JSON value for error messages: its kind and an excerpt.
fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("a boolean `{b}`"),
        Json::Number(n) => format!("a number `{}`", quote(&n.to_string())),
        Json::String(s) => format!("a string `{}`", quote(s)),
        Json::Array(a) => format!("an array of {} elements", a.len()),
        Json::Object(o) => format!("an object with {} keys", o.len()),
    }
}

/// `s` cut to [`QUOTE_MAX`] characters for quoting in an error message.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn obj(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn rich() -> TaskMessage {
        let mut m = TaskMessage::new(
            "acoupi.record",
            vec![
                json!(1),
                json!("two"),
                json!(3.5),
                Json::Null,
                json!(true),
                json!({"nested": [1, 2]}),
            ],
            obj(json!({"slot": "2026-11-24T10:00:00Z", "n": 7, "ünï": "côdé"})),
        );
        m.retries = 2;
        m.eta = Some(ts("2026-11-24T10:00:00.123456Z"));
        m.expires = Some(ts("2026-11-25T10:00:00Z"));
        m.hard_time_limit = Some(60.0);
        m.soft_time_limit = Some(30.5);
        m.root_id = Some("root-1".into());
        m.parent_id = Some("parent-1".into());
        m.callbacks = vec![Signature {
            task: "acoupi.detect".into(),
            args: vec![json!("a")],
            kwargs: Map::new(),
            queue: Some("q1".into()),
            link: vec![Signature {
                task: "acoupi.store".into(),
                args: vec![json!(1)],
                kwargs: obj(json!({"k": "v"})),
                queue: Some("q2".into()),
                link: Vec::new(),
                immutable: false,
            }],
            immutable: false,
        }];
        m.errbacks = vec![Signature {
            task: "acoupi.on_error".into(),
            args: Vec::new(),
            kwargs: Map::new(),
            queue: None,
            link: Vec::new(),
            immutable: true,
        }];
        m
    }

    fn envelope(headers: Json, body: &str) -> Envelope {
        Envelope {
            headers: obj(headers).into_iter().collect(),
            body: body.as_bytes().to_vec(),
            content_type: CONTENT_TYPE.into(),
            content_encoding: CONTENT_ENCODING.into(),
            correlation_id: "x".into(),
            priority: 0,
        }
    }

    fn minimal_headers() -> Json {
        json!({"task": "t", "id": "i"})
    }

    #[test]
    fn new_has_fresh_uuid_and_root() {
        let a = TaskMessage::new("t", vec![], Map::new());
        let b = TaskMessage::new("t", vec![], Map::new());
        assert_ne!(a.id, b.id);
        assert!(uuid::Uuid::parse_str(&a.id).is_ok());
        assert_eq!(a.root_id.as_deref(), Some(a.id.as_str()));
        assert_eq!(
            (a.eta, a.hard_time_limit, a.callbacks.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn round_trip_rich_and_minimal() {
        for m in [rich(), TaskMessage::new("t", vec![], Map::new())] {
            let env = m.encode();
            assert_eq!(TaskMessage::decode(&env).expect("decodes"), m);
        }
    }

    #[test]
    fn encode_matches_celery_shape() {
        let m = rich();
        let env = m.encode();
        assert_eq!(env.content_type, "application/json");
        assert_eq!(env.content_encoding, "utf-8");
        assert_eq!(env.correlation_id, m.id);
        assert_eq!(env.priority, 0);
        let keys: Vec<&str> = env.headers.keys().map(String::as_str).collect();
        let mut want = vec![
            "lang",
            "task",
            "id",
            "shadow",
            "eta",
            "expires",
            "group",
            "group_index",
            "retries",
            "timelimit",
            "root_id",
            "parent_id",
            "argsrepr",
            "kwargsrepr",
            "origin",
            "ignore_result",
            "replaced_task_nesting",
            "stamped_headers",
            "stamps",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(env.headers["timelimit"], json!([60, 30.5]));
        assert_eq!(
            env.headers["eta"],
            json!("2026-11-24T10:00:00.123456+00:00")
        );
        assert_eq!(env.headers["expires"], json!("2026-11-25T10:00:00+00:00"));
        assert_eq!(
            env.headers["argsrepr"],
            json!("[1, 'two', 3.5, None, True, {'nested': [1, 2]}]")
        );
        let origin = env.headers["origin"].as_str().expect("origin");
        assert!(
            origin.starts_with(&format!("gen{}@", std::process::id())),
            "{origin}"
        );
        let body: Json = serde_json::from_slice(&env.body).expect("json body");
        assert_eq!(body[2]["chain"], Json::Null);
        assert_eq!(
            body[2]["callbacks"][0]["options"]["link"][0]["options"]["queue"],
            json!("q2")
        );
        assert_eq!(body[2]["errbacks"][0]["immutable"], json!(true));
        let plain = TaskMessage::new("t", vec![], Map::new()).encode();
        let body: Json = serde_json::from_slice(&plain.body).expect("json body");
        assert_eq!(
            body,
            json!([[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
        );
        assert_eq!(plain.headers["timelimit"], json!([null, null]));
    }

    #[test]
    fn follow_up_prepends_result_and_links() {
        let parent = rich();
        let sig = &parent.callbacks[0];
        let child = parent.follow_up(sig, &json!({"n": 3}));
        assert_ne!(child.id, parent.id);
        assert_eq!(child.task, "acoupi.detect");
        assert_eq!(child.args, vec![json!({"n": 3}), json!("a")]);
        assert_eq!(child.kwargs, Map::new());
        assert_eq!(child.parent_id.as_deref(), Some(parent.id.as_str()));
        assert_eq!(child.root_id.as_deref(), Some("root-1"));
        assert_eq!(child.callbacks, sig.link);
        assert_eq!(
            (child.retries, child.eta, child.hard_time_limit),
            (0, None, None)
        );
        assert!(child.errbacks.is_empty());

        let grandchild = child.follow_up(&child.callbacks[0], &Json::Null);
        assert_eq!(grandchild.args, vec![Json::Null, json!(1)]);
        assert_eq!(grandchild.root_id.as_deref(), Some("root-1"));
        assert_eq!(grandchild.parent_id.as_deref(), Some(child.id.as_str()));

        let immutable = parent.follow_up(&parent.errbacks[0], &json!(5));
        assert!(immutable.args.is_empty());

        let mut orphan = TaskMessage::new("t", vec![], Map::new());
        orphan.root_id = None;
        let child = orphan.follow_up(sig, &json!(1));
        assert_eq!(child.root_id.as_deref(), Some(orphan.id.as_str()));
    }

    #[test]
    fn retry_keeps_id_and_bumps_count() {
        let m = rich();
        let at = ts("2027-01-01T00:00:00Z");
        let r = m.retry(at);
        assert_eq!(r.id, m.id);
        assert_eq!(r.retries, 3);
        assert_eq!(r.eta, Some(at));
        assert_eq!(
            TaskMessage {
                retries: 2,
                eta: m.eta,
                ..r.clone()
            },
            m
        );
        let mut max = m.clone();
        max.retries = u32::MAX;
        assert_eq!(max.retry(at).retries, u32::MAX);
    }

    #[test]
    fn decode_tolerates_celery_variants() {
        let env = envelope(
            json!({"task": "t", "id": "i", "eta": "2026-11-24T10:00:00.123456", "expires": "2026-11-24T12:00:00+02:00",
                   "timelimit": [120, 7.5], "retries": 1, "ignore_result": null, "whatever": [1]}),
            r#"[[1], {"a": 1}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null, "extra": 1}]"#,
        );
        let m = TaskMessage::decode(&env).expect("decodes");
        assert_eq!(m.eta, Some(ts("2026-11-24T10:00:00.123456Z")));
        assert_eq!(m.expires, Some(ts("2026-11-24T10:00:00Z")));
        assert_eq!(
            (m.hard_time_limit, m.soft_time_limit),
            (Some(120.0), Some(7.5))
        );
        assert_eq!((m.retries, m.root_id, m.parent_id), (1, None, None));

        let m = TaskMessage::decode(&envelope(minimal_headers(), "[[], {}, {}]")).expect("minimal");
        assert_eq!((m.task.as_str(), m.id.as_str(), m.retries), ("t", "i", 0));
        assert_eq!(
            (m.eta, m.hard_time_limit, m.soft_time_limit),
            (None, None, None)
        );

        let h = json!({"task": "t", "id": "i", "timelimit": [null, null], "eta": "2026-11-24T10:00:00Z"});
        let m = TaskMessage::decode(&envelope(h, "[[], {}, null]")).expect("null limits");
        assert_eq!((m.hard_time_limit, m.soft_time_limit), (None, None));
        assert!(m.eta.is_some());

        let h = json!({"task": "t", "id": "i", "timelimit": [0, 10]});
        let m = TaskMessage::decode(&envelope(h, "[[], {}, {}]")).expect("zero limit");
        assert_eq!((m.hard_time_limit, m.soft_time_limit), (None, Some(10.0)));

        let body = r#"[[], {}, {"callbacks": [{"task": "cb", "options": {"link": {"task": "cb2", "chord_size": null}}, "extra": 1}]}]"#;
        let m = TaskMessage::decode(&envelope(minimal_headers(), body)).expect("sparse signature");
        assert_eq!(m.callbacks[0].link[0].task, "cb2");
        assert!(m.callbacks[0].args.is_empty() && !m.callbacks[0].immutable);

        let mut env = envelope(minimal_headers(), "[[], {}, {}]");
        env.content_type = "application/json; charset=utf-8".into();
        env.content_encoding = String::new();
        assert!(TaskMessage::decode(&env).is_ok());
    }

    fn decode_err(env: &Envelope) -> String {
        match TaskMessage::decode(env) {
            Ok(m) => panic!("decoded {m:?}"),
            Err(e) => {
                let text = e.to_string();
                assert_eq!(
                    text.chars().next(),
                    text.chars().next().map(|c| c.to_ascii_lowercase()),
                    "{text}"
                );
                text
            }
        }
    }

    #[test]
    fn decode_errors_name_the_problem() {
        let ok_body = "[[], {}, {}]";
        let mut env = envelope(minimal_headers(), ok_body);
        env.content_type = "application/x-python-serialize".into();
        env.content_encoding = "binary".into();
        let e = decode_err(&env);
        assert!(
            e.contains("`application/x-python-serialize`") && e.contains("task_serializer='json'"),
            "{e}"
        );

        let mut env = envelope(minimal_headers(), ok_body);
        env.content_encoding = "latin-1".into();
        assert!(decode_err(&env).contains("content encoding `latin-1`"));

        let mut env = envelope(
            json!({"task": "t", "id": "i", "compression": "application/x-gzip"}),
            ok_body,
        );
        assert!(decode_err(&env).contains("compressed"));
        env.headers.remove("compression");

        env.body = vec![b'[', 0xff, b']'];
        assert!(decode_err(&env).contains("not valid UTF-8 (bad byte at offset 1)"));

        assert!(decode_err(&envelope(minimal_headers(), "[[], {}")).contains("not valid JSON"));
        let v1 = r#"{"task": "t", "id": "i", "args": [], "kwargs": {}}"#;
        assert!(decode_err(&envelope(json!({}), v1)).contains("protocol v1 is not supported"));
        assert!(decode_err(&envelope(minimal_headers(), "[[], {}]")).contains("3-element array"));
        assert!(decode_err(&envelope(minimal_headers(), "{}")).contains("3-element array"));
        assert!(
            decode_err(&envelope(minimal_headers(), r#"["a", {}, {}]"#))
                .contains("`args` must be an array")
        );
        assert!(
            decode_err(&envelope(minimal_headers(), "[[], [], {}]"))
                .contains("`kwargs` must be an object")
        );
        assert!(
            decode_err(&envelope(minimal_headers(), "[[], {}, 3]"))
                .contains("`embed` must be an object")
        );

        assert_eq!(
            decode_err(&envelope(json!({"id": "i"}), ok_body)),
            "missing `task` header"
        );
        assert_eq!(
            decode_err(&envelope(json!({"task": "t"}), ok_body)),
            "missing `id` header"
        );
        let e = decode_err(&envelope(json!({"task": 5, "id": "i"}), ok_body));
        assert_eq!(
            e,
            "header `task` must be a non-empty string, found a number `5`"
        );
        assert!(
            decode_err(&envelope(json!({"task": "t", "id": ""}), ok_body)).contains("header `id`")
        );
        assert!(
            decode_err(&envelope(
                json!({"task": "t", "id": "i", "retries": -1}),
                ok_body
            ))
            .contains("`retries`")
        );
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "timelimit": [1]}),
            ok_body,
        ));
        assert!(e.contains("`timelimit`"), "{e}");
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "timelimit": ["1", null]}),
            ok_body,
        ));
        assert!(e.contains("`timelimit`"), "{e}");
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "eta": "tomorrow"}),
            ok_body,
        ));
        assert!(e.starts_with("invalid `eta` header `tomorrow`: "), "{e}");
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "eta": 17}),
            ok_body,
        ));
        assert!(e.starts_with("header `eta` must be an ISO-8601"), "{e}");
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "expires": "2026-13-01T00:00:00"}),
            ok_body,
        ));
        assert!(e.starts_with("invalid `expires` header"), "{e}");
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "parent_id": 3}),
            ok_body,
        ));
        assert!(e.contains("`parent_id`"), "{e}");

        let e = decode_err(&envelope(
            minimal_headers(),
            r#"[[], {}, {"chain": [{"task": "x"}]}]"#,
        ));
        assert!(
            e.starts_with("`chain` in the message body is not supported"),
            "{e}"
        );
        assert!(
            decode_err(&envelope(
                minimal_headers(),
                r#"[[], {}, {"chord": {"task": "x"}}]"#
            ))
            .contains("`chord`")
        );
        let e = decode_err(&envelope(
            minimal_headers(),
            r#"[[], {}, {"callbacks": [{"args": []}]}]"#,
        ));
        assert_eq!(e, "invalid signature at `callbacks[0]`: missing `task`");
        let body = r#"[[], {}, {"callbacks": [{"task": "a", "options": {"link": [{"task": "b", "args": 1}]}}]}]"#;
        let e = decode_err(&envelope(minimal_headers(), body));
        assert!(
            e.starts_with(
                "invalid signature at `callbacks[0].options.link[0].args`: expected an array"
            ),
            "{e}"
        );
        let body = r#"[[], {}, {"errbacks": [{"task": "celery.group", "subtask_type": "group"}]}]"#;
        assert!(
            decode_err(&envelope(minimal_headers(), body))
                .contains("(`subtask_type` `group`) is not supported")
        );
        let body = r#"[[], {}, {"callbacks": "nope"}]"#;
        assert!(decode_err(&envelope(minimal_headers(), body)).contains("`callbacks`"));
        let body = r#"[[], {}, {"callbacks": [{"task": "a", "options": {"queue": 1}}]}]"#;
        assert!(decode_err(&envelope(minimal_headers(), body)).contains("options.queue"));
    }

    #[test]
    fn long_inputs_are_quoted_short() {
        let e = decode_err(&envelope(
            json!({"task": "t", "id": "i", "eta": "x".repeat(10_000)}),
            "[[], {}, {}]",
        ));
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn signature_serde_is_celery_dict() {
        let sig = rich().callbacks.remove(0);
        let text = serde_json::to_string(&sig).expect("serialise");
        let back: Signature = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(back, sig);
        let v: Json = serde_json::from_str(&text).expect("json");
        assert_eq!(v["options"]["queue"], json!("q1"));
        assert_eq!(v["subtask_type"], Json::Null);
        assert!(serde_json::from_str::<Signature>(r#"{"args": []}"#).is_err());
        let bare = Signature {
            task: "t".into(),
            args: vec![],
            kwargs: Map::new(),
            queue: None,
            link: vec![],
            immutable: false,
        };
        assert_eq!(bare.to_json()["options"], json!({}));
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            "[a-z0-9:+.T -]{0,12}".prop_map(Json::String),
            any::<String>().prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("task".to_owned()),
                        Just("options".to_owned()),
                        Just("link".to_owned()),
                        Just("queue".to_owned()),
                        Just("args".to_owned()),
                        Just("callbacks".to_owned()),
                        "[a-z_]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_headers() -> impl Strategy<Value = BTreeMap<String, Json>> {
        let key = prop_oneof![
            Just("task".to_owned()),
            Just("id".to_owned()),
            Just("eta".to_owned()),
            Just("expires".to_owned()),
            Just("retries".to_owned()),
            Just("timelimit".to_owned()),
            Just("root_id".to_owned()),
            Just("parent_id".to_owned()),
            Just("compression".to_owned()),
            any::<String>(),
        ];
        prop::collection::btree_map(key, arb_json(), 0..10)
    }

    fn arb_body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            arb_json().prop_map(|v| v.to_string().into_bytes()),
            (arb_json(), arb_json(), arb_json())
                .prop_map(|(a, k, e)| { json!([a, k, e]).to_string().into_bytes() }),
            (
                prop::collection::vec(arb_json(), 0..3),
                arb_json(),
                arb_json()
            )
                .prop_map(|(a, cb, chain)| {
                    json!([a, {}, {"callbacks": [cb], "errbacks": cb, "chain": chain}])
                        .to_string()
                        .into_bytes()
                }),
        ]
    }

    fn arb_time() -> impl Strategy<Value = Option<Timestamp>> {
        prop::option::of(
            (0i64..4_000_000_000, 0i32..1_000_000)
                .prop_map(|(s, us)| Timestamp::new(s, us * 1000).unwrap_or(Timestamp::UNIX_EPOCH)),
        )
    }

    fn arb_sig() -> impl Strategy<Value = Signature> {
        let leaf = (
            "[a-z.]{1,10}",
            prop::collection::vec(any::<i32>().prop_map(Json::from), 0..3),
            any::<bool>(),
        )
            .prop_map(|(task, args, immutable)| Signature {
                task,
                args,
                kwargs: Map::new(),
                queue: None,
                link: Vec::new(),
                immutable,
            });
        leaf.prop_recursive(3, 8, 2, |inner| {
            (
                inner.clone(),
                prop::collection::vec(inner, 0..2),
                prop::option::of("[a-z]{1,6}"),
            )
                .prop_map(|(mut sig, link, queue)| {
                    sig.link = link;
                    sig.queue = queue;
                    sig
                })
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(
            headers in arb_headers(),
            body in arb_body(),
            content_type in prop_oneof![Just(CONTENT_TYPE.to_owned()), any::<String>()],
            content_encoding in prop_oneof![Just(CONTENT_ENCODING.to_owned()), any::<String>()],
        ) {
            let mut env = Envelope { headers, body, content_type, content_encoding, correlation_id: String::new(), priority: 0 };
            let _ = TaskMessage::decode(&env);
            env.headers.insert("task".into(), json!("t"));
            env.headers.insert("id".into(), json!("i"));
            if let Ok(m) = TaskMessage::decode(&env) {
                let _ = m.encode();
            }
        }

        #[test]
        fn encode_decode_round_trips(
            task in "[a-z._]{1,20}",
            args in prop::collection::vec(prop_oneof![any::<i64>().prop_map(Json::from), any::<String>().prop_map(Json::from), Just(Json::Null)], 0..4),
            kwargs in prop::collection::btree_map(any::<String>(), any::<i32>().prop_map(Json::from), 0..4),
            retries in any::<u32>(),
            eta in arb_time(),
            expires in arb_time(),
            hard in prop::option::of((1u32..100_000).prop_map(|ms| f64::from(ms) / 1000.0)),
            soft in prop::option::of((1u32..100_000).prop_map(f64::from)),
            parent_id in prop::option::of("[a-f0-9-]{1,36}"),
            callbacks in prop::collection::vec(arb_sig(), 0..3),
            errbacks in prop::collection::vec(arb_sig(), 0..2),
        ) {
            let mut m = TaskMessage::new(task, args, kwargs.into_iter().collect());
            m.retries = retries;
            m.eta = eta;
            m.expires = expires;
            m.hard_time_limit = hard;
            m.soft_time_limit = soft;
            m.parent_id = parent_id;
            m.callbacks = callbacks;
            m.errbacks = errbacks;
            let back = TaskMessage::decode(&m.encode());
            prop_assert_eq!(back.ok(), Some(m));
        }
    }
}
