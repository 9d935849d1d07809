//! 3D convolution for candle, which has only conv1d/conv2d (stride 1, zero padding). Large
//! grids: a custom op with direct loops and its own backward pass (input gradient: the kernel
//! scattered back; kernel gradient: correlations of input and output gradient), parallel over
//! output slabs; 3-4x faster than summing conv2d calls over depth-shifted slabs. Small grids:
//! im2col (a custom op whose backward is col2im) and candle's matrix product, which carries
//! the kernel gradient. Measured in `benches/locate.rs` (ARCHITECTURE.md).
//! `tests` check the forward pass against a naive 3D convolution and the gradients against
//! finite differences.

use candle_core::{
    backend::BackendStorage, bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType,
};

/// Output grids up to this many voxels use im2col and one matrix product (candle's gemm), larger
/// ones direct loops. Measured per layer of our networks (fwd+bwd, `benches/locate.rs`): im2col
/// wins by 3-10x on the deep, small, many-channel levels and loses by about 2x at full
/// resolution, where the column matrix outgrows the caches.
pub const IM2COL_MAX_VOXELS: usize = 8192;

/// `x`: (N, C, D, H, W); `kernel`: (O, C, kd, kh, kw). Stride 1, zero padding `pad` on every
/// spatial axis. Returns (N, O, D + 2·pad − kd + 1, H + 2·pad − kh + 1, W + 2·pad − kw + 1).
pub fn conv3d(x: &Tensor, kernel: &Tensor, pad: usize) -> Result<Tensor> {
    conv3d_with(x, kernel, pad, Algo::Auto)
}

/// How [`conv3d_with`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Im2col up to [`IM2COL_MAX_VOXELS`] output voxels, direct above.
    Auto,
    Direct,
    Im2col,
}

/// [`conv3d`] with a chosen algorithm (tests and benchmarks compare them).
pub fn conv3d_with(x: &Tensor, kernel: &Tensor, pad: usize, algo: Algo) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    let (o, kc, kd, kh, kw) = kernel.dims5()?;
    if kc != c {
        bail!("conv3d: input has {c} channels, kernel expects {kc}");
    }
    if d + 2 * pad < kd || h + 2 * pad < kh || w + 2 * pad < kw {
        bail!("conv3d: input {d}×{h}×{w} with padding {pad} is smaller than the kernel");
    }
    let g = Geo::new([n, c, d, h, w], [o, kc, kd, kh, kw], pad);
    let x = x.contiguous()?;
    let direct = match algo {
        Algo::Auto => g.out.iter().product::<usize>() > IM2COL_MAX_VOXELS,
        a => a == Algo::Direct,
    };
    if direct {
        return x.apply_op2(&kernel.contiguous()?, Conv3d { pad });
    }
    let cols = x.apply_op1(Im2Col { g })?;
    let out = kernel
        .reshape((o, c * kd * kh * kw))?
        .matmul(&cols)?
        .reshape((o, n, g.out[0], g.out[1], g.out[2]))?;
    if n == 1 {
        out.reshape((1, o, g.out[0], g.out[1], g.out[2]))
    } else {
        out.transpose(0, 1)?.contiguous()
    }
}

/// (N, C, D, H, W) → (C·kd·kh·kw, N·OD·OH·OW): row `c·K + k` holds, for every output voxel,
/// the input voxel that kernel offset `k` of channel `c` reads (0 in the padding).
struct Im2Col {
    g: Geo,
}

/// The adjoint of [`Im2Col`]: columns back onto the input grid, summed.
struct Col2Im {
    g: Geo,
}

impl Geo {
    fn taps(&self) -> usize {
        self.k.iter().product()
    }

    /// Calls `f(out_at, in_at, len)` for every run of output voxels along x that kernel
    /// offset `tap` reads from one input row.
    fn runs(&self, tap: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [od, oh, ow] = self.out;
        let (a, b, e) = (
            tap / (self.k[1] * self.k[2]),
            (tap / self.k[2]) % self.k[1],
            tap % self.k[2],
        );
        let (z0, z1) = self.valid(a, self.d, od);
        let (y0, y1) = self.valid(b, self.h, oh);
        let (x0, x1) = self.valid(e, self.w, ow);
        if x0 >= x1 {
            return;
        }
        for z in z0..z1 {
            let iz = z + a - self.pad;
            for y in y0..y1 {
                let iy = y + b - self.pad;
                f(
                    (z * oh + y) * ow + x0,
                    (iz * self.h + iy) * self.w + x0 + e - self.pad,
                    x1 - x0,
                );
            }
        }
    }

