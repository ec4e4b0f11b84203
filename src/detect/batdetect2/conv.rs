//! BatDetect2's convolutions: stride 1, symmetric zero padding, computed a band of output rows
//! at a time as one batched candle matrix product over shifted rows of the input, with the
//! bias, ReLU and (in the encoder) the 2×2 max pool and batch norm applied as the result is
//! written.
//!
//! In: an input `1 × c × h × w` (any layout whose columns are contiguous), optionally one more
//! channel that is constant along each row (the coordinate channel of BatDetect2's blocks,
//! given as one value per row), a kernel flattened to `c_out × (kh · kw · c_in)` in tap-major
//! order (row tap, column tap, then channel, the extra channel last: [`tap_major`] reorders
//! PyTorch's), its bias. Out: `1 × c_out × h' × w'`, or half that height and width when pooled.
//!
//! How: the input's padded rows are laid out once per band as `[row][column tap][channel]`, each
//! entry the `w'` input values that tap reads for a whole output row. The `kh · kw · c_in`
//! values an output row needs are then one contiguous run of that buffer (the rows `y..y+kh`),
//! so output row `y` is the kernel times a `(kh · kw · c_in) × w'` view starting at row `y`: a
//! strided view of the same buffer for every row, no copy. The buffer is `kw` times the input
//! (im2col's patches are `kh · kw` times it), and is written once, never zeroed first. Why not
//! candle's own `conv2d`: for these shapes (few channels, wide images) its im2col gathers one
//! value at a time and took two thirds of the network's time. The copies (the shifted rows, the
//! output) and the rows' products are split over as many threads as candle would use
//! (`RAYON_NUM_THREADS`, else the cores); loading the network turns gemm's own threading off.

use candle_core::{Device, Layout, Storage, StorageRef, Tensor};

/// Values of shifted input rows laid out at once (8 MB of `f32`).
const BAND_VALUES: usize = 1 << 21;

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

/// What is done to each output value as it is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Finish<'a> {
    /// Bias added, nothing else.
    Linear,
    /// Bias added, then ReLU.
    Relu,
    /// Bias added, then a 2×2 max pool (stride 2; an odd last row or column is dropped), then
    /// `· scale + shift` per channel (an inference batch norm), then ReLU.
    PoolNormRelu {
        /// Per-channel factor.
        scale: &'a [f32],
        /// Per-channel offset.
        shift: &'a [f32],
    },
}

/// A PyTorch kernel `c_out × c_in × kh × kw` as [`conv2d`] takes it: `c_out × (kh · kw · c_in)`,
/// tap-major.
pub(super) fn tap_major(kernel: &Tensor) -> candle_core::Result<Tensor> {
    let (c_out, c_in, kh, kw) = kernel.dims4()?;
    kernel
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .reshape((c_out, kh * kw * c_in))
}

