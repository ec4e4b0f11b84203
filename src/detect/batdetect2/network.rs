//! BatDetect2's Net2DFast network on the CPU with candle, loaded from the PyTorch checkpoint
//! as published.
//!
//! In: the checkpoint (`Net2DFast_UK_same.pth.tar`, a zip-format torch file holding
//! `state_dict` and `params`) and a spectrogram of 128 rows by a width divisible by 8. Out:
//! [`Outputs`]: per pixel of the input, the class logits (each species, then background) and
//! the box size (width in columns, height in rows).
//!
//! The network, as BatDetect2 1.3.1 defines it (F = 128 filters):
//! - **Encoder**: three blocks, each appending a coordinate channel (the row's position
//!   from -1 at the top to 1 at the bottom, a fixed, not learnt, "CoordConv" input telling the
//!   filters which frequency they look at), a 3×3 convolution, a 2×2 max pool, batch norm
//!   and ReLU: 1 → F/4 → F/2 → F channels, halving height and width each time (x1, x2, x3).
//!   Then a 3×3 convolution to 2F channels with batch norm and ReLU (x3 again).
//! - **Bottleneck**: a convolution spanning the whole remaining height (16 rows) to one row
//!   of 2F channels, batch norm, ReLU; then self-attention across time: keys, queries and
//!   values are linear maps of each column; each output column is the values averaged with
//!   weights softmax over the *key* columns of key·query / 2F, mapped back by a fourth linear
//!   layer. The row is repeated back to 16 rows.
//! - **Decoder**: three blocks, each taking the previous output plus the encoder output of
//!   the same size (skip connections), upsampling ×2 bilinearly, appending the coordinate
//!   channel, then 3×3 convolution, batch norm, ReLU: 2F → F/2 → F/4 → F/4 channels.
//! - **Heads**: a 3×3 convolution with batch norm and ReLU, then two 1×1 convolutions: the
//!   box size (2 channels, ReLU) and the classes (species + background, softmax later).
//!
//! Batch norm is folded into the preceding convolution where it follows it directly; in the
//! encoder it follows the max pool, so it is applied as a per-channel scale and shift there.

use std::collections::HashMap;
use std::io::BufReader;

use camino::Utf8Path;
use candle_core::{D, DType, Device, Tensor};

