//! Rational resampling as BatDetect2 does it (librosa's `polyphase`, which is scipy's
//! `resample_poly` with its default Kaiser window).
//!
//! In: samples at one integer rate and the target rate. Out: the samples at the target rate,
//! `ceil(n × to / from)` of them. The ratio is reduced to `up / down`; the low-pass filter
//! is a windowed sinc of `20 × max(up, down) + 1` taps, cut off at the lower Nyquist
//! frequency, Kaiser window β = 5, scaled to unit gain at DC and by `up`; the output is
//! centred on the filter's middle tap, exactly as scipy places it. Arithmetic is `f64`.

/// `audio` at `from` Hz resampled to `to` Hz.
pub fn resample(audio: &[f32], from: u32, to: u32) -> Vec<f32> {
    let g = gcd(from, to);
    let (up, down) = ((to / g) as usize, (from / g) as usize);
    if up == down || audio.is_empty() {
        return audio.to_vec();
    }
    let n_in = audio.len();
    let n_out = (n_in * up).div_ceil(down);
    let half_len = 10 * up.max(down);
    let mut taps = lowpass(2 * half_len + 1, 1.0 / up.max(down) as f64);
    for t in &mut taps {
        *t *= up as f64;
    }
    // scipy pads the filter in front so that output sample 0 falls on its centre.
    let pre_pad = down - half_len % down;
    let pre_remove = (half_len + pre_pad) / down;
    let mut h = vec![0.0f64; pre_pad];
    h.extend_from_slice(&taps);
    // y[i] = Σ_j h[j] · xu[i·down − j], where the upsampled xu[m·up] = x[m] and is 0
    // elsewhere; output k of the resampled signal is y[k + pre_remove].
    let mut out = Vec::with_capacity(n_out);
    for k in 0..n_out {
        let i = k + pre_remove;
        let t = i * down; // position in the upsampled signal
        // Samples m with 0 <= t − m·up < h.len().
        let m_hi = (t / up).min(n_in - 1);
        let m_lo = (t + 1).saturating_sub(h.len()).div_ceil(up);
        let mut acc = 0.0f64;
        let mut m = m_hi as isize;
        while m >= m_lo as isize {
            let mu = m as usize;
            acc += h[t - mu * up] * f64::from(audio[mu]);
            m -= 1;
        }
        out.push(acc as f32);
    }
    out
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A low-pass FIR filter of `taps` taps (odd) cut off at `cutoff` × Nyquist: a sinc under a
/// symmetric Kaiser window (β = 5), scaled to sum to 1 (scipy's `firwin`).
fn lowpass(taps: usize, cutoff: f64) -> Vec<f64> {
    const BETA: f64 = 5.0;
    let alpha = 0.5 * (taps - 1) as f64;
    let i0_beta = bessel_i0(BETA);
    let mut h: Vec<f64> = (0..taps)
        .map(|n| {
            let m = n as f64 - alpha;
            let x = cutoff * m;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = 2.0 * n as f64 / (taps - 1) as f64 - 1.0;
            let window = bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            cutoff * sinc * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v /= sum;
    }
    h
}

/// The modified Bessel function of the first kind, order 0 (power series; converges fast for
/// the window's arguments, at most β = 5).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_ratio() {
        assert_eq!(resample(&[0.0; 3000], 384_000, 256_000).len(), 2000);
        assert_eq!(resample(&[0.0; 1001], 384_000, 256_000).len(), 668);
        assert_eq!(resample(&[0.0; 100], 250_000, 256_000).len(), 103);
        assert_eq!(resample(&[1.0; 10], 256_000, 256_000), vec![1.0; 10]);
    }

    #[test]
    fn a_tone_below_both_nyquists_keeps_its_amplitude() {
        let tone = |rate: f64, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (2.0 * std::f64::consts::PI * 20_000.0 * i as f64 / rate).sin() as f32)
                .collect()
        };
        let out = resample(&tone(384_000.0, 38_400), 384_000, 256_000);
        let want = tone(256_000.0, 25_600);
        // Away from the edges, where the filter sees zeros.
        for i in 1000..24_000 {
            assert!(
                (out[i] - want[i]).abs() < 2e-3,
                "{i}: {} vs {}",
                out[i],
                want[i]
            );
        }
    }

    #[test]
    fn bessel_i0_matches_known_values() {
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(5.0) - 27.239_871_823_604_45).abs() < 1e-9);
    }
}
