//! Benchmark: both methods on a 512×512×300 int16 CT (synthetic phantom, file loading
//! excluded), with the breakdown per step (normalise, resample, network, post), and with the
//! shared data also on a real SegTHOR CT and ACDC MR. Side by side, per layer shape of both
//! networks: the 3D convolution the networks use, its two algorithms alone (direct loops,
//! im2col + gemm) and a baseline built from candle's conv2d over depth-shifted slabs. And the
//! cost of the pose search: `locate_all` on the demo CT as stored and turned 90°.
//!
//! Run: `cargo bench --bench locate`

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use heartloc::ml::conv3d::{conv3d, conv3d_with, Algo, IM2COL_MAX_VOXELS};
use heartloc::ml::model::Model;
use heartloc::ml::preprocess::{Method, Normalizer};
use heartloc::stats::median;
use heartloc::volume::Volume;

const RUNS: usize = 5;

/// Baseline: conv3d as a sum over kernel depth of conv2d calls (depth folded into the batch).
fn conv3d_via_conv2d(x: &Tensor, k: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    let (o, _, kd, _, _) = k.dims5()?;
    let d_out = d + 2 * pad - kd + 1;
    let padded = x.pad_with_zeros(2, pad, pad)?;
    let mut sum: Option<Tensor> = None;
    for z in 0..kd {
        let slab = padded
            .narrow(2, z, d_out)?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((n * d_out, c, h, w))?;
        let y = slab.conv2d(&k.narrow(2, z, 1)?.squeeze(2)?.contiguous()?, pad, 1, 1, 1)?;
        sum = Some(match sum {
            None => y,
            Some(s) => (s + y)?,
        });
    }
    let y = sum.expect("kernel depth > 0");
    let (_, _, ho, wo) = y.dims4()?;
    y.reshape((n, d_out, o, ho, wo))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()
}

fn time_conv(
    f: impl Fn(&Tensor, &Tensor, usize) -> candle_core::Result<Tensor>,
    x: &Var,
    k: &Var,
) -> (f64, f64) {
    let (mut fwd, mut both) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let y = f(x.as_tensor(), k.as_tensor(), 1).unwrap();
        fwd.push(t.elapsed().as_secs_f64());
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(k.as_tensor()).is_some());
        both.push(t.elapsed().as_secs_f64());
    }
    (median(&fwd), median(&both))
}

fn bench_volume(label: &str, volume: &Volume, models: &[Model]) {
    let (mut total, mut per) = (Vec::new(), vec![Vec::new(); models.len()]);
    let mut breakdown = vec![[0.0f64; 4]; models.len()];
    let mut norm_s = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let norm = Normalizer::of(volume, models[0].recipe.clip_percentiles).unwrap();
        norm_s.push(t.elapsed().as_secs_f64());
        for (i, m) in models.iter().enumerate() {
            let f = m.locate(volume, Some(norm)).unwrap();
            per[i].push(f.timing.total());
            breakdown[i][0] += f.timing.resample / RUNS as f64;
            breakdown[i][1] += f.timing.network / RUNS as f64;
            breakdown[i][2] += f.timing.post / RUNS as f64;
            breakdown[i][3] += f.center_lps.length() / RUNS as f64;
        }
        total.push(t.elapsed().as_secs_f64());
    }
    println!("\n{label}: {:?} voxels", volume.dims());
    println!(
        "  both methods, one shared normalisation: {:.3} s (median of {RUNS}; goal ≤ 1 s)",
        median(&total)
    );
    println!(
        "  normalise (percentiles):              {:.3} s",
        median(&norm_s)
    );
    for (i, m) in models.iter().enumerate() {
        println!(
            "  {:<12}: {:.3} s  = resample {:.3} + network {:.3} + post {:.3}",
            m.recipe.method.name(),
            median(&per[i].clone()),
            breakdown[i][0],
            breakdown[i][1],
            breakdown[i][2]
        );
    }
}

