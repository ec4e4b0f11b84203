//! A generated signal as a [`Source`]: sine, white noise, tone bursts, bat-like sweeps, or a
//! sample counter for gap tests.
//!
//! In: a [`spec::Signal`], the [`Format`] to produce and a [`Pacing`]. Out: interleaved `i32`
//! samples scaled to the format's range (every channel carries the same signal), delivered in
//! real time against a monotonic clock started at open, or as fast as they are read.
//!
//! The [`Pacer`] that keeps real time is shared with the file source.

use std::f64::consts::TAU;
use std::time::{Duration, Instant};

use super::{AudioError, Format, Source};
use crate::spec::{self, SampleFormat};

/// How fast a generated or replayed stream delivers samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// At the sample rate, as a live device would: `read` sleeps until the samples are due.
    RealTime,
    /// Without waiting: every `read` fills the whole buffer.
    AsFastAsPossible,
}

/// The frequency law of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chirp {
    /// Frequency changes by the same number of hertz per second.
    Linear,
    /// Frequency changes by the same number of octaves per second, like most bat FM calls;
    /// falls back to linear when either end is 0 Hz.
    #[default]
    Exponential,
}

/// Real-time pacing against a monotonic clock: the number of frames due is computed from the
/// time elapsed since open, so sleep overshoot never accumulates into drift.
#[derive(Debug)]
pub(crate) struct Pacer {
    pacing: Pacing,
    samplerate: u64,
    start: Instant,
    delivered: u64,
}

impl Pacer {
    /// Starts the clock now.
    pub(crate) fn new(pacing: Pacing, samplerate: u32) -> Pacer {
        Pacer {
            pacing,
            samplerate: u64::from(samplerate.max(1)),
            start: Instant::now(),
            delivered: 0,
        }
    }

    /// Frames per block: about 10 ms, at least one.
    fn block(&self) -> u64 {
        (self.samplerate / 100).max(1)
    }

    /// How many frames the caller may deliver now, at most `max`: in real time, sleeps until at
    /// least one block (or `max`, when smaller) is due, then grants everything due up to `max`.
    /// The caller must deliver exactly the frames granted.
    pub(crate) fn take(&mut self, max: usize) -> usize {
        let max = max as u64;
        if max == 0 {
            return 0;
        }
        if self.pacing == Pacing::AsFastAsPossible {
            self.delivered += max;
            return max as usize;
        }
        let want = max.min(self.block());
        loop {
            let now = Instant::now();
            let due = self.frames_at(now.saturating_duration_since(self.start));
            let available = due.saturating_sub(self.delivered);
            if available >= want {
                let n = available.min(max);
                self.delivered += n;
                return n as usize;
            }
            let target = self.start + self.time_of(self.delivered + want);
            std::thread::sleep(target.saturating_duration_since(now));
        }
    }

    /// Frames due after `elapsed`.
    fn frames_at(&self, elapsed: Duration) -> u64 {
        let frames = elapsed.as_nanos() * u128::from(self.samplerate) / 1_000_000_000;
        u64::try_from(frames).unwrap_or(u64::MAX)
    }

