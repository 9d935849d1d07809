//! The network both methods use: a small 3D U-Net (two 3×3×3 convolutions per level, average
//! pooling down, nearest upsampling and skip concatenation up, a 1×1×1 head giving one logit per
//! voxel). Built on [`conv3d`] so it runs anywhere candle's CPU backend does.
//!
//! Parameters live in a name → tensor map, saved and loaded as safetensors. Training creates
//! them as `Var`s (seeded, deterministic); inference loads them from bytes.

use std::collections::HashMap;

use candle_core::{bail, DType, Device, Result, Tensor, Var, D};

use super::conv3d::conv3d;
use super::rng::Rng;

/// A 3D U-Net with `channels[l]` features at level `l` (level 0 is full resolution).
pub struct UNet3d {
    channels: Vec<usize>,
    params: HashMap<String, Tensor>,
}

/// Names and shapes of every parameter for a channel list, in a fixed order.
fn layout(channels: &[usize]) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut conv = |name: String, o: usize, c: usize| {
        out.push((format!("{name}.weight"), vec![o, c, 3, 3, 3]));
        out.push((format!("{name}.bias"), vec![o]));
    };
    let mut prev = 1;
    for (l, &c) in channels.iter().enumerate() {
        conv(format!("enc{l}.0"), c, prev);
        conv(format!("enc{l}.1"), c, c);
        prev = c;
    }
    for l in (0..channels.len().saturating_sub(1)).rev() {
        let c = channels[l];
        conv(format!("dec{l}.0"), c, prev + c);
        conv(format!("dec{l}.1"), c, c);
        prev = c;
    }
    out.push(("head.weight".into(), vec![1, prev]));
    out.push(("head.bias".into(), vec![1]));
    out
}

impl UNet3d {
    /// Fresh parameters for training: He-normal weights from `seed`, zero biases.
    pub fn init(channels: &[usize], seed: u64, device: &Device) -> Result<(Self, Vec<Var>)> {
        if channels.is_empty() {
            bail!("a U-Net needs at least one level");
        }
        let mut rng = Rng::new(seed);
        let mut params = HashMap::new();
        let mut vars = Vec::new();
        for (name, shape) in layout(channels) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let fan_in: usize = shape[1..].iter().product();
                let std = (2.0 / fan_in as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?;
            params.insert(name, var.as_tensor().clone());
            vars.push(var);
        }
        Ok((
            UNet3d {
                channels: channels.to_vec(),
                params,
            },
            vars,
        ))
    }

    /// A copy whose parameters are fresh `Var`s holding these values (to continue training).
    pub fn trainable(&self) -> Result<(Self, Vec<Var>)> {
        let mut params = HashMap::new();
        let mut vars = Vec::new();
        for (name, _) in layout(&self.channels) {
            let var = Var::from_tensor(&self.params[&name].copy()?)?;
            params.insert(name, var.as_tensor().clone());
            vars.push(var);
        }
        Ok((
            UNet3d {
                channels: self.channels.clone(),
                params,
            },
            vars,
        ))
    }

    /// Parameters from a name → tensor map; every expected tensor must be there with the
    /// expected shape.
    pub fn from_tensors(channels: &[usize], mut loaded: HashMap<String, Tensor>) -> Result<Self> {
        if channels.is_empty() {
            bail!("a U-Net needs at least one level");
        }
        let mut params = HashMap::new();
        for (name, shape) in layout(channels) {
            let Some(t) = loaded.remove(&name) else {
                bail!("the weights have no tensor `{name}` (do they match the recipe's channels?)");
            };
            if t.dims() != shape.as_slice() {
                bail!(
                    "tensor `{name}` has shape {:?}, the recipe's network needs {shape:?}",
                    t.dims()
                );
            }
            let t = t.to_dtype(DType::F32)?;
            let finite = t.abs()?.max_all()?.to_scalar::<f32>()?.is_finite();
            if !finite {
                bail!("tensor `{name}` holds NaN or infinite values");
            }
            params.insert(name, t);
        }
        Ok(UNet3d {
            channels: channels.to_vec(),
            params,
        })
    }