use super::conv;
use super::layers::{Affine, Conv, Down, Linear, Up, down_in_strips, up_in_strips};
use super::params::Params;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// candle could not read the file or a tensor.
    #[error("cannot read the checkpoint `{path}`: {source}")]
    Read {
        /// The checkpoint.
        path: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// A tensor the network needs is missing or has the wrong shape.
    #[error("the checkpoint `{path}` is not a Net2DFast model: {detail}")]
    Shape {
        /// The checkpoint.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// What the network says about each pixel of its input.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Rows (as the input).
    pub height: usize,
    /// Columns (as the input).
    pub width: usize,
    /// Class logits, `classes × height × width`; the last class is the background.
    pub class_logits: Vec<f32>,
    /// Box sizes, `2 × height × width`: width in columns, then height in rows.
    pub size: Vec<f32>,
}

impl Outputs {
    /// Number of classes, background included.
    pub fn classes(&self) -> usize {
        self.class_logits.len() / (self.height * self.width).max(1)
    }

    /// The class probabilities at a pixel (softmax over the classes, background last).
    pub fn class_probs(&self, y: usize, x: usize) -> Vec<f32> {
        let plane = self.height * self.width;
        let at = y * self.width + x;
        let logits: Vec<f32> = (0..self.classes())
            .map(|c| self.class_logits[c * plane + at])
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        exp.iter().map(|e| e / sum).collect()
    }

    /// The detection probability map, `height × width`: the sum of the species' class
    /// probabilities (everything but the background).
    pub fn detection(&self) -> Vec<f32> {
        let plane = self.height * self.width;
        let classes = self.classes();
        let mut out = vec![0.0f32; plane];
        let row = self.width.max(1);
        // Rows are shared out among the threads the network uses.
        let threads = candle_core::utils::get_num_threads();
        conv::in_parallel(&mut out, row, threads, |y, values| {
            // A row at a time, class after class: contiguous runs of each class's logits.
            let n = values.len();
            let logits = |c: usize| &self.class_logits[c * plane + y * row..][..n];
            let mut max = vec![f32::NEG_INFINITY; n];
            for c in 0..classes {
                for (m, l) in max.iter_mut().zip(logits(c)) {
                    *m = m.max(*l);
                }
            }
            // The species' exponentials summed in class order, then the background's.
            values.fill(0.0);
            for c in 0..classes.saturating_sub(1) {
                for ((s, l), m) in values.iter_mut().zip(logits(c)).zip(&max) {
                    *s += (l - m).exp();
                }
            }
            if let Some(background) = classes.checked_sub(1) {
                for ((s, l), m) in values.iter_mut().zip(logits(background)).zip(&max) {
                    *s /= *s + (l - m).exp();
                }
            }
        });
        out
    }
}

/// Net2DFast with its weights.
#[derive(Debug)]
pub struct Network {
    down: [Down; 3],
    conv_dn_3: Conv,
    conv_1d: Conv,
    key: Linear,
    query: Linear,
    value: Linear,
    project: Linear,
    up: [Up; 3],
    conv_op: Conv,
    size_op: Conv,
    classes_op: Conv,
    /// The bottleneck is repeated back to this many rows.
    bottleneck_rows: usize,
    /// The attention's scaling (the attention width).
    att_dim: f64,
}

/// The checkpoint's tensors by name.
struct Weights {
    tensors: HashMap<String, Tensor>,
    path: String,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, LoadError> {
        let t = self.tensors.get(name).ok_or_else(|| LoadError::Shape {
            path: self.path.clone(),
            detail: format!("it has no tensor `{name}`"),
        })?;
        if t.dims() != shape {
            return Err(LoadError::Shape {
                path: self.path.clone(),
                detail: format!("tensor `{name}` is {:?}, not {shape:?}", t.dims()),
            });
        }
        t.to_dtype(DType::F32).map_err(|e| self.read(e))
    }

    fn read(&self, source: candle_core::Error) -> LoadError {
        LoadError::Read {
            path: self.path.clone(),
            source,
        }
    }

    /// A batch norm `prefix` as a per-channel scale and shift.
    fn norm(&self, prefix: &str, channels: usize) -> Result<(Vec<f32>, Vec<f32>), LoadError> {
        const EPS: f32 = 1e-5;
        let v = |name: &str| -> Result<Vec<f32>, LoadError> {
            self.get(&format!("{prefix}.{name}"), &[channels])?
                .to_vec1::<f32>()
                .map_err(|e| self.read(e))
        };
        let (gamma, beta, mean, var) = (
            v("weight")?,
            v("bias")?,
            v("running_mean")?,
            v("running_var")?,
        );
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + EPS).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    /// A convolution `prefix` of `out × inp × kh × kw`, with batch norm `norm` folded in.
    fn conv(
        &self,
        prefix: &str,
        dims: [usize; 4],
        padding: usize,
        norm: Option<&str>,
    ) -> Result<Conv, LoadError> {
        let [out, _, kh, kw] = dims;
        let weight = self.get(&format!("{prefix}.weight"), &dims)?;
        let bias = self
            .get(&format!("{prefix}.bias"), &[out])?
            .to_vec1::<f32>()
            .map_err(|e| self.read(e))?;
        let (weight, bias) = match norm {
            None => (weight, bias),
            Some(norm) => {
                let (scale, shift) = self.norm(norm, out)?;
                let bias = bias
                    .iter()
                    .zip(&scale)
                    .zip(&shift)
                    .map(|((b, s), t)| b * s + t)
                    .collect();
                let scale = Tensor::from_vec(scale, (out, 1, 1, 1), &Device::Cpu)
                    .map_err(|e| self.read(e))?;
                let weight = weight.broadcast_mul(&scale).map_err(|e| self.read(e))?;
                (weight, bias)
            }
        };
        Ok(Conv {
            weight: conv::tap_major(&weight).map_err(|e| self.read(e))?,
            bias,
            shape: conv::Shape { kh, kw, padding },
        })
    }

    fn affine(&self, prefix: &str, channels: usize) -> Result<Affine, LoadError> {
        let (scale, shift) = self.norm(prefix, channels)?;
        Ok(Affine { scale, shift })
    }

    /// A block's coordinate channel (`1 × 1 × height × 1` in the checkpoint), one value per row.
    fn coords(&self, prefix: &str, height: usize) -> Result<Vec<f32>, LoadError> {
        self.get(&format!("{prefix}.coords"), &[1, 1, height, 1])?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.read(e))
    }

    fn down(&self, prefix: &str, inp: usize, out: usize, height: usize) -> Result<Down, LoadError> {
        Ok(Down {
            coords: self.coords(prefix, height)?,
            conv: self.conv(&format!("{prefix}.conv"), [out, inp + 1, 3, 3], 1, None)?,
            norm: self.affine(&format!("{prefix}.conv_bn"), out)?,
        })
    }

    fn up(&self, prefix: &str, inp: usize, out: usize, height: usize) -> Result<Up, LoadError> {
        Ok(Up {
            coords: self.coords(prefix, height)?,
            conv: self.conv(
                &format!("{prefix}.conv"),
                [out, inp + 1, 3, 3],
                1,
                Some(&format!("{prefix}.conv_bn")),
            )?,
        })
    }

    fn linear(&self, prefix: &str, inp: usize, out: usize) -> Result<Linear, LoadError> {
        let weight = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = self.get(&format!("{prefix}.bias"), &[out])?;
        Ok(Linear {
            weight_t: weight
                .t()
                .and_then(|t| t.contiguous())
                .map_err(|e| self.read(e))?,
            bias: bias.reshape((1, out)).map_err(|e| self.read(e))?,
        })
    }
}