    fn im2col<T: WithDType>(&self, x: &[T]) -> Vec<T> {
        let out_len: usize = self.out.iter().product();
        let in_len = self.d * self.h * self.w;
        let mut cols = vec![T::zero(); self.c * self.taps() * self.n * out_len];
        par_slabs(&mut cols, self.n * out_len, |row, dst| {
            let (c, tap) = (row / self.taps(), row % self.taps());
            for n in 0..self.n {
                let src = &x[(n * self.c + c) * in_len..][..in_len];
                let dst = &mut dst[n * out_len..][..out_len];
                self.runs(tap, |o, i, len| {
                    dst[o..o + len].copy_from_slice(&src[i..i + len])
                });
            }
        });
        cols
    }

    fn col2im<T: WithDType>(&self, cols: &[T]) -> Vec<T> {
        let out_len: usize = self.out.iter().product();
        let in_len = self.d * self.h * self.w;
        let mut x = vec![T::zero(); self.n * self.c * in_len];
        par_slabs(&mut x, in_len, |slab, dst| {
            let (n, c) = (slab / self.c, slab % self.c);
            for tap in 0..self.taps() {
                let src = &cols[((c * self.taps() + tap) * self.n + n) * out_len..][..out_len];
                self.runs(tap, |o, i, len| {
                    for (d, s) in dst[i..i + len].iter_mut().zip(&src[o..o + len]) {
                        *d += *s;
                    }
                });
            }
        });
        x
    }
}

impl candle_core::CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col3d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        let shape = Shape::from((g.c * g.taps(), g.n * g.out.iter().product::<usize>()));
        match s {
            CpuStorage::F32(_) => Ok((CpuStorage::F32(g.im2col(slice::<f32>(s, l)?)), shape)),
            CpuStorage::F64(_) => Ok((CpuStorage::F64(g.im2col(slice::<f64>(s, l)?)), shape)),
            _ => bail!("conv3d: f32 or f64 input, got {:?}", s.dtype()),
        }
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?.apply_op1_no_bwd(&Col2Im { g: self.g })?,
        ))
    }
}

impl candle_core::CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im3d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        let shape = Shape::from((g.n, g.c, g.d, g.h, g.w));
        match s {
            CpuStorage::F32(_) => Ok((CpuStorage::F32(g.col2im(slice::<f32>(s, l)?)), shape)),
            CpuStorage::F64(_) => Ok((CpuStorage::F64(g.col2im(slice::<f64>(s, l)?)), shape)),
            _ => bail!("conv3d: f32 or f64 gradient, got {:?}", s.dtype()),
        }
    }
}

/// Geometry of one convolution.
#[derive(Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    o: usize,
    d: usize,
    h: usize,
    w: usize,
    k: [usize; 3],
    out: [usize; 3],
    pad: usize,
}

impl Geo {
    fn new(x: [usize; 5], k: [usize; 5], pad: usize) -> Self {
        let out = [0, 1, 2].map(|a| x[2 + a] + 2 * pad + 1 - k[2 + a]);
        Geo {
            n: x[0],
            c: x[1],
            o: k[0],
            d: x[2],
            h: x[3],
            w: x[4],
            k: [k[2], k[3], k[4]],
            out,
            pad,
        }
    }

    /// For kernel offset `t` along an axis of input size `n` and output size `m`: the output
    /// range whose input index `i = out + t − pad` lies inside the input.
    fn valid(&self, t: usize, n: usize, m: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(t);
        let hi = (n + self.pad).saturating_sub(t).min(m);
        (lo, hi.max(lo))
    }

    fn kernel_index(&self, o: usize, c: usize, a: usize, b: usize, e: usize) -> usize {
        (((o * self.c + c) * self.k[0] + a) * self.k[1] + b) * self.k[2] + e
    }

    /// Calls `f(out_row_start, in_row_start, x0, x1, kernel_index)` for every pair of
    /// output and input rows that kernel offsets (a, b, e) connect, for channels `o`, `c`.
    fn rows(&self, o: usize, c: usize, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let [od, oh, ow] = self.out;
        for a in 0..self.k[0] {
            let (z0, z1) = self.valid(a, self.d, od);
            for b in 0..self.k[1] {
                let (y0, y1) = self.valid(b, self.h, oh);
                for e in 0..self.k[2] {
                    let (x0, x1) = self.valid(e, self.w, ow);
                    if x0 >= x1 {
                        continue;
                    }
                    let ki = self.kernel_index(o, c, a, b, e);
                    for z in z0..z1 {
                        let iz = z + a - self.pad;
                        for y in y0..y1 {
                            let iy = y + b - self.pad;
                            let out_row = (z * oh + y) * ow;
                            let in_row = (iz * self.h + iy) * self.w + x0 + e - self.pad;
                            f(out_row + x0, in_row, x0, x1, ki);
                        }
                    }
                }
            }
        }
    }
}

