//! Detection: what a program's detectors make of one recording.
//!
//! In: a [`Request`] (one WAV file and what is known about it) and the program's detectors.
//! Out: each detector's [`Event`]s, or a [`DetectError`] saying whether the file or the
//! detector is at fault. Three kinds of detector: the built-in [`band_energy`] and
//! [`batdetect2`] detectors, run on blocking threads (BatDetect2's model loads once per
//! process), and external programs ([`command`]) that speak the detector protocol
//! (`schema/detector-protocol.md`), kept running between requests in serve mode.
//!
//! [`Engine`] is one detector ready to run; [`Engines`] is a program's detectors, built once
//! per process and shared by its tasks (the worker's services, `acoupi detect`).

pub mod band_energy;
pub mod batdetect2;
pub mod command;
pub mod output;

use std::sync::Arc;

use camino::Utf8PathBuf;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::{self, DetectorKind, Program};

/// One recording to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// An id for the request (the recording's id): a serve-mode reply must carry it back.
    pub id: String,
    /// The WAV file, an absolute path.
    pub path: Utf8PathBuf,
    /// The capture rate in Hz (a time-expanded file's header holds `samplerate /
    /// time_expansion`).
    pub samplerate: u32,
    /// Channels in the file.
    pub channels: u16,
    /// Real duration in seconds.
    pub duration_s: f64,
    /// Time-expansion factor of the file (1 for real-time recordings).
    pub time_expansion: f64,
    /// When the first sample was captured.
    pub recorded_at: Timestamp,
    /// The detector's threshold: detections scoring below it will be dropped, so a program
    /// may skip them.
    pub threshold: f64,
}

/// One detected sound event. Times are seconds from the start of the recording and
/// frequencies are Hz, both real (a time-expanded file's are scaled back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds (not before `start_s`).
    pub end_s: f64,
    /// Lowest frequency, Hz.
    pub low_hz: f64,
    /// Highest frequency, Hz (not below `low_hz`).
    pub high_hz: f64,
    /// How sure the detector is, 0 to 1.
    pub score: f64,
    /// What the detector says the sound is (a species, a call type), with a score each.
    pub tags: Vec<EventTag>,
}

/// One tag a detector gives an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTag {
    /// What is tagged, e.g. `species`.
    pub key: String,
    /// The value, e.g. `Pipistrellus pipistrellus`.
    pub value: String,
    /// How sure the detector is of it, 0 to 1.
    pub score: f64,
}

/// Why a detector produced no result for a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// The audio file cannot be read (missing, truncated, not a WAV we can decode): the file
    /// is at fault and retrying will not help.
    #[error("{0}")]
    Unreadable(String),
    /// The detector program answered this request with an error: it looked at the file and
    /// refused it.
    #[error("{0}")]
    Refused(String),
    /// The detector failed (did not start, crashed, timed out, answered nonsense): it may
    /// work on a retry, after a restart.
    #[error("{0}")]
    Failed(String),
}

/// One detector, ready to run.
#[derive(Debug)]
pub enum Engine {
    /// The built-in band-energy detector.
    BandEnergy(band_energy::BandEnergy),
    /// An external program.
    Command(command::CommandDetector),
    /// The built-in BatDetect2 network (shared with the blocking threads that run it).
    Batdetect2(Arc<batdetect2::Batdetect2>),
}

impl Engine {
    /// The engine for `detector`, with up to `slots` concurrent requests (a serve-mode program
    /// runs one process per slot).
    pub fn new(detector: &spec::Detector, slots: usize) -> Engine {
        match &detector.kind {
            DetectorKind::BandEnergy {
                low_hz,
                high_hz,
                frame_ms,
                overlap,
                ..
            } => Engine::BandEnergy(band_energy::BandEnergy::new(band_energy::Settings {
                low_hz: f64::from(*low_hz),
                high_hz: f64::from(*high_hz),
                frame_s: *frame_ms as f64 / 1000.0,
                overlap: *overlap,
            })),
            DetectorKind::Command {
                argv,
                timeout_ms,
                mode,
                startup_timeout_ms,
                ..
            } => Engine::Command(command::CommandDetector::new(command::Config {
                name: detector.name.clone(),
                argv: argv.clone(),
                mode: *mode,
                timeout: std::time::Duration::from_millis(*timeout_ms),
                startup_timeout: std::time::Duration::from_millis(*startup_timeout_ms),
                slots: slots.max(1),
            })),
            DetectorKind::Batdetect2 { model, chunked, .. } => Engine::Batdetect2(Arc::new(
                batdetect2::Batdetect2::new(batdetect2::Settings {
                    model: model.clone(),
                    chunked: *chunked,
                }),
            )),
        }
    }