/// `x`, with the row-constant channel `rows` appended when given, convolved with `kernel`
/// (`c_out × kh·kw·c_in`, tap-major), plus `bias`, then `finish`.
pub(super) fn conv2d(
    x: &Tensor,
    rows: Option<&[f32]>,
    kernel: &Tensor,
    bias: &[f32],
    shape: Shape,
    finish: Finish<'_>,
) -> candle_core::Result<Tensor> {
    let (_, c_x, h, w) = x.dims4()?;
    if x.stride()[3] != 1 {
        return conv2d(&x.contiguous()?, rows, kernel, bias, shape, finish);
    }
    let c_in = c_x + usize::from(rows.is_some());
    let (c_out, k) = kernel.dims2()?;
    let Shape { kh, kw, padding } = shape;
    let pooled = matches!(finish, Finish::PoolNormRelu { .. });
    if k != c_in * kh * kw
        || bias.len() != c_out
        || rows.is_some_and(|r| r.len() != h)
        || matches!(finish, Finish::PoolNormRelu { scale, shift } if scale.len() != c_out || shift.len() != c_out)
    {
        candle_core::bail!(
            "convolution of {c_in} channels of {h} rows with a {c_out}×{k} kernel of {kh}×{kw}"
        );
    }
    let (h_conv, w_out) = (
        (h + 2 * padding + 1).saturating_sub(kh),
        (w + 2 * padding + 1).saturating_sub(kw),
    );
    let (h_res, w_res) = if pooled {
        (h_conv / 2, w_out / 2)
    } else {
        (h_conv, w_out)
    };
    let mut out = vec![0.0f32; c_out * h_res * w_res];
    if h_res == 0 || w_res == 0 {
        return Tensor::from_vec(out, (1, c_out, h_res, w_res), &Device::Cpu);
    }
    let (storage, layout) = x.storage_and_layout();
    let data = values(&storage, layout)?;
    let (sc, sy) = (layout.stride()[1], layout.stride()[2]);
    // Input row `y` of channel `c` (`c < c_x`).
    let input_row = |c: usize, y: usize| &data[c * sc + y * sy..][..w];

    let threads = candle_core::utils::get_num_threads().max(1);
    // One padded input row, shifted for each column tap: `kw · c_in` runs of `w_out` values.
    let row_len = kw * c_in * w_out;
    let step = if pooled { 2 } else { 1 };
    let mut band_rows = (BAND_VALUES / row_len.max(1)).saturating_sub(kh - 1).max(1);
    band_rows = (band_rows - band_rows % step).max(step).min(h_conv);
    let kernel = kernel.unsqueeze(0)?;
    let mut y0 = 0;
    while y0 + step <= h_conv {
        let y1 = (y0 + band_rows).min(h_conv - (h_conv - y0) % step);
        let padded = y1 - y0 + kh - 1;
        let mut shifted = vec![0.0f32; padded * row_len];
        in_parallel(&mut shifted, row_len, threads, |r, dst| {
            // Padded row y0 + r is input row y0 + r - padding.
            let src_y = (y0 + r).checked_sub(padding).filter(|y| *y < h);
            for (t, run) in dst.chunks_exact_mut(w_out).enumerate() {
                let (j, c) = (t / c_in, t % c_in);
                let Some(src_y) = src_y else {
                    run.fill(0.0);
                    continue;
                };
                // Output column x reads input column x + j - padding.
                let x_lo = padding.saturating_sub(j).min(w_out);
                let x_hi = (w + padding).saturating_sub(j).clamp(x_lo, w_out);
                run[..x_lo].fill(0.0);
                run[x_hi..].fill(0.0);
                if c < c_x {
                    let src = input_row(c, src_y);
                    run[x_lo..x_hi].copy_from_slice(&src[x_lo + j - padding..x_hi + j - padding]);
                } else if let Some(rows) = rows {
                    run[x_lo..x_hi].fill(rows[src_y]);
                }
            }
        });
        let n = y1 - y0;
        // Output row y0 + i reads the `kh` padded rows from i: rows of `w_out` values i · kw ·
        // c_in apart, `k` of them.
        let windows = Tensor::from_vec(shifted, (padded * kw * c_in, w_out), &Device::Cpu)?
            .unfold(0, k, kw * c_in)?
            .transpose(1, 2)?;
        // Each thread multiplies its share of the rows (a whole number of pooled pairs):
        // `parts[t]` is `per × c_out × w_out`, rows t · per onwards.
        let per = n.div_ceil(threads).next_multiple_of(step);
        let product = |a: usize| {
            let len = per.min(n - a);
            kernel
                .broadcast_as((len, c_out, k))?
                .matmul(&windows.narrow(0, a, len)?)
        };
        let parts: Vec<Tensor> = if per >= n {
            vec![product(0)?]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .step_by(per)
                    .map(|a| {
                        let product = &product;
                        s.spawn(move || product(a))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(candle_core::Error::Msg(
                                "a convolution thread panicked".to_owned(),
                            ))
                        })
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
            })?
        };
        let guards: Vec<_> = parts.iter().map(Tensor::storage_and_layout).collect();
        let slices = guards
            .iter()
            .map(|(storage, layout)| values(storage, layout))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Value (y0 + i, co, x) of the convolution.
        let at =
            |i: usize, co: usize| &slices[i / per][((i % per) * c_out + co) * w_out..][..w_out];
        in_parallel(&mut out, h_res * w_res, threads, |co, plane| {
            let b = bias[co];
            match finish {
                Finish::Linear | Finish::Relu => {
                    let relu = matches!(finish, Finish::Relu);
                    for i in 0..n {
                        let dst = &mut plane[(y0 + i) * w_out..][..w_out];
                        for (d, v) in dst.iter_mut().zip(at(i, co)) {
                            let v = v + b;
                            *d = if relu { v.max(0.0) } else { v };
                        }
                    }
                }
                Finish::PoolNormRelu { scale, shift } => {
                    let (s, t) = (scale[co], shift[co]);
                    for i in (0..n).step_by(2) {
                        let (top, bottom) = (at(i, co), at(i + 1, co));
                        let dst = &mut plane[(y0 + i) / 2 * w_res..][..w_res];
                        for (xo, d) in dst.iter_mut().enumerate() {
                            let m = top[2 * xo]
                                .max(top[2 * xo + 1])
                                .max(bottom[2 * xo])
                                .max(bottom[2 * xo + 1]);
                            *d = ((m + b) * s + t).max(0.0);
                        }
                    }
                }
            }
        });
        y0 = y1;
    }
    drop(storage);
    Tensor::from_vec(out, (1, c_out, h_res, w_res), &Device::Cpu)
}

