//! The two recording modes, as plain blocking functions a worker runs on a blocking thread
//! (no broker, no async runtime).
//!
//! In: a [`Source`] and a [`RecordPlan`] (where to write, how long, the metadata). Out:
//! finished WAV files in the staging directory, each described by a [`Recorded`], the JSON
//! result handed to the `detect` task.
//!
//! - Duty cycle: [`record_once`] reads exactly `duration_frames` frames into one file.
//! - Continuous: [`Rotator`] consumes the stream until told to stop and cuts it into files at
//!   exact sample boundaries on a wall-clock grid (`:00`, `:10`, `:20` for 10 s files); the
//!   first file is shorter so that the others land on the grid. Timestamps come from the
//!   sample clock (the start instant plus frames over the rate), never from the clock at each
//!   cut, so every sample lands in exactly one file.
//!
//! Both refuse to start a file when the staging or the recordings file system has less than
//! `min_free_bytes` free, and never leave a partial file under a final name.

use std::ops::ControlFlow;

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::audio::wav::{self, FinishedFile, Guano, WavSink};
use crate::audio::{AudioError, Format, Source};
use crate::spec::{Microphone, Program};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Everything a recording needs besides its source.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPlan {
    /// Directory the files are written to.
    pub staging: Utf8PathBuf,
    /// Directory kept recordings move to later; only its free space is checked here.
    pub recordings: Utf8PathBuf,
    /// Length of a recording (of each file, in continuous mode), in frames at the capture
    /// rate.
    pub duration_frames: u64,
    /// Do not start a file when staging or recordings has less free space than this.
    pub min_free_bytes: u64,
    /// Time-expansion factor; the WAV header rate is the capture rate divided by it.
    pub time_expansion: f64,
    /// The sensor's serial, written to GUANO `Serial` (omitted when empty).
    pub serial: String,
    /// Latitude and longitude, written to GUANO `Loc Position`.
    pub location: Option<(f64, f64)>,
    /// IANA timezone of the GUANO timestamp (file names are always UTC).
    pub timezone: String,
    /// Start instant of the first sample; `None` takes the arrival time of the first block
    /// minus that block's duration (the capture time of its first sample).
    pub start: Option<Timestamp>,
}

impl RecordPlan {
    /// The plan of a compiled program recording from `microphone` (its capture rate gives
    /// `duration_frames`).
    pub fn for_program(program: &Program, microphone: &Microphone, serial: String) -> RecordPlan {
        RecordPlan {
            staging: program.paths.staging.clone(),
            recordings: program.paths.recordings.clone(),
            duration_frames: frames_for_ms(program.recording.duration_ms, microphone.samplerate_hz),
            min_free_bytes: program.recording.min_free_disk_bytes,
            time_expansion: microphone.time_expansion,
            serial,
            location: program.location.map(|l| (l.latitude, l.longitude)),
            timezone: program.timezone.clone(),
            start: None,
        }
    }
}

/// Frames in `ms` milliseconds at `samplerate`, rounded down.
pub fn frames_for_ms(ms: u64, samplerate: u32) -> u64 {
    let frames = u128::from(ms) * u128::from(samplerate) / 1000;
    u64::try_from(frames).unwrap_or(u64::MAX)
}

pub use crate::spec::payload::Recorded;

