//! The built-in band-energy detector: sounds that stand out from the recording's own noise
//! floor in a frequency band.
//!
//! In: [`Settings`] (band, frame, overlap; real Hz and real seconds), a WAV file and its
//! time-expansion factor. Out: [`Event`]s (real seconds and real Hz), or a [`DetectError`]
//! (`Unreadable` when the file is at fault, `Refused` when the request cannot be analysed).
//!
//! How it works, exactly:
//! 1. **Frames.** The file is streamed (mixed down to mono) through Hann-windowed frames of
//!    `frame_s` seconds at the file's real rate (header rate × time expansion, rounded to
//!    samples, at least 2) every hop = frame × (1 − overlap) (rounded, at least one sample),
//!    and a last frame ending at the end of the file (never zero-padded: a sound cut off by
//!    the end of the file is no click). A file shorter than a frame is one zero-padded frame,
//!    which is its own noise floor, so it has no events.
//! 2. **Band power.** Each frame's power in the band: the bins whose centre frequency lies in
//!    `low_hz..=high_hz` (the nearest bin when the band is narrower than a bin), scaled so a
//!    full-scale sine in the band reads 0.5 (−3 dBFS).
//! 3. **Noise floor.** The 20th percentile of the frames' band powers (within 0.05 dB), but
//!    never below −100 dBFS (10⁻¹⁰), so digital silence is not infinitely quiet. Steady
//!    sounds (noise, hum, a steady tone in the band) fill most frames, so they are the floor.
//! 4. **Score.** A frame's score is its band power above the floor in dB, divided by 30 and
//!    clamped to 0..1: 0 at or below the floor, 0.5 at 15 dB above it, 1 at 30 dB and more.
//! 5. **Events.** A maximal run of consecutive frames each scoring at least 0.1 (3 dB above
//!    the floor) is one event. Its score is its best frame's score, so "event score ≥ t" means
//!    "some frame of it is at least 30·t dB above the noise floor". Start: the start of its
//!    first frame; end: the end of its last frame, clamped to the end of the file.
//! 6. **Frequencies.** The in-band power spectra of the event's frames are summed, the noise
//!    spectrum (the mean spectrum of up to 32 frames at or below the floor, times the number of
//!    frames) is subtracted, and the result is smoothed over 5 bins. Low and high are the centre
//!    frequencies of the first and last bins of the contiguous stretch around its peak that
//!    stays within 20 dB of the peak (without the noise subtraction if nothing is left after
//!    it), clamped to the band.
//!
//! Memory: a read block, a few frame-sized buffers, one `f32` band power per frame (a one-hour
//! recording with 10 ms frames at 50% overlap: 720 000 frames, 2.9 MB), the in-band spectrum
//! of one event at a time and the events found; nothing per sample. The file is read twice:
//! once whole, streamed; then only the frames of events and the noise frames, by seeking.
//! With very narrow bands (a few bins) and short frames, noise alone can make frames score
//! up to about 0.4, since few bins fluctuate more.

use std::sync::Arc;

use camino::Utf8Path;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::{DetectError, Event};
use crate::audio::wav_reader::{WavError, WavReader};

