//! BatDetect2's convolutions: stride 1, symmetric zero padding, as im2col in row bands and one
//! candle matrix product per band, with the bias and ReLU applied as the result is written.
//!
//! In: an input `1 × c × h × w`, optionally one more channel that is constant along each row
//! (the coordinate channel of BatDetect2's blocks, given as one value per row), a kernel
//! flattened to `c_out × (c_in · kh · kw)` (PyTorch's order, the extra channel last), its bias.
//! Out: `1 × c_out × h' × w'`. Why not candle's own `conv2d`: for these shapes (few channels,
//! wide images) its tiled im2col gathers one value at a time and took two thirds of the
//! network's time; here each patch row is one slice copy, a band of output rows is one matrix
//! product whose result is already in the output's layout, and the bias and ReLU cost no extra
//! pass or tensor. The row-constant channel is written straight into the patches, so the input
//! is never copied to append it. The copies (the patches, the output) are split over as many
//! threads as candle's matrix product uses (`RAYON_NUM_THREADS`, else the cores).

use candle_core::{Device, Tensor};

/// Values of the im2col matrix built at once (16 MB of `f32`).
const BAND_VALUES: usize = 1 << 22;

/// The convolution's shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Kernel height.
    pub(super) kh: usize,
    /// Kernel width.
    pub(super) kw: usize,
    /// Zero padding on every side.
    pub(super) padding: usize,
}

/// `x`, with the row-constant channel `rows` appended when given, convolved with `kernel`
/// (`c_out × c_in·kh·kw`), plus `bias`, then ReLU when `relu`.
pub(super) fn conv2d(
    x: &Tensor,
    rows: Option<&[f32]>,
    kernel: &Tensor,
    bias: &[f32],
    shape: Shape,
    relu: bool,
) -> candle_core::Result<Tensor> {
    let (_, c_x, h, w) = x.dims4()?;
    let c_in = c_x + usize::from(rows.is_some());
    let (c_out, k_size) = kernel.dims2()?;
    let Shape { kh, kw, padding } = shape;
    if k_size != c_in * kh * kw || bias.len() != c_out || rows.is_some_and(|r| r.len() != h) {
        candle_core::bail!(
            "convolution of {c_in} channels of {h} rows with a {c_out}×{k_size} kernel of {kh}×{kw}"
        );
    }
    let (h_out, w_out) = (
        (h + 2 * padding + 1).saturating_sub(kh),
        (w + 2 * padding + 1).saturating_sub(kw),
    );
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let threads = candle_core::utils::get_num_threads().max(1);
    let mut out = vec![0.0f32; c_out * h_out * w_out];
    let rows_per_band = (BAND_VALUES / (k_size * w_out).max(1)).clamp(1, h_out.max(1));
    let mut y0 = 0;
    while y0 < h_out {
        let y1 = (y0 + rows_per_band).min(h_out);
        let n = (y1 - y0) * w_out;
        let mut cols = vec![0.0f32; k_size * n];
        // Row k of the patches is kernel tap (channel c, row i, column j) at every output
        // position of the band; positions that read the padding stay 0.
        in_parallel(&mut cols, n, threads, |k, row_out| {
            let (c, i, j) = (k / (kh * kw), k / kw % kh, k % kw);
            // Output column x reads input column x + j - padding.
            let x_lo = padding.saturating_sub(j);
            let x_hi = (w + padding).saturating_sub(j).min(w_out);
            if x_lo >= x_hi {
                return;
            }
            for y in y0..y1 {
                let Some(src_y) = (y + i).checked_sub(padding).filter(|r| *r < h) else {
                    continue;
                };
                let dst = &mut row_out[(y - y0) * w_out..(y - y0 + 1) * w_out];
                if c < c_x {
                    let src = &input[(c * h + src_y) * w..(c * h + src_y + 1) * w];
                    dst[x_lo..x_hi].copy_from_slice(&src[x_lo + j - padding..x_hi + j - padding]);
                } else if let Some(rows) = rows {
                    dst[x_lo..x_hi].fill(rows[src_y]);
                }
            }
        });
        let cols = Tensor::from_vec(cols, (k_size, n), &Device::Cpu)?;
        let band = kernel.matmul(&cols)?.flatten_all()?.to_vec1::<f32>()?;
        in_parallel(&mut out, h_out * w_out, threads, |co, plane| {
            let dst = &mut plane[y0 * w_out..][..n];
            for (d, v) in dst.iter_mut().zip(&band[co * n..(co + 1) * n]) {
                let v = v + bias[co];
                *d = if relu { v.max(0.0) } else { v };
            }
        });
        y0 = y1;
    }
    Tensor::from_vec(out, (1, c_out, h_out, w_out), &Device::Cpu)
}

