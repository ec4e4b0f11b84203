//! The raw manifest: what was written, node by node, with a span on everything a later check
//! may point at. Fields are `Option` because a value that failed to decode is left out (its
//! diagnostic is already recorded) and the validator carries on with the rest.

use std::time::Duration;

use miette::SourceSpan;

use crate::diagnostic::Spanned;
use crate::units::TimeOfDay;

/// A whole manifest as written.
#[derive(Debug)]
pub struct Ast {
    /// `acoupi version=N`.
    pub version: Option<Spanned<i128>>,
    /// `program`.
    pub program: Option<ProgramNode>,
    /// `broker`.
    pub broker: Option<BrokerNode>,
    /// `microphone` nodes, in order.
    pub microphones: Vec<MicrophoneNode>,
    /// `recording`.
    pub recording: Option<RecordingNode>,
    /// `paths`.
    pub paths: Option<PathsNode>,
    /// `detector` nodes, in order.
    pub detectors: Vec<DetectorNode>,
    /// `saving`.
    pub saving: Option<SavingNode>,
    /// `retention`.
    pub retention: Option<RetentionNode>,
    /// `messaging`.
    pub messaging: Option<MessagingNode>,
    /// `summary`.
    pub summary: Option<SummaryNode>,
    /// `workers`.
    pub workers: Option<WorkersNode>,
    /// A span at the start of the document, for "missing node" labels.
    pub start: SourceSpan,
}

/// `program NAME { description; timezone; location; device-id }`.
#[derive(Debug)]
pub struct ProgramNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The program's name.
    pub name: Option<Spanned<String>>,
    /// `description`.
    pub description: Option<Spanned<String>>,
    /// `timezone`.
    pub timezone: Option<Spanned<String>>,
    /// `location`.
    pub location: Option<LocationNode>,
    /// `device-id`: overrides the id detected on the machine.
    pub device_id: Option<Spanned<String>>,
}

/// `location latitude=… longitude=… elevation=…`.
#[derive(Debug)]
pub struct LocationNode {
    /// The whole node.
    pub span: SourceSpan,
    /// Degrees north.
    pub latitude: Option<Spanned<f64>>,
    /// Degrees east.
    pub longitude: Option<Spanned<f64>>,
    /// Metres above sea level.
    pub elevation: Option<Spanned<f64>>,
}

/// How a secret is given.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretRef {
    /// Written in the manifest (warned about).
    Plain(String),
    /// Read from an environment variable at run time.
    Env(String),
    /// Read from a file at run time.
    File(String),
}

/// `broker URL { username; password }` or `broker env=VAR`.
#[derive(Debug)]
pub struct BrokerNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The URL argument (`amqp://…` or `memory`).
    pub url: Option<Spanned<String>>,
    /// `env=`: the URL is read from this variable at run time.
    pub url_env: Option<Spanned<String>>,
    /// `username`.
    pub username: Option<Spanned<SecretRef>>,
    /// `password`.
    pub password: Option<Spanned<SecretRef>>,
}

/// Where a microphone's samples come from.
#[derive(Debug)]
pub enum SourceNode {
    /// `device "name match"`.
    Device(Spanned<String>),
    /// `synthetic SIGNAL …`.
    Synthetic(SyntheticNode),
    /// `file PATH loop=#true`.
    File {
        /// The WAV file.
        path: Option<Spanned<String>>,
        /// Whether to start again at the end.
        looped: Option<Spanned<bool>>,
    },
}

/// `synthetic "sine" frequency="1kHz" …`.
#[derive(Debug)]
pub struct SyntheticNode {
    /// `sine`, `noise`, `bursts`, `sweep` or `counter`.
    pub signal: Option<Spanned<&'static str>>,
    /// Tone frequency (sine, bursts).
    pub frequency: Option<Spanned<u32>>,
    /// Sweep start frequency.
    pub from: Option<Spanned<u32>>,
    /// Sweep end frequency.
    pub to: Option<Spanned<u32>>,
    /// Length of one call (bursts, sweep).
    pub length: Option<Spanned<Duration>>,
    /// Time between call starts (bursts, sweep).
    pub every: Option<Spanned<Duration>>,
    /// Peak amplitude, 0 to 1.
    pub amplitude: Option<Spanned<f64>>,
}

/// `microphone NAME { … }`.
#[derive(Debug)]
pub struct MicrophoneNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The microphone's name.
    pub name: Option<Spanned<String>>,
    /// `device`, `synthetic` or `file`, with the span of that child.
    pub source: Option<Spanned<SourceNode>>,
    /// `samplerate`.
    pub samplerate: Option<Spanned<u32>>,
    /// `channels`.
    pub channels: Option<Spanned<i128>>,
    /// `time-expansion`.
    pub time_expansion: Option<Spanned<f64>>,
    /// `format`.
    pub format: Option<Spanned<&'static str>>,
}

