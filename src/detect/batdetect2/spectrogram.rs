//! BatDetect2's input: audio at 256 kHz to the network's spectrogram.
//!
//! In: mono samples at the model's rate and its [`Params`]. Out: a [`Spectrogram`], 128 rows
//! (highest frequency first) by a width that is a multiple of 32, the same numbers BatDetect2
//! 1.3.1 feeds its network (within float rounding). The steps, as BatDetect2 does them:
//! 1. **Padding**: zeros are appended until the resized width is a multiple of the divide
//!    factor (and at least twice it).
//! 2. **STFT**: periodic Hann windows of 512 samples every 128, no centring, magnitudes, the
//!    DC bin dropped, rows flipped so the first is the highest frequency.
//! 3. **Crop** to the bins from 10 kHz (exclusive) to 120 kHz (220 rows).
//! 4. **PCEN** along time on the magnitudes × 2³¹ (librosa's defaults with `sr` = rate / 10:
//!    a first-order smoother started from 1, gain 0.98, bias 2, power 0.5, eps 10⁻⁶).
//! 5. **Denoising**: each row's mean over time is subtracted, negatives set to 0.
//! 6. **Resize** by half in both directions, bilinear with half-pixel centres (as torch's
//!    `interpolate(…, align_corners=False)`).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use super::params::Params;

/// A single-channel image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    /// Rows (frequency bins, highest first).
    pub height: usize,
    /// Columns (time).
    pub width: usize,
    /// `height × width` values.
    pub data: Vec<f32>,
}

impl Spectrogram {
    /// The value at row `y`, column `x`.
    pub fn at(&self, y: usize, x: usize) -> f32 {
        self.data[y * self.width + x]
    }
}

/// The network's input spectrogram of `audio` (at `params.target_samplerate`).
pub fn spectrogram(audio: &[f32], params: &Params) -> Spectrogram {
    let padded = pad(audio, params);
    let mut spec = stft_crop(&padded, params);
    pcen_denoise(&mut spec, params);
    let height = (params.spec_height as f64 * params.resize_factor) as usize;
    let width = (spec.width as f64 * params.resize_factor) as usize;
    resize_bilinear(&spec, height, width)
}

/// The resized width of `samples` samples' spectrogram, before padding.
fn resized_width(samples: usize, params: &Params) -> usize {
    let frames = samples.saturating_sub(params.n_overlap()) / params.hop();
    (frames as f64 * params.resize_factor) as usize
}

/// The samples whose resized spectrogram is `width` wide.
fn samples_for_width(width: usize, params: &Params) -> usize {
    let frames = (width as f64 / params.resize_factor) as usize;
    frames * params.hop() + params.n_overlap()
}

/// `audio` with zeros appended so the resized width divides by the divide factor.
fn pad(audio: &[f32], params: &Params) -> Vec<f32> {
    let divide = params.spec_divide_factor.max(1);
    let width = resized_width(audio.len(), params);
    // BatDetect2 compares the resized width with the divide factor over the resize factor.
    let min_width = (divide as f64 / params.resize_factor) as usize;
    let target = if width < min_width {
        samples_for_width(min_width, params)
    } else if width.is_multiple_of(divide) {
        audio.len()
    } else {
        samples_for_width(width.div_ceil(divide) * divide, params)
    };
    let mut out = audio.to_vec();
    if target > out.len() {
        out.resize(target, 0.0);
    }
    out
}