/// Fraction of frames quieter than the noise floor.
const FLOOR_PERCENTILE: f64 = 0.2;
/// The lowest noise floor, a band power (−100 dBFS).
const ABSOLUTE_FLOOR: f64 = 1e-10;
/// dB above the floor that score 1.
const FULL_SCALE_DB: f64 = 30.0;
/// The score a frame needs to be part of an event.
const EVENT_FLOOR: f64 = 0.1;
/// How far below an event's spectral peak its frequency range extends, dB.
const EXTENT_DB: f64 = 20.0;
/// Half-width of the smoothing of an event's spectrum, bins.
const SMOOTH_HALF: usize = 2;
/// Frames averaged into the noise spectrum, at most.
const NOISE_FRAMES: usize = 32;
/// Samples read from the file at a time.
const READ_SAMPLES: usize = 16 * 1024;
/// Histogram resolution of the noise-floor percentile, dB.
const HISTOGRAM_DB: f64 = 0.05;
/// Histogram range, dB: band powers below the lowest bin count in it.
const HISTOGRAM_RANGE: (f64, f64) = (-200.0, 20.0);

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

    /// The events in the WAV file at `path`, recorded with `time_expansion`: every event
    /// scoring above 0 (see the module docs for what the score means); the caller applies
    /// the threshold.
    pub fn detect(&self, path: &Utf8Path, time_expansion: f64) -> Result<Vec<Event>, DetectError> {
        let mut reader = WavReader::open(path).map_err(unreadable)?;
        let info = reader.info();
        let total = info.frames;
        let mut analysis =
            Analysis::new(&self.settings, info.samplerate, total, time_expansion, path)?;
        let frames = analysis.frame_count();
        if frames == 0 {
            return Ok(Vec::new());
        }
        let powers = analysis.band_powers(&mut reader, frames)?;
        let floor = noise_floor(&powers);
        let runs = runs(&powers, floor);
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let noise = analysis.noise_spectrum(&mut reader, &powers, floor)?;
        let mut events = Vec::with_capacity(runs.len());
        for run in runs {
            let (low_hz, high_hz) = analysis.extent(&mut reader, &run, &noise)?;
            let end = (analysis.start(run.last) + analysis.n as u64).min(total);
            events.push(Event {
                start_s: analysis.start(run.first) as f64 / analysis.rate,
                end_s: end as f64 / analysis.rate,
                low_hz,
                high_hz,
                score: run.score,
                tags: Vec::new(),
            });
        }
        Ok(events)
    }
}

/// A file that cannot be read is the file's fault.
fn unreadable(e: WavError) -> DetectError {
    DetectError::Unreadable(e.to_string())
}

/// A maximal run of frames scoring at least [`EVENT_FLOOR`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    first: u64,
    last: u64,
    score: f64,
}

/// A frame's score for band power `power` over noise floor `floor`.
fn score(power: f64, floor: f64) -> f64 {
    let db = 10.0 * (power / floor).log10();
    if db.is_nan() {
        0.0
    } else {
        (db / FULL_SCALE_DB).clamp(0.0, 1.0)
    }
}

