//! Preprocessing shared by training and inference: any file is brought to one canonical grid
//! (axes along L, P, S, fixed spacing, fixed size) through its affine, so a flipped or permuted
//! file gives the same network input and the same world answer; intensities are normalised by
//! robust percentiles, which treats HU CT, rescaled 8-bit CT (SegTHOR) and MRI alike (a linear
//! rescaling of the intensities gives the same normalised values).
//!
//! The [`Recipe`] is written as JSON next to each weights file and required by inference.

use glam::{DMat4, DVec3, DVec4};

use crate::volume::{Grid, Interpolation, Volume, Voxels};

/// Which of the two methods a model implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Binary heart mask; centre of mass, box, extent and volume of its largest component.
    Segmentation,
    /// Gaussian heatmap on a landmark; its peak, refined to sub-voxel precision.
    Heatmap,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Segmentation => "segmentation",
            Method::Heatmap => "heatmap",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "segmentation" => Ok(Method::Segmentation),
            "heatmap" => Ok(Method::Heatmap),
            _ => Err(format!("unknown method `{s}` (segmentation or heatmap)")),
        }
    }
}

/// One network grid of the cascade: axes along L, P, S at an isotropic spacing.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// Voxel size (mm).
    pub spacing_mm: f64,
    /// Voxels along L, P, S; each divisible by 2^(levels − 1).
    pub grid: [usize; 3],
    /// Heatmap target width (mm), heatmap method only.
    pub sigma_mm: f64,
}

/// How a model sees its input and what it was taught. Serialised next to the weights and
/// required by inference.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    pub method: Method,
    /// Coarse stage: the whole chest, centred on the scan; finds where to look.
    pub coarse: Stage,
    /// Fine stage: a crop centred on the coarse answer; gives the result.
    pub fine: Stage,
    /// U-Net features per level (both stages).
    pub channels: Vec<usize>,
    /// Intensities are clipped to these percentiles of the whole volume, then scaled to 0..1.
    pub clip_percentiles: [f64; 2],
    /// Probability above which a voxel is heart (segmentation).
    pub threshold: f64,
    /// What the model was taught, e.g. "heart-center: centroid of the expert heart mask".
    pub target: String,
    /// How modalities are handled.
    pub modality: String,
    /// The landmark a heatmap was taught (`None`: the heart centre); its answers are reported
    /// as that landmark's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmark: Option<String>,
    /// Added to the coarse answer (turned with the pose) to centre the fine crop: a landmark
    /// model keeps a heart model's coarse stage and looks this far from the heart (LPS mm, the
    /// mean over its training cases).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub coarse_offset_lps_mm: [f64; 3],
}

fn is_zero(v: &[f64; 3]) -> bool {
    v.iter().all(|&x| x == 0.0)
}

impl Recipe {
    pub fn new(method: Method) -> Self {
        Recipe {
            method,
            coarse: Stage {
                spacing_mm: 12.0,
                grid: [32, 32, 48],
                sigma_mm: 36.0,
            },
            fine: Stage {
                spacing_mm: 4.0,
                grid: [56, 48, 40],
                sigma_mm: 12.0,
            },
            channels: vec![6, 12, 24, 48],
            clip_percentiles: [0.5, 99.5],
            threshold: 0.5,
            target: match method {
                Method::Segmentation => "heart mask: SegTHOR label 2 (whole heart), ACDC labels 1-3 (ventricles)".into(),
                Method::Heatmap => "heart-center: centroid of the expert heart mask".into(),
            },
            modality: "one model for CT and MR; per-volume percentile normalisation (HU, 8-bit scaled CT and MR alike)".into(),
            landmark: None,
            coarse_offset_lps_mm: [0.0; 3],
        }
    }
}

/// Intensity normalisation of one volume: its clip percentiles, mapped to 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalizer {
    pub lo: f32,
    pub hi: f32,
}

impl Normalizer {
    pub fn of(volume: &Volume, clip_percentiles: [f64; 2]) -> Result<Self, String> {
        let [nx, ny, nz] = volume.dims();
        if nx < 2 || ny < 2 || nz < 2 {
            return Err(format!(
                "a 3D volume is needed; this one is {nx}×{ny}×{nz} (a 2D image?)"
            ));
        }
        if let Voxels::F32(v) = &volume.voxels {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "the volume holds NaN or infinite values (first at voxel {i}); refusing to guess"
                ));
            }
        }
        let p = volume.percentiles(&clip_percentiles);
        let (lo, hi) = (p[0], p[1]);
        if !(hi - lo).is_finite() || hi <= lo {
            return Err(format!(
                "intensities are constant between the {}th and {}th percentiles ({lo}); nothing to see",
                clip_percentiles[0], clip_percentiles[1]
            ));
        }
        Ok(Normalizer { lo, hi })
    }

    /// `volume` resampled onto `grid` and normalised; outside the scan is 0.
    pub fn sample(&self, volume: &Volume, grid: &Grid) -> Vec<f32> {
        let resampled = volume.resample(grid, Interpolation::Trilinear, self.lo);
        let scale = 1.0 / (self.hi - self.lo);
        (0..resampled.voxels.len())
            .map(|i| ((resampled.voxels.get(i) - self.lo) * scale).clamp(0.0, 1.0))
            .collect()
    }
}