/// Magnitude STFT, DC dropped, highest frequency first, cropped to the model's band.
fn stft_crop(audio: &[f32], params: &Params) -> Spectrogram {
    let n_fft = params.n_fft();
    let hop = params.hop();
    let frames = if audio.len() >= n_fft {
        1 + (audio.len() - n_fft) / hop
    } else {
        0
    };
    let bins = n_fft / 2; // bins 1..=n_fft/2, DC dropped
    // Rows are bins, highest first: row r is bin `bins - r`. BatDetect2 keeps the rows from
    // `bins - max_bin` (max_bin = round(max_freq × window)) up to `bins - min_bin`.
    let max_bin = (params.max_freq * params.fft_win_length).round() as usize;
    let min_bin = (params.min_freq * params.fft_win_length).round() as usize;
    let max_bin = max_bin.min(bins);
    let height = max_bin.saturating_sub(min_bin);
    let window: Vec<f64> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos())
        .collect();
    let fft: Arc<dyn RealToComplex<f64>> = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    // Frames are transformed in blocks shared out among the threads, each block written as
    // columns (`frame × height`), then turned into rows.
    const BLOCK: usize = 64;
    let threads = candle_core::utils::get_num_threads();
    let mut columns = vec![0.0f32; frames * height];
    super::conv::in_parallel(
        &mut columns,
        (BLOCK * height).max(1),
        threads,
        |b, block| {
            let mut input = fft.make_input_vec();
            let mut output = fft.make_output_vec();
            let mut scratch = fft.make_scratch_vec();
            for (i, column) in block.chunks_exact_mut(height).enumerate() {
                let f = b * BLOCK + i;
                let frame = &audio[f * hop..f * hop + n_fft];
                for ((x, s), w) in input.iter_mut().zip(frame).zip(&window) {
                    *x = f64::from(*s) * w;
                }
                fft.process_with_scratch(&mut input, &mut output, &mut scratch)
                    .expect("buffers sized by the FFT plan");
                for (r, v) in column.iter_mut().enumerate() {
                    // The magnitude without `hypot`'s care for overflow: the squares of a
                    // spectrum of samples within ±1 are far from `f64`'s limits.
                    let c = output[max_bin - r];
                    *v = (c.re * c.re + c.im * c.im).sqrt() as f32;
                }
            }
        },
    );
    let mut data = vec![0.0f32; height * frames];
    super::conv::in_parallel(&mut data, frames.max(1), threads, |r, row| {
        for (f, v) in row.iter_mut().enumerate() {
            *v = columns[f * height + r];
        }
    });
    Spectrogram {
        height,
        width: frames,
        data,
    }
}

/// Per-channel energy normalisation along time, as librosa's `pcen` with BatDetect2's
/// arguments (input scaled by 2³¹, `sr` = rate / 10, hop 512, power ½), then each row's
/// denoising; rows are shared out among the threads.
fn pcen_denoise(spec: &mut Spectrogram, params: &Params) {
    const GAIN: f64 = 0.98;
    const BIAS: f64 = 2.0;
    const TIME_CONSTANT: f64 = 0.4;
    const EPS: f64 = 1e-6;
    const HOP: f64 = 512.0;
    let sr = f64::from(params.target_samplerate) / 10.0;
    let t_frames = TIME_CONSTANT * sr / HOP;
    let b = ((1.0 + 4.0 * t_frames * t_frames).sqrt() - 1.0) / (2.0 * t_frames * t_frames);
    let scale = 2f32.powi(31);
    let width = spec.width;
    let threads = candle_core::utils::get_num_threads();
    super::conv::in_parallel(&mut spec.data, width.max(1), threads, |_, row| {
        // librosa starts the smoother in the steady state of a unit input.
        let mut smooth = 1.0f64;
        for v in row.iter_mut() {
            let s = f64::from(*v * scale);
            smooth = b * s + (1.0 - b) * smooth;
            // librosa's exp(-gain · (ln eps + ln(1 + smooth / eps))) is (eps + smooth)^-gain,
            // and its bias^power · expm1(power · ln(1 + x)) with power ½ is
            // √bias · (√(1 + x) − 1), written x / (√(1 + x) + 1) so that a small x keeps
            // its precision: one power and one square root instead of four transcendentals.
            let x = s * (EPS + smooth).powf(-GAIN) / BIAS;
            *v = (BIAS.sqrt() * x / ((1.0 + x).sqrt() + 1.0)) as f32;
        }
        denoise_row(row);
    });
}