/// Run `f(slab_index, slab)` over `out.chunks_mut(slab)` on candle's thread count.
fn par_slabs<T: Send>(out: &mut [T], slab: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let threads = candle_core::utils::get_num_threads().max(1);
    let mut slabs: Vec<(usize, &mut [T])> = out.chunks_mut(slab.max(1)).enumerate().collect();
    if threads == 1 || slabs.len() == 1 {
        slabs.into_iter().for_each(|(i, s)| f(i, s));
        return;
    }
    let per = slabs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        while !slabs.is_empty() {
            let rest = slabs.split_off(slabs.len().min(per));
            let mine = std::mem::replace(&mut slabs, rest);
            let f = &f;
            scope.spawn(move || mine.into_iter().for_each(|(i, s)| f(i, s)));
        }
    });
}

fn forward<T: WithDType>(g: Geo, x: &[T], k: &[T]) -> Vec<T> {
    let out_len: usize = g.out.iter().product();
    let in_len = g.d * g.h * g.w;
    let mut out = vec![T::zero(); g.n * g.o * out_len];
    par_slabs(&mut out, out_len, |slab, dst| {
        let (n, o) = (slab / g.o, slab % g.o);
        for c in 0..g.c {
            let src = &x[(n * g.c + c) * in_len..][..in_len];
            g.rows(o, c, |out_at, in_at, x0, x1, ki| {
                let len = x1 - x0;
                axpy(
                    &mut dst[out_at..out_at + len],
                    &src[in_at..in_at + len],
                    k[ki],
                );
            });
        }
    });
    out
}

fn input_grad<T: WithDType>(g: Geo, grad: &[T], k: &[T]) -> Vec<T> {
    let out_len: usize = g.out.iter().product();
    let in_len = g.d * g.h * g.w;
    let mut gx = vec![T::zero(); g.n * g.c * in_len];
    par_slabs(&mut gx, in_len, |slab, dst| {
        let (n, c) = (slab / g.c, slab % g.c);
        for o in 0..g.o {
            let src = &grad[(n * g.o + o) * out_len..][..out_len];
            g.rows(o, c, |out_at, in_at, x0, x1, ki| {
                let len = x1 - x0;
                axpy(
                    &mut dst[in_at..in_at + len],
                    &src[out_at..out_at + len],
                    k[ki],
                );
            });
        }
    });
    gx
}

fn kernel_grad<T: WithDType>(g: Geo, x: &[T], grad: &[T]) -> Vec<T> {
    let out_len: usize = g.out.iter().product();
    let in_len = g.d * g.h * g.w;
    let per_o = g.c * g.k.iter().product::<usize>();
    let mut gk = vec![T::zero(); g.o * per_o];
    par_slabs(&mut gk, per_o, |o, dst| {
        for n in 0..g.n {
            let go = &grad[(n * g.o + o) * out_len..][..out_len];
            for c in 0..g.c {
                let src = &x[(n * g.c + c) * in_len..][..in_len];
                g.rows(o, c, |out_at, in_at, x0, x1, ki| {
                    let len = x1 - x0;
                    dst[ki - o * per_o] += dot(&go[out_at..out_at + len], &src[in_at..in_at + len]);
                });
            }
        }
    });
    gk
}

/// `dst += w · src`.
fn axpy<T: WithDType>(dst: &mut [T], src: &[T], w: T) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += w * *s;
    }
}

/// Dot product with eight independent partial sums, so it vectorises.
fn dot<T: WithDType>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut acc = T::zero();
    for (x, y) in ra.iter().zip(rb) {
        acc += *x * *y;
    }
    lanes.iter().fold(acc, |s, &l| s + l)
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("conv3d: operands must be contiguous");
    };
    Ok(&s.as_slice::<T>()?[a..b])
}

fn dims5(l: &Layout) -> Result<[usize; 5]> {
    let d = l.dims();
    if d.len() != 5 {
        bail!("conv3d: expected a 5D tensor, got {d:?}");
    }
    Ok([d[0], d[1], d[2], d[3], d[4]])
}

