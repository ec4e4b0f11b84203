//! The built-in BatDetect2 detector: BatDetect2 1.3.1's bat call detector and species
//! classifier, run in-process without Python.
//!
//! In: [`Settings`] (the checkpoint, whole-file or 3 s chunks) and a WAV file with its
//! time-expansion factor. Out: [`Event`]s, one per BatDetect2 detection: score = `det_prob`,
//! one tag `species` = the top class scored `class_prob` (as acoupi-batdetect2 maps them).
//!
//! The stages, each in its own module: [`resample`] (to 256 kHz), [`spectrogram`],
//! [`network`] (Net2DFast with candle; its layers in `layers`, its convolutions in `conv`)
//! and [`postprocess`]. The model loads once, on the first request or when the worker warms
//! its detectors, and is shared by every request of the process.

mod conv;
mod layers;
pub mod network;
pub mod params;
pub mod postprocess;
pub mod resample;
pub mod spectrogram;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use super::{DetectError, Event, EventTag};
use crate::audio::wav_reader::WavReader;
use network::Network;
use params::Params;
use postprocess::Detection;

/// Seconds of audio per chunk on the chunked path (BatDetect2's `process_file`).
pub const CHUNK_S: f64 = 3.0;

/// The detector's settings, from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The checkpoint; `None` for where `acoupi models install batdetect2` put it.
    pub model: Option<Utf8PathBuf>,
    /// Analyse in 3 s chunks (`process_file`) rather than as one spectrogram.
    pub chunked: bool,
}

/// A loaded model: its parameters and network.
#[derive(Debug)]
pub struct Model {
    /// The checkpoint it came from.
    pub path: Utf8PathBuf,
    /// Processing parameters (the checkpoint's, over the defaults).
    pub params: Params,
    /// The network.
    pub network: Network,
    /// How long loading took.
    pub load_time: Duration,
}

/// Why a model did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No checkpoint at the path.
    #[error(
        "the BatDetect2 model `{0}` is not there; install it with `acoupi models install batdetect2`"
    )]
    Missing(Utf8PathBuf),
    /// No path given and no data folder to find the installed one in.
    #[error(
        "no BatDetect2 model is named and `HOME` is not set to find the installed one; name it with `model`"
    )]
    NoDefault,
    /// The checkpoint's parameters ask for processing acoupi does not implement.
    #[error("the BatDetect2 model `{path}` needs {what}")]
    Unsupported {
        /// The checkpoint.
        path: Utf8PathBuf,
        /// What it needs.
        what: String,
    },
    /// The checkpoint could not be used.
    #[error(transparent)]
    Network(#[from] network::LoadError),
}

impl Model {
    /// Loads the checkpoint at `path`: its `params` (when candle's pickle reader can read
    /// them; else BatDetect2's defaults, logged) and its weights.
    pub fn load(path: &Utf8Path) -> Result<Model, LoadError> {
        let started = Instant::now();
        if !path.is_file() {
            return Err(LoadError::Missing(path.to_owned()));
        }
        let params = match network::read_params(path) {
            Ok(obj) => {
                let (params, unused) = Params::from_pickle(obj);
                if !unused.is_empty() {
                    tracing::warn!(model = %path, entries = ?unused, "BatDetect2 parameters not understood; their defaults are used");
                }
                params
            }
            Err(e) => {
                tracing::warn!(model = %path, error = %e, "cannot read the checkpoint's parameters; BatDetect2 1.3.1's defaults are used");
                Params::default()
            }
        };
        if let Some(what) = params.unsupported() {
            return Err(LoadError::Unsupported {
                path: path.to_owned(),
                what,
            });
        }
        let network = Network::load(path, &params)?;
        Ok(Model {
            path: path.to_owned(),
            params,
            network,
            load_time: started.elapsed(),
        })
    }

    /// The network's input for `audio` at the model's rate.
    pub fn spectrogram(&self, audio: &[f32]) -> spectrogram::Spectrogram {
        spectrogram::spectrogram(audio, &self.params)
    }

    /// The network's outputs for a spectrogram.
    pub fn run(&self, spec: &spectrogram::Spectrogram) -> Result<network::Outputs, DetectError> {
        self.network
            .forward(&spec.data, spec.height, spec.width)
            .map_err(|e| DetectError::Failed(format!("the BatDetect2 network failed: {e}")))
    }

