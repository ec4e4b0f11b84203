//! WAV output: one file per recording, written with `hound` under a hidden temporary name
//! (`.<name>.part` in the same directory), finished with a GUANO metadata chunk, fsynced and
//! renamed, so a crash never leaves a truncated file under a final name.
//!
//! In: interleaved `i32` samples at the format's bit depth (see [`crate::audio`]) and the
//! [`Guano`] metadata of the recording. Out: a [`FinishedFile`] describing the renamed file.
//! Also here: recording file names ([`file_name`]), the free-space probe of the disk guard
//! ([`free_bytes`]) and a GUANO reader for tests and tools ([`read_guano`]).
//!
//! Layout of a finished file: hound's `RIFF`/`WAVE` header, `fmt ` and `data` chunks, a pad
//! byte when the data chunk has an odd length, then a `guan` chunk whose UTF-8 text is padded
//! with a newline to an even length. The RIFF size field covers the whole file, so hound, sox
//! and GUANO readers all accept it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::audio::{AudioError, Format};
use crate::spec::SampleFormat;

/// Largest sample of the 24-bit range, which I24 and F32 streams use.
const MAX_24: i32 = (1 << 23) - 1;
/// Smallest sample of the 24-bit range.
const MIN_24: i32 = -(1 << 23);
/// Samples handed to hound's 16-bit writer at once (bounds its internal buffer, which it keeps).
const I16_CHUNK: usize = 1 << 14;
/// The file's write buffer, below glibc's initial mmap threshold (128 KiB). A larger buffer is
/// mapped, and freeing a mapping raises the threshold, so later recordings' buffers come from
/// the heap, whose pages an idle worker then keeps. A sensor writes at most a few MB/s.
const WRITE_BUFFER: usize = 64 * 1024;
/// Room kept below the 4 GiB RIFF limit for the headers and the GUANO chunk.
const RIFF_HEADROOM: u64 = 1 << 20;

/// A file [`WavSink::finish`] wrote and renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    /// The final path.
    pub path: Utf8PathBuf,
    /// Frames in the data chunk.
    pub frames: u64,
    /// The rate in the WAV header (the capture rate divided by the time-expansion factor).
    pub samplerate: u32,
    /// Samples per frame.
    pub channels: u16,
    /// Size of the file, GUANO chunk included.
    pub bytes: u64,
}

/// GUANO metadata of one recording (<https://github.com/riggsd/guano-spec>).
#[derive(Debug, Clone, PartialEq)]
pub struct Guano {
    /// Start of the recording, rendered with its UTC offset.
    pub timestamp: jiff::ZonedDateTime,
    /// The sensor's serial (`Serial`); omitted when empty.
    pub serial: String,
    /// The capture rate (`Samplerate`: the real rate, before time expansion).
    pub samplerate: u32,
    /// Time-expansion factor (`TE`).
    pub time_expansion: f64,
    /// Latitude and longitude in degrees (`Loc Position`).
    pub location: Option<(f64, f64)>,
    /// Real duration in seconds (`Length`: frames over the capture rate).
    pub length_s: f64,
    /// Further fields, keys namespaced (`acoupi|Id`), written in order after the standard ones.
    pub extra: Vec<(String, String)>,
}

