//! The layers BatDetect2's Net2DFast is built of, and how the large ones run in strips.
//!
//! In: tensors `1 × channels × height × width` and the layers' weights (loaded by
//! [`super::network`]). Out: the layers' outputs. The encoder blocks append a coordinate
//! channel, convolve, max-pool, batch-normalise and apply ReLU; the decoder blocks upsample
//! ×2 bilinearly, append the coordinate channel, convolve (batch norm folded) and apply ReLU.
//! The coordinate channel is constant along each row, so the convolution writes it into its
//! patches itself ([`conv::conv2d`]) instead of the input being copied to append it.
//! Layers that work at high resolution run on strips of columns with a margin, which gives
//! exactly the whole computation's values with a fraction of its memory.

use candle_core::{Device, Tensor};

use super::conv;
use super::network::STRIP;
use super::spectrogram::source_index;

/// A convolution with its bias (and any batch norm folded in).
#[derive(Debug)]
pub(super) struct Conv {
    /// The kernel flattened to `out × (in · kh · kw)`.
    pub(super) weight: Tensor,
    /// One bias per output channel.
    pub(super) bias: Vec<f32>,
    /// Kernel size and padding.
    pub(super) shape: conv::Shape,
}

impl Conv {
    /// The convolution of `x` (consumed, so it is freed as early as possible), plus the bias,
    /// then ReLU when `relu`.
    pub(super) fn forward(&self, x: Tensor, relu: bool) -> candle_core::Result<Tensor> {
        conv::conv2d(&x, None, &self.weight, &self.bias, self.shape, finish(relu))
    }

    /// The convolution of `x` with the coordinate channel `coords` (one value per row)
    /// appended, plus the bias, then ReLU when `relu`.
    fn forward_with_coords(
        &self,
        x: &Tensor,
        coords: &[f32],
        finish: conv::Finish<'_>,
    ) -> candle_core::Result<Tensor> {
        conv::conv2d(
            x,
            Some(coords),
            &self.weight,
            &self.bias,
            self.shape,
            finish,
        )
    }
}

/// ReLU or nothing after the bias.
fn finish(relu: bool) -> conv::Finish<'static> {
    if relu {
        conv::Finish::Relu
    } else {
        conv::Finish::Linear
    }
}

/// A per-channel scale and shift (an inference-mode batch norm).
#[derive(Debug)]
pub(super) struct Affine {
    /// Per-channel factor.
    pub(super) scale: Vec<f32>,
    /// Per-channel offset.
    pub(super) shift: Vec<f32>,
}

/// An encoder block: coordinates, convolution, max pool, batch norm, ReLU (the last three
/// applied as the convolution writes its output).
#[derive(Debug)]
pub(super) struct Down {
    /// The coordinate channel, one value per row (-1 at the top row to 1 at the bottom).
    pub(super) coords: Vec<f32>,
    /// The 3×3 convolution.
    pub(super) conv: Conv,
    /// The batch norm after the pool.
    pub(super) norm: Affine,
}

impl Down {
    /// The block's output: half the height and width of `x`.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let finish = conv::Finish::PoolNormRelu {
            scale: &self.norm.scale,
            shift: &self.norm.shift,
        };
        self.conv.forward_with_coords(x, &self.coords, finish)
    }
}

/// A decoder block: bilinear ×2, coordinates, convolution (batch norm folded), ReLU.
#[derive(Debug)]
pub(super) struct Up {
    /// The coordinate channel at the upsampled height, one value per row.
    pub(super) coords: Vec<f32>,
    /// The 3×3 convolution, batch norm folded in.
    pub(super) conv: Conv,
}

impl Up {
    /// The block's output: twice the height and width of `x` (consumed).
    pub(super) fn forward(&self, x: Tensor) -> candle_core::Result<Tensor> {
        let up = upsample_2x(&x)?;
        drop(x);
        self.conv
            .forward_with_coords(&up, &self.coords, conv::Finish::Relu)
    }
}

/// `x` (`1 × c × h × w`, any layout with contiguous columns) upsampled ×2 bilinearly, as
/// torch's `interpolate(scale_factor=2, mode="bilinear", align_corners=False)`; the output rows
/// are shared out among the network's threads.
pub(super) fn upsample_2x(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    if x.stride()[3] != 1 {
        return upsample_2x(&x.contiguous()?);
    }
    let (h2, w2) = (2 * h, 2 * w);
    let mut out = vec![0.0f32; c * h2 * w2];
    if out.is_empty() {
        return Tensor::from_vec(out, (1, c, h2, w2), &Device::Cpu);
    }
    let rows: Vec<_> = (0..h2).map(|y| source_index(y, h, h2)).collect();
    let (storage, layout) = x.storage_and_layout();
    let data = conv::values(&storage, layout)?;
    let (sc, sy) = (layout.stride()[1], layout.stride()[2]);
    let threads = candle_core::utils::get_num_threads();
    conv::in_parallel(&mut out, w2, threads, |r, dst| {
        let (channel, (y0, y1, wy)) = (r / h2, rows[r % h2]);
        let mut bottom = vec![0.0f32; w2];
        widen_2x(&data[channel * sc + y0 * sy..][..w], dst);
        widen_2x(&data[channel * sc + y1 * sy..][..w], &mut bottom);
        for (d, b) in dst.iter_mut().zip(&bottom) {
            *d = (1.0 - wy) * *d + wy * b;
        }
    });
    drop(storage);
    Tensor::from_vec(out, (1, c, h2, w2), &Device::Cpu)
}

