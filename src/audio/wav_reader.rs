//! WAV input as it is found in the field (being built; a `hound` probe stands in).

use camino::Utf8Path;

/// What a WAV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Header sample rate, Hz.
    pub samplerate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// Frames (samples per channel).
    pub frames: u64,
}

/// The format of the WAV file at `path`, or why it cannot be read.
pub fn probe(path: &Utf8Path) -> Result<WavInfo, String> {
    let r = hound::WavReader::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let spec = r.spec();
    Ok(WavInfo {
        samplerate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        frames: u64::from(r.duration()),
    })
}