impl Guano {
    /// The metadata as GUANO text: one `Key: Value` line per field, `GUANO|Version` first.
    /// Newlines inside values are written as the two characters `\n`, as the spec asks.
    pub fn render(&self) -> String {
        let mut lines = vec![
            ("GUANO|Version".to_owned(), "1.0".to_owned()),
            (
                "Timestamp".to_owned(),
                self.timestamp
                    .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    .to_string(),
            ),
            ("Make".to_owned(), "acoupi".to_owned()),
            (
                "Firmware Version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
        ];
        if !self.serial.is_empty() {
            lines.push(("Serial".to_owned(), self.serial.clone()));
        }
        lines.push(("Samplerate".to_owned(), self.samplerate.to_string()));
        lines.push(("TE".to_owned(), self.time_expansion.to_string()));
        if let Some((lat, lon)) = self.location {
            lines.push(("Loc Position".to_owned(), format!("{lat} {lon}")));
        }
        lines.push(("Length".to_owned(), format!("{:.6}", self.length_s)));
        lines.extend(self.extra.iter().cloned());
        let mut text = String::new();
        for (key, value) in lines {
            let key = key.replace([':', '\n', '\r'], " ");
            let value = value.replace("\r\n", "\\n").replace(['\n', '\r'], "\\n");
            text.push_str(key.trim());
            text.push_str(": ");
            text.push_str(value.trim());
            text.push('\n');
        }
        text
    }
}

/// One WAV file being written. Dropping it without [`WavSink::finish`] removes the partial
/// file, exactly like [`WavSink::abort`].
pub struct WavSink {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    part: Utf8PathBuf,
    final_path: Utf8PathBuf,
    format: Format,
    header_rate: u32,
    samples: u64,
    data_bytes: u64,
    bytes_per_sample: u64,
    done: bool,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("part", &self.part)
            .field("final_path", &self.final_path)
            .field("format", &self.format)
            .field("header_rate", &self.header_rate)
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl WavSink {
    /// Starts `final_path`, writing to `.<name>.part` beside it (its directory is created).
    /// The header rate is `samplerate / time_expansion`, rounded. Fails when the final name
    /// already exists: recordings are never overwritten.
    pub fn create(
        final_path: &Utf8Path,
        format: Format,
        time_expansion: f64,
    ) -> Result<WavSink, AudioError> {
        if format.channels == 0 || format.samplerate == 0 {
            return Err(AudioError::Format(format!(
                "cannot write {final_path}: {} Hz with {} channels is not a valid format",
                format.samplerate, format.channels
            )));
        }
        let header_rate = header_rate(format.samplerate, time_expansion).ok_or_else(|| {
            AudioError::Format(format!(
                "cannot write {final_path}: time expansion {time_expansion} does not give a \
                 valid rate from {} Hz",
                format.samplerate
            ))
        })?;
        let Some(name) = final_path.file_name() else {
            return Err(AudioError::Wav(format!(
                "cannot write {final_path}: the path has no file name"
            )));
        };
        let dir = final_path.parent().unwrap_or(Utf8Path::new(""));
        let part = dir.join(format!(".{name}.part"));
        if !dir.as_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
        }
        if final_path.exists() {
            return Err(AudioError::Wav(format!(
                "cannot write {final_path}: the file already exists"
            )));
        }
        let (bits, sample_format, bytes_per_sample) = match format.sample_format {
            SampleFormat::I16 => (16, hound::SampleFormat::Int, 2),
            SampleFormat::I24 => (24, hound::SampleFormat::Int, 3),
            SampleFormat::I32 => (32, hound::SampleFormat::Int, 4),
            SampleFormat::F32 => (32, hound::SampleFormat::Float, 4),
        };
        let spec = hound::WavSpec {
            channels: format.channels,
            sample_rate: header_rate,
            bits_per_sample: bits,
            sample_format,
        };
        let file = File::create(&part).map_err(|e| io_error("creating", &part, e))?;
        let mut sink = WavSink {
            writer: None,
            part,
            final_path: final_path.to_owned(),
            format,
            header_rate,
            samples: 0,
            data_bytes: 0,
            bytes_per_sample,
            done: false,
        };
        // From here on, dropping `sink` removes the partial file.
        let writer = hound::WavWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), spec)
            .map_err(|e| wav_error("writing", &sink.part, e))?;
        sink.writer = Some(writer);
        Ok(sink)
    }

    /// Appends whole frames of interleaved samples. Samples outside the format's range are
    /// clamped; F32 samples (24-bit range) are scaled to [-1, 1].
    pub fn write(&mut self, samples: &[i32]) -> Result<(), AudioError> {
        let channels = usize::from(self.format.channels);
        if !samples.len().is_multiple_of(channels) {
            return Err(AudioError::Wav(format!(
                "writing {}: {} samples are not whole frames of {channels} channels",
                self.part,
                samples.len()
            )));
        }
        let added = samples.len() as u64 * self.bytes_per_sample;
        if self.data_bytes + added > u64::from(u32::MAX) - RIFF_HEADROOM {
            return Err(AudioError::Wav(format!(
                "writing {}: the recording would exceed the 4 GiB size limit of a WAV file",
                self.part
            )));
        }
        let part = &self.part;
        let Some(writer) = self.writer.as_mut() else {
            return Err(AudioError::Wav(format!(
                "writing {part}: the file is closed"
            )));
        };
        match self.format.sample_format {
            SampleFormat::I16 => {
                for chunk in samples.chunks(I16_CHUNK) {
                    // Chunks are at most I16_CHUNK long, so the length fits in u32.
                    let mut w = writer.get_i16_writer(chunk.len() as u32);
                    for &s in chunk {
                        w.write_sample(s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
                    }
                    w.flush().map_err(|e| wav_error("writing", part, e))?;
                }
            }
            SampleFormat::I24 => {
                for &s in samples {
                    writer
                        .write_sample(s.clamp(MIN_24, MAX_24))
                        .map_err(|e| wav_error("writing", part, e))?;
                }
            }
            SampleFormat::I32 => {
                for &s in samples {
                    writer
                        .write_sample(s)
                        .map_err(|e| wav_error("writing", part, e))?;
                }
            }
            SampleFormat::F32 => {
                for &s in samples {
                    let x = (s as f32 / 8_388_608.0).clamp(-1.0, 1.0);
                    writer
                        .write_sample(x)
                        .map_err(|e| wav_error("writing", part, e))?;
                }
            }
        }
        self.samples += samples.len() as u64;
        self.data_bytes += added;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.samples / u64::from(self.format.channels)
    }

    /// The name the file will have once finished.
    pub fn path(&self) -> &Utf8Path {
        &self.final_path
    }

    /// The rate written in the WAV header.
    pub fn header_samplerate(&self) -> u32 {
        self.header_rate
    }

    /// Finalises the header, appends the GUANO chunk, fsyncs the file, renames it to its
    /// final name and fsyncs the directory. On failure the partial file is removed.
    pub fn finish(mut self, guano: &Guano) -> Result<FinishedFile, AudioError> {
        let Some(writer) = self.writer.take() else {
            return Err(AudioError::Wav(format!(
                "finishing {}: the file is closed",
                self.part
            )));
        };
        writer
            .finalize()
            .map_err(|e| wav_error("finishing", &self.part, e))?;
        let bytes = append_guano(&self.part, &guano.render())?;
        if self.final_path.exists() {
            return Err(AudioError::Wav(format!(
                "cannot write {}: the file already exists",
                self.final_path
            )));
        }
        std::fs::rename(&self.part, &self.final_path)
            .map_err(|e| io_error(&format!("renaming {} to", self.part), &self.final_path, e))?;
        self.done = true;
        if let Some(dir) = self.final_path.parent().filter(|d| !d.as_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error("syncing", dir, e))?;
        }
        Ok(FinishedFile {
            path: self.final_path.clone(),
            frames: self.frames(),
            samplerate: self.header_rate,
            channels: self.format.channels,
            bytes,
        })
    }

    /// Discards the recording: closes and removes the partial file.
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // hound's own drop rewrites the header, harmlessly, before the file goes.
        drop(self.writer.take());
        if !self.done {
            match std::fs::remove_file(&self.part) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove the partial file {}: {e}", self.part),
            }
        }
    }
}