/// `window from=… to=…`.
#[derive(Debug)]
pub struct WindowNode {
    /// The whole node.
    pub span: SourceSpan,
    /// Start.
    pub from: Option<Spanned<TimeOfDay>>,
    /// End.
    pub to: Option<Spanned<TimeOfDay>>,
}

/// `recording { … }`.
#[derive(Debug)]
pub struct RecordingNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `microphone NAME`.
    pub microphone: Option<Spanned<String>>,
    /// `mode`.
    pub mode: Option<Spanned<&'static str>>,
    /// `duration`.
    pub duration: Option<Spanned<Duration>>,
    /// `interval`.
    pub interval: Option<Spanned<Duration>>,
    /// `window` nodes.
    pub windows: Vec<WindowNode>,
    /// `min-free-disk`.
    pub min_free_disk: Option<Spanned<u64>>,
    /// `staging-budget`.
    pub staging_budget: Option<Spanned<UsageValue>>,
}

/// A limit written as a percentage (`"85%"`) or a size (`"200GiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageValue {
    /// A whole percentage, as written (its range is checked in `model`).
    Percent(u64),
    /// A size in bytes.
    Bytes(u64),
}

/// `retention { max-age; max-usage; keep-newest }`.
#[derive(Debug)]
pub struct RetentionNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `max-age`.
    pub max_age: Option<Spanned<Duration>>,
    /// `max-usage`.
    pub max_usage: Option<Spanned<UsageValue>>,
    /// `keep-newest N per=KEY`.
    pub keep_newest: Option<KeepNewestNode>,
}

/// `keep-newest N per=KEY`.
#[derive(Debug)]
pub struct KeepNewestNode {
    /// The whole node.
    pub span: SourceSpan,
    /// How many recordings per tag value.
    pub n: Option<Spanned<i128>>,
    /// The tag key.
    pub per: Option<Spanned<String>>,
}

/// `paths { … }`.
#[derive(Debug, Default)]
pub struct PathsNode {
    /// `staging`.
    pub staging: Option<Spanned<String>>,
    /// `recordings`.
    pub recordings: Option<Spanned<String>>,
    /// `metadata`.
    pub metadata: Option<Spanned<String>>,
    /// `messages`.
    pub messages: Option<Spanned<String>>,
}

/// `band low=… high=…`.
#[derive(Debug)]
pub struct BandNode {
    /// The whole node.
    pub span: SourceSpan,
    /// Low edge.
    pub low: Option<Spanned<u32>>,
    /// High edge.
    pub high: Option<Spanned<u32>>,
}

/// `detector NAME kind=… { … }`.
#[derive(Debug)]
pub struct DetectorNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The detector's name.
    pub name: Option<Spanned<String>>,
    /// `band-energy`, `command` or `batdetect2`.
    pub kind: Option<Spanned<&'static str>>,
    /// `band` (band-energy).
    pub band: Option<BandNode>,
    /// `threshold`.
    pub threshold: Option<Spanned<f64>>,
    /// `frame` (band-energy analysis frame length).
    pub frame: Option<Spanned<Duration>>,
    /// `overlap` (band-energy: the fraction of a frame the next one shares).
    pub overlap: Option<Spanned<f64>>,
    /// `command PROGRAM ARGS…` (command).
    pub command: Option<Spanned<Vec<String>>>,
    /// `timeout` (command).
    pub timeout: Option<Spanned<Duration>>,
    /// `mode` (command): `serve` or `per-file`.
    pub mode: Option<Spanned<&'static str>>,
    /// `startup-timeout` (command, serve mode).
    pub startup_timeout: Option<Spanned<Duration>>,
    /// `model` (batdetect2): the checkpoint file.
    pub model: Option<Spanned<String>>,
    /// `chunked` (batdetect2): analyse in 3 s chunks rather than as one spectrogram.
    pub chunked: Option<Spanned<bool>>,
    /// Names of child nodes that were given, with their spans, for "not for this kind" checks.
    pub given: Vec<(String, SourceSpan)>,
}

/// One `keep-if` rule.
#[derive(Debug)]
pub enum RuleNode {
    /// `keep-if detection min-score=… detector=…`.
    Detection {
        /// The node.
        span: SourceSpan,
        /// Minimum score.
        min_score: Option<Spanned<f64>>,
        /// Only this detector's detections.
        detector: Option<Spanned<String>>,
    },
    /// `keep-if window from=… to=…`.
    Window(WindowNode),
    /// `keep-if every n=N`.
    Every {
        /// The node.
        span: SourceSpan,
        /// Keep one recording in N.
        n: Option<Spanned<i128>>,
    },
}

/// `saving { … }`.
#[derive(Debug)]
pub struct SavingNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `keep-if` rules, OR-ed.
    pub rules: Vec<RuleNode>,
    /// `folder TEMPLATE`.
    pub folder: Option<Spanned<String>>,
    /// `otherwise "delete"|"keep"`.
    pub otherwise: Option<Spanned<&'static str>>,
}