/// The `f32` values of a CPU tensor read in place, from its layout's start (the storage stays
/// read-locked while `storage` lives).
pub(super) fn values<'a>(
    storage: &'a StorageRef<'_>,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let Storage::Cpu(cpu) = &**storage else {
        candle_core::bail!("BatDetect2's network runs on the CPU only");
    };
    Ok(&cpu.as_slice::<f32>()?[layout.start_offset()..])
}

/// Calls `f(index, chunk)` for every `len`-long chunk of `data`, the chunks shared out in
/// contiguous runs among up to `threads` threads.
pub(super) fn in_parallel<F>(data: &mut [f32], len: usize, threads: usize, f: F)
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

    /// A direct convolution, for reference (PyTorch's kernel order).
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

    /// `k` (PyTorch's order) as `conv2d` takes it.
    fn kernel(k: &[f32], c_out: usize, c_in: usize, s: Shape) -> Tensor {
        let t = Tensor::from_slice(k, (c_out, c_in, s.kh, s.kw), &Device::Cpu).expect("kernel");
        tap_major(&t).expect("reorders")
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    }

    const SHAPES: [Shape; 3] = [
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
    ];

    #[test]
    fn matches_a_direct_convolution() {
        let (c_in, h, w, c_out) = (3, 7, 11, 4);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        for s in SHAPES {
            let k: Vec<f32> = (0..c_out * c_in * s.kh * s.kw)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
                .collect();
            let want = direct(&x, c_in, h, w, &k, c_out, s);
            let xt = Tensor::from_slice(&x, (1, c_in, h, w), &Device::Cpu).expect("input");
            let kt = kernel(&k, c_out, c_in, s);
            let got =
                values(&conv2d(&xt, None, &kt, &[0.0; 4], s, Finish::Linear).expect("convolves"));
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{s:?}: {g} vs {w}");
            }
            // Bias and ReLU are applied on the way out.
            let biased = values(
                &conv2d(&xt, None, &kt, &[1.0, -1.0, 0.5, 0.0], s, Finish::Relu)
                    .expect("convolves"),
            );
            let plane = got.len() / 4;
            for (i, (b, g)) in biased.iter().zip(&got).enumerate() {
                let bias = [1.0, -1.0, 0.5, 0.0][i / plane];
                assert!((b - (g + bias).max(0.0)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_strided_view_of_the_input_gives_the_same_as_a_copy() {
        let (c_in, h, w, c_out) = (2, 5, 20, 3);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|i| ((i * 31 % 29) as f32 - 14.0) / 8.0)
            .collect();
        let s = SHAPES[0];
        let k: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 6.0)
            .collect();
        let kt = kernel(&k, c_out, c_in, s);
        let whole = Tensor::from_slice(&x, (1, c_in, h, w), &Device::Cpu).expect("input");
        let view = whole.narrow(3, 3, 12).expect("narrows");
        let got =
            values(&conv2d(&view, None, &kt, &[0.0; 3], s, Finish::Linear).expect("convolves"));
        let copy = view.contiguous().expect("copies");
        let want = direct(&values(&copy), c_in, h, 12, &k, c_out, s);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
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
        let s = SHAPES[0];
        let k: Vec<f32> = (0..c_out * (c_x + 1) * 9)
            .map(|i| ((i * 11 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let want = direct(&appended, c_x + 1, h, w, &k, c_out, s);
        let xt = Tensor::from_slice(&x, (1, c_x, h, w), &Device::Cpu).expect("input");
        let kt = kernel(&k, c_out, c_x + 1, s);
        let got = values(
            &conv2d(&xt, Some(&rows), &kt, &[0.0; 3], s, Finish::Linear).expect("convolves"),
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        // One value per input row, or it is refused.
        assert!(conv2d(&xt, Some(&rows[1..]), &kt, &[0.0; 3], s, Finish::Linear).is_err());
    }

    #[test]
    fn pooling_norm_and_relu_on_the_way_out_match_them_done_after() {
        // An odd height and width: the last row and column are dropped by the pool.
        let (c_in, h, w, c_out) = (2, 9, 13, 3);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|i| ((i * 17 % 31) as f32 - 15.0) / 9.0)
            .collect();
        let s = SHAPES[0];
        let k: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| ((i * 5 % 23) as f32 - 11.0) / 10.0)
            .collect();
        let bias = [0.25, -0.5, 0.0];
        let (scale, shift) = ([1.5, -0.75, 0.5], [-0.1, 0.2, 0.3]);
        let conv = direct(&x, c_in, h, w, &k, c_out, s);
        let (ho, wo) = (h / 2, w / 2);
        let xt = Tensor::from_slice(&x, (1, c_in, h, w), &Device::Cpu).expect("input");
        let kt = kernel(&k, c_out, c_in, s);
        let got = conv2d(
            &xt,
            None,
            &kt,
            &bias,
            s,
            Finish::PoolNormRelu {
                scale: &scale,
                shift: &shift,
            },
        )
        .expect("convolves");
        assert_eq!(got.dims(), &[1, c_out, ho, wo]);
        let got = values(&got);
        for co in 0..c_out {
            for y in 0..ho {
                for xo in 0..wo {
                    let v = |dy: usize, dx: usize| {
                        conv[(co * h + 2 * y + dy) * w + 2 * xo + dx] + bias[co]
                    };
                    let m = v(0, 0).max(v(0, 1)).max(v(1, 0)).max(v(1, 1));
                    let want = (m * scale[co] + shift[co]).max(0.0);
                    let g = got[(co * ho + y) * wo + xo];
                    assert!((g - want).abs() < 1e-4, "({co}, {y}, {xo}): {g} vs {want}");
                }
            }
        }
    }

    #[test]
    fn bands_of_rows_give_the_same_as_one() {
        // Wide enough that a band holds a few rows only.
        let (c_in, h, w, c_out) = (4, 16, 20_000, 1);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|i| ((i * 13 % 41) as f32 - 20.0) / 16.0)
            .collect();
        let s = SHAPES[0];
        assert!(BAND_VALUES / (s.kw * c_in * w) < h, "more than one band");
        let k: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| ((i * 3 % 7) as f32 - 3.0) / 4.0)
            .collect();
        let want = direct(&x, c_in, h, w, &k, c_out, s);
        let xt = Tensor::from_slice(&x, (1, c_in, h, w), &Device::Cpu).expect("input");
        let got = values(
            &conv2d(
                &xt,
                None,
                &kernel(&k, c_out, c_in, s),
                &[0.0; 1],
                s,
                Finish::Linear,
            )
            .expect("convolves"),
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-3, "{g} vs {w}");
        }
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
