//! The compiler/runtime contract: the types of `config/program.json` and
//! `config/workers.json`.
//!
//! In: nothing (these are plain serde types). Out: what `acoupi build` serialises and what
//! the runtime deserialises; it never reads the manifest. Every duration is in milliseconds
//! (`*_ms`), every frequency in hertz (`*_hz`), every size in bytes (`*_bytes`), every path is
//! absolute. The JSON Schema of both files is generated into `schema/` by [`program_schema`]
//! and [`workers_schema`]; a test fails when the checked-in copy is stale. [`data`] holds
//! acoupi's data model (recordings, detections, model outputs), what tasks store and send.

pub mod data;
pub mod isotime;

use camino::Utf8PathBuf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod layout;
pub mod payload;
pub mod tasks;

pub use crate::units::{SunEvent, TimeOfDay};

/// Version of the program.json layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole compiled program: `config/program.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Program {
    /// Layout version of this file ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Version of the acoupi that compiled it.
    pub acoupi_version: String,
    /// Program name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// IANA timezone of the program's clock-time windows and date folders.
    pub timezone: String,
    /// Where the sensor is, when known; needed for sun-relative windows.
    pub location: Option<Location>,
    /// The device id heartbeats, messages and file names carry, when the manifest sets one;
    /// `None` uses the id detected on the machine at run time (the Raspberry Pi serial, else
    /// `/etc/machine-id`, else the host name).
    #[serde(default)]
    pub device_id: Option<String>,
    /// The ACOUPI_HOME this program was compiled into.
    #[schemars(with = "String")]
    pub home: Utf8PathBuf,
    /// The task broker.
    pub broker: Broker,
    /// Storage and runtime paths, all absolute.
    pub paths: Paths,
    /// Declared microphones.
    pub microphones: Vec<Microphone>,
    /// How and when to record.
    pub recording: Recording,
    /// Declared detectors, run in order on every recording.
    pub detectors: Vec<Detector>,
    /// Which recordings to keep and where.
    pub saving: Saving,
    /// Messaging, when configured.
    pub messaging: Option<Messaging>,
    /// Periodic detection summaries, when configured.
    pub summary: Option<Summary>,
    /// When kept recordings are deleted; `None` keeps them for ever.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// The task graph.
    pub tasks: Vec<Task>,
    /// Every queue some task is routed to.
    pub queues: Vec<Queue>,
    /// Worker processes and the queues they consume.
    pub workers: Vec<Worker>,
}

/// Geographic location.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
    /// Metres above sea level.
    pub elevation_m: f64,
}

/// A secret, given by reference (or, discouraged, inline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    /// Read this environment variable at run time.
    Env(String),
    /// Read this file at run time (trailing newline trimmed).
    File(#[schemars(with = "String")] Utf8PathBuf),
    /// Written in the manifest (the compiler warns).
    Value(String),
}

/// The task broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Broker {
    /// RabbitMQ over AMQP 0-9-1.
    Amqp {
        /// The URL, when given in the manifest.
        url: Option<String>,
        /// The environment variable holding the URL, when given by reference.
        url_env: Option<String>,
        /// User name overriding the URL's.
        username: Option<Secret>,
        /// Password overriding the URL's.
        password: Option<Secret>,
    },
    /// In-process queues (foreground mode only).
    Memory,
}

/// Storage and runtime paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Paths {
    /// Where recordings are written first (ideally tmpfs).
    #[schemars(with = "String")]
    pub staging: Utf8PathBuf,
    /// Where kept recordings are moved.
    #[schemars(with = "String")]
    pub recordings: Utf8PathBuf,
    /// The SQLite metadata store.
    #[schemars(with = "String")]
    pub metadata: Utf8PathBuf,
    /// The SQLite message store (outbox).
    #[schemars(with = "String")]
    pub messages: Utf8PathBuf,
    /// Logs (`$ACOUPI_HOME/log`).
    #[schemars(with = "String")]
    pub log: Utf8PathBuf,
    /// Pid files and sockets (`$ACOUPI_HOME/run`).
    #[schemars(with = "String")]
    pub run: Utf8PathBuf,
    /// Beat schedule state and other runtime state (`$ACOUPI_HOME/state`).
    #[schemars(with = "String")]
    pub state: Utf8PathBuf,
}

/// Sample format of the captured audio and the written WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SampleFormat {
    /// 16-bit signed integer.
    I16,
    /// 24-bit signed integer.
    I24,
    /// 32-bit signed integer.
    I32,
    /// 32-bit float.
    F32,
}

