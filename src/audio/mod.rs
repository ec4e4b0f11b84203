//! Audio: where samples come from (`Source`: a cpal input device, a synthetic signal, a WAV
//! file replayed as if live) and where they go (WAV files with GUANO metadata, written under
//! a temporary name and renamed, rotated at exact sample boundaries in continuous mode).
//!
//! Samples travel as interleaved `i32` at the format's bit depth: 16-bit formats use the
//! `i16` range, 24-bit and 32-bit float formats the 24-bit range, 32-bit the full `i32`
//! range. Floats are converted at the edges (capture and WAV writing).

use crate::spec::SampleFormat;

/// The shape of a sample stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Frames per second captured.
    pub samplerate: u32,
    /// Samples per frame.
    pub channels: u16,
    /// How samples are stored.
    pub sample_format: SampleFormat,
}

/// Why audio could not be captured or written. Every message names the device or path.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The microphone is absent: no input device matches, or its file does not exist. A
    /// sensor waits for it to come back (see `runtime::microphone`).
    #[error("{0}")]
    Missing(String),
    /// The device failed, or went away while it was recording.
    #[error("{0}")]
    Device(String),
    /// The requested format is not supported.
    #[error("{0}")]
    Format(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The WAV file is invalid.
    #[error("{0}")]
    Wav(String),
}

/// A stream of interleaved samples.
pub trait Source: Send {
    /// The stream's format.
    fn format(&self) -> Format;
    /// Blocks until samples are available, then fills the start of `buf` with whole frames
    /// and returns how many samples (not frames) it wrote; 0 means the stream ended.
    fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError>;
    /// Samples lost because the consumer fell behind (overruns), since the stream opened.
    fn overruns(&self) -> u64 {
        0
    }
}

mod alsa_log;
pub mod device;
pub mod file;
pub mod open;
pub mod record;
pub mod synthetic;
pub mod usb;
pub mod wav;
pub mod wav_reader;