    /// When frame `frames` is due, rounded up to the nanosecond.
    fn time_of(&self, frames: u64) -> Duration {
        let rate = u128::from(self.samplerate);
        let nanos = (u128::from(frames) * 1_000_000_000).div_ceil(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Bits of the `i32` representation of a sample format: 16, 24 (also for `F32`) or 32.
pub(crate) fn bits(format: SampleFormat) -> u32 {
    match format {
        SampleFormat::I16 => 16,
        SampleFormat::I24 | SampleFormat::F32 => 24,
        SampleFormat::I32 => 32,
    }
}

/// Largest sample value of a format's `i32` representation.
pub(crate) fn full_scale(format: SampleFormat) -> i32 {
    match bits(format) {
        16 => i32::from(i16::MAX),
        24 => (1 << 23) - 1,
        _ => i32::MAX,
    }
}

/// Converts a float sample (full scale ±1) to a format's `i32` representation, rounding and
/// clamping.
pub(crate) fn from_unit(x: f64, format: SampleFormat) -> i32 {
    let scale = f64::from(full_scale(format)) + 1.0;
    let v = (x * scale).round();
    let (lo, hi) = (-scale, scale - 1.0);
    // `as` saturates and maps NaN to 0; the clamp keeps -1.0 and +1.0 in range.
    v.clamp(lo, hi) as i32
}

/// A generated signal, paced in real time or delivered as fast as it is read.
#[derive(Debug)]
pub struct Synthetic {
    format: Format,
    generator: Generator,
    pacer: Pacer,
    /// Index of the next frame to generate.
    frame: u64,
}

#[derive(Debug)]
enum Generator {
    Sine {
        frequency_hz: u64,
        amplitude: f64,
    },
    Noise {
        amplitude: f64,
        state: u64,
    },
    Calls {
        /// `None` for constant-frequency bursts.
        sweep: Option<Sweep>,
        frequency_hz: f64,
        length: u64,
        period: u64,
        edge: u64,
        amplitude: f64,
    },
    Counter,
}

#[derive(Debug, Clone, Copy)]
struct Sweep {
    from_hz: f64,
    to_hz: f64,
    chirp: Chirp,
}

impl Synthetic {
    /// A source generating `signal` at `format`; the real-time clock starts now.
    pub fn new(signal: &spec::Signal, format: Format, pacing: Pacing) -> Synthetic {
        let rate = u64::from(format.samplerate.max(1));
        let frames = |ms: u64| ms.saturating_mul(rate) / 1000;
        let calls = |sweep, frequency_hz: f64, length_ms, every_ms, amplitude| {
            let period = frames(every_ms).max(1);
            let length = frames(length_ms).clamp(1, period);
            Generator::Calls {
                sweep,
                frequency_hz,
                length,
                period,
                edge: (length / 10).max(1),
                amplitude: unit(amplitude),
            }
        };
        let generator = match *signal {
            spec::Signal::Sine {
                frequency_hz,
                amplitude,
            } => Generator::Sine {
                frequency_hz: u64::from(frequency_hz),
                amplitude: unit(amplitude),
            },
            spec::Signal::Noise { amplitude } => Generator::Noise {
                amplitude: unit(amplitude),
                state: 0x9E37_79B9_7F4A_7C15,
            },
            spec::Signal::Bursts {
                frequency_hz,
                length_ms,
                every_ms,
                amplitude,
            } => calls(
                None,
                f64::from(frequency_hz),
                length_ms,
                every_ms,
                amplitude,
            ),
            spec::Signal::Sweep {
                from_hz,
                to_hz,
                length_ms,
                every_ms,
                amplitude,
            } => calls(
                Some(Sweep {
                    from_hz: f64::from(from_hz),
                    to_hz: f64::from(to_hz),
                    chirp: Chirp::default(),
                }),
                0.0,
                length_ms,
                every_ms,
                amplitude,
            ),
            spec::Signal::Counter => Generator::Counter,
        };
        Synthetic {
            format,
            generator,
            pacer: Pacer::new(pacing, format.samplerate),
            frame: 0,
        }
    }

    /// Uses `chirp` for sweeps ([`Chirp::Exponential`] by default); no effect on other signals.
    pub fn with_chirp(mut self, chirp: Chirp) -> Synthetic {
        if let Generator::Calls {
            sweep: Some(sweep), ..
        } = &mut self.generator
        {
            sweep.chirp = chirp;
        }
        self
    }

    /// The value of frame `n` (advancing the noise generator).
    fn next_value(&mut self, n: u64) -> i32 {
        let rate = u64::from(self.format.samplerate.max(1));
        let format = self.format.sample_format;
        match &mut self.generator {
            Generator::Sine {
                frequency_hz,
                amplitude,
            } => {
                // Integer phase: exact however long the stream runs.
                let cycles = (*frequency_hz % rate) * (n % rate) % rate;
                let phase = TAU * cycles as f64 / rate as f64;
                from_unit(*amplitude * phase.sin(), format)
            }
            Generator::Noise { amplitude, state } => {
                // xorshift64*
                let mut x = *state;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                *state = x;
                let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11; // 53 bits
                let u = r as f64 / (1u64 << 53) as f64; // [0, 1)
                from_unit(*amplitude * (2.0 * u - 1.0), format)
            }
            Generator::Calls {
                sweep,
                frequency_hz,
                length,
                period,
                edge,
                amplitude,
            } => {
                let pos = n % *period;
                if pos >= *length {
                    return 0;
                }
                let t = pos as f64 / rate as f64;
                let phase = match sweep {
                    None => TAU * *frequency_hz * t,
                    Some(s) => s.phase(t, *length as f64 / rate as f64),
                };
                let envelope = hann_edges(pos, *length, *edge);
                from_unit(*amplitude * envelope * phase.sin(), format)
            }
            Generator::Counter => wrap(n, bits(format)),
        }
    }
}

impl Sweep {
    /// Phase in radians `t` seconds into a call lasting `duration` seconds.
    fn phase(&self, t: f64, duration: f64) -> f64 {
        let (f0, f1) = (self.from_hz, self.to_hz);
        let exponential = self.chirp == Chirp::Exponential && f0 > 0.0 && f1 > 0.0 && f0 != f1;
        if exponential {
            let k = (f1 / f0).ln();
            TAU * f0 * duration / k * ((k * t / duration).exp() - 1.0)
        } else {
            TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * duration))
        }
    }
}

/// Gain of sample `pos` of a call of `length` samples whose first and last `edge` samples are
/// half Hann windows.
fn hann_edges(pos: u64, length: u64, edge: u64) -> f64 {
    let from_end = length - 1 - pos;
    let d = pos.min(from_end);
    if d >= edge {
        1.0
    } else {
        let x = (d as f64 + 0.5) / edge as f64; // (0, 1)
        0.5 - 0.5 * (std::f64::consts::PI * x).cos()
    }
}

/// `n` wrapped into the signed range of `bits` bits (two's complement).
fn wrap(n: u64, bits: u32) -> i32 {
    let shift = 64 - bits;
    (((n << shift) as i64) >> shift) as i32
}

/// An amplitude clamped to 0..1 (NaN becomes 0).
fn unit(a: f64) -> f64 {
    if a.is_nan() { 0.0 } else { a.clamp(0.0, 1.0) }
}

impl Source for Synthetic {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
        let channels = usize::from(self.format.channels.max(1));
        let max = buf.len() / channels;
        if max == 0 {
            return Err(AudioError::Format(format!(
                "synthetic source: a buffer of {} samples holds no whole frame of {channels} channels",
                buf.len()
            )));
        }
        let frames = self.pacer.take(max);
        for frame in buf[..frames * channels].chunks_exact_mut(channels) {
            let v = self.next_value(self.frame);
            frame.fill(v);
            self.frame += 1;
        }
        Ok(frames * channels)
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