/// A microphone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Microphone {
    /// Name used in the manifest.
    pub name: String,
    /// Where samples come from.
    pub source: Source,
    /// Capture sample rate.
    pub samplerate_hz: u32,
    /// Channel count.
    pub channels: u16,
    /// Time-expansion factor; the WAV header rate is `samplerate_hz / time_expansion`.
    pub time_expansion: f64,
    /// Sample format.
    pub sample_format: SampleFormat,
}

/// Where a microphone's samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// An audio input device whose name contains `device` (case-insensitive), or `default`.
    Device {
        /// Name match.
        device: String,
    },
    /// A generated signal, paced in real time.
    Synthetic {
        /// The signal.
        signal: Signal,
    },
    /// A WAV file replayed as if live.
    File {
        /// The WAV file.
        #[schemars(with = "String")]
        path: Utf8PathBuf,
        /// Start again at the end.
        looped: bool,
    },
}

/// A synthetic signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Signal {
    /// A continuous sine tone.
    Sine {
        /// Tone frequency.
        frequency_hz: u32,
        /// Peak amplitude, 0 to 1.
        amplitude: f64,
    },
    /// White noise.
    Noise {
        /// Peak amplitude, 0 to 1.
        amplitude: f64,
    },
    /// Constant-frequency tone bursts.
    Bursts {
        /// Tone frequency.
        frequency_hz: u32,
        /// Burst length.
        length_ms: u64,
        /// Time between burst starts.
        every_ms: u64,
        /// Peak amplitude, 0 to 1.
        amplitude: f64,
    },
    /// Frequency sweeps (bat-like calls).
    Sweep {
        /// Start frequency.
        from_hz: u32,
        /// End frequency.
        to_hz: u32,
        /// Call length.
        length_ms: u64,
        /// Time between call starts.
        every_ms: u64,
        /// Peak amplitude, 0 to 1.
        amplitude: f64,
    },
    /// A sample counter (sample `n` holds `n` modulo the format's range), for gap tests.
    Counter,
}

/// Recording mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingMode {
    /// One recording of `duration_ms` per scheduled slot.
    DutyCycle,
    /// One open stream, rotated into files of `duration_ms` without gaps.
    Continuous,
}

/// How to record. When to record is the `record` task's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Recording {
    /// The microphone's name.
    pub microphone: String,
    /// Duty-cycle or continuous.
    pub mode: RecordingMode,
    /// Length of each recording (file length in continuous mode).
    pub duration_ms: u64,
    /// Time between recording starts (equals `duration_ms` in continuous mode).
    pub interval_ms: u64,
    /// Do not record when the staging or recordings file system has less free space.
    pub min_free_disk_bytes: u64,
    /// How much the staging directory may hold before recording pauses; `None` is the
    /// default rule (a quarter of the staging file system), see `retention::staging_budget`.
    #[serde(default)]
    pub staging_budget: Option<Usage>,
}

/// A limit on stored bytes: a share of a file system, or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// A whole percentage of the file system's size, 1 to 99.
    Percent(u8),
    /// A number of bytes, at least one recording's size.
    Bytes(u64),
}

/// When kept recordings under `paths.recordings` are deleted. Every rule is optional; a
/// recording with messages still to send, or among the newest `keep_newest` of its tag value,
/// is never deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Retention {
    /// Delete kept recordings that started longer ago than this.
    pub max_age_ms: Option<u64>,
    /// Delete the oldest kept recordings while the recordings file system's used share (a
    /// percentage) or the kept recordings' total size (bytes) is above this.
    pub max_usage: Option<Usage>,
    /// Recordings no rule deletes: the newest few per value of a tag key.
    pub keep_newest: Option<KeepNewest>,
}

/// Never delete the newest `n` recordings per value of the tag key `per_tag_key` (so the
/// last recordings of a rare species survive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeepNewest {
    /// How many recordings to keep per tag value, at least 1.
    pub n: u32,
    /// The tag key whose values are counted, e.g. `species`.
    pub per_tag_key: String,
}

/// A daily window in the program's timezone; `from` after `to` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Window {
    /// Start.
    pub from: TimeOfDay,
    /// End.
    pub to: TimeOfDay,
}

/// A detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Detector {
    /// Name used in the manifest and stored with each detection.
    pub name: String,
    /// What it runs.
    pub kind: DetectorKind,
}

