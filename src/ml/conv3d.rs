//! 3D convolution for candle, which has only conv1d/conv2d: a sum over kernel depth of conv2d
//! calls on depth-shifted slabs, with depth folded into the batch. Autograd flows through
//! (narrow, permute, reshape and conv2d all have gradients); `tests` check the forward pass
//! against a naive 3D convolution and the gradients against finite differences.

use candle_core::{bail, Result, Tensor};

/// `x`: (N, C, D, H, W); `kernel`: (O, C, kd, kh, kw). Stride 1, zero padding `pad` on every
/// spatial axis. Returns (N, O, D + 2·pad − kd + 1, H + 2·pad − kh + 1, W + 2·pad − kw + 1).
pub fn conv3d(x: &Tensor, kernel: &Tensor, pad: usize) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    let (o, kc, kd, _kh, _kw) = kernel.dims5()?;
    if kc != c {
        bail!("conv3d: input has {c} channels, kernel expects {kc}");
    }
    if d + 2 * pad < kd {
        bail!("conv3d: depth {d} with padding {pad} is smaller than the kernel depth {kd}");
    }
    let d_out = d + 2 * pad - kd + 1;
    let padded = x.pad_with_zeros(2, pad, pad)?;
    let mut sum: Option<Tensor> = None;
    for z in 0..kd {
        let slab = padded
            .narrow(2, z, d_out)?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((n * d_out, c, h, w))?;
        let k2 = kernel.narrow(2, z, 1)?.squeeze(2)?.contiguous()?;
        let y = slab.conv2d(&k2, pad, 1, 1, 1)?;
        sum = Some(match sum {
            None => y,
            Some(s) => (s + y)?,
        });
    }
    let Some(y) = sum else {
        bail!("conv3d: kernel depth is 0");
    };
    let (_, _, ho, wo) = y.dims4()?;
    y.reshape((n, d_out, o, ho, wo))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Direct 3D convolution, for reference.
    fn naive(
        x: &[f64],
        xs: [usize; 5],
        k: &[f64],
        ks: [usize; 5],
        pad: usize,
    ) -> (Vec<f64>, [usize; 5]) {
        let [n, c, d, h, w] = xs;
        let [o, _, kd, kh, kw] = ks;
        let (od, oh, ow) = (
            d + 2 * pad - kd + 1,
            h + 2 * pad - kh + 1,
            w + 2 * pad - kw + 1,
        );
        let mut out = vec![0.0; n * o * od * oh * ow];
        for b in 0..n {
            for oc in 0..o {
                for z in 0..od {
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut s = 0.0;
                            for ic in 0..c {
                                for dz in 0..kd {
                                    for dy in 0..kh {
                                        for dx in 0..kw {
                                            let (iz, iy, ix) = (
                                                (z + dz) as isize - pad as isize,
                                                (y + dy) as isize - pad as isize,
                                                (xx + dx) as isize - pad as isize,
                                            );
                                            if iz < 0
                                                || iy < 0
                                                || ix < 0
                                                || iz >= d as isize
                                                || iy >= h as isize
                                                || ix >= w as isize
                                            {
                                                continue;
                                            }
                                            let xi = (((b * c + ic) * d + iz as usize) * h
                                                + iy as usize)
                                                * w
                                                + ix as usize;
                                            let ki =
                                                (((oc * c + ic) * kd + dz) * kh + dy) * kw + dx;
                                            s += x[xi] * k[ki];
                                        }
                                    }
                                }
                            }
                            out[(((b * o + oc) * od + z) * oh + y) * ow + xx] = s;
                        }
                    }
                }
            }
        }
        (out, [n, o, od, oh, ow])
    }

    fn random(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2000) as f64 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_matches_a_naive_3d_convolution_over_odd_sizes() {
        let dev = Device::Cpu;
        for (xs, ks, pad) in [
            ([1, 2, 5, 6, 7], [3, 2, 3, 3, 3], 1),
            ([2, 1, 4, 3, 5], [2, 1, 3, 3, 3], 0),
            ([1, 3, 3, 4, 4], [1, 3, 1, 1, 1], 0),
        ] {
            let xv = random(xs.iter().product(), 1);
            let kv = random(ks.iter().product(), 2);
            let x = Tensor::from_vec(xv.clone(), &xs, &dev).unwrap();
            let k = Tensor::from_vec(kv.clone(), &ks, &dev).unwrap();
            let y = conv3d(&x, &k, pad).unwrap();
            let (want, shape) = naive(&xv, xs, &kv, ks, pad);
            assert_eq!(y.dims(), &shape);
            let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{xs:?} {ks:?}: {err}");
        }
        let wrong = Tensor::zeros((1, 4, 3, 3, 3), DType::F64, &dev).unwrap();
        let x = Tensor::zeros((1, 2, 3, 3, 3), DType::F64, &dev).unwrap();
        assert!(conv3d(&x, &wrong, 1)
            .unwrap_err()
            .to_string()
            .contains("channels"));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let (xs, ks, pad) = ([1usize, 2, 4, 4, 3], [2usize, 2, 3, 3, 3], 1);
        let xv = random(xs.iter().product(), 3);
        let kv = random(ks.iter().product(), 4);
        let x = Var::from_vec(xv.clone(), &xs, &dev).unwrap();
        let k = Var::from_vec(kv.clone(), &ks, &dev).unwrap();
        let out_len = 2 * 4 * 4 * 3;
        let r = Tensor::from_vec(random(out_len, 5), (1, 2, 4, 4, 3), &dev).unwrap();
        let loss = |x: &Tensor, k: &Tensor| -> f64 {
            (conv3d(x, k, pad).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let y = (conv3d(x.as_tensor(), k.as_tensor(), pad).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = y.backward().unwrap();
        let gx: Vec<f64> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let gk: Vec<f64> = grads
            .get(k.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let eps = 1e-6;
        let check = |values: &[f64], shape: &[usize], grad: &[f64], is_x: bool| {
            for idx in (0..values.len()).step_by(7) {
                let mut plus = values.to_vec();
                let mut minus = values.to_vec();
                plus[idx] += eps;
                minus[idx] -= eps;
                let t = |v: Vec<f64>| Tensor::from_vec(v, shape, &dev).unwrap();
                let (lp, lm) = if is_x {
                    (
                        loss(&t(plus), k.as_tensor()),
                        loss(&t(minus), k.as_tensor()),
                    )
                } else {
                    (
                        loss(x.as_tensor(), &t(plus)),
                        loss(x.as_tensor(), &t(minus)),
                    )
                };
                let fd = (lp - lm) / (2.0 * eps);
                let rel = (fd - grad[idx]).abs() / fd.abs().max(1e-3);
                assert!(
                    rel < 1e-5,
                    "{} grad {idx}: autograd {} vs finite difference {fd}",
                    if is_x { "input" } else { "kernel" },
                    grad[idx]
                );
            }
        };
        check(&xv, &xs, &gx, true);
        check(&kv, &ks, &gk, false);
    }
}