/// `mqtt host=… port=… topic=… { … }`.
#[derive(Debug)]
pub struct MqttNode {
    /// The whole node.
    pub span: SourceSpan,
    /// Broker host.
    pub host: Option<Spanned<String>>,
    /// Broker port.
    pub port: Option<Spanned<i128>>,
    /// Base topic.
    pub topic: Option<Spanned<String>>,
    /// `username`.
    pub username: Option<Spanned<SecretRef>>,
    /// `password`.
    pub password: Option<Spanned<SecretRef>>,
    /// `tls`.
    pub tls: Option<Spanned<bool>>,
    /// `client-id`.
    pub client_id: Option<Spanned<String>>,
    /// `topic-per-type`.
    pub topic_per_type: Option<Spanned<bool>>,
    /// `timeout`: how long to wait for the broker's acknowledgements.
    pub timeout: Option<Spanned<Duration>>,
}

/// `header NAME VALUE` or `header NAME env=…`.
#[derive(Debug)]
pub struct HeaderNode {
    /// The header name.
    pub name: Option<Spanned<String>>,
    /// The value.
    pub value: Option<Spanned<SecretRef>>,
}

/// `http url=… { … }`.
#[derive(Debug)]
pub struct HttpNode {
    /// The whole node.
    pub span: SourceSpan,
    /// Endpoint.
    pub url: Option<Spanned<String>>,
    /// Extra headers.
    pub headers: Vec<HeaderNode>,
    /// `timeout`.
    pub timeout: Option<Spanned<Duration>>,
}

/// `send every=… batch=… order=… max-attempts=… max-age=…`.
#[derive(Debug)]
pub struct SendNode {
    /// Send interval.
    pub every: Option<Spanned<Duration>>,
    /// Messages per send.
    pub batch: Option<Spanned<i128>>,
    /// `oldest-first` or `newest-first`.
    pub order: Option<Spanned<&'static str>>,
    /// Refusals after which a message expires.
    pub max_attempts: Option<Spanned<i128>>,
    /// Age after which a message expires.
    pub max_age: Option<Spanned<Duration>>,
}

/// `message KIND …`.
#[derive(Debug)]
pub struct MessageNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `detection` or `recording`.
    pub kind: Option<Spanned<&'static str>>,
    /// Minimum score (detection).
    pub min_score: Option<Spanned<f64>>,
    /// Only this detector (detection).
    pub detector: Option<Spanned<String>>,
}

/// `messaging { … }`.
#[derive(Debug)]
pub struct MessagingNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `mqtt`.
    pub mqtt: Option<MqttNode>,
    /// `http`.
    pub http: Option<HttpNode>,
    /// `send`.
    pub send: Option<SendNode>,
    /// `heartbeat every=…`.
    pub heartbeat: Option<Spanned<Duration>>,
    /// `message` nodes.
    pub messages: Vec<MessageNode>,
}

/// `summary every=… { statistics; thresholds … }`.
#[derive(Debug)]
pub struct SummaryNode {
    /// The whole node.
    pub span: SourceSpan,
    /// How often.
    pub every: Option<Spanned<Duration>>,
    /// `statistics` given.
    pub statistics: Option<SourceSpan>,
    /// `thresholds low=… mid=… high=…`.
    pub thresholds: Option<(SourceSpan, [Option<Spanned<f64>>; 3])>,
}

/// `worker NAME queues=… concurrency=… prefetch=…`.
#[derive(Debug)]
pub struct WorkerNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The worker's name.
    pub name: Option<Spanned<String>>,
    /// The queues it consumes.
    pub queues: Vec<Spanned<String>>,
    /// The span of the `queues` entry, if given.
    pub queues_span: Option<SourceSpan>,
    /// Tasks run at once.
    pub concurrency: Option<Spanned<i128>>,
    /// Unacknowledged deliveries held at once.
    pub prefetch: Option<Spanned<i128>>,
}

/// `task NAME queue=… every=… …`.
#[derive(Debug)]
pub struct TaskNode {
    /// The whole node.
    pub span: SourceSpan,
    /// The task's name.
    pub name: Option<Spanned<String>>,
    /// Route to this queue.
    pub queue: Option<Spanned<String>>,
    /// Schedule interval.
    pub every: Option<Spanned<Duration>>,
    /// Offset from the aligned slot.
    pub offset: Option<Spanned<Duration>>,
    /// Retry limit.
    pub retries: Option<Spanned<i128>>,
    /// Soft time limit.
    pub soft_time_limit: Option<Spanned<Duration>>,
    /// Hard time limit.
    pub time_limit: Option<Spanned<Duration>>,
}

/// `workers { worker …; task … }`.
#[derive(Debug)]
pub struct WorkersNode {
    /// The whole node.
    pub span: SourceSpan,
    /// `worker` nodes; when any is given they replace the derived workers.
    pub workers: Vec<WorkerNode>,
    /// `task` overrides.
    pub tasks: Vec<TaskNode>,
}