/// What a detector runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DetectorKind {
    /// Built-in: energy in a frequency band relative to the whole spectrum, per frame.
    BandEnergy {
        /// Band low edge.
        low_hz: u32,
        /// Band high edge.
        high_hz: u32,
        /// Score threshold, 0 to 1; frames above it are detections.
        threshold: f64,
        /// Analysis frame length.
        frame_ms: u64,
        /// Fraction of a frame the next frame shares, 0 to 0.9.
        #[serde(default = "half")]
        overlap: f64,
    },
    /// An external program speaking the detector protocol (`schema/detector-protocol.md`).
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// A request (serve) or a run (per-file) is abandoned after this long.
        timeout_ms: u64,
        /// Detections scoring below this are dropped.
        threshold: f64,
        /// One long-lived process per task slot, or one process per file.
        #[serde(default)]
        mode: CommandMode,
        /// Serve mode: how long the program may take to announce it is ready.
        #[serde(default = "default_startup_timeout_ms")]
        startup_timeout_ms: u64,
    },
    /// Built-in: BatDetect2's Net2DFast network, run in-process.
    Batdetect2 {
        /// The checkpoint (`Net2DFast_UK_same.pth.tar`); `None` means where
        /// `acoupi models install batdetect2` put it on the machine that runs the detector.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        model: Option<Utf8PathBuf>,
        /// Analyse in 3 s chunks (BatDetect2's `process_file`) rather than the whole file as one
        /// spectrogram (`process_spectrogram`, what acoupi-batdetect2 does).
        #[serde(default)]
        chunked: bool,
        /// Detections scoring below this are dropped.
        threshold: f64,
    },
}

fn half() -> f64 {
    0.5
}

/// The default start-up timeout of a serve-mode detector: Python models take 4-9 s to load on
/// a laptop and several times that on a Raspberry Pi.
pub const DEFAULT_STARTUP_TIMEOUT_MS: u64 = 120_000;

fn default_startup_timeout_ms() -> u64 {
    DEFAULT_STARTUP_TIMEOUT_MS
}

/// How a command detector's program runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CommandMode {
    /// Started once and kept running; one JSON line per request and per response.
    #[default]
    Serve,
    /// Started for each file, with the WAV path as its last argument.
    PerFile,
}

/// Saving rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Saving {
    /// A recording is kept when any rule matches.
    pub rules: Vec<SaveRule>,
    /// Folder under `paths.recordings`, a template (`{date:%Y}` and friends).
    pub folder: String,
    /// What happens to recordings no rule keeps.
    pub otherwise: Otherwise,
}

/// One saving rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum SaveRule {
    /// Keep when a detection scores at least `min_score`.
    Detection {
        /// Minimum score.
        min_score: f64,
        /// Only this detector's detections (any when absent).
        detector: Option<String>,
    },
    /// Keep when the recording starts inside the window.
    Window {
        /// The window.
        window: Window,
    },
    /// Keep one recording in `n`.
    Every {
        /// The period.
        n: u32,
    },
}

/// What happens to recordings no rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Otherwise {
    /// Delete it.
    Delete,
    /// Keep it anyway.
    Keep,
}

/// Messaging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Messaging {
    /// MQTT, when configured.
    pub mqtt: Option<Mqtt>,
    /// HTTP, when configured.
    pub http: Option<Http>,
    /// At most this many messages per send.
    pub batch: u32,
    /// Which messages go first.
    pub order: MessageOrder,
    /// A message the destinations refused this many times is expired (reported, no longer
    /// sent). Only refusals by a destination that answered count; an outage costs none.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// A message older than this is expired, whatever happened to it.
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u64,
    /// Which messages to build.
    pub messages: Vec<MessageRule>,
}

/// The default refusals after which a message expires.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

/// The default age after which a message expires: 30 days.
pub const DEFAULT_MAX_AGE_MS: u64 = 30 * 86_400_000;

fn default_max_age_ms() -> u64 {
    DEFAULT_MAX_AGE_MS
}

/// Send order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MessageOrder {
    /// Oldest first.
    OldestFirst,
    /// Newest first.
    NewestFirst,
}

/// MQTT settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mqtt {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Base topic.
    pub topic: String,
    /// User name.
    pub username: Option<Secret>,
    /// Password.
    pub password: Option<Secret>,
    /// Use TLS with the system roots.
    pub tls: bool,
    /// Client id.
    pub client_id: String,
    /// Publish to `<topic>/<message type>`.
    pub topic_per_type: bool,
    /// How long to wait for the broker's CONNACK and for each acknowledgement.
    #[serde(default = "default_mqtt_timeout_ms")]
    pub timeout_ms: u64,
}

/// The default MQTT timeout: 10 seconds.
pub const DEFAULT_MQTT_TIMEOUT_MS: u64 = 10_000;

fn default_mqtt_timeout_ms() -> u64 {
    DEFAULT_MQTT_TIMEOUT_MS
}

/// HTTP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Http {
    /// Endpoint receiving `POST`s of JSON messages.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<Header>,
    /// Request timeout.
    pub timeout_ms: u64,
}

/// An HTTP header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: Secret,
}