/// The WAV header rate for a capture rate and time-expansion factor, or `None` when the
/// factor is not a finite positive number or the result does not fit.
fn header_rate(samplerate: u32, time_expansion: f64) -> Option<u32> {
    if !(time_expansion.is_finite() && time_expansion > 0.0) {
        return None;
    }
    if time_expansion == 1.0 {
        return Some(samplerate);
    }
    let rate = (f64::from(samplerate) / time_expansion).round();
    (rate >= 1.0 && rate <= f64::from(u32::MAX)).then_some(rate as u32)
}

/// Appends a `guan` chunk holding `text` to the finalised WAV at `path`, fixes the RIFF size
/// and fsyncs. Returns the new file size.
fn append_guano(path: &Utf8Path, text: &str) -> Result<u64, AudioError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))?;
    let wrap = |e| io_error("writing metadata to", path, e);
    let end = file.seek(SeekFrom::End(0)).map_err(wrap)?;
    let mut chunk = Vec::with_capacity(text.len() + 10);
    if end % 2 == 1 {
        // RIFF chunks start on even offsets: pad the odd-length data chunk.
        chunk.push(0);
    }
    let mut body = text.as_bytes().to_vec();
    if body.len() % 2 == 1 {
        body.push(b'\n');
    }
    let body_len = u32::try_from(body.len()).map_err(|_| {
        AudioError::Wav(format!(
            "writing metadata to {path}: the GUANO text is too long"
        ))
    })?;
    chunk.extend_from_slice(b"guan");
    chunk.extend_from_slice(&body_len.to_le_bytes());
    chunk.extend_from_slice(&body);
    let total = end + chunk.len() as u64;
    let riff = u32::try_from(total - 8).map_err(|_| {
        AudioError::Wav(format!(
            "writing metadata to {path}: the file would exceed the 4 GiB size limit of a WAV file"
        ))
    })?;
    file.write_all(&chunk).map_err(wrap)?;
    file.seek(SeekFrom::Start(4)).map_err(wrap)?;
    file.write_all(&riff.to_le_bytes()).map_err(wrap)?;
    file.sync_all().map_err(|e| io_error("syncing", path, e))?;
    Ok(total)
}