/// Which of the three kernels a custom op runs.
#[derive(Clone, Copy)]
enum Pass {
    Forward,
    /// (grad_out, kernel) → grad_in, for input dims.
    InputGrad([usize; 5]),
    /// (x, grad_out) → grad_kernel, for kernel dims.
    KernelGrad([usize; 5]),
}

struct Conv3d {
    pad: usize,
}

struct Conv3dPass {
    pad: usize,
    pass: Pass,
}

impl Conv3dPass {
    fn run<T: WithDType>(
        &self,
        a: &[T],
        la: [usize; 5],
        b: &[T],
        lb: [usize; 5],
    ) -> (Vec<T>, Shape) {
        match self.pass {
            Pass::Forward => {
                let g = Geo::new(la, lb, self.pad);
                let shape = Shape::from((g.n, g.o, g.out[0], g.out[1], g.out[2]));
                (forward(g, a, b), shape)
            }
            Pass::InputGrad(xd) => {
                let g = Geo::new(xd, lb, self.pad);
                (input_grad(g, a, b), Shape::from(xd.to_vec()))
            }
            Pass::KernelGrad(kd) => {
                let g = Geo::new(la, kd, self.pad);
                (kernel_grad(g, a, b), Shape::from(kd.to_vec()))
            }
        }
    }
}

impl CustomOp2 for Conv3dPass {
    fn name(&self) -> &'static str {
        "conv3d-pass"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (d1, d2) = (dims5(l1)?, dims5(l2)?);
        match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let (v, shape) = self.run(slice::<f32>(s1, l1)?, d1, slice::<f32>(s2, l2)?, d2);
                Ok((CpuStorage::F32(v), shape))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let (v, shape) = self.run(slice::<f64>(s1, l1)?, d1, slice::<f64>(s2, l2)?, d2);
                Ok((CpuStorage::F64(v), shape))
            }
            _ => bail!(
                "conv3d: f32 or f64 operands of one type, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        }
    }
}

impl CustomOp2 for Conv3d {
    fn name(&self) -> &'static str {
        "conv3d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Conv3dPass {
            pad: self.pad,
            pass: Pass::Forward,
        }
        .cpu_fwd(s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let xd = dims5(x.layout())?;
        let kd = dims5(kernel.layout())?;
        let gx = grad.apply_op2_no_bwd(
            kernel,
            &Conv3dPass {
                pad: self.pad,
                pass: Pass::InputGrad(xd),
            },
        )?;
        let gk = x.apply_op2_no_bwd(
            &grad,
            &Conv3dPass {
                pad: self.pad,
                pass: Pass::KernelGrad(kd),
            },
        )?;
        Ok((Some(gx), Some(gk)))
    }
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
            let (want, shape) = naive(&xv, xs, &kv, ks, pad);
            for algo in [Algo::Direct, Algo::Im2col] {
                let y = conv3d_with(&x, &k, pad, algo).unwrap();
                assert_eq!(y.dims(), &shape);
                let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-12, "{algo:?} {xs:?} {ks:?}: {err}");
            }
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
        for algo in [Algo::Direct, Algo::Im2col] {
            gradients_match(algo);
        }
    }

    fn gradients_match(algo: Algo) {
        let dev = Device::Cpu;
        let (xs, ks, pad) = ([2usize, 2, 4, 4, 3], [2usize, 2, 3, 3, 3], 1);
        let xv = random(xs.iter().product(), 3);
        let kv = random(ks.iter().product(), 4);
        let x = Var::from_vec(xv.clone(), &xs, &dev).unwrap();
        let k = Var::from_vec(kv.clone(), &ks, &dev).unwrap();
        let out_len = 2 * 2 * 4 * 4 * 3;
        let r = Tensor::from_vec(random(out_len, 5), (2, 2, 4, 4, 3), &dev).unwrap();
        let loss = |x: &Tensor, k: &Tensor| -> f64 {
            (conv3d_with(x, k, pad, algo).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let y = (conv3d_with(x.as_tensor(), k.as_tensor(), pad, algo).unwrap() * &r)
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
                    "{algo:?} {} grad {idx}: autograd {} vs finite difference {fd}",
                    if is_x { "input" } else { "kernel" },
                    grad[idx]
                );
            }
        };
        check(&xv, &xs, &gx, true);
        check(&kv, &ks, &gk, false);
    }
}