/// A message to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageRule {
    /// One message per detection scoring at least `min_score`.
    Detection {
        /// Minimum score.
        min_score: f64,
        /// Only this detector (any when absent).
        detector: Option<String>,
    },
    /// One message per kept recording.
    Recording,
}

/// Detection summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Count, mean, min and max score per label.
    pub statistics: bool,
    /// Counts per score band.
    pub thresholds: Option<Thresholds>,
}

/// Score bands for threshold summaries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Thresholds {
    /// Low band lower bound.
    pub low: f64,
    /// Mid band lower bound.
    pub mid: f64,
    /// High band lower bound.
    pub high: f64,
}

/// One task of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    /// Task name, also the handler name (`record`, `detect`, `manage-files`,
    /// `send-messages`, `heartbeat`, `summary`).
    pub name: String,
    /// Queue it is published to.
    pub queue: String,
    /// When beat publishes it.
    pub schedule: Schedule,
    /// Tasks published with this task's result as their argument.
    pub follow_ups: Vec<String>,
    /// Retries after a transient failure.
    pub retries: u32,
    /// A warning is logged when a run takes longer.
    pub soft_time_limit_ms: u64,
    /// A run is stopped and counts as failed when it takes longer.
    pub time_limit_ms: u64,
}

/// When a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Only as another task's follow-up (or by hand).
    Triggered,
    /// At wall-clock-aligned slots `offset + k * every` inside the windows (always when empty).
    Interval {
        /// Slot length.
        every_ms: u64,
        /// Offset of the slots from midnight-aligned multiples of `every_ms`.
        offset_ms: u64,
        /// Daily windows; empty means all day.
        windows: Vec<Window>,
    },
    /// Runs continuously in its worker while inside the windows (continuous recording).
    Continuous {
        /// Daily windows; empty means all day.
        windows: Vec<Window>,
    },
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// Where undeliverable and failed tasks go.
    pub dead_letter: String,
}

/// A worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Worker {
    /// Worker name (also its systemd unit's instance).
    pub name: String,
    /// Queues consumed.
    pub queues: Vec<String>,
    /// Tasks run at once.
    pub concurrency: u32,
    /// Unacknowledged deliveries held at once.
    pub prefetch: u32,
}

/// `config/workers.json`: the worker definitions on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkersFile {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The workers.
    pub workers: Vec<Worker>,
}

/// The JSON Schema of `config/program.json`.
pub fn program_schema() -> schemars::Schema {
    schemars::schema_for!(Program)
}

/// The JSON Schema of `config/workers.json`.
pub fn workers_schema() -> schemars::Schema {
    schemars::schema_for!(WorkersFile)
}

impl Program {
    /// Every secret the program reads at run time, with what it is for, in manifest order:
    /// the broker's username and password, the MQTT username and password, the HTTP headers.
    /// (A broker URL given by `env=` is not a [`Secret`] field; see [`Broker::Amqp`].)
    pub fn secrets(&self) -> Vec<(String, &Secret)> {
        let mut out = Vec::new();
        if let Broker::Amqp {
            username, password, ..
        } = &self.broker
        {
            out.extend(
                username
                    .iter()
                    .map(|s| ("the broker username".to_owned(), s)),
            );
            out.extend(
                password
                    .iter()
                    .map(|s| ("the broker password".to_owned(), s)),
            );
        }
        if let Some(m) = &self.messaging {
            if let Some(mqtt) = &m.mqtt {
                out.extend(
                    mqtt.username
                        .iter()
                        .map(|s| ("the MQTT username".to_owned(), s)),
                );
                out.extend(
                    mqtt.password
                        .iter()
                        .map(|s| ("the MQTT password".to_owned(), s)),
                );
            }
            if let Some(http) = &m.http {
                for h in &http.headers {
                    out.push((format!("the HTTP header `{}`", h.name), &h.value));
                }
            }
        }
        out
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The program with every microphone replaced by a synthetic sweep below its Nyquist
    /// frequency (`acoupi run --microphone synthetic`: try a manifest without its sound card).
    pub fn with_synthetic_microphones(mut self) -> Self {
        for mic in &mut self.microphones {
            let nyquist = mic.samplerate_hz / 2;
            mic.source = Source::Synthetic {
                signal: Signal::Sweep {
                    from_hz: 80_000.min(nyquist * 4 / 5),
                    to_hz: 40_000.min(nyquist * 2 / 5),
                    length_ms: 5,
                    every_ms: 100,
                    amplitude: 0.5,
                },
            };
        }
        self
    }

    /// The worker named `name`.
    pub fn worker(&self, name: &str) -> Option<&Worker> {
        self.workers.iter().find(|w| w.name == name)
    }
}
