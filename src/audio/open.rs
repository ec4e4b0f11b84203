//! Opening a declared microphone: dispatches on its source (input device, synthetic signal,
//! WAV file) and checks the stream has the declared format.
//!
//! In: a [`spec::Microphone`] and the [`Pacing`] of generated and replayed streams. Out: a
//! boxed [`Source`] delivering exactly the microphone's sample rate, channel count and sample
//! format, or an error naming the microphone and its device or file.

use super::synthetic::{Pacing, Synthetic};
use super::{AudioError, Format, Source, device, file::FileSource};
use crate::spec;

/// Opens `mic`'s source at the microphone's format; `pacing` applies to synthetic signals
/// and files (a device is paced by its hardware).
///
/// A device is opened at exactly the declared format (see [`device::open`]); a synthetic
/// signal is generated at it; a WAV file must already have it (its rate, channel count and
/// sample format are never converted), else the error says what the file holds.
pub fn open(mic: &spec::Microphone, pacing: Pacing) -> Result<Box<dyn Source>, AudioError> {
    let format = Format {
        samplerate: mic.samplerate_hz,
        channels: mic.channels,
        sample_format: mic.sample_format,
    };
    match &mic.source {
        spec::Source::Device { device } => {
            let source = device::open(device, format).map_err(|e| named(mic, e))?;
            check(mic, &source, &format!("device {}", source.device()))?;
            Ok(Box::new(source))
        }
        spec::Source::Synthetic { signal } => Ok(Box::new(Synthetic::new(signal, format, pacing))),
        spec::Source::File { path, looped } => {
            let source = FileSource::open(path, pacing, *looped).map_err(|e| named(mic, e))?;
            check(mic, &source, &format!("file {path}"))?;
            Ok(Box::new(source))
        }
    }
}

/// Fails unless `source` delivers `mic`'s declared format.
fn check(mic: &spec::Microphone, source: &dyn Source, what: &str) -> Result<(), AudioError> {
    let got = source.format();
    let want = Format {
        samplerate: mic.samplerate_hz,
        channels: mic.channels,
        sample_format: mic.sample_format,
    };
    if got == want {
        return Ok(());
    }
    Err(AudioError::Format(format!(
        "microphone `{}`: {what} delivers {} but the microphone declares {}; declare `samplerate`, `channels` and `format` to match",
        mic.name,
        describe(got),
        describe(want)
    )))
}

/// `48000 Hz, 2 channels, i16`.
fn describe(f: Format) -> String {
    let s = if f.channels == 1 { "" } else { "s" };
    let sf = match f.sample_format {
        spec::SampleFormat::I16 => "i16",
        spec::SampleFormat::I24 => "i24",
        spec::SampleFormat::I32 => "i32",
        spec::SampleFormat::F32 => "f32",
    };
    format!("{} Hz, {} channel{s}, {sf}", f.samplerate, f.channels)
}

/// The error, prefixed with the microphone's name.
fn named(mic: &spec::Microphone, e: AudioError) -> AudioError {
    let prefix = format!("microphone `{}`", mic.name);
    match e {
        AudioError::Missing(m) => AudioError::Missing(format!("{prefix}: {m}")),
        AudioError::Device(m) => AudioError::Device(format!("{prefix}: {m}")),
        AudioError::Format(m) => AudioError::Format(format!("{prefix}: {m}")),
        AudioError::Wav(m) => AudioError::Wav(format!("{prefix}: {m}")),
        AudioError::Io(e) => {
            AudioError::Io(std::io::Error::new(e.kind(), format!("{prefix}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use camino::Utf8PathBuf;

    use super::*;
    use crate::spec::SampleFormat;

    fn mic(source: spec::Source, samplerate_hz: u32, channels: u16) -> spec::Microphone {
        spec::Microphone {
            name: "m".into(),
            source,
            samplerate_hz,
            channels,
            time_expansion: 1.0,
            sample_format: SampleFormat::I16,
        }
    }

    #[test]
    fn synthetic_gets_the_declared_format() {
        let m = mic(
            spec::Source::Synthetic {
                signal: spec::Signal::Counter,
            },
            96_000,
            2,
        );
        let mut src = open(&m, Pacing::AsFastAsPossible).expect("open");
        assert_eq!(
            src.format(),
            Format {
                samplerate: 96_000,
                channels: 2,
                sample_format: SampleFormat::I16
            }
        );
        let mut buf = [0; 6];
        assert_eq!(src.read(&mut buf).ok(), Some(6));
        assert_eq!(buf, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn device_opens_through_cpal() {
        let m = mic(
            spec::Source::Device {
                device: "alsa:null".into(),
            },
            250_000,
            1,
        );
        let mut src = open(&m, Pacing::RealTime).expect("open alsa:null");
        assert_eq!(src.format().samplerate, 250_000);
        let mut buf = [7; 100];
        assert!(src.read(&mut buf).is_ok_and(|n| n > 0));
        assert_eq!(buf[0], 0);
    }

    #[test]
    fn device_errors_name_the_microphone() {
        let m = mic(
            spec::Source::Device {
                device: "no such microphone 456".into(),
            },
            48_000,
            1,
        );
        let err = open(&m, Pacing::RealTime).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("microphone `m`: no audio input device matches")),
            "{err:?}"
        );
    }

    #[test]
    fn file_must_have_the_declared_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Utf8PathBuf::from_path_buf(dir.path().join("a.wav")).expect("utf-8 path");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create");
        for i in 0..100i16 {
            w.write_sample(i).expect("write");
        }
        w.finalize().expect("finalize");

        let source = spec::Source::File {
            path: path.clone(),
            looped: false,
        };
        let mut src = open(&mic(source.clone(), 8_000, 1), Pacing::AsFastAsPossible).expect("open");
        let mut buf = [0; 3];
        assert_eq!(src.read(&mut buf).ok(), Some(3));
        assert_eq!(buf, [0, 1, 2]);

        let err = open(&mic(source, 48_000, 1), Pacing::AsFastAsPossible)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("microphone `m`"), "{err}");
        assert!(err.contains(path.as_str()), "{err}");
        assert!(
            err.contains("delivers 8000 Hz, 1 channel, i16 but the microphone declares 48000 Hz"),
            "{err}"
        );
    }
}