    /// Parameters read from safetensors bytes.
    pub fn from_safetensors(channels: &[usize], bytes: &[u8], device: &Device) -> Result<Self> {
        Self::from_tensors(
            channels,
            candle_core::safetensors::load_buffer(bytes, device)?,
        )
    }

    /// The parameters, names prefixed (to store several networks in one file).
    pub fn named_tensors(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect()
    }

    /// Write the parameters as safetensors.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        candle_core::safetensors::save(&self.params, path)
    }

    pub fn parameter_count(&self) -> usize {
        self.params.values().map(|t| t.elem_count()).sum()
    }

    /// Each spatial size must be divisible by this.
    pub fn size_multiple(&self) -> usize {
        1 << (self.channels.len() - 1)
    }

    fn conv(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let w = &self.params[&format!("{name}.weight")];
        let b = &self.params[&format!("{name}.bias")];
        let y = conv3d(x, w, 1)?;
        y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1, 1))?)?
            .relu()
    }

    /// `x`: (N, 1, D, H, W) → logits (N, 1, D, H, W).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, d, h, w) = x.dims5()?;
        let m = self.size_multiple();
        if d % m != 0 || h % m != 0 || w % m != 0 {
            bail!("network input {d}×{h}×{w} is not divisible by {m}");
        }
        let levels = self.channels.len();
        let mut skips = Vec::with_capacity(levels);
        let mut x = x.clone();
        for l in 0..levels {
            if l > 0 {
                x = down(&x)?;
            }
            x = self.conv(&format!("enc{l}.0"), &x)?;
            x = self.conv(&format!("enc{l}.1"), &x)?;
            skips.push(x.clone());
        }
        for l in (0..levels - 1).rev() {
            x = Tensor::cat(&[&up(&x)?, &skips[l]], 1)?;
            x = self.conv(&format!("dec{l}.0"), &x)?;
            x = self.conv(&format!("dec{l}.1"), &x)?;
        }
        let c = x.dim(1)?;
        let flat = x.reshape((n, c, d * h * w))?;
        let y = self.params["head.weight"]
            .unsqueeze(0)?
            .broadcast_as((n, 1, c))?
            .matmul(&flat)?
            .broadcast_add(&self.params["head.bias"].reshape((1, 1, 1))?)?;
        y.reshape((n, 1, d, h, w))
    }
}

/// 2×2×2 average pooling.
fn down(x: &Tensor) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    let depth_pooled = x.reshape((n, c, d / 2, 2, h, w))?.mean(3)?;
    depth_pooled
        .reshape((n, c * (d / 2), h, w))?
        .avg_pool2d(2)?
        .reshape((n, c, d / 2, h / 2, w / 2))
}

/// Nearest-neighbour ×2 upsampling.
fn up(x: &Tensor) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    x.reshape((n, c * d, h, w))?
        .upsample_nearest2d(2 * h, 2 * w)?
        .reshape((n, c, d, 1, 2 * h, 2 * w))?
        .broadcast_as((n, c, d, 2, 2 * h, 2 * w))?
        .contiguous()?
        .reshape((n, c, 2 * d, 2 * h, 2 * w))
}

/// Mean binary cross-entropy of `logits` against 0/1 (or soft) `target`, numerically stable:
/// max(x, 0) − x·t + log(1 + e^−|x|).
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    bce_elements(logits, target)?.mean_all()
}

fn bce_elements(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let pos = logits.relu()?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (pos - (logits * target)?)? + soft
}

/// Cross-entropy weighted towards the target's mass: voxel weight 1 + λ·t with λ chosen so
/// the target carries a tenth of the total weight (half made training unstable). Each voxel's optimum is still p = t (a weight
/// does not move a voxel's minimum), so a Gaussian target is learnt as a Gaussian; the weight
/// only keeps a small peak from drowning in the background.
pub fn balanced_bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let n = target.elem_count() as f64;
    let mass = f64::from(target.sum_all()?.to_scalar::<f32>()?).max(1e-3);
    let lambda = n / mass / 9.0;
    let w = ((target * lambda)? + 1.0)?;
    (bce_elements(logits, target)? * &w)?
        .sum_all()?
        .div(&w.sum_all()?)
}

