//! A WAV file replayed as if it were a live microphone.
//!
//! In: the path of a WAV file (16-, 24- or 32-bit integer, or 32-bit float PCM), a
//! [`Pacing`] and whether to loop. Out: a [`Source`] whose format is the file's, delivering
//! its samples at the sample rate (or as fast as read), then starting over or ending.
//! Float samples are scaled to the 24-bit range like every `F32` stream.

use std::fs::File;
use std::io::BufReader;

use camino::{Utf8Path, Utf8PathBuf};

use super::synthetic::{Pacer, Pacing, from_unit};
use super::{AudioError, Format, Source};
use crate::spec::SampleFormat;

/// A WAV file replayed as if live.
pub struct FileSource {
    path: Utf8PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    format: Format,
    looped: bool,
    pacer: Pacer,
    /// The file holds at least one whole frame.
    has_frames: bool,
    ended: bool,
}

impl FileSource {
    /// Opens `path`; its format becomes the stream's. The real-time clock starts now.
    pub fn open(path: &Utf8Path, pacing: Pacing, looped: bool) -> Result<FileSource, AudioError> {
        let reader = hound::WavReader::open(path).map_err(|e| wav_error(path, "open", e))?;
        let spec = reader.spec();
        let sample_format = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => SampleFormat::I16,
            (hound::SampleFormat::Int, 24) => SampleFormat::I24,
            (hound::SampleFormat::Int, 32) => SampleFormat::I32,
            (hound::SampleFormat::Float, 32) => SampleFormat::F32,
            (kind, bits) => {
                let kind = match kind {
                    hound::SampleFormat::Int => "integer",
                    hound::SampleFormat::Float => "float",
                };
                return Err(AudioError::Format(format!(
                    "{path}: {bits}-bit {kind} samples are not supported (use 16-, 24- or 32-bit integer, or 32-bit float)"
                )));
            }
        };
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(AudioError::Wav(format!(
                "{path}: the header declares {} channels at {} Hz",
                spec.channels, spec.sample_rate
            )));
        }
        let format = Format {
            samplerate: spec.sample_rate,
            channels: spec.channels,
            sample_format,
        };
        Ok(FileSource {
            path: path.to_owned(),
            has_frames: reader.duration() > 0,
            reader,
            format,
            looped,
            pacer: Pacer::new(pacing, spec.sample_rate),
            ended: false,
        })
    }

    /// The file being replayed.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Reads up to `buf.len()` samples from the current position; fewer only at the end of the
    /// file.
    fn fill(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
        let mut n = 0;
        if self.format.sample_format == SampleFormat::F32 {
            for (slot, s) in buf.iter_mut().zip(self.reader.samples::<f32>()) {
                let s = s.map_err(|e| wav_error(&self.path, "read", e))?;
                *slot = from_unit(f64::from(s), SampleFormat::F32);
                n += 1;
            }
        } else {
            for (slot, s) in buf.iter_mut().zip(self.reader.samples::<i32>()) {
                *slot = s.map_err(|e| wav_error(&self.path, "read", e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("looped", &self.looped)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Source for FileSource {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
        let channels = usize::from(self.format.channels);
        let max = buf.len() / channels;
        if max == 0 {
            return Err(AudioError::Format(format!(
                "{}: a buffer of {} samples holds no whole frame of {channels} channels",
                self.path,
                buf.len()
            )));
        }
        if self.ended || !self.has_frames {
            return Ok(0);
        }
        let want = self.pacer.take(max) * channels;
        let mut done = 0;
        while done < want {
            let n = self.fill(&mut buf[done..want])?;
            done += n;
            if done < want {
                // End of the file (a trailing partial frame is dropped).
                done -= done % channels;
                if !self.looped {
                    self.ended = true;
                    break;
                }
                self.reader
                    .seek(0)
                    .map_err(|e| AudioError::Io(at(&self.path, "rewind", e)))?;
            }
        }
        Ok(done)
    }
}

/// A hound error naming the file and what was being done.
fn wav_error(path: &Utf8Path, doing: &str, e: hound::Error) -> AudioError {
    match e {
        hound::Error::IoError(e) if e.kind() == std::io::ErrorKind::NotFound => {
            AudioError::Missing(format!("cannot {doing} {path}: the file does not exist"))
        }
        hound::Error::IoError(e) => AudioError::Io(at(path, doing, e)),
        e => AudioError::Wav(format!("cannot {doing} {path}: {e}")),
    }
}

/// An I/O error whose message names the file, keeping its kind.
fn at(path: &Utf8Path, doing: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot {doing} {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf-8 temp dir");
        (dir, path)
    }

    fn write_wav(
        path: &Utf8Path,
        channels: u16,
        rate: u32,
        bits: u16,
        float: bool,
        frames: u32,
        value: impl Fn(u32, u16) -> f64,
    ) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create wav");
        for n in 0..frames {
            for c in 0..channels {
                let v = value(n, c);
                let written = match (float, bits) {
                    (true, _) => w.write_sample(v as f32),
                    (false, 8) => w.write_sample(v as i8),
                    (false, 16) => w.write_sample(v as i16),
                    (false, _) => w.write_sample(v as i32),
                };
                written.expect("write sample");
            }
        }
        w.finalize().expect("finalize wav");
    }

    fn read_all(src: &mut FileSource, chunk: usize, limit: usize) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        while out.len() < limit {
            let n = src.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn integer_formats_replay_exactly() {
        let (_d, dir) = temp();
        for (bits, sf, scale) in [
            (16u16, SampleFormat::I16, 1.0),
            (24, SampleFormat::I24, 256.0),
            (32, SampleFormat::I32, 65_536.0),
        ] {
            let path = dir.join(format!("i{bits}.wav"));
            let value = |n: u32, c: u16| (f64::from(n) - 500.0) * scale * f64::from(c + 1);
            write_wav(&path, 2, 8_000, bits, false, 1000, value);
            let mut src = FileSource::open(&path, Pacing::AsFastAsPossible, false).expect("open");
            assert_eq!(
                src.format(),
                Format {
                    samplerate: 8_000,
                    channels: 2,
                    sample_format: sf
                }
            );
            let got = read_all(&mut src, 77, usize::MAX);
            let expect: Vec<i32> = (0..1000)
                .flat_map(|n| (0..2).map(move |c| value(n, c) as i32))
                .collect();
            assert_eq!(got, expect, "{bits}-bit");
            assert_eq!(src.read(&mut [0; 4]).ok(), Some(0), "ended");
        }
    }

    #[test]
    fn float_is_scaled_to_24_bits() {
        let (_d, dir) = temp();
        let path = dir.join("f32.wav");
        let values = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0];
        write_wav(&path, 1, 48_000, 32, true, 6, |n, _| values[n as usize]);
        let mut src = FileSource::open(&path, Pacing::AsFastAsPossible, false).expect("open");
        assert_eq!(src.format().sample_format, SampleFormat::F32);
        let got = read_all(&mut src, 100, usize::MAX);
        assert_eq!(
            got,
            [
                0,
                1 << 22,
                -(1 << 22),
                (1 << 23) - 1,
                -(1 << 23),
                (1 << 23) - 1
            ]
        );
    }

    #[test]
    fn looping_starts_over_seamlessly() {
        let (_d, dir) = temp();
        let path = dir.join("loop.wav");
        write_wav(&path, 1, 8_000, 16, false, 10, |n, _| f64::from(n));
        let mut src = FileSource::open(&path, Pacing::AsFastAsPossible, true).expect("open");
        let got = read_all(&mut src, 7, 95);
        let expect: Vec<i32> = (0..got.len() as i32).map(|i| i % 10).collect();
        assert!(got.len() >= 95);
        assert_eq!(got, expect);
    }

    #[test]
    fn unsupported_and_missing_files_name_the_path() {
        let (_d, dir) = temp();
        let path = dir.join("eight.wav");
        write_wav(&path, 1, 8_000, 8, false, 10, |_, _| 0.0);
        let err = FileSource::open(&path, Pacing::AsFastAsPossible, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(path.as_str()) && err.contains("8-bit"),
            "{err}"
        );

        let missing = dir.join("missing.wav");
        let err = FileSource::open(&missing, Pacing::AsFastAsPossible, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(missing.as_str()), "{err}");

        let text = dir.join("text.wav");
        std::fs::write(&text, "not a wav file at all").expect("write");
        let err = FileSource::open(&text, Pacing::AsFastAsPossible, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(text.as_str()), "{err}");
    }

    #[test]
    fn empty_file_ends_at_once_even_looped() {
        let (_d, dir) = temp();
        let path = dir.join("empty.wav");
        write_wav(&path, 2, 8_000, 16, false, 0, |_, _| 0.0);
        let mut src = FileSource::open(&path, Pacing::RealTime, true).expect("open");
        assert_eq!(src.read(&mut [0; 64]).ok(), Some(0));
    }

    #[test]
    fn real_time_replay_follows_the_clock() {
        let (_d, dir) = temp();
        let path = dir.join("rt.wav");
        let rate = 16_000;
        write_wav(&path, 1, rate, 16, false, rate, |n, _| {
            f64::from(n % 30_000)
        });
        let mut src = FileSource::open(&path, Pacing::RealTime, false).expect("open");
        let start = Instant::now();
        let mut frames = 0;
        let mut buf = vec![0; 1 << 16];
        // Compared with the clock around the last read, not after the loop: a test thread
        // descheduled after its last read (a loaded machine) is not a source falling behind.
        let mut before_last = Duration::ZERO;
        while start.elapsed() < Duration::from_millis(200) {
            before_last = start.elapsed();
            frames += src.read(&mut buf).unwrap_or(0);
        }
        let ahead = start.elapsed().as_secs_f64() * f64::from(rate);
        let behind = before_last.as_secs_f64() * f64::from(rate);
        assert!(frames as f64 <= ahead + 1.0, "{frames} > {ahead}");
        assert!(
            frames as f64 >= behind * 0.95 - 160.0,
            "{frames} < {behind}"
        );
    }
}