/// `src` upsampled ×2 along its length into `dst` (twice as long), as torch's bilinear
/// interpolation without corner alignment: each output is ¾ of its nearer input and ¼ of the
/// other neighbour, the ends copied. Written out for the factor 2, without the general
/// form's per-pixel index and weight lookups; the same products in the same order, so the
/// same values.
fn widen_2x(src: &[f32], dst: &mut [f32]) {
    let w = src.len();
    debug_assert_eq!(dst.len(), 2 * w);
    if w == 0 {
        return;
    }
    // Output 0 reads input 0 with weight 0 on input 1 (input 0 when there is only one).
    dst[0] = src[0] + 0.0 * src[w.min(2) - 1];
    // Output 2i (i ≥ 1) is ¼ input i − 1 + ¾ input i; output 2i + 1 is ¾ input i + ¼ input
    // i + 1, the last input standing in for the one past the end.
    for (i, pair) in dst[1..2 * w - 1].chunks_exact_mut(2).enumerate() {
        let (a, b) = (src[i], src[i + 1]);
        pair[0] = 0.75 * a + 0.25 * b;
        pair[1] = 0.25 * a + 0.75 * b;
    }
    dst[2 * w - 1] = 0.75 * src[w - 1] + 0.25 * src[w - 1];
}

/// A linear layer, `x · Wᵀ + b`, with `Wᵀ` stored.
#[derive(Debug)]
pub(super) struct Linear {
    /// The weight, transposed: `in × out`.
    pub(super) weight_t: Tensor,
    /// The bias, `1 × out`.
    pub(super) bias: Tensor,
}

impl Linear {
    /// `x` (`n × in`) mapped to `n × out`.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

/// An encoder block run on strips of [`STRIP`] input columns, joined: its convolution's
/// output (before the pool) is the largest tensor of the network. A strip starts and ends 2
/// columns beyond its share (even, so the pool pairs the same columns), which covers the one
/// column the 3×3 convolution spoils at a strip edge that is not an image edge.
pub(super) fn down_in_strips(block: &Down, x: &Tensor) -> candle_core::Result<Tensor> {
    const MARGIN: usize = 2;
    let width = x.dims4()?.3;
    let mut parts = Vec::with_capacity(width.div_ceil(STRIP));
    for a in (0..width).step_by(STRIP) {
        let b = (a + STRIP).min(width);
        let (lo, hi) = (a.saturating_sub(MARGIN), (b + MARGIN).min(width));
        let y = block.forward(&x.narrow(3, lo, hi - lo)?)?;
        parts.push(y.narrow(3, (a - lo) / 2, (b - a) / 2)?);
    }
    Tensor::cat(&parts, 3)
}

/// A decoder block run on strips of [`STRIP`] output columns, joined (see
/// `Network::full_resolution` for why the margin of 4 source columns suffices).
pub(super) fn up_in_strips(block: &Up, x: &Tensor) -> candle_core::Result<Tensor> {
    const MARGIN: usize = 4;
    let half_w = x.dims4()?.3;
    let width = 2 * half_w;
    let mut parts = Vec::with_capacity(width.div_ceil(STRIP));
    for a in (0..width).step_by(STRIP) {
        let b = (a + STRIP).min(width);
        let (sa, sb) = ((a / 2).saturating_sub(MARGIN), (b / 2 + MARGIN).min(half_w));
        let y = block.forward(x.narrow(3, sa, sb - sa)?)?;
        parts.push(y.narrow(3, a - 2 * sa, b - a)?);
    }
    Tensor::cat(&parts, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_candles_bilinear_upsampling_on_a_view() {
        let (c, h, w) = (3, 5, 14);
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 23 % 37) as f32 - 18.0) / 11.0)
            .collect();
        let whole = Tensor::from_slice(&x, (1, c, h, w), &Device::Cpu).expect("input");
        let view = whole.narrow(3, 2, 9).expect("narrows");
        let want = view
            .contiguous()
            .and_then(|v| v.upsample_bilinear2d(2 * h, 18, false))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle upsamples");
        let got = upsample_2x(&view).expect("upsamples");
        assert_eq!(got.dims(), &[1, c, 2 * h, 18]);
        let got = got
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