/// How far the centre read from sigmoid(`logits`) lies from `target_ijk` (voxel index, x y z),
/// in units of `sigma_vox`: √(|Δ/σ|² + 0.01). The centre is read as the inference decoder
/// reads it: the centroid of the map above half its maximum, weighted by the height above that
/// half (the maximum itself is held constant, so the gradient moves mass, not the threshold).
/// This charges the position of the peak directly, which cross-entropy against a broad
/// Gaussian barely does.
pub fn centre_loss(logits: &Tensor, target_ijk: [f64; 3], sigma_vox: f64) -> Result<Tensor> {
    let (n, c, d, h, w) = logits.dims5()?;
    let shape = (n, c, d, h, w);
    let p = candle_nn::ops::sigmoid(logits)?;
    let half = (p.max_all()?.detach() * 0.5)?;
    let weight = p.broadcast_sub(&half)?.relu()?;
    let total = (weight.sum_all()? + 1e-6)?;
    let dev = logits.device();
    let axis = |len: usize, at: usize| -> Result<Tensor> {
        let mut dims = [1usize; 5];
        dims[at] = len;
        Tensor::arange(0f32, len as f32, dev)?
            .reshape(dims.to_vec())?
            .broadcast_as(shape)
    };
    let mut sq = Tensor::zeros((), logits.dtype(), dev)?;
    for (coord, target) in [
        (axis(w, 4)?, target_ijk[0]),
        (axis(h, 3)?, target_ijk[1]),
        (axis(d, 2)?, target_ijk[2]),
    ] {
        let centre = (&weight * &coord)?.sum_all()?.div(&total)?;
        let delta = ((centre - target)? / sigma_vox)?;
        sq = (sq + delta.sqr()?)?;
    }
    (sq + 0.01)?.sqrt()
}