/// Records one file of exactly `plan.duration_frames` frames from `source` into
/// `plan.staging`. Refuses to start when free space is below `plan.min_free_bytes`; removes
/// the partial file on any error, including the source ending early.
pub fn record_once(source: &mut dyn Source, plan: &RecordPlan) -> Result<Recorded, AudioError> {
    let format = source.format();
    let tz = check_plan(plan, format)?;
    check_disk(plan)?;
    let channels = usize::from(format.channels);
    let mut buf = vec![0i32; block_frames(format.samplerate) * channels];
    let overruns_before = source.overruns();
    let mut sink: Option<(WavSink, Timestamp)> = None;
    let mut remaining = plan.duration_frames;
    while remaining > 0 {
        let want = usize::try_from(remaining)
            .map_or(buf.len(), |r| r.saturating_mul(channels).min(buf.len()));
        let read = match source.read(&mut buf[..want]) {
            Ok(0) => {
                let path = sink
                    .as_ref()
                    .map_or_else(|| plan.staging.clone(), |(s, _)| s.path().to_owned());
                Err(AudioError::Device(format!(
                    "recording {path}: the source ended after {} of {} frames",
                    plan.duration_frames - remaining,
                    plan.duration_frames
                )))
            }
            other => other,
        };
        let n = match read {
            Ok(n) => n,
            // The microphone failed or went away mid-recording: what it gave is kept, closed
            // as a valid shorter WAV (nothing at all: the error).
            Err(e) => match sink {
                Some((file, start)) if file.frames() > 0 => {
                    tracing::warn!(
                        "recording {}: the microphone failed after {} of {} frames, kept as a \
                         shorter recording: {e}",
                        file.path(),
                        file.frames(),
                        plan.duration_frames
                    );
                    let overruns = source.overruns().saturating_sub(overruns_before);
                    return finish(file, start, plan, &tz, format, overruns);
                }
                _ => return Err(e),
            },
        };
        let n = n - n % channels;
        let frames = (n / channels) as u64;
        let (file, _) = match &mut sink {
            Some(open) => open,
            None => {
                let start = match plan.start {
                    Some(start) => start,
                    None => block_start(Timestamp::now(), frames, format.samplerate)?,
                };
                let path = plan.staging.join(wav::file_name(start));
                sink.insert((WavSink::create(&path, format, plan.time_expansion)?, start))
            }
        };
        file.write(&buf[..n])?;
        remaining = remaining.saturating_sub(frames);
    }
    let overruns = source.overruns().saturating_sub(overruns_before);
    let Some((file, start)) = sink else {
        return Err(AudioError::Format(format!(
            "recording into {}: the duration is zero frames",
            plan.staging
        )));
    };
    if overruns > 0 {
        tracing::warn!(
            "recording {}: the source lost {overruns} samples (overruns)",
            file.path()
        );
    }
    finish(file, start, plan, &tz, format, overruns)
}

/// Continuous recording: cuts a stream into files at exact sample boundaries aligned to the
/// wall clock. Counters accumulate over successive [`Rotator::run`] calls.
#[derive(Debug)]
pub struct Rotator {
    plan: RecordPlan,
    files: u64,
    frames: u64,
    overruns: u64,
}

/// The file a [`Rotator`] is writing.
struct OpenFile {
    sink: WavSink,
    start: Timestamp,
    /// Sample-clock frame (frames since the Unix epoch) where this file ends.
    end: i128,
    overruns: u64,
}

impl Rotator {
    /// A rotator cutting files of `plan.duration_frames` frames.
    pub fn new(plan: RecordPlan) -> Rotator {
        Rotator {
            plan,
            files: 0,
            frames: 0,
            overruns: 0,
        }
    }