impl Network {
    /// Loads the network from `path`'s `state_dict`, shaped by `params`.
    pub fn load(path: &Utf8Path, params: &Params) -> Result<Network, LoadError> {
        let tensors =
            candle_core::pickle::read_all_with_key(path, Some("state_dict")).map_err(|source| {
                LoadError::Read {
                    path: path.to_string(),
                    source,
                }
            })?;
        let w = Weights {
            tensors: tensors.into_iter().collect(),
            path: path.to_string(),
        };
        // The convolutions share their rows out among the threads themselves; gemm splitting
        // each row's small product again (its own threading, through rayon) cost more than it
        // gained. The setting is the process's.
        gemm::set_threading_threshold(usize::MAX);
        let f = params.num_filters;
        let h = params.ip_height;
        let classes = params.class_names.len() + 1;
        Ok(Network {
            down: [
                w.down("conv_dn_0", 1, f / 4, h)?,
                w.down("conv_dn_1", f / 4, f / 2, h / 2)?,
                w.down("conv_dn_2", f / 2, f, h / 4)?,
            ],
            conv_dn_3: w.conv("conv_dn_3", [2 * f, f, 3, 3], 1, Some("conv_dn_3_bn"))?,
            conv_1d: w.conv("conv_1d", [2 * f, 2 * f, h / 8, 1], 0, Some("conv_1d_bn"))?,
            key: w.linear("att.key_fun", 2 * f, 2 * f)?,
            query: w.linear("att.que_fun", 2 * f, 2 * f)?,
            value: w.linear("att.val_fun", 2 * f, 2 * f)?,
            project: w.linear("att.pro_fun", 2 * f, 2 * f)?,
            up: [
                w.up("conv_up_2", 2 * f, f / 2, h / 8 * 2)?,
                w.up("conv_up_3", f / 2, f / 4, h / 4 * 2)?,
                w.up("conv_up_4", f / 4, f / 4, h / 2 * 2)?,
            ],
            conv_op: w.conv("conv_op", [f / 4, f / 4, 3, 3], 1, Some("conv_op_bn"))?,
            size_op: w.conv("conv_size_op", [2, f / 4, 1, 1], 0, None)?,
            classes_op: w.conv("conv_classes_op", [classes, f / 4, 1, 1], 0, None)?,
            bottleneck_rows: h / 32 * 4,
            att_dim: (2 * f) as f64,
        })
    }

    /// Runs the network on a `height × width` spectrogram (row-major): `height` must be the
    /// network's input height and `width` a multiple of 8.
    pub fn forward(
        &self,
        spec: &[f32],
        height: usize,
        width: usize,
    ) -> candle_core::Result<Outputs> {
        let input = Tensor::from_slice(spec, (1, 1, height, width), &Device::Cpu)?;
        let x1 = down_in_strips(&self.down[0], &input)?;
        drop(input);
        let x2 = self.down[1].forward(&x1)?;
        let x3 = self.conv_dn_3.forward(self.down[2].forward(&x2)?, true)?;

        // Bottleneck: one row of columns, attention across time.
        let x = self.conv_1d.forward(x3.clone(), true)?; // (1, C, 1, T)
        let (_, c, _, t) = x.dims4()?;
        let cols = x.reshape((c, t))?.t()?.contiguous()?; // (T, C)
        let key = self.key.forward(&cols)?;
        let query = self.query.forward(&cols)?;
        let value = self.value.forward(&cols)?;
        // weights[j, i]: how much query column j takes from column i, normalised over i.
        // Computed for a block of query columns at a time: the whole T × T matrix of a
        // minute of audio would be 225 MB, several times over in the softmax.
        let key_t = key.t()?.contiguous()?;
        let mut blocks = Vec::with_capacity(t.div_ceil(ATTENTION_BLOCK));
        for start in (0..t).step_by(ATTENTION_BLOCK) {
            let queries = query.narrow(0, start, ATTENTION_BLOCK.min(t - start))?;
            let scores = (queries.matmul(&key_t)? / self.att_dim)?;
            blocks.push(softmax_last(&scores)?.matmul(&value)?);
        }
        let attended = Tensor::cat(&blocks, 0)?; // (T, C)
        drop(blocks);
        let out = self.project.forward(&attended)?; // (T, C)
        let x = out.t()?.contiguous()?.reshape((1, c, 1, t))?;
        let x = x.repeat((1, 1, self.bottleneck_rows, 1))?;

        let x = up_in_strips(&self.up[0], &(x + &x3)?)?;
        drop(x3);
        let x = up_in_strips(&self.up[1], &(x + &x2)?)?;
        drop(x2);
        let x = (x + &x1)?;
        drop(x1);
        self.full_resolution(&x)
    }

