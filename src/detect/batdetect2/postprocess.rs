//! From the network's per-pixel outputs to BatDetect2's detections.
//!
//! In: [`Outputs`] for one spectrogram and the model's [`Params`]. Out: [`Detection`]s, in
//! time order, exactly as BatDetect2 1.3.1 reports them (times rounded to 0.1 ms, frequencies
//! truncated to whole Hz, probabilities rounded to 0.001):
//! 1. The detection map (one minus the background probability, as the species' sum) keeps
//!    only its local maxima in a 9×9 window (non-maximum suppression).
//! 2. The highest peaks are kept, as many as the top-k rate times a "duration" BatDetect2
//!    computes from the *resized* width (about half the real duration: its quirk, kept),
//!    and of those the ones above the detection floor (0.01).
//! 3. Each peak's box: it starts at its column and is as wide as the size output says, its
//!    low frequency is its row and it is as tall as the size output says; the species is the
//!    most probable class other than the background.
//!
//! Arithmetic follows BatDetect2's `float32` steps, so rounding lands the same way.

use super::network::Outputs;
use super::params::Params;

/// One BatDetect2 detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Start, seconds from the start of the audio (4 decimals).
    pub start_time: f64,
    /// End, seconds (4 decimals).
    pub end_time: f64,
    /// Lowest frequency, whole Hz.
    pub low_freq: f64,
    /// Highest frequency, whole Hz.
    pub high_freq: f64,
    /// The most probable species.
    pub class: String,
    /// Its probability (3 decimals).
    pub class_prob: f64,
    /// Probability that this is a call at all, 1 − background (3 decimals).
    pub det_prob: f64,
}

/// A peak of the detection map, before rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Row.
    pub y: usize,
    /// Column.
    pub x: usize,
    /// Its detection probability.
    pub score: f32,
}

/// The kept peaks of `det` (`height × width`), in column order.
pub fn peaks(det: &[f32], height: usize, width: usize, params: &Params) -> Vec<Peak> {
    let half = params.nms_kernel_size / 2;
    // Separable maximum: over the window's columns, then its rows (out-of-range cells are
    // padding, which never wins).
    let mut row_max = vec![f32::NEG_INFINITY; height * width];
    for y in 0..height {
        let row = &det[y * width..(y + 1) * width];
        for x in 0..width {
            let lo = x.saturating_sub(half);
            let hi = (x + half).min(width - 1);
            row_max[y * width + x] = row[lo..=hi]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
        }
    }
    let duration = params.x_to_time(width as f64);
    let top_k = (duration * params.nms_top_k_per_sec) as usize;
    let floor = params.detection_threshold as f32;
    let mut found = Vec::new();
    for y in 0..height {
        let lo = y.saturating_sub(half);
        let hi = (y + half).min(height - 1);
        for x in 0..width {
            let v = det[y * width + x];
            if v <= floor {
                continue;
            }
            let max = (lo..=hi)
                .map(|r| row_max[r * width + x])
                .fold(f32::NEG_INFINITY, f32::max);
            if max == v {
                found.push(Peak { y, x, score: v });
            }
        }
    }
    // The top k by score (ties by position, which torch leaves unspecified).
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((a.y * width + a.x).cmp(&(b.y * width + b.x)))
    });
    found.truncate(top_k);
    found.sort_by_key(|p| (p.x, p.y));
    found
}

/// BatDetect2's detections in `outputs`, with times offset by `offset_s` (the start of the
/// chunk, else 0).
pub fn detections(outputs: &Outputs, params: &Params, offset_s: f32) -> Vec<Detection> {
    let det = outputs.detection();
    let (height, width) = (outputs.height, outputs.width);
    let plane = height * width;
    let resize = params.resize_factor as f32;
    let rate = params.target_samplerate as f32;
    let (hop, overlap) = (params.hop() as f32, params.n_overlap() as f32);
    let x_to_time = |x: f32| (x * hop + overlap) / rate;
    let freq_rescale = ((params.max_freq - params.min_freq) / height as f64) as f32;
    let min_freq = params.min_freq as f32;
    peaks(&det, height, width, params)
        .into_iter()
        .map(|p| {
            let at = p.y * width + p.x;
            let (bb_width, bb_height) = (outputs.size[at], outputs.size[plane + at]);
            let start = x_to_time(p.x as f32 / resize) + offset_s;
            let end = x_to_time((p.x as f32 + bb_width) / resize) + offset_s;
            let low = (height - p.y) as f32 * freq_rescale + min_freq;
            let high = low + bb_height * freq_rescale;
            let probs = outputs.class_probs(p.y, p.x);
            let species = &probs[..probs.len() - 1];
            let (best, prob) =
                species
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (i, &v)| {
                            if v > acc.1 { (i, v) } else { acc }
                        },
                    );
            Detection {
                start_time: round(start, 4),
                end_time: round(end, 4),
                low_freq: low.trunc().into(),
                high_freq: high.trunc().into(),
                class: params
                    .class_names
                    .get(best)
                    .cloned()
                    .unwrap_or_else(|| format!("class {best}")),
                class_prob: round(prob, 3),
                det_prob: round(p.score, 3),
            }
        })
        .collect()
}

/// `v` rounded to `digits` decimals, as Python's `round(float(v), digits)`.
fn round(v: f32, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    let x = f64::from(v) * scale;
    // Python rounds halves to even.
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    r / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            nms_top_k_per_sec: 1e6,
            ..Params::default()
        }
    }

    #[test]
    fn only_local_maxima_in_a_9x9_window_above_the_floor_survive() {
        let (h, w) = (20, 40);
        let mut det = vec![0.0f32; h * w];
        det[5 * w + 10] = 0.9;
        det[7 * w + 13] = 0.5; // within 4 of the first: suppressed
        det[5 * w + 15] = 0.6; // 5 columns away: a peak of its own
        det[15 * w + 30] = 0.005; // under the floor
        let found = peaks(&det, h, w, &params());
        let at: Vec<(usize, usize)> = found.iter().map(|p| (p.y, p.x)).collect();
        assert_eq!(at, [(5, 10), (5, 15)]);
    }

    #[test]
    fn top_k_follows_batdetect2s_duration_of_the_resized_width() {
        let (h, w) = (16, 64);
        let mut det = vec![0.0f32; h * w];
        for i in 0..6 {
            det[8 * w + i * 10 + 2] = 0.1 * (i + 1) as f32;
        }
        // 64 columns "last" (64 × 128 + 384) / 256 000 = 0.0335 s: 200/s keeps 6.
        assert_eq!(peaks(&det, h, w, &Params::default()).len(), 6);
        let p = Params {
            nms_top_k_per_sec: 100.0,
            ..Params::default()
        };
        // 100/s keeps 3, the strongest, in column order.
        let kept: Vec<usize> = peaks(&det, h, w, &p).iter().map(|p| p.x).collect();
        assert_eq!(kept, [32, 42, 52]);
    }

    #[test]
    fn rounding_is_pythons() {
        assert_eq!(round(0.123_46, 4), 0.1235);
        assert_eq!(round(0.5, 0), 0.0);
        assert_eq!(round(1.5, 0), 2.0);
    }
}