    /// Files finished so far.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Frames written to finished files so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Samples the sources reported lost so far.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Reads `source` until `stop` returns true (asked after every block), `on_file` breaks
    /// or the source ends, handing each finished file to `on_file`. File `k` covers the sample-clock frames
    /// `[b_k, b_(k+1))`, where the boundaries `b` are the multiples of `duration_frames`
    /// counted from the Unix epoch at the capture rate; the last file ends wherever the
    /// stream stops, except when `on_file` breaks at a boundary: the stream then ends with that
    /// file, and the rest of the block read is not kept (no short file follows it). On a
    /// source error the current file is finished (or removed when empty)
    /// and the error returned, for the caller to reopen the source with backoff; on a write
    /// or disk-space error the current file is removed and the error returned.
    pub fn run(
        &mut self,
        source: &mut dyn Source,
        mut stop: impl FnMut() -> bool,
        mut on_file: impl FnMut(Recorded) -> ControlFlow<()>,
    ) -> Result<(), AudioError> {
        let format = source.format();
        let tz = check_plan(&self.plan, format)?;
        let channels = usize::from(format.channels);
        let rate = i128::from(format.samplerate);
        let per_file = i128::from(self.plan.duration_frames);
        let mut buf = vec![0i32; block_frames(format.samplerate) * channels];
        let mut overruns_seen = source.overruns();
        let mut current: Option<OpenFile> = None;
        // Sample-clock frame of the next sample, and of the first one.
        let mut clock: Option<(i128, i128, Timestamp)> = None;
        loop {
            let n = match source.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    // An empty file is simply dropped (which removes it).
                    if let Some(open) = current.take()
                        && open.sink.frames() > 0
                    {
                        match self.close(open, format, &tz) {
                            Ok(rec) => {
                                // The stream ends here either way.
                                let _ = on_file(rec);
                            }
                            Err(err) => tracing::warn!("{err}"),
                        }
                    }
                    return Err(e);
                }
            };
            if n == 0 {
                break;
            }
            let n = n - n % channels;
            let frames = (n / channels) as i128;
            let (next, first, start) = match &mut clock {
                Some(c) => c,
                None => {
                    let start = match self.plan.start {
                        Some(start) => start,
                        None => block_start(Timestamp::now(), frames as u64, format.samplerate)?,
                    };
                    let first = (start.as_nanosecond() * rate).div_euclid(NANOS_PER_SECOND);
                    clock.insert((first, first, start))
                }
            };
            let mut offset = 0i128;
            while offset < frames {
                let open = match &mut current {
                    Some(open) => open,
                    None => {
                        let file_start = if *next == *first {
                            *start
                        } else {
                            frame_time(*next, format.samplerate)?
                        };
                        let end = (next.div_euclid(per_file) + 1) * per_file;
                        check_disk(&self.plan)?;
                        let path = self.plan.staging.join(wav::file_name(file_start));
                        let sink = WavSink::create(&path, format, self.plan.time_expansion)?;
                        current.insert(OpenFile {
                            sink,
                            start: file_start,
                            end,
                            overruns: 0,
                        })
                    }
                };
                let take = (frames - offset).min(open.end - *next);
                let from = offset as usize * channels;
                let to = (offset + take) as usize * channels;
                // On error `current` is dropped on return, which removes the partial file.
                open.sink.write(&buf[from..to])?;
                offset += take;
                *next += take;
                if *next == open.end
                    && let Some(done) = current.take()
                {
                    let rec = self.close(done, format, &tz)?;
                    if on_file(rec).is_break() {
                        return Ok(());
                    }
                }
            }
            let seen = source.overruns();
            if seen > overruns_seen {
                let lost = seen - overruns_seen;
                overruns_seen = seen;
                self.overruns += lost;
                tracing::warn!(
                    "recording into {}: the source lost {lost} samples (overruns)",
                    self.plan.staging
                );
                if let Some(open) = &mut current {
                    open.overruns += lost;
                }
            }
            if stop() {
                break;
            }
        }
        if let Some(open) = current.take()
            && open.sink.frames() > 0
        {
            let rec = self.close(open, format, &tz)?;
            // The stream ends here either way.
            let _ = on_file(rec);
        }
        Ok(())
    }

    /// Finishes a file and counts it.
    fn close(
        &mut self,
        open: OpenFile,
        format: Format,
        tz: &TimeZone,
    ) -> Result<Recorded, AudioError> {
        let rec = finish(open.sink, open.start, &self.plan, tz, format, open.overruns)?;
        self.files += 1;
        self.frames += rec.frames;
        Ok(rec)
    }
}