    /// The last decoder block and the heads, which work at the input's full resolution,
    /// run on strips of [`STRIP`] columns so that no full-resolution tensor exists (each is
    /// 50 MB for 3 s of audio, and a convolution holds three at once). Every layer here is
    /// local, so a strip computed with a margin of source columns and cropped is exactly
    /// the whole computation's columns: the ×2 upsampling of a slab differs from the whole
    /// image's only in its first and last columns, and each 3×3 convolution spoils one more
    /// column at a slab edge that is not an image edge; 4 source columns (8 output columns)
    /// of margin cover the 1 + 1 + 1 spoilt.
    fn full_resolution(&self, x: &Tensor) -> candle_core::Result<Outputs> {
        const MARGIN: usize = 4;
        let (_, _, half_h, half_w) = x.dims4()?;
        let (height, width) = (2 * half_h, 2 * half_w);
        let plane = height * width;
        let classes = self.classes_op.weight.dims()[0];
        let mut class_logits = vec![0.0f32; classes * plane];
        let mut size = vec![0.0f32; 2 * plane];
        for a in (0..width).step_by(STRIP) {
            let b = (a + STRIP).min(width);
            let (sa, sb) = ((a / 2).saturating_sub(MARGIN), (b / 2 + MARGIN).min(half_w));
            let c0 = 2 * sa; // the slab's first column, in full-resolution columns
            let slab = x.narrow(3, sa, sb - sa)?;
            let y = self.up[2].forward(slab)?;
            let y = self.conv_op.forward(y, true)?;
            let y = y.narrow(3, a - c0, b - a)?;
            let sizes = self.size_op.forward(y.clone(), true)?;
            let logits = self.classes_op.forward(y, false)?;
            scatter(&logits, &mut class_logits, height, width, a)?;
            scatter(&sizes, &mut size, height, width, a)?;
        }
        Ok(Outputs {
            height,
            width,
            class_logits,
            size,
        })
    }
}

/// Query columns of the attention computed at once.
const ATTENTION_BLOCK: usize = 256;

/// Columns of full resolution computed at once.
pub(super) const STRIP: usize = 512;

/// Copies `strip` (`1 × channels × height × w`) into columns `a..a + w` of `out`
/// (`channels × height × width`).
fn scatter(
    strip: &Tensor,
    out: &mut [f32],
    height: usize,
    width: usize,
    a: usize,
) -> candle_core::Result<()> {
    let (_, channels, h, w) = strip.dims4()?;
    debug_assert_eq!(h, height);
    let values = strip.flatten_all()?.to_vec1::<f32>()?;
    for c in 0..channels {
        for y in 0..height {
            let from = (c * height + y) * w;
            let to = (c * height + y) * width + a;
            out[to..to + w].copy_from_slice(&values[from..from + w]);
        }
    }
    Ok(())
}

/// Softmax over the last dimension.
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let exp = x.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(D::Minus1)?;
    exp.broadcast_div(&sum)
}

/// The checkpoint's `params` dictionary, when candle's pickle reader can read it.
pub fn read_params(path: &Utf8Path) -> Result<candle_core::pickle::Object, String> {
    use candle_core::pickle::{Object, Stack};
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("the checkpoint has no `data.pkl`")?;
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(entry))
        .map_err(|e| e.to_string())?;
    match stack.finalize().map_err(|e| e.to_string())? {
        Object::Dict(entries) => entries
            .into_iter()
            .find(|(k, _)| *k == Object::Unicode("params".into()))
            .map(|(_, v)| v)
            .ok_or_else(|| "the checkpoint has no `params`".to_owned()),
        _ => Err("the checkpoint is not a dictionary".into()),
    }
}
