//! The built-in band-energy detector (being built).

use camino::Utf8Path;

use super::{DetectError, Event};

/// The detector's settings, from the manifest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Band low edge, Hz (real, not time-expanded).
    pub low_hz: f64,
    /// Band high edge, Hz.
    pub high_hz: f64,
    /// Analysis frame length, seconds (real time).
    pub frame_s: f64,
    /// Fraction of a frame the next frame shares, 0 to 0.9.
    pub overlap: f64,
}

/// The band-energy detector.
#[derive(Debug, Clone)]
pub struct BandEnergy {
    settings: Settings,
}

impl BandEnergy {
    /// A detector with `settings`.
    pub fn new(settings: Settings) -> BandEnergy {
        BandEnergy { settings }
    }

    /// The events in the WAV file at `path`, recorded with `time_expansion`.
    pub fn detect(&self, path: &Utf8Path, time_expansion: f64) -> Result<Vec<Event>, DetectError> {
        let _ = (path, time_expansion, self.settings);
        Err(DetectError::Failed(
            "the band-energy detector is not built yet".into(),
        ))
    }
}