/// Finishes `sink` with the GUANO metadata of the plan and describes the result.
fn finish(
    sink: WavSink,
    start: Timestamp,
    plan: &RecordPlan,
    tz: &TimeZone,
    format: Format,
    overruns: u64,
) -> Result<Recorded, AudioError> {
    let id = crate::spec::data::new_id().to_string();
    let duration_s = sink.frames() as f64 / f64::from(format.samplerate);
    let mut extra = vec![("acoupi|Id".to_owned(), id.clone())];
    if overruns > 0 {
        extra.push(("acoupi|Overruns".to_owned(), overruns.to_string()));
    }
    let guano = Guano {
        timestamp: start.to_zoned_datetime(tz.clone()),
        serial: plan.serial.clone(),
        samplerate: format.samplerate,
        time_expansion: plan.time_expansion,
        location: plan.location,
        length_s: duration_s,
        extra,
    };
    let FinishedFile {
        path,
        frames,
        channels,
        ..
    } = sink.finish(&guano)?;
    Ok(Recorded {
        id,
        path,
        start,
        duration_s,
        samplerate: format.samplerate,
        channels,
        frames,
        time_expansion: plan.time_expansion,
        overruns,
    })
}

/// Checks the plan against the source's format and resolves its timezone.
fn check_plan(plan: &RecordPlan, format: Format) -> Result<TimeZone, AudioError> {
    if plan.duration_frames == 0 {
        return Err(AudioError::Format(format!(
            "recording into {}: the duration is zero frames",
            plan.staging
        )));
    }
    if format.channels == 0 || format.samplerate == 0 {
        return Err(AudioError::Format(format!(
            "recording into {}: the source reports {} Hz with {} channels",
            plan.staging, format.samplerate, format.channels
        )));
    }
    TimeZone::get(&plan.timezone).map_err(|e| {
        AudioError::Format(format!(
            "recording into {}: unknown timezone {:?}: {e}",
            plan.staging, plan.timezone
        ))
    })
}

/// Fails when staging or recordings has less than `plan.min_free_bytes` free.
fn check_disk(plan: &RecordPlan) -> Result<(), AudioError> {
    for dir in [&plan.staging, &plan.recordings] {
        let free = wav::free_bytes(dir)?;
        if free < plan.min_free_bytes {
            return Err(low_disk(dir, free, plan.min_free_bytes));
        }
    }
    Ok(())
}

fn low_disk(dir: &Utf8Path, free: u64, min: u64) -> AudioError {
    AudioError::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!("not recording: {dir} has {free} bytes free, below the minimum of {min} bytes"),
    ))
}

/// Frames read per block: about 50 ms, at least 1024.
fn block_frames(samplerate: u32) -> usize {
    (samplerate as usize / 20).max(1024)
}

/// Capture time of the first sample of a block of `frames` frames that arrived at `arrival`.
fn block_start(arrival: Timestamp, frames: u64, samplerate: u32) -> Result<Timestamp, AudioError> {
    let ns = i128::from(frames) * NANOS_PER_SECOND / i128::from(samplerate);
    Timestamp::from_nanosecond(arrival.as_nanosecond() - ns)
        .map_err(|e| AudioError::Device(format!("timing the first audio block: {e}")))
}