/// The text of the `guan` chunk of the WAV at `path` (trailing padding removed), or `None`
/// when it has none. Only chunk headers and the GUANO text are read: the samples are skipped,
/// so an hour-long file costs a few reads.
pub fn read_guano(path: &Utf8Path) -> Result<Option<String>, AudioError> {
    use std::io::{Read, Seek, SeekFrom};
    let read = |e| io_error("reading", path, e);
    let mut file = std::fs::File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    let mut head = [0u8; 12];
    if len < 12
        || file.read_exact(&mut head).is_err()
        || &head[0..4] != b"RIFF"
        || &head[8..12] != b"WAVE"
    {
        return Err(AudioError::Wav(format!(
            "reading {path}: not a RIFF WAVE file"
        )));
    }
    let mut pos = 12u64;
    while pos + 8 <= len {
        let mut chunk = [0u8; 8];
        file.seek(SeekFrom::Start(pos)).map_err(read)?;
        file.read_exact(&mut chunk).map_err(read)?;
        let size = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        let start = pos + 8;
        let end = start + size;
        if end > len {
            return Err(AudioError::Wav(format!(
                "reading {path}: chunk at offset {pos} runs past the end of the file"
            )));
        }
        if &chunk[0..4] == b"guan" {
            if size > 1 << 20 {
                return Err(AudioError::Wav(format!(
                    "reading {path}: the GUANO chunk is {size} bytes, not metadata text"
                )));
            }
            let mut text = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
            file.read_exact(&mut text).map_err(read)?;
            let text = String::from_utf8(text).map_err(|e| {
                AudioError::Wav(format!("reading {path}: the GUANO text is not UTF-8: {e}"))
            })?;
            return Ok(Some(
                text.trim_end_matches(['\n', ' ', '\0']).to_owned() + "\n",
            ));
        }
        pos = end + size % 2;
    }
    Ok(None)
}

/// The file name of a recording starting at `start`: `<yyyymmdd_HHMMSS>.wav` in UTC, or
/// `<yyyymmdd_HHMMSS_fff>.wav` (milliseconds, truncated) when the start is not on a whole
/// millisecond-truncated second. An underscore rather than a dot separates the milliseconds,
/// because tools that take everything after the first dot as the extension would otherwise
/// see `.123.wav`.
pub fn file_name(start: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(start);
    let millis = dt.subsec_nanosecond() / 1_000_000;
    let base = dt.strftime("%Y%m%d_%H%M%S");
    if millis == 0 {
        format!("{base}.wav")
    } else {
        format!("{base}_{millis:03}.wav")
    }
}

/// Bytes available to unprivileged users on the file system holding `path`, or holding its
/// nearest existing ancestor when `path` does not exist yet.
pub fn free_bytes(path: &Utf8Path) -> Result<u64, AudioError> {
    let mut current = path;
    loop {
        let probe = if current.as_str().is_empty() {
            Utf8Path::new(".")
        } else {
            current
        };
        match rustix::fs::statvfs(probe.as_std_path()) {
            Ok(s) => return Ok(s.f_bavail.saturating_mul(s.f_frsize)),
            Err(e) if e == rustix::io::Errno::NOENT && !current.as_str().is_empty() => {
                match current.parent() {
                    Some(parent) => current = parent,
                    None => return Err(io_error("checking free space on", path, e.into())),
                }
            }
            Err(e) => return Err(io_error("checking free space on", path, e.into())),
        }
    }
}