    fn collect(src: &mut Synthetic, samples: usize) -> Vec<i32> {
        let mut out = Vec::with_capacity(samples);
        let mut buf = vec![0; 4096];
        while out.len() < samples {
            let want = (samples - out.len()).min(buf.len());
            let n = src.read(&mut buf[..want]).expect("read");
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn counter_is_continuous_across_odd_reads() {
        for (sf, bits) in [
            (SampleFormat::I16, 16),
            (SampleFormat::I24, 24),
            (SampleFormat::F32, 24),
            (SampleFormat::I32, 32),
        ] {
            let mut src = Synthetic::new(
                &spec::Signal::Counter,
                fmt(48_000, 3, sf),
                Pacing::AsFastAsPossible,
            );
            let mut frame = 0u64;
            let mut buf = vec![0; 7000];
            // Buffer sizes that are not multiples of the channel count.
            for size in [3, 4, 5, 7, 100, 1001, 6999, 8, 3].iter().cycle().take(200) {
                let n = src.read(&mut buf[..*size]).unwrap_or(0);
                assert_eq!(n % 3, 0);
                assert!(n <= *size && n > 0);
                for f in buf[..n].chunks_exact(3) {
                    let expect = wrap(frame, bits);
                    assert_eq!(f, [expect; 3], "frame {frame}, {sf:?}");
                    frame += 1;
                }
            }
        }
    }

    #[test]
    fn counter_wraps_to_the_signed_range() {
        assert_eq!(wrap(32_767, 16), 32_767);
        assert_eq!(wrap(32_768, 16), -32_768);
        assert_eq!(wrap(65_536, 16), 0);
        assert_eq!(wrap((1 << 23) - 1, 24), (1 << 23) - 1);
        assert_eq!(wrap(1 << 23, 24), -(1 << 23));
        assert_eq!(wrap(1 << 31, 32), i32::MIN);
        assert_eq!(wrap(1 << 32, 32), 0);
    }

    #[test]
    fn sine_frequency_from_zero_crossings() {
        let rate = 192_000;
        for freq in [1_000u32, 12_345, 40_000] {
            let mut src = Synthetic::new(
                &spec::Signal::Sine {
                    frequency_hz: freq,
                    amplitude: 0.8,
                },
                fmt(rate, 1, SampleFormat::I16),
                Pacing::AsFastAsPossible,
            );
            let samples = collect(&mut src, rate as usize); // one second
            let crossings = samples
                .windows(2)
                .filter(|w| (w[0] < 0) != (w[1] < 0))
                .count();
            let measured = crossings as f64 / 2.0;
            assert!(
                (measured - f64::from(freq)).abs() <= 2.0,
                "{freq} Hz measured as {measured}"
            );
        }
    }

    #[test]
    fn amplitudes_stay_in_bounds() {
        let signals = [
            spec::Signal::Sine {
                frequency_hz: 1_000,
                amplitude: 0.5,
            },
            spec::Signal::Noise { amplitude: 0.5 },
            spec::Signal::Bursts {
                frequency_hz: 20_000,
                length_ms: 5,
                every_ms: 20,
                amplitude: 0.5,
            },
            spec::Signal::Sweep {
                from_hz: 80_000,
                to_hz: 30_000,
                length_ms: 5,
                every_ms: 20,
                amplitude: 0.5,
            },
        ];
        for sf in [
            SampleFormat::I16,
            SampleFormat::I24,
            SampleFormat::I32,
            SampleFormat::F32,
        ] {
            let limit = f64::from(full_scale(sf)) * 0.5 + 1.0;
            for signal in &signals {
                let mut src = Synthetic::new(signal, fmt(192_000, 2, sf), Pacing::AsFastAsPossible);
                let samples = collect(&mut src, 192_000);
                let peak = samples
                    .iter()
                    .map(|s| f64::from(*s).abs())
                    .fold(0.0, f64::max);
                assert!(peak <= limit, "{signal:?} {sf:?}: peak {peak} > {limit}");
                assert!(
                    peak >= limit * 0.8,
                    "{signal:?} {sf:?}: peak {peak} too low"
                );
                for f in samples.chunks_exact(2) {
                    assert_eq!(f[0], f[1], "channels carry the same signal");
                }
            }
        }
        let mut full = Synthetic::new(
            &spec::Signal::Sine {
                frequency_hz: 250,
                amplitude: 1.0,
            },
            fmt(1_000, 1, SampleFormat::I16),
            Pacing::AsFastAsPossible,
        );
        let s = collect(&mut full, 1000);
        assert_eq!(s.iter().max(), Some(&32_767));
        assert!(*s.iter().min().unwrap_or(&0) >= -32_768);
    }

    #[test]
    fn bursts_are_silent_between_calls_and_tapered() {
        let rate = 100_000;
        let mut src = Synthetic::new(
            &spec::Signal::Bursts {
                frequency_hz: 10_000,
                length_ms: 10,
                every_ms: 50,
                amplitude: 1.0,
            },
            fmt(rate, 1, SampleFormat::I16),
            Pacing::AsFastAsPossible,
        );
        let s = collect(&mut src, 10_000); // two periods of 5000
        assert!(s[1000..5000].iter().all(|v| *v == 0));
        assert!(s[6000..10_000].iter().all(|v| *v == 0));
        let peak = |r: std::ops::Range<usize>| s[r].iter().map(|v| v.abs()).max().unwrap_or(0);
        assert!(peak(0..20) < 3_000, "onset is tapered");
        assert!(peak(400..600) > 30_000, "middle is at full amplitude");
        assert!(peak(980..1000) < 3_000, "offset is tapered");
        assert_eq!(s[..1000], s[5000..6000], "every call is the same");
    }

    #[test]
    fn sweep_goes_down_in_frequency() {
        for chirp in [Chirp::Linear, Chirp::Exponential] {
            let rate = 500_000;
            let mut src = Synthetic::new(
                &spec::Signal::Sweep {
                    from_hz: 100_000,
                    to_hz: 25_000,
                    length_ms: 20,
                    every_ms: 40,
                    amplitude: 1.0,
                },
                fmt(rate, 1, SampleFormat::I16),
                Pacing::AsFastAsPossible,
            )
            .with_chirp(chirp);
            let s = collect(&mut src, 20_000);
            let freq = |r: std::ops::Range<usize>| {
                let n = r.len();
                let c = s[r].windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
                c as f64 / 2.0 / (n as f64 / f64::from(rate))
            };
            let start = freq(1_000..1_500);
            let end = freq(8_500..9_000);
            assert!(start > 80_000.0 && start < 100_000.0, "{chirp:?} {start}");
            assert!(end > 25_000.0 && end < 40_000.0, "{chirp:?} {end}");
            // Halfway in time: the linear law is at the mean, the exponential one at the
            // geometric mean of the two ends.
            let mid = freq(4_900..5_100);
            let expect = if chirp == Chirp::Linear {
                62_500.0
            } else {
                50_000.0
            };
            assert!((mid - expect).abs() < 4_000.0, "{chirp:?} mid {mid}");
        }
    }

    #[test]
    fn noise_is_deterministic_and_roughly_uniform() {
        let make = || {
            Synthetic::new(
                &spec::Signal::Noise { amplitude: 1.0 },
                fmt(48_000, 1, SampleFormat::I16),
                Pacing::AsFastAsPossible,
            )
        };
        let a = collect(&mut make(), 48_000);
        let b = collect(&mut make(), 48_000);
        assert_eq!(a, b);
        let mean = a.iter().map(|v| f64::from(*v)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 500.0, "mean {mean}");
        let positive = a.iter().filter(|v| **v > 0).count();
        assert!((23_000..25_000).contains(&positive), "{positive}");
    }

    #[test]
    fn too_small_a_buffer_is_an_error() {
        let mut src = Synthetic::new(
            &spec::Signal::Counter,
            fmt(48_000, 2, SampleFormat::I16),
            Pacing::AsFastAsPossible,
        );
        let err = src.read(&mut [0; 1]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("no whole frame")));
    }

    #[test]
    fn real_time_pacing_delivers_samples_at_the_rate() {
        let rate = 48_000u32;
        let mut src = Synthetic::new(
            &spec::Signal::Counter,
            fmt(rate, 2, SampleFormat::I16),
            Pacing::RealTime,
        );
        let start = Instant::now();
        let mut frames = 0usize;
        let mut buf = vec![0; 1 << 16];
        let mut reads = 0;
        // Compared with the clock around the last read, not after the loop: a test thread
        // descheduled after its last read (a loaded machine) is not a source falling behind.
        let mut before_last = Duration::ZERO;
        while start.elapsed() < Duration::from_millis(200) {
            before_last = start.elapsed();
            frames += src.read(&mut buf).unwrap_or(0) / 2;
            reads += 1;
        }
        let ahead = start.elapsed().as_secs_f64() * f64::from(rate);
        let behind = before_last.as_secs_f64() * f64::from(rate);
        // Never ahead of the clock; behind it by at most a block (10 ms) and scheduling noise.
        assert!(frames as f64 <= ahead + 1.0, "{frames} > {ahead}");
        assert!(
            frames as f64 >= behind - 480.0 - 0.05 * behind,
            "{frames} < {behind}"
        );
        // Blocks of about 10 ms, not one huge read or a busy loop.
        assert!((5..=60).contains(&reads), "{reads} reads");
    }

    #[test]
    fn pacer_does_not_drift() {
        // One frame at a time: every call sleeps and oversleeps, which a pacer adding up sleep
        // durations would turn into a growing lag. This one is never ahead of the clock, and
        // one larger read catches up exactly.
        let mut pacer = Pacer::new(Pacing::RealTime, 8_000);
        let mut frames = 0u64;
        while pacer.start.elapsed() < Duration::from_millis(100) {
            frames += pacer.take(1) as u64;
            assert!(frames <= pacer.frames_at(pacer.start.elapsed()));
        }
        let due_before = pacer.frames_at(pacer.start.elapsed());
        frames += pacer.take(1 << 20) as u64;
        let due_after = pacer.frames_at(pacer.start.elapsed());
        assert!(
            (due_before..=due_after).contains(&frames),
            "{frames} not in {due_before}..={due_after}"
        );
    }
}