/// The noise floor of frames with band powers `powers` (not empty): their 20th percentile,
/// from a histogram in [`HISTOGRAM_DB`] steps, but at least [`ABSOLUTE_FLOOR`].
fn noise_floor(powers: &[f32]) -> f64 {
    let (lo, hi) = HISTOGRAM_RANGE;
    let bins = ((hi - lo) / HISTOGRAM_DB) as usize;
    let mut histogram = vec![0u64; bins];
    for p in powers {
        let db = 10.0 * f64::from(*p).log10();
        // NaN and -inf (a power of 0) land in the first bin, as `as` saturates.
        let i = ((db - lo) / HISTOGRAM_DB) as usize;
        histogram[i.min(bins - 1)] += 1;
    }
    let rank = (FLOOR_PERCENTILE * powers.len() as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    let mut bin = bins - 1;
    for (i, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= rank {
            bin = i;
            break;
        }
    }
    let db = lo + (bin + 1) as f64 * HISTOGRAM_DB;
    10f64.powf(db / 10.0).max(ABSOLUTE_FLOOR)
}

/// The runs of frames scoring at least [`EVENT_FLOOR`] over `floor`.
fn runs(powers: &[f32], floor: f64) -> Vec<Run> {
    let mut out = Vec::new();
    let mut current: Option<Run> = None;
    for (i, p) in powers.iter().enumerate() {
        let s = score(f64::from(*p), floor);
        let i = i as u64;
        if s >= EVENT_FLOOR {
            match &mut current {
                Some(run) => {
                    run.last = i;
                    run.score = run.score.max(s);
                }
                None => {
                    current = Some(Run {
                        first: i,
                        last: i,
                        score: s,
                    });
                }
            }
        } else if let Some(run) = current.take() {
            out.push(run);
        }
    }
    out.extend(current);
    out
}

/// The frame geometry and FFT of one file.
struct Analysis {
    /// Frame length, samples.
    n: usize,
    /// Hop, samples.
    hop: usize,
    /// Samples in the file.
    total: u64,
    /// Real sample rate, Hz.
    rate: f64,
    /// First and last band bins.
    bins: (usize, usize),
    /// The band's edges, real Hz.
    band: (f64, f64),
    window: Vec<f32>,
    /// Scale from a sum of |X|² to band power.
    norm: f64,
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Samples read from the file, not yet in a frame.
    block: Vec<f32>,
}

impl Analysis {
    /// The analysis of a file with header rate `samplerate` and `time_expansion`.
    fn new(
        s: &Settings,
        samplerate: u32,
        total: u64,
        time_expansion: f64,
        path: &Utf8Path,
    ) -> Result<Analysis, DetectError> {
        let refuse = |why: String| Err(DetectError::Refused(format!("{path}: {why}")));
        if !(time_expansion.is_finite() && time_expansion > 0.0) {
            return refuse(format!(
                "time expansion {time_expansion} is not a positive number"
            ));
        }
        let valid = s.low_hz >= 0.0
            && s.low_hz < s.high_hz
            && s.frame_s > 0.0
            && s.frame_s.is_finite()
            && (0.0..=0.9).contains(&s.overlap);
        if !valid {
            return refuse(format!("invalid band-energy settings {s:?}"));
        }
        let rate = f64::from(samplerate) * time_expansion;
        let nyquist = rate / 2.0;
        if s.low_hz >= nyquist {
            return refuse(format!(
                "the band {} to {} Hz lies above the recording's Nyquist frequency ({nyquist} Hz)",
                s.low_hz, s.high_hz
            ));
        }
        let n = (s.frame_s * rate).round().clamp(2.0, 1e9) as usize;
        let hop = ((n as f64 * (1.0 - s.overlap)).round() as usize).max(1);
        let bin_hz = rate / n as f64;
        let last_bin = n / 2;
        let lo = ((s.low_hz / bin_hz).ceil() as usize).min(last_bin);
        let hi = ((s.high_hz / bin_hz).floor() as usize).min(last_bin);
        let bins = if lo <= hi {
            (lo, hi)
        } else {
            let centre = (((s.low_hz + s.high_hz) / 2.0 / bin_hz).round() as usize).min(last_bin);
            (centre, centre)
        };
        let window: Vec<f32> = (0..n)
            .map(|i| {
                let x = std::f64::consts::TAU * i as f64 / n as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        let energy: f64 = window.iter().map(|w| f64::from(*w).powi(2)).sum();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        Ok(Analysis {
            n,
            hop,
            total,
            rate,
            bins,
            band: (s.low_hz, s.high_hz.min(nyquist)),
            window,
            norm: 2.0 / (n as f64 * energy),
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            block: Vec::with_capacity(READ_SAMPLES),
        })
    }

    /// The first sample of frame `index`.
    fn start(&self, index: u64) -> u64 {
        let last = self.total.saturating_sub(self.n as u64);
        (index * self.hop as u64).min(last)
    }

    /// Frames in the file.
    fn frame_count(&self) -> u64 {
        let (n, hop) = (self.n as u64, self.hop as u64);
        match self.total {
            0 => 0,
            t if t <= n => 1,
            t => 1 + (t - n).div_ceil(hop),
        }
    }

    /// Transforms `samples` (at most a frame; zero-padded), leaving the spectrum in
    /// `self.spectrum`.
    fn transform(&mut self, samples: &[f32]) -> Result<(), DetectError> {
        let k = samples.len().min(self.n);
        for ((x, s), w) in self.input.iter_mut().zip(samples).zip(&self.window) {
            *x = s * w;
        }
        self.input[k..].fill(0.0);
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .map_err(|e| DetectError::Failed(format!("the band-energy FFT failed: {e}")))
    }

    /// The band power of the spectrum in `self.spectrum`.
    fn band_power(&self) -> f64 {
        let (lo, hi) = self.bins;
        let sum: f64 = self.spectrum[lo..=hi]
            .iter()
            .map(|c| f64::from(c.norm_sqr()))
            .sum();
        sum * self.norm
    }

    /// Streams the file once: the band power of each of its `frames` frames.
    fn band_powers(
        &mut self,
        reader: &mut WavReader,
        frames: u64,
    ) -> Result<Vec<f32>, DetectError> {
        let mut powers = Vec::with_capacity(usize::try_from(frames).unwrap_or(0));
        // `frame` holds the samples from the current frame's start on (at most a frame);
        // `block` the samples read and not yet moved into it, from `block_pos` on.
        let mut frame: Vec<f32> = Vec::with_capacity(self.n);
        let mut block_pos = 0;
        let mut eof = false;
        let mut start = 0;
        for index in 0..frames {
            // The last frame ends at the end of the file, closer than a hop to the one before.
            let next = self.start(index);
            frame.drain(
                ..usize::try_from(next - start)
                    .unwrap_or(usize::MAX)
                    .min(frame.len()),
            );
            start = next;
            while frame.len() < self.n && !eof {
                if block_pos == self.block.len() {
                    self.block.resize(READ_SAMPLES, 0.0);
                    let got = reader.read_mono(&mut self.block).map_err(unreadable)?;
                    self.block.truncate(got);
                    block_pos = 0;
                    eof = got == 0;
                    continue;
                }
                let take = (self.n - frame.len()).min(self.block.len() - block_pos);
                frame.extend_from_slice(&self.block[block_pos..block_pos + take]);
                block_pos += take;
            }
            let samples = std::mem::take(&mut frame);
            self.transform(&samples)?;
            frame = samples;
            powers.push(self.band_power() as f32);
        }
        Ok(powers)
    }

    /// Reads frame `index` (zero-padded past the end) and transforms it.
    fn transform_frame(&mut self, reader: &mut WavReader, index: u64) -> Result<(), DetectError> {
        reader.seek(self.start(index)).map_err(unreadable)?;
        let mut block = std::mem::take(&mut self.block);
        block.resize(self.n, 0.0);
        let mut filled = 0;
        while filled < self.n {
            let got = reader.read_mono(&mut block[filled..]);
            match got {
                Ok(0) => break,
                Ok(got) => filled += got,
                Err(e) => {
                    self.block = block;
                    return Err(unreadable(e));
                }
            }
        }
        let result = self.transform(&block[..filled]);
        self.block = block;
        result
    }

    /// Adds the in-band power spectrum in `self.spectrum` to `acc`.
    fn accumulate(&self, acc: &mut [f64]) {
        let (lo, hi) = self.bins;
        for (a, c) in acc.iter_mut().zip(&self.spectrum[lo..=hi]) {
            *a += f64::from(c.norm_sqr());
        }
    }

    /// The mean in-band power spectrum of up to [`NOISE_FRAMES`] frames at or below `floor`,
    /// spread over the file.
    fn noise_spectrum(
        &mut self,
        reader: &mut WavReader,
        powers: &[f32],
        floor: f64,
    ) -> Result<Vec<f64>, DetectError> {
        let mut acc = vec![0.0; self.bins.1 - self.bins.0 + 1];
        let quiet = powers.iter().filter(|p| f64::from(**p) <= floor).count();
        let stride = quiet.div_ceil(NOISE_FRAMES).max(1);
        let mut used = 0;
        let quiet_frames = powers
            .iter()
            .enumerate()
            .filter(|(_, p)| f64::from(**p) <= floor)
            .step_by(stride);
        for (i, _) in quiet_frames {
            self.transform_frame(reader, i as u64)?;
            self.accumulate(&mut acc);
            used += 1;
        }
        if used > 0 {
            for a in &mut acc {
                *a /= f64::from(used);
            }
        }
        Ok(acc)
    }

    /// The frequency range of `run`, real Hz (see the module docs).
    fn extent(
        &mut self,
        reader: &mut WavReader,
        run: &Run,
        noise: &[f64],
    ) -> Result<(f64, f64), DetectError> {
        let mut acc = vec![0.0; noise.len()];
        for i in run.first..=run.last {
            self.transform_frame(reader, i)?;
            self.accumulate(&mut acc);
        }
        let frames = (run.last - run.first + 1) as f64;
        let excess: Vec<f64> = acc.iter().zip(noise).map(|(a, n)| a - n * frames).collect();
        let (first, last) = match stretch(&smooth(&excess)) {
            Some(range) => range,
            None => stretch(&smooth(&acc)).unwrap_or((0, noise.len() - 1)),
        };
        let hz = |k: usize| (self.bins.0 + k) as f64 * self.rate / self.n as f64;
        let (lo, hi) = self.band;
        Ok((hz(first).clamp(lo, hi), hz(last).clamp(lo, hi)))
    }
}

/// `x` averaged over `2 * SMOOTH_HALF + 1` bins (fewer at the edges).
fn smooth(x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let a = i.saturating_sub(SMOOTH_HALF);
            let b = (i + SMOOTH_HALF + 1).min(x.len());
            x[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect()
}

/// The contiguous stretch of `x` around its peak that stays within [`EXTENT_DB`] of it, or
/// `None` when the peak is not positive.
fn stretch(x: &[f64]) -> Option<(usize, usize)> {
    let (peak, max) = x
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
            if *v > bv { (i, *v) } else { (bi, bv) }
        });
    if max.is_nan() || max <= 0.0 {
        return None;
    }
    let level = max * 10f64.powf(-EXTENT_DB / 10.0);
    let mut first = peak;
    while first > 0 && x[first - 1] >= level {
        first -= 1;
    }
    let mut last = peak;
    while last + 1 < x.len() && x[last + 1] >= level {
        last += 1;
    }
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_linear_in_db_over_the_floor() {
        assert_eq!(score(1e-6, 1e-6), 0.0);
        assert_eq!(score(1e-7, 1e-6), 0.0);
        assert!((score(10f64.powf(1.5) * 1e-6, 1e-6) - 0.5).abs() < 1e-9);
        assert_eq!(score(1e-2, 1e-6), 1.0);
        assert_eq!(score(0.0, 1e-10), 0.0);
    }

    #[test]
    fn floor_is_the_20th_percentile_but_never_below_minus_100_db() {
        let mut powers = vec![1e-3f32; 80];
        powers.extend(vec![1e-5f32; 20]);
        let floor = noise_floor(&powers);
        assert!(
            (10.0 * (floor / 1e-5).log10()).abs() <= HISTOGRAM_DB + 1e-6,
            "{floor}"
        );
        assert_eq!(noise_floor(&[0.0; 10]), ABSOLUTE_FLOOR);
        assert_eq!(noise_floor(&[f32::NAN]), ABSOLUTE_FLOOR);
        assert!(noise_floor(&[1e9]) > 1.0);
    }

    #[test]
    fn runs_merge_consecutive_frames_and_keep_the_best_score() {
        let floor = 1e-6;
        let db = |d: f64| (floor * 10f64.powf(d / 10.0)) as f32;
        let powers = [db(0.0), db(4.0), db(20.0), db(1.0), db(31.0)];
        let r = runs(&powers, floor);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].first, r[0].last), (1, 2));
        assert!((r[0].score - 20.0 / 30.0).abs() < 1e-6);
        assert_eq!((r[1].first, r[1].last, r[1].score), (4, 4, 1.0));
    }

    #[test]
    fn stretch_is_contiguous_around_the_peak() {
        let x = [50.0, 0.0, 2.0, 100.0, 30.0, 0.5, 90.0];
        assert_eq!(stretch(&x), Some((2, 4)));
        assert_eq!(stretch(&[-1.0, 0.0]), None);
    }
}