/// Calls `f(index, chunk)` for every `len`-long chunk of `data`, the chunks shared out in
/// contiguous runs among up to `threads` threads.
fn in_parallel<F>(data: &mut [f32], len: usize, threads: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let chunks = data.len().div_ceil(len.max(1));
    if threads <= 1 || chunks <= 1 {
        data.chunks_mut(len.max(1))
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    let per_thread = chunks.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, run) in data.chunks_mut(per_thread * len).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (i, c) in run.chunks_mut(len).enumerate() {
                    f(t * per_thread + i, c);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct convolution, for reference.
    fn direct(
        x: &[f32],
        c_in: usize,
        h: usize,
        w: usize,
        k: &[f32],
        c_out: usize,
        s: Shape,
    ) -> Vec<f32> {
        let (ho, wo) = (h + 2 * s.padding + 1 - s.kh, w + 2 * s.padding + 1 - s.kw);
        let mut out = vec![0.0; c_out * ho * wo];
        for co in 0..c_out {
            for y in 0..ho {
                for xo in 0..wo {
                    let mut acc = 0.0;
                    for c in 0..c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let (iy, ix) = (y + i, xo + j);
                                if iy < s.padding || ix < s.padding {
                                    continue;
                                }
                                let (iy, ix) = (iy - s.padding, ix - s.padding);
                                if iy >= h || ix >= w {
                                    continue;
                                }
                                acc += x[(c * h + iy) * w + ix]
                                    * k[((co * c_in + c) * s.kh + i) * s.kw + j];
                            }
                        }
                    }
                    out[(co * ho + y) * wo + xo] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_direct_convolution() {
        let (c_in, h, w, c_out) = (3, 7, 11, 4);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        for s in [
            Shape {
                kh: 3,
                kw: 3,
                padding: 1,
            },
            Shape {
                kh: 1,
                kw: 1,
                padding: 0,
            },
            Shape {
                kh: 7,
                kw: 1,
                padding: 0,
            },
        ] {
            let k: Vec<f32> = (0..c_out * c_in * s.kh * s.kw)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
                .collect();
            let want = direct(&x, c_in, h, w, &k, c_out, s);
            let xt = Tensor::from_slice(&x, (1, c_in, h, w), &Device::Cpu).expect("input");
            let kt =
                Tensor::from_slice(&k, (c_out, c_in * s.kh * s.kw), &Device::Cpu).expect("kernel");
            let got = conv2d(&xt, None, &kt, &[0.0; 4], s, false)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .expect("convolves");
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{s:?}: {g} vs {w}");
            }
            // Bias and ReLU are applied on the way out.
            let biased = conv2d(&xt, None, &kt, &[1.0, -1.0, 0.5, 0.0], s, true)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .expect("convolves");
            let plane = got.len() / 4;
            for (i, (b, g)) in biased.iter().zip(&got).enumerate() {
                let bias = [1.0, -1.0, 0.5, 0.0][i / plane];
                assert!((b - (g + bias).max(0.0)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_row_constant_channel_is_the_same_as_one_appended() {
        let (c_x, h, w, c_out) = (2, 6, 9, 3);
        let x: Vec<f32> = (0..c_x * h * w)
            .map(|i| ((i * 29 % 19) as f32 - 9.0) / 5.0)
            .collect();
        let rows: Vec<f32> = (0..h).map(|r| r as f32 / 2.0 - 1.0).collect();
        let mut appended = x.clone();
        for r in &rows {
            appended.extend(std::iter::repeat_n(*r, w));
        }
        let s = Shape {
            kh: 3,
            kw: 3,
            padding: 1,
        };
        let k: Vec<f32> = (0..c_out * (c_x + 1) * 9)
            .map(|i| ((i * 11 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let want = direct(&appended, c_x + 1, h, w, &k, c_out, s);
        let xt = Tensor::from_slice(&x, (1, c_x, h, w), &Device::Cpu).expect("input");
        let kt = Tensor::from_slice(&k, (c_out, (c_x + 1) * 9), &Device::Cpu).expect("kernel");
        let got = conv2d(&xt, Some(&rows), &kt, &[0.0; 3], s, false)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("convolves");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        // One value per input row, or it is refused.
        assert!(conv2d(&xt, Some(&rows[1..]), &kt, &[0.0; 3], s, false).is_err());
    }

    #[test]
    fn every_chunk_is_visited_once_with_its_index_whatever_the_threads() {
        for threads in [1, 2, 3, 8] {
            for (len, chunk) in [(10, 3), (12, 4), (1, 5), (7, 1)] {
                let mut data = vec![0.0f32; len];
                in_parallel(&mut data, chunk, threads, |i, c| {
                    for v in c.iter_mut() {
                        *v += (i + 1) as f32;
                    }
                });
                let want: Vec<f32> = (0..len).map(|p| (p / chunk + 1) as f32).collect();
                assert_eq!(
                    data, want,
                    "{threads} threads, {len} values in chunks of {chunk}"
                );
            }
        }
    }
}