/// A network input: normalised values on a canonical grid, and where that grid is.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Values in memory order (i fastest), 0..1 inside the scan, 0 outside it.
    pub values: Vec<f32>,
    /// Network voxel → LPS mm.
    pub grid: Grid,
}

/// The canonical grid of `stage` centred on `center_lps` (axes L, P, S).
pub fn network_grid(stage: &Stage, center_lps: DVec3) -> Grid {
    let s = stage.spacing_mm;
    let half = DVec3::new(
        stage.grid[0] as f64 - 1.0,
        stage.grid[1] as f64 - 1.0,
        stage.grid[2] as f64 - 1.0,
    ) * 0.5
        * s;
    let origin = center_lps - half;
    Grid::new(
        stage.grid,
        DMat4::from_cols(
            DVec4::new(s, 0.0, 0.0, 0.0),
            DVec4::new(0.0, s, 0.0, 0.0),
            DVec4::new(0.0, 0.0, s, 0.0),
            origin.extend(1.0),
        ),
    )
}

/// The centre of the scan's world box: where the coarse stage looks.
pub fn scan_center(volume: &Volume) -> DVec3 {
    let (lo, hi) = volume.grid.world_bbox();
    (lo + hi) * 0.5
}

/// `volume` on `stage`'s grid centred on `center_lps`, normalised.
pub fn prepare(volume: &Volume, norm: &Normalizer, stage: &Stage, center_lps: DVec3) -> Prepared {
    let grid = network_grid(stage, center_lps);
    Prepared {
        values: norm.sample(volume, &grid),
        grid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::lps_from_ras;

    /// A volume with a bright blob at `blob_lps`, stored with the given world_from_voxel.
    fn blob_volume(dims: [usize; 3], world_from_voxel: DMat4, blob_lps: DVec3) -> Volume {
        let grid = Grid::new(dims, world_from_voxel);
        let mut vals = Vec::with_capacity(grid.voxel_count());
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let p = grid.world_from_index(DVec3::new(i as f64, j as f64, k as f64));
                    let r2 = (p - blob_lps).length_squared();
                    vals.push((1000.0 * (-r2 / (2.0 * 15.0f64.powi(2))).exp()) as f32);
                }
            }
        }
        Volume::new(grid, Voxels::F32(vals))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }

    #[test]
    fn flipped_and_permuted_files_give_the_same_network_input() {
        let blob = DVec3::new(12.0, -20.0, 8.0);
        let stage = Stage {
            grid: [24, 24, 24],
            spacing_mm: 5.0,
            sigma_mm: 8.0,
        };
        // The same scan stored LPS-straight, and RAS with permuted axes.
        let straight =
            DMat4::from_translation(DVec3::splat(-59.0)) * DMat4::from_scale(DVec3::splat(2.0));
        let a = blob_volume([60, 60, 60], straight, blob);
        let permuted = lps_from_ras()
            * DMat4::from_cols(
                DVec4::Y * 2.0,
                DVec4::Z * 2.0,
                DVec4::X * 2.0,
                DVec4::new(-59.0, -59.0, -59.0, 1.0),
            );
        let b = blob_volume([60, 60, 60], permuted, blob);
        assert_ne!(a.grid.orientation_code(), b.grid.orientation_code());
        let clip = [0.5, 99.5];
        let pa = prepare(
            &a,
            &Normalizer::of(&a, clip).unwrap(),
            &stage,
            scan_center(&a),
        );
        let pb = prepare(
            &b,
            &Normalizer::of(&b, clip).unwrap(),
            &stage,
            scan_center(&b),
        );
        let worst = max_abs_diff(&pa.values, &pb.values);
        assert!(worst < 0.02, "inputs differ by up to {worst}");
        assert!((pa.grid.world_bbox().0 - pb.grid.world_bbox().0).length() < 1e-9);
    }

    #[test]
    fn linear_rescaling_of_intensities_does_not_change_the_input() {
        let m = DMat4::from_scale(DVec3::splat(3.0));
        let a = blob_volume([30, 30, 30], m, DVec3::splat(40.0));
        let mut b = a.clone();
        b.voxels = Voxels::F32(a.voxels.to_f32().iter().map(|v| v * 0.255 - 7.0).collect());
        let stage = Stage {
            grid: [16, 16, 16],
            spacing_mm: 4.0,
            sigma_mm: 8.0,
        };
        let clip = [0.5, 99.5];
        let prep =
            |v: &Volume| prepare(v, &Normalizer::of(v, clip).unwrap(), &stage, scan_center(v));
        let (pa, pb) = (prep(&a), prep(&b));
        let worst = max_abs_diff(&pa.values, &pb.values);
        assert!(worst < 1e-3, "{worst}");
    }

    #[test]
    fn flat_and_2d_inputs_are_refused_clearly() {
        let flat = Volume::new(
            Grid::new([8, 8, 8], DMat4::IDENTITY),
            Voxels::F32(vec![3.0; 512]),
        );
        let clip = [0.5, 99.5];
        assert!(Normalizer::of(&flat, clip)
            .unwrap_err()
            .contains("constant"));
        let img = Volume::new(
            Grid::new([8, 8, 1], DMat4::IDENTITY),
            Voxels::F32(vec![1.0; 64]),
        );
        assert!(Normalizer::of(&img, clip).unwrap_err().contains("2D"));
    }

    #[test]
    fn recipe_round_trips_as_json() {
        let r = Recipe::new(Method::Heatmap);
        let back: Recipe = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