/// The instant of sample-clock frame `frame` (frames since the Unix epoch).
fn frame_time(frame: i128, samplerate: u32) -> Result<Timestamp, AudioError> {
    let ns = (frame * NANOS_PER_SECOND).div_euclid(i128::from(samplerate));
    Timestamp::from_nanosecond(ns)
        .map_err(|e| AudioError::Device(format!("timing frame {frame}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::spec::SampleFormat;

    /// Sample `k` (interleaved index since the stream opened) is `k` wrapped into the i16
    /// range. Ends after `limit` frames, or fails after `fail_after` frames.
    struct Counter {
        format: Format,
        next: u64,
        max_frames: usize,
        limit: Option<u64>,
        fail_after: Option<u64>,
        overrun_every: Option<u64>,
        reads: u64,
    }

    impl Counter {
        fn new(samplerate: u32, channels: u16) -> Counter {
            Counter {
                format: Format {
                    samplerate,
                    channels,
                    sample_format: SampleFormat::I16,
                },
                next: 0,
                // A prime, so reads straddle file boundaries at varying offsets.
                max_frames: 10_007,
                limit: None,
                fail_after: None,
                overrun_every: None,
                reads: 0,
            }
        }
    }

    impl Source for Counter {
        fn format(&self) -> Format {
            self.format
        }

        fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
            let ch = u64::from(self.format.channels);
            let frame = self.next / ch;
            if self.fail_after.is_some_and(|f| frame >= f) {
                return Err(AudioError::Device("counter: injected failure".into()));
            }
            let mut frames = (buf.len() / ch as usize).min(self.max_frames) as u64;
            if let Some(limit) = self.limit {
                frames = frames.min(limit - frame);
            }
            if let Some(f) = self.fail_after {
                frames = frames.min(f - frame);
            }
            let n = (frames * ch) as usize;
            for (i, s) in buf[..n].iter_mut().enumerate() {
                *s = i32::from((self.next + i as u64) as u16 as i16);
            }
            self.next += n as u64;
            self.reads += 1;
            Ok(n)
        }

        fn overruns(&self) -> u64 {
            self.overrun_every.map_or(0, |e| self.reads / e)
        }
    }

    fn plan(dir: &Utf8Path, duration_frames: u64) -> RecordPlan {
        RecordPlan {
            staging: dir.join("staging"),
            recordings: dir.join("recordings"),
            duration_frames,
            min_free_bytes: 0,
            time_expansion: 1.0,
            serial: "unit-7".into(),
            location: Some((50.5, 4.25)),
            timezone: "Europe/Brussels".into(),
            start: None,
        }
    }

    fn dir() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(tmp.path().to_path_buf()).unwrap();
        (tmp, path)
    }

    fn listing(dir: &Utf8Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn record_once_writes_exact_frames_and_guano() {
        let (_tmp, d) = dir();
        let mut src = Counter::new(48_000, 2);
        let before = Timestamp::now();
        let rec = record_once(&mut src, &plan(&d, 30_001)).unwrap();
        assert_eq!(rec.frames, 30_001);
        assert_eq!((rec.samplerate, rec.channels), (48_000, 2));
        assert!((rec.duration_s - 30_001.0 / 48_000.0).abs() < 1e-12);
        assert!(
            rec.start <= before,
            "the start is the first sample's capture time"
        );
        assert_eq!(rec.path.parent().unwrap(), d.join("staging"));
        assert_eq!(listing(&d.join("staging")), [rec.path.file_name().unwrap()]);
        let mut r = hound::WavReader::open(&rec.path).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (48_000, 2, 16)
        );
        assert_eq!(r.duration(), 30_001);
        for (k, s) in r.samples::<i16>().enumerate() {
            assert_eq!(s.unwrap(), k as u16 as i16, "sample {k}");
        }
        let text = wav::read_guano(&rec.path).unwrap().unwrap();
        for line in [
            "GUANO|Version: 1.0\n",
            "Make: acoupi\n",
            "Serial: unit-7\n",
            "Samplerate: 48000\n",
            "TE: 1\n",
            "Loc Position: 50.5 4.25\n",
            "Length: 0.625021\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        assert!(text.contains(&format!("acoupi|Id: {}\n", rec.id)), "{text}");
        assert!(uuid::Uuid::parse_str(&rec.id).is_ok());
        // It is the JSON handed to `detect`.
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<Recorded>(&json).unwrap(), rec);
    }

    #[test]
    fn record_once_with_time_expansion_and_supplied_start() {
        let (_tmp, d) = dir();
        let mut p = plan(&d, 38_400);
        p.time_expansion = 10.0;
        p.start = Some(ts("2024-06-01T22:15:00.5Z"));
        let rec = record_once(&mut Counter::new(384_000, 1), &p).unwrap();
        assert_eq!(rec.path.file_name(), Some("20240601_221500_500.wav"));
        assert_eq!(rec.start, ts("2024-06-01T22:15:00.5Z"));
        assert_eq!((rec.samplerate, rec.time_expansion), (384_000, 10.0));
        assert!((rec.duration_s - 0.1).abs() < 1e-12);
        let r = hound::WavReader::open(&rec.path).unwrap();
        assert_eq!(r.spec().sample_rate, 38_400);
        assert_eq!(r.duration(), 38_400);
        let text = wav::read_guano(&rec.path).unwrap().unwrap();
        assert!(
            text.contains("Timestamp: 2024-06-02T00:15:00.500+02:00\n"),
            "{text}"
        );
        assert!(text.contains("Samplerate: 384000\nTE: 10\n"), "{text}");
        assert!(text.contains("Length: 0.100000\n"), "{text}");
    }

    #[test]
    fn a_source_failing_mid_recording_leaves_a_valid_shorter_wav() {
        let (_tmp, d) = dir();
        for (fail_after, limit) in [(Some(25_000), None), (None, Some(1_000))] {
            let _ = std::fs::remove_dir_all(d.join("staging"));
            let mut src = Counter::new(48_000, 1);
            src.fail_after = fail_after;
            src.limit = limit;
            let rec = record_once(&mut src, &plan(&d, 48_000)).unwrap();
            let written = fail_after.or(limit).unwrap();
            assert_eq!(rec.frames, written);
            assert!((rec.duration_s - rec.frames as f64 / 48_000.0).abs() < 1e-12);
            assert_eq!(listing(&d.join("staging")), [rec.path.file_name().unwrap()]);
            let mut r = hound::WavReader::open(&rec.path).unwrap();
            assert_eq!(
                u64::from(r.duration()),
                rec.frames,
                "the header says what is there"
            );
            for (k, s) in r.samples::<i16>().enumerate() {
                assert_eq!(s.unwrap(), k as u16 as i16, "sample {k}");
            }
            assert!(wav::read_guano(&rec.path).unwrap().is_some());
        }
    }

    #[test]
    fn a_source_failing_before_any_frame_is_an_error_and_leaves_nothing() {
        let (_tmp, d) = dir();
        let mut src = Counter::new(48_000, 1);
        src.fail_after = Some(0);
        let err = record_once(&mut src, &plan(&d, 48_000)).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(listing(&d.join("staging")).is_empty());
        let mut src = Counter::new(48_000, 1);
        src.limit = Some(0);
        let err = record_once(&mut src, &plan(&d, 48_000))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ended after 0 of 48000 frames"), "{err}");
        assert!(listing(&d.join("staging")).is_empty());
    }

    #[test]
    fn disk_guard_refuses_before_writing() {
        let (_tmp, d) = dir();
        let mut p = plan(&d, 100);
        p.min_free_bytes = u64::MAX;
        let err = record_once(&mut Counter::new(48_000, 1), &p).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("staging") && msg.contains("bytes free"),
            "{msg}"
        );
        assert!(msg.contains(&u64::MAX.to_string()), "{msg}");
        assert!(matches!(&err, AudioError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull));
        assert!(listing(&d.join("staging")).is_empty());
        let err = Rotator::new(p).run(
            &mut Counter::new(48_000, 1),
            || false,
            |_| ControlFlow::Continue(()),
        );
        assert!(err.unwrap_err().to_string().contains("bytes free"));
        assert!(listing(&d.join("staging")).is_empty());
    }

    #[test]
    fn bad_plans_are_refused() {
        let (_tmp, d) = dir();
        let mut p = plan(&d, 0);
        let err = record_once(&mut Counter::new(48_000, 1), &p).unwrap_err();
        assert!(err.to_string().contains("zero frames"), "{err}");
        p.duration_frames = 10;
        p.timezone = "Mars/Olympus".into();
        let err = record_once(&mut Counter::new(48_000, 1), &p).unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }

    /// Checks a rotated 16-bit mono file sample by sample from the raw bytes (fast even in
    /// debug builds): it must continue the counter at `expect_first`. Returns the next value.
    fn check_counter_file(rec: &Recorded, expect_first: u16) -> u16 {
        let bytes = std::fs::read(&rec.path).unwrap();
        let mut pos = 12;
        let data = loop {
            let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            if &bytes[pos..pos + 4] == b"data" {
                break &bytes[pos + 8..pos + 8 + size];
            }
            pos += 8 + size + size % 2;
        };
        assert_eq!(data.len() as u64, rec.frames * 2, "{}", rec.path);
        let mut expect = expect_first;
        for pair in data.chunks_exact(2) {
            let got = u16::from_le_bytes([pair[0], pair[1]]);
            if got != expect {
                panic!("{}: got {got}, expected {expect}", rec.path);
            }
            expect = expect.wrapping_add(1);
        }
        expect
    }

    /// Runs the rotator over `seconds` of 384 kHz mono counter audio cut into 10 s files,
    /// starting off the grid, and checks gaplessness file by file.
    fn rotate_counter(seconds: u64) {
        let (_tmp, d) = dir();
        let rate = 384_000u32;
        let total = u64::from(rate) * seconds;
        let mut p = plan(&d, u64::from(rate) * 10);
        p.start = Some(ts("2024-05-01T12:00:03.25Z"));
        let mut src = Counter::new(rate, 1);
        src.limit = Some(total);
        src.overrun_every = Some(1_000);
        let mut rotator = Rotator::new(p);
        let mut next_value = 0u16;
        let mut recs = Vec::new();
        let started = Instant::now();
        rotator
            .run(
                &mut src,
                || false,
                |rec| {
                    next_value = check_counter_file(&rec, next_value);
                    std::fs::remove_file(&rec.path).unwrap();
                    recs.push(rec);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        eprintln!(
            "rotated {seconds} s of 384 kHz audio in {:?}",
            started.elapsed()
        );
        // Exactly every frame, each once: the counter carried over every cut.
        assert_eq!(recs.iter().map(|r| r.frames).sum::<u64>(), total);
        assert_eq!(next_value, total as u16);
        assert_eq!(rotator.frames(), total);
        assert_eq!(rotator.files(), recs.len() as u64);
        // The first file is short so that the next one starts on the 10 s grid.
        assert_eq!(recs[0].path.file_name(), Some("20240501_120003_250.wav"));
        assert_eq!(recs[0].frames, 2_592_000);
        assert_eq!(recs[1].start, ts("2024-05-01T12:00:10Z"));
        assert_eq!(recs[1].path.file_name(), Some("20240501_120010.wav"));
        for (k, r) in recs.iter().enumerate().skip(1) {
            let expect = ts("2024-05-01T12:00:10Z").as_second() + 10 * (k as i64 - 1);
            assert_eq!(r.start.as_second(), expect);
            assert_eq!(r.start.subsec_nanosecond(), 0);
        }
        for r in &recs[1..recs.len() - 1] {
            assert_eq!(r.frames, 3_840_000);
        }
        let tail = (total - 2_592_000) % 3_840_000;
        assert_eq!(
            recs.last().unwrap().frames,
            if tail == 0 { 3_840_000 } else { tail }
        );
        // Overruns are counted and attributed to the files.
        assert_eq!(rotator.overruns(), src.overruns());
        assert_eq!(recs.iter().map(|r| r.overruns).sum::<u64>(), src.overruns());
        assert!(listing(&d.join("staging")).is_empty());
    }

    /// The gap test: ten minutes of 384 kHz audio, faster than real time.
    #[test]
    fn rotation_is_gapless_over_ten_minutes() {
        rotate_counter(600);
    }

    #[test]
    fn rotation_keeps_the_first_file_and_reports_source_errors() {
        let (_tmp, d) = dir();
        let mut p = plan(&d, 4_800);
        p.start = Some(ts("2024-05-01T12:00:00.05Z"));
        let mut src = Counter::new(48_000, 2);
        src.max_frames = 1_000;
        src.fail_after = Some(9_000);
        let mut recs = Vec::new();
        let err = Rotator::new(p).run(
            &mut src,
            || false,
            |r| {
                recs.push(r);
                ControlFlow::Continue(())
            },
        );
        assert!(err.unwrap_err().to_string().contains("injected"));
        // 0.05 s in: 2 400 frames to the 0.1 s mark, 4 800 to 0.2 s, the rest kept.
        let frames: Vec<u64> = recs.iter().map(|r| r.frames).collect();
        assert_eq!(frames, [2_400, 4_800, 1_800]);
        let names: Vec<&str> = recs.iter().map(|r| r.path.file_name().unwrap()).collect();
        assert_eq!(
            names,
            [
                "20240501_120000_050.wav",
                "20240501_120000_100.wav",
                "20240501_120000_200.wav"
            ]
        );
        let mut k = 0u16;
        for r in &recs {
            let mut reader = hound::WavReader::open(&r.path).unwrap();
            for s in reader.samples::<i16>() {
                assert_eq!(s.unwrap() as u16, k);
                k = k.wrapping_add(1);
            }
        }
        assert_eq!(listing(&d.join("staging")).len(), 3);
    }

    #[test]
    fn rotation_stops_when_asked() {
        let (_tmp, d) = dir();
        let mut p = plan(&d, 48_000);
        p.start = Some(ts("2024-05-01T12:00:00Z"));
        // Reads return 2 400 frames (50 ms blocks): stopping after 30 leaves 1.5 s.
        let mut src = Counter::new(48_000, 1);
        let mut blocks = 0;
        let mut recs = Vec::new();
        let mut rotator = Rotator::new(p);
        rotator
            .run(
                &mut src,
                || {
                    blocks += 1;
                    blocks == 30
                },
                |r| {
                    recs.push(r);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        let frames: Vec<u64> = recs.iter().map(|r| r.frames).collect();
        assert_eq!(frames, [48_000, 24_000]);
        assert_eq!(recs[0].path.file_name(), Some("20240501_120000.wav"));
        assert_eq!(recs[1].path.file_name(), Some("20240501_120001.wav"));
        assert_eq!(rotator.files(), 2);
    }

    #[test]
    fn a_file_that_breaks_ends_the_stream_at_its_boundary() {
        let (_tmp, d) = dir();
        // 0.1 s files, started 0.02 s past the grid, read in 50 ms blocks: every file ends
        // inside a block, whose rest would start the next file.
        let mut p = plan(&d, 4_800);
        p.start = Some(ts("2024-05-01T12:00:00.02Z"));
        let mut src = Counter::new(48_000, 1);
        let mut recs = Vec::new();
        let mut rotator = Rotator::new(p);
        // A bound for a rotator that would not break: 1 s of blocks.
        let mut blocks = 0;
        rotator
            .run(
                &mut src,
                || {
                    blocks += 1;
                    blocks == 20
                },
                |r| {
                    recs.push(r);
                    if recs.len() == 3 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )
            .unwrap();
        let frames: Vec<u64> = recs.iter().map(|r| r.frames).collect();
        assert_eq!(frames, [3_840, 4_800, 4_800]);
        assert_eq!(rotator.files(), 3);
        // Nothing after the third file: no short fourth one, no partial file left behind.
        assert_eq!(listing(&d.join("staging")).len(), 3);
    }
}