    /// Runs the detector on `request`'s file.
    pub async fn detect(&self, request: &Request) -> Result<Vec<Event>, DetectError> {
        match self {
            Engine::BandEnergy(b) => {
                let b = b.clone();
                let request = request.clone();
                tokio::task::spawn_blocking(move || b.detect(&request.path, request.time_expansion))
                    .await
                    .map_err(|e| {
                        DetectError::Failed(format!("the band-energy thread failed: {e}"))
                    })?
            }
            Engine::Command(c) => c.detect(request).await,
            Engine::Batdetect2(b) => {
                let b = Arc::clone(b);
                let request = request.clone();
                tokio::task::spawn_blocking(move || b.detect(&request.path, request.time_expansion))
                    .await
                    .map_err(|e| {
                        DetectError::Failed(format!("the BatDetect2 thread failed: {e}"))
                    })?
            }
        }
    }

    /// Stops what the engine keeps running (a serve-mode program's processes).
    pub async fn shutdown(&self) {
        if let Engine::Command(c) = self {
            c.shutdown().await;
        }
    }
}

/// A program's detectors, in program order, each with its name and threshold.
#[derive(Debug)]
pub struct Engines {
    entries: Vec<(spec::Detector, Engine)>,
}

impl Engines {
    /// The engines of `program`'s detectors (no process starts before the first request),
    /// each with `slots` concurrent requests.
    pub fn new(program: &Program, slots: usize) -> Arc<Engines> {
        Arc::new(Engines {
            entries: program
                .detectors
                .iter()
                .map(|d| (d.clone(), Engine::new(d, slots)))
                .collect(),
        })
    }

    /// The detectors with their engines, in program order.
    pub fn iter(&self) -> impl Iterator<Item = (&spec::Detector, &Engine)> {
        self.entries.iter().map(|(d, e)| (d, e))
    }

    /// True when the program has no detector.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts the serve-mode programs' processes now, so their models load before the first
    /// recording; a program that cannot start is logged (its first request will say why).
    pub fn warm(&self) {
        for (d, e) in &self.entries {
            if let Engine::Batdetect2(b) = e {
                // Loaded on a thread of its own, off the event loop; a request arriving
                // meanwhile waits for the same load.
                let (b, name) = (Arc::clone(b), d.name.clone());
                std::thread::spawn(move || match b.model() {
                    Ok(m) => {
                        tracing::info!(detector = %name, model = %m.path, load_ms = m.load_time.as_millis() as u64, "model loaded ahead of the first recording")
                    }
                    Err(e) => {
                        tracing::warn!(detector = %name, error = %e, "could not load the model ahead of the first recording")
                    }
                });
            }
            if let Engine::Command(c) = e {
                match c.warm() {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(detector = %d.name, processes = n, "started ahead of the first recording")
                    }
                    Err(e) => {
                        tracing::warn!(detector = %d.name, error = %e, "could not start ahead of the first recording")
                    }
                }
            }
        }
    }

    /// Stops every engine's processes.
    pub async fn shutdown(&self) {
        for (_, e) in &self.entries {
            e.shutdown().await;
        }
    }
}

/// A detector's threshold (the score under which its detections are dropped).
pub fn threshold(detector: &spec::Detector) -> f64 {
    match &detector.kind {
        DetectorKind::BandEnergy { threshold, .. }
        | DetectorKind::Command { threshold, .. }
        | DetectorKind::Batdetect2 { threshold, .. } => *threshold,
    }
}