/// Subtracts the row's mean over time and clips at zero (BatDetect2's denoising, done per row
/// as PCEN finishes it).
fn denoise_row(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let mean = (row.iter().map(|v| f64::from(*v)).sum::<f64>() / row.len() as f64) as f32;
    for v in row.iter_mut() {
        *v = (*v - mean).max(0.0);
    }
}

/// Where output pixel `dst` samples its input, as torch's bilinear interpolation without
/// corner alignment: the lower input index, the upper one and the upper one's weight.
pub(super) fn source_index(dst: usize, in_len: usize, out_len: usize) -> (usize, usize, f32) {
    let scale = in_len as f32 / out_len as f32;
    let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
    let lo = (src as usize).min(in_len.saturating_sub(1));
    let hi = if lo + 1 < in_len { lo + 1 } else { lo };
    (lo, hi, src - lo as f32)
}

/// Bilinear resize of a single-channel image to `height × width`.
fn resize_bilinear(spec: &Spectrogram, height: usize, width: usize) -> Spectrogram {
    let mut data = vec![0.0f32; height * width];
    if spec.height == 0 || spec.width == 0 {
        return Spectrogram {
            height,
            width,
            data,
        };
    }
    let cols: Vec<_> = (0..width)
        .map(|x| source_index(x, spec.width, width))
        .collect();
    let threads = candle_core::utils::get_num_threads();
    super::conv::in_parallel(&mut data, width.max(1), threads, |y, out| {
        let (y0, y1, wy) = source_index(y, spec.height, height);
        let (r0, r1) = (
            &spec.data[y0 * spec.width..(y0 + 1) * spec.width],
            &spec.data[y1 * spec.width..(y1 + 1) * spec.width],
        );
        for (d, &(x0, x1, wx)) in out.iter_mut().zip(&cols) {
            let top = (1.0 - wx) * r0[x0] + wx * r0[x1];
            let bottom = (1.0 - wx) * r1[x0] + wx * r1[x1];
            *d = (1.0 - wy) * top + wy * bottom;
        }
    });
    Spectrogram {
        height,
        width,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_seconds_pad_to_a_width_divisible_by_32() {
        let p = Params::default();
        let audio = vec![0.0f32; 768_000];
        let padded = pad(&audio, &p);
        // 5997 frames resize to 2998 columns, rounded up to 3008: 6016 frames.
        assert_eq!(padded.len(), 6016 * 128 + 384);
        let spec = spectrogram(&audio, &p);
        assert_eq!((spec.height, spec.width), (128, 3008));
    }

    #[test]
    fn short_audio_pads_to_the_minimum_width() {
        let p = Params::default();
        let spec = spectrogram(&[0.1f32; 1000], &p);
        assert_eq!((spec.height, spec.width), (128, 64));
    }

    #[test]
    fn the_crop_keeps_220_rows_highest_first() {
        let p = Params::default();
        // A 50 kHz tone peaks in bin 100: row 240 - 100 = 140 of the crop.
        let audio: Vec<f32> = (0..4096)
            .map(|i| (2.0 * std::f32::consts::PI * 50_000.0 * i as f32 / 256_000.0).sin())
            .collect();
        let spec = stft_crop(&audio, &p);
        assert_eq!(spec.height, 220);
        let column: Vec<f32> = (0..spec.height).map(|r| spec.at(r, 3)).collect();
        let peak = column
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(peak, Some(140));
    }

    #[test]
    fn bilinear_downscaling_averages_neighbours_like_torch() {
        // Halving: output pixel i samples input 2i + 0.5, the mean of 2i and 2i + 1.
        assert_eq!(source_index(3, 8, 4), (6, 7, 0.5));
        // Doubling: output 0 clamps to input 0; output 1 samples input 0.25.
        assert_eq!(source_index(0, 4, 8), (0, 1, 0.0));
        assert_eq!(source_index(1, 4, 8), (0, 1, 0.25));
        // The last output clamps to the last input.
        assert_eq!(source_index(7, 4, 8), (3, 3, 0.25));
    }
}