    /// BatDetect2's detections in `audio` at the model's rate, as one spectrogram
    /// (`process_spectrogram`) or in 3 s chunks (`process_file`, which also drops detections
    /// reaching above `nyquist_hz`, the recording's own Nyquist frequency).
    pub fn detect_audio(
        &self,
        audio: &[f32],
        chunked: bool,
        nyquist_hz: f64,
    ) -> Result<Vec<Detection>, DetectError> {
        if !chunked {
            let outputs = self.run(&self.spectrogram(audio))?;
            return Ok(postprocess::detections(&outputs, &self.params, 0.0));
        }
        let rate = self.params.target_samplerate as usize;
        let chunk = (rate as f64 * CHUNK_S) as usize;
        let mut out = Vec::new();
        for (i, samples) in audio.chunks(chunk).enumerate() {
            let outputs = self.run(&self.spectrogram(samples))?;
            let offset = (CHUNK_S * i as f64) as f32;
            out.extend(postprocess::detections(&outputs, &self.params, offset));
        }
        out.retain(|d| d.high_freq <= nyquist_hz);
        Ok(out)
    }
}

/// The detector: its settings and, once loaded, its model.
#[derive(Debug)]
pub struct Batdetect2 {
    settings: Settings,
    model: OnceLock<Result<Arc<Model>, String>>,
}

impl Batdetect2 {
    /// The detector; nothing is loaded before [`Batdetect2::model`] is first called.
    pub fn new(settings: Settings) -> Batdetect2 {
        Batdetect2 {
            settings,
            model: OnceLock::new(),
        }
    }

    /// The checkpoint this detector loads.
    pub fn model_path(&self) -> Result<Utf8PathBuf, LoadError> {
        match &self.settings.model {
            Some(p) => Ok(p.clone()),
            None => crate::models::batdetect2_default().ok_or(LoadError::NoDefault),
        }
    }

    /// The model, loaded on first use (blocking); a model that failed to load fails every
    /// request the same way, without retrying the load.
    pub fn model(&self) -> Result<Arc<Model>, String> {
        self.model
            .get_or_init(|| {
                let model = self
                    .model_path()
                    .and_then(|p| Model::load(&p))
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                if let Ok(m) = &model {
                    tracing::info!(model = %m.path, load_ms = m.load_time.as_millis() as u64, "BatDetect2 model loaded");
                }
                model
            })
            .clone()
    }

    /// The events in the WAV file at `path`, recorded with `time_expansion` (blocking).
    pub fn detect(&self, path: &Utf8Path, time_expansion: f64) -> Result<Vec<Event>, DetectError> {
        let model = self.model().map_err(DetectError::Failed)?;
        let (audio, rate) = read_mono(path)?;
        // BatDetect2 takes the capture rate as the header rate times the expansion factor,
        // so times and frequencies come out real.
        let real_rate = (f64::from(rate) * time_expansion).round();
        if !(1.0..=f64::from(u32::MAX)).contains(&real_rate) {
            return Err(DetectError::Refused(format!(
                "`{path}`: a sample rate of {rate} Hz with time expansion {time_expansion} cannot be analysed"
            )));
        }
        let real_rate = real_rate as u32;
        let audio = resample::resample(&audio, real_rate, model.params.target_samplerate);
        let found =
            model.detect_audio(&audio, self.settings.chunked, f64::from(real_rate) / 2.0)?;
        Ok(found.iter().map(event).collect())
    }
}

/// One BatDetect2 detection as an event.
pub fn event(d: &Detection) -> Event {
    Event {
        start_s: d.start_time,
        end_s: d.end_time.max(d.start_time),
        low_hz: d.low_freq,
        high_hz: d.high_freq.max(d.low_freq),
        score: d.det_prob,
        tags: vec![EventTag {
            key: "species".into(),
            value: d.class.clone(),
            score: d.class_prob,
        }],
    }
}

/// The whole file mixed down to mono, with its header rate.
pub fn read_mono(path: &Utf8Path) -> Result<(Vec<f32>, u32), DetectError> {
    let unreadable = |e: crate::audio::wav_reader::WavError| DetectError::Unreadable(e.to_string());
    let mut reader = WavReader::open(path).map_err(unreadable)?;
    let info = reader.info();
    let mut audio = vec![0.0f32; usize::try_from(info.frames).unwrap_or(0)];
    let mut filled = 0;
    while filled < audio.len() {
        let got = reader.read_mono(&mut audio[filled..]).map_err(unreadable)?;
        if got == 0 {
            break;
        }
        filled += got;
    }
    audio.truncate(filled);
    Ok((audio, info.samplerate))
}