/// 1 − soft Dice of sigmoid(`logits`) against `target` (per batch item, averaged).
pub fn soft_dice_loss(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let p = candle_nn::ops::sigmoid(logits)?.flatten_from(1)?;
    let t = target.flatten_from(1)?;
    let inter = (&p * &t)?.sum(D::Minus1)?;
    let denom = (p.sum(D::Minus1)? + t.sum(D::Minus1)?)?;
    let dice = ((inter * 2.0)? + 1.0)?.div(&(denom + 1.0)?)?;
    (1.0 - dice)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_over_odd_sizes_and_depths() {
        let dev = Device::Cpu;
        for (channels, dims) in [
            (vec![2], [3usize, 5, 7]),
            (vec![2, 3], [2, 6, 10]),
            (vec![2, 3, 4], [4, 12, 8]),
        ] {
            let (net, _) = UNet3d::init(&channels, 1, &dev).unwrap();
            let x = Tensor::ones((1, 1, dims[0], dims[1], dims[2]), DType::F32, &dev).unwrap();
            let y = net.forward(&x).unwrap();
            assert_eq!(y.dims(), &[1, 1, dims[0], dims[1], dims[2]]);
        }
        let (net, _) = UNet3d::init(&[2, 3], 1, &dev).unwrap();
        let x = Tensor::ones((1, 1, 5, 6, 6), DType::F32, &dev).unwrap();
        let err = net.forward(&x).unwrap_err().to_string();
        assert!(err.contains("not divisible by 2"), "{err}");
    }

    #[test]
    fn init_is_deterministic_and_weights_round_trip() {
        let dev = Device::Cpu;
        let (a, _) = UNet3d::init(&[2, 4], 7, &dev).unwrap();
        let (b, _) = UNet3d::init(&[2, 4], 7, &dev).unwrap();
        let (c, _) = UNet3d::init(&[2, 4], 8, &dev).unwrap();
        let x = Tensor::rand(0f32, 1f32, (1, 1, 4, 4, 4), &dev).unwrap();
        let diff = |p: &UNet3d, q: &UNet3d| {
            (p.forward(&x).unwrap() - q.forward(&x).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(diff(&a, &b), 0.0);
        assert!(diff(&a, &c) > 0.0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        a.save(&path).unwrap();
        let back = UNet3d::from_safetensors(&[2, 4], &std::fs::read(&path).unwrap(), &dev).unwrap();
        assert_eq!(diff(&a, &back), 0.0);
        let wrong = UNet3d::from_safetensors(&[2, 5], &std::fs::read(&path).unwrap(), &dev);
        assert!(wrong.err().unwrap().to_string().contains("shape"));
    }

    #[test]
    fn losses_match_their_definitions() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[-2.0f32, 0.0, 3.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32, 1.0, 1.0]], &dev).unwrap();
        let bce = bce_with_logits(&x, &t).unwrap().to_scalar::<f32>().unwrap();
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let want = -((1.0 - sig(-2.0)).ln() + sig(0.0).ln() + sig(3.0).ln()) / 3.0;
        assert!((bce - want).abs() < 1e-5, "{bce} vs {want}");
        // Balanced: here the target mass is 2 of 3 voxels, λ = 1.5 / 9, weights 1, 7/6, 7/6.
        let bal = balanced_bce_with_logits(&x, &t)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let terms = [-(1.0 - sig(-2.0)).ln(), -sig(0.0).ln(), -sig(3.0).ln()];
        let w = 7.0 / 6.0;
        let want_bal = (terms[0] + w * terms[1] + w * terms[2]) / (1.0 + 2.0 * w);
        assert!((bal - want_bal).abs() < 1e-5, "{bal} vs {want_bal}");
        let dice = soft_dice_loss(&x, &t).unwrap().to_scalar::<f32>().unwrap();
        let (p0, p1, p2) = (sig(-2.0), sig(0.0), sig(3.0));
        let want = 1.0 - (2.0 * (p1 + p2) + 1.0) / (p0 + p1 + p2 + 2.0 + 1.0);
        assert!((dice - want).abs() < 1e-5, "{dice} vs {want}");
    }

    #[test]
    fn centre_loss_reads_the_peak_and_pulls_it_towards_the_target() {
        // A Gaussian bump (as logits) at x=6, y=4, z=3 on a 12×9×7 grid (memory order z, y, x).
        let (nx, ny, nz) = (12usize, 9usize, 7usize);
        let centre = [6.0f64, 4.0, 3.0];
        let mut logits = Vec::new();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let r2 = (i as f64 - centre[0]).powi(2)
                        + (j as f64 - centre[1]).powi(2)
                        + (k as f64 - centre[2]).powi(2);
                    let p = (-r2 / 8.0).exp().clamp(1e-4, 1.0 - 1e-4);
                    logits.push((p / (1.0 - p)).ln() as f32);
                }
            }
        }
        let x = candle_core::Var::from_vec(logits, (1, 1, nz, ny, nx), &Device::Cpu).unwrap();
        let at = |target: [f64; 3]| {
            centre_loss(x.as_tensor(), target, 2.0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        // On target only the smoothing floor √0.01 is left; two voxels off along x is one sigma.
        assert!((at(centre) - 0.1).abs() < 0.02, "{}", at(centre));
        let off = at([8.0, 4.0, 3.0]);
        assert!((off - 1.005).abs() < 0.05, "{off}");
        // The gradient pushes mass towards +x: logits beyond the peak rise, those before fall.
        let loss = centre_loss(x.as_tensor(), [8.0, 4.0, 3.0], 2.0).unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        let g = g.to_vec1::<f32>().unwrap();
        let idx = |i: usize| (3 * ny + 4) * nx + i;
        assert!(
            g[idx(7)] < 0.0 && g[idx(5)] > 0.0,
            "{} {}",
            g[idx(7)],
            g[idx(5)]
        );
    }
}