/// An I/O error whose message names what was done and the path.
fn io_error(what: &str, path: &Utf8Path, e: io::Error) -> AudioError {
    AudioError::Io(io::Error::new(e.kind(), format!("{what} {path}: {e}")))
}

/// A hound error whose message names what was done and the path.
fn wav_error(what: &str, path: &Utf8Path, e: hound::Error) -> AudioError {
    match e {
        hound::Error::IoError(e) => io_error(what, path, e),
        e => AudioError::Wav(format!("{what} {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(samplerate: u32, channels: u16, sample_format: SampleFormat) -> Format {
        Format {
            samplerate,
            channels,
            sample_format,
        }
    }

    fn guano(samplerate: u32, te: f64) -> Guano {
        let ts: Timestamp = "2024-05-01T12:00:03.25Z".parse().unwrap();
        Guano {
            timestamp: ts.to_zoned_datetime(TimeZone::get("Europe/London").unwrap()),
            serial: "sensor-1".into(),
            samplerate,
            time_expansion: te,
            location: Some((51.5, -0.12)),
            length_s: 0.5,
            extra: vec![("acoupi|Note".into(), "two\nlines".into())],
        }
    }

    fn dir() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(tmp.path().to_path_buf()).unwrap();
        (tmp, path)
    }

    fn listing(dir: &Utf8Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn file_names() {
        let t = |s: &str| file_name(s.parse().unwrap());
        assert_eq!(t("2024-05-01T12:00:10Z"), "20240501_120010.wav");
        assert_eq!(t("2024-05-01T12:00:03.25Z"), "20240501_120003_250.wav");
        assert_eq!(t("2024-05-01T14:00:03.0009+02:00"), "20240501_120003.wav");
        assert_eq!(t("2024-05-01T12:00:03.999999Z"), "20240501_120003_999.wav");
    }

    #[test]
    fn guano_text() {
        let text = guano(384_000, 10.0).render();
        assert_eq!(
            text,
            "GUANO|Version: 1.0\n\
             Timestamp: 2024-05-01T13:00:03.250+01:00\n\
             Make: acoupi\n\
             Firmware Version: 0.1.0\n\
             Serial: sensor-1\n\
             Samplerate: 384000\n\
             TE: 10\n\
             Loc Position: 51.5 -0.12\n\
             Length: 0.500000\n\
             acoupi|Note: two\\nlines\n"
                .replace("0.1.0", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn every_format_round_trips_with_guano() {
        for (sf, values, expect) in [
            (
                SampleFormat::I16,
                vec![0, 1, -1, 40_000],
                vec![0, 1, -1, 32_767],
            ),
            (
                SampleFormat::I24,
                vec![0, 1, -8_388_608, 9_000_000],
                vec![0, 1, -8_388_608, 8_388_607],
            ),
            (
                SampleFormat::I32,
                vec![0, i32::MIN, i32::MAX, 5],
                vec![0, i32::MIN, i32::MAX, 5],
            ),
        ] {
            // Three frames of mono (odd data length for I24) and two of stereo.
            for channels in [1u16, 2] {
                let (_tmp, d) = dir();
                let path = d.join("a.wav");
                let mut sink = WavSink::create(&path, fmt(48_000, channels, sf), 1.0).unwrap();
                let n = if channels == 1 { 3 } else { 4 };
                sink.write(&values[..n]).unwrap();
                let done = sink.finish(&guano(48_000, 1.0)).unwrap();
                assert_eq!(done.frames, (n / usize::from(channels)) as u64);
                assert_eq!(done.bytes, std::fs::metadata(&path).unwrap().len());
                assert_eq!(listing(&d), ["a.wav"]);
                let mut r = hound::WavReader::open(&path).unwrap();
                assert_eq!(r.spec().channels, channels);
                let got: Vec<i32> = r.samples::<i32>().map(Result::unwrap).collect();
                assert_eq!(got, expect[..n], "{sf:?} {channels}");
                let text = read_guano(&path).unwrap().unwrap();
                assert!(text.starts_with("GUANO|Version: 1.0\n"), "{text}");
                assert!(text.contains("TE: 1\n"), "{text}");
                // The RIFF size covers the whole file.
                let bytes = std::fs::read(&path).unwrap();
                let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
                assert_eq!(u64::from(riff) + 8, bytes.len() as u64);
            }
        }
    }

    #[test]
    fn float_samples_are_scaled() {
        let (_tmp, d) = dir();
        let path = d.join("f.wav");
        let mut sink = WavSink::create(&path, fmt(8_000, 1, SampleFormat::F32), 1.0).unwrap();
        sink.write(&[0, 4_194_304, -8_388_608, 1 << 24]).unwrap();
        sink.finish(&guano(8_000, 1.0)).unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_format, hound::SampleFormat::Float);
        let got: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
        assert_eq!(got, [0.0, 0.5, -1.0, 1.0]);
    }

    #[test]
    fn time_expansion_sets_the_header_rate() {
        let (_tmp, d) = dir();
        let path = d.join("te.wav");
        let sink = WavSink::create(&path, fmt(384_000, 1, SampleFormat::I16), 10.0).unwrap();
        assert_eq!(sink.header_samplerate(), 38_400);
        let done = sink.finish(&guano(384_000, 10.0)).unwrap();
        assert_eq!(done.samplerate, 38_400);
        assert_eq!(
            hound::WavReader::open(&path).unwrap().spec().sample_rate,
            38_400
        );
        assert!(
            read_guano(&path)
                .unwrap()
                .unwrap()
                .contains("Samplerate: 384000\n")
        );
        assert_eq!(header_rate(250_000, 3.0), Some(83_333));
        assert_eq!(header_rate(250_000, 0.0), None);
        assert_eq!(header_rate(250_000, f64::NAN), None);
        let err = WavSink::create(&d.join("x.wav"), fmt(8_000, 1, SampleFormat::I16), -1.0);
        assert!(err.unwrap_err().to_string().contains("x.wav"));
    }

    #[test]
    fn partial_file_is_hidden_then_removed_on_abort_or_drop() {
        let (_tmp, d) = dir();
        let path = d.join("sub").join("b.wav");
        let mut sink = WavSink::create(&path, fmt(8_000, 1, SampleFormat::I16), 1.0).unwrap();
        sink.write(&[1, 2, 3]).unwrap();
        assert_eq!(listing(&d.join("sub")), [".b.wav.part"]);
        sink.abort();
        assert!(listing(&d.join("sub")).is_empty());
        let sink = WavSink::create(&path, fmt(8_000, 1, SampleFormat::I16), 1.0).unwrap();
        drop(sink);
        assert!(listing(&d.join("sub")).is_empty());
    }

    #[test]
    fn refuses_partial_frames_and_existing_files() {
        let (_tmp, d) = dir();
        let path = d.join("c.wav");
        let mut sink = WavSink::create(&path, fmt(8_000, 2, SampleFormat::I16), 1.0).unwrap();
        let err = sink.write(&[1, 2, 3]).unwrap_err().to_string();
        assert!(
            err.contains(".c.wav.part") && err.contains("whole frames"),
            "{err}"
        );
        sink.finish(&guano(8_000, 1.0)).unwrap();
        let err = WavSink::create(&path, fmt(8_000, 2, SampleFormat::I16), 1.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("already exists") && err.contains("c.wav"),
            "{err}"
        );
    }

    #[test]
    fn free_bytes_walks_up_to_an_existing_ancestor() {
        let (_tmp, d) = dir();
        let here = free_bytes(&d).unwrap();
        assert!(here > 0);
        let deeper = free_bytes(&d.join("not/yet/there")).unwrap();
        // Same file system; other writers may change the figure a little in between.
        assert!(deeper.abs_diff(here) < 1 << 30);
        assert!(free_bytes(Utf8Path::new("relative/missing")).is_ok());
    }

    #[test]
    fn files_without_guano_read_as_none() {
        let (_tmp, d) = dir();
        let path = d.join("plain.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        w.write_sample(3i16).unwrap();
        w.finalize().unwrap();
        assert_eq!(read_guano(&path).unwrap(), None);
        std::fs::write(d.join("junk.wav"), b"nope").unwrap();
        assert!(read_guano(&d.join("junk.wav")).is_err());
    }
}