/// `locate_all` on the demo CT as stored (no search) and turned 90° by its affine (the methods
/// disagree, so the pose search runs): what a doubted scan costs.
fn bench_pose_search(models: &[Model]) {
    use heartloc::ml::perturb::{Perturbation, Scene};
    use heartloc::ml::pose::Step;
    let volume = heartloc::io::demo::chest_ct().unwrap();
    let dims = volume.dims();
    let scene = Scene {
        volume,
        truth: None,
        center_lps: None,
    };
    let turned = scene
        .perturbed(Perturbation::Rotate { degrees: 90.0 }, 1)
        .volume;
    println!("\npose search, demo CT {dims:?} (locate_all, both methods, median of {RUNS}):");
    for (label, v) in [("as stored", &scene.volume), ("turned 90°", &turned)] {
        let mut times = Vec::new();
        let mut searched = false;
        for _ in 0..RUNS {
            let t = Instant::now();
            let found = heartloc::ml::model::locate_all(models, v, |s| {
                searched |= s == Step::PoseSearch;
                true
            })
            .unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert!(found.iter().all(|f| f.is_ok()));
        }
        println!(
            "  {label:<11} {:.3} s ({})",
            median(&times),
            if searched {
                "pose searched"
            } else {
                "no search"
            }
        );
    }
}

fn main() {
    let threads = candle_core::utils::get_num_threads();
    println!("heartloc locate benchmark ({threads} threads)");
    let models = [
        Model::shipped(Method::Segmentation).unwrap(),
        Model::shipped(Method::Heatmap).unwrap(),
    ];
    let t = Instant::now();
    let (ct, _) = heartloc::phantom::chest_ct([512, 512, 300], 0.9);
    println!(
        "(phantom made in {:.1} s, not counted)",
        t.elapsed().as_secs_f64()
    );
    bench_volume("synthetic CT 512×512×300 int16", &ct, &models);
    drop(ct);
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    for case in ["ct-segthor/Patient_03", "mri-acdc/patient001_ED"] {
        let path = data.join(case).join("image.nii.gz");
        match heartloc::io::nifti::read(&path) {
            Ok(v) => bench_volume(case, &v, &models),
            Err(_) => println!("\nSKIP {case}: ../shared/data is absent"),
        }
    }

    bench_pose_search(&models);

    println!(
        "\n3D convolution per layer of the networks, 3×3×3, fwd+bwd ms (fwd alone for the used one):"
    );
    println!("  used = im2col + gemm up to {IM2COL_MAX_VOXELS} output voxels, direct loops above; baseline = conv2d over depth slabs");
    println!(
        "  {:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "layer", "used fwd", "used", "direct", "im2col", "baseline", "base/used"
    );
    let dev = Device::Cpu;
    let ch = &models[0].recipe.channels;
    let mut totals = [0.0; 4];
    for (stage, grid) in [
        ("fine", models[0].recipe.fine.grid),
        ("coarse", models[0].recipe.coarse.grid),
    ] {
        let [gx, gy, gz] = grid;
        // Each level's encoder and decoder convolutions (channels in → out).
        let mut layers = Vec::new();
        let mut prev = 1;
        for (l, &c) in ch.iter().enumerate() {
            layers.push((prev, c, 1 << l));
            layers.push((c, c, 1 << l));
            if l + 1 < ch.len() {
                layers.push((c + ch[l + 1], c, 1 << l));
            }
            prev = c;
        }
        for (c, o, f) in layers {
            let x = Var::from_tensor(
                &Tensor::rand(0f32, 1.0, (1, c, gz / f, gy / f, gx / f), &dev).unwrap(),
            )
            .unwrap();
            let k = Var::from_tensor(&Tensor::rand(-0.1f32, 0.1, (o, c, 3, 3, 3), &dev).unwrap())
                .unwrap();
            let (uf, ub) = time_conv(conv3d, &x, &k);
            let (_, db) = time_conv(|x, k, p| conv3d_with(x, k, p, Algo::Direct), &x, &k);
            let (_, ib) = time_conv(|x, k, p| conv3d_with(x, k, p, Algo::Im2col), &x, &k);
            let (_, bb) = time_conv(conv3d_via_conv2d, &x, &k);
            for (t, v) in totals.iter_mut().zip([ub, db, ib, bb]) {
                *t += v;
            }
            println!(
                "  {:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.2}x",
                format!("{stage} {c}→{o} at {}×{}×{}", gx / f, gy / f, gz / f),
                uf * 1e3,
                ub * 1e3,
                db * 1e3,
                ib * 1e3,
                bb * 1e3,
                bb / ub
            );
        }
    }
    println!(
        "  {:<26} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.2}x",
        "all layers (one step)",
        "",
        totals[0] * 1e3,
        totals[1] * 1e3,
        totals[2] * 1e3,
        totals[3] * 1e3,
        totals[3] / totals[0]
    );
    println!(
        "  used vs direct alone: {:.2}x, vs im2col alone: {:.2}x",
        totals[1] / totals[0],
        totals[2] / totals[0]
    );
}
