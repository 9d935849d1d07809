//! Preprocessing shared by training and inference: any file is brought to one canonical grid
//! (axes along L, P, S, fixed spacing, fixed size) through its affine, so a flipped or permuted
//! file gives the same network input and the same world answer; intensities are normalised by
//! robust percentiles, which treats HU CT, rescaled 8-bit CT (SegTHOR) and MRI alike (a linear
//! rescaling of the intensities gives the same normalised values).
//!
//! The [`Recipe`] is written as JSON next to each weights file and required by inference.

use glam::{DMat4, DVec3, DVec4};

use crate::volume::{Grid, Interpolation, Volume};

/// How a model sees its input. Serialised next to the weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    /// Isotropic voxel size of the network grid (mm).
    pub spacing_mm: f64,
    /// Network grid size (voxels along L, P, S).
    pub grid: [usize; 3],
    /// Intensities are clipped to these percentiles, then scaled to 0..1.
    pub clip_percentiles: [f64; 2],
    /// Heatmap target width (mm); used by the heatmap method.
    pub sigma_mm: f64,
    /// What the target is, e.g. "heart-center: centroid of the expert heart mask".
    pub target: String,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            spacing_mm: 4.0,
            grid: [64, 64, 64],
            clip_percentiles: [0.5, 99.5],
            sigma_mm: 12.0,
            target: "heart-center: centroid of the expert heart mask".into(),
        }
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

/// The canonical network grid centred on `center_lps` (axes L, P, S; recipe spacing and size).
pub fn network_grid(recipe: &Recipe, center_lps: DVec3) -> Grid {
    let s = recipe.spacing_mm;
    let half = DVec3::new(
        recipe.grid[0] as f64 - 1.0,
        recipe.grid[1] as f64 - 1.0,
        recipe.grid[2] as f64 - 1.0,
    ) * 0.5
        * s;
    let origin = center_lps - half;
    Grid::new(
        recipe.grid,
        DMat4::from_cols(
            DVec4::new(s, 0.0, 0.0, 0.0),
            DVec4::new(0.0, s, 0.0, 0.0),
            DVec4::new(0.0, 0.0, s, 0.0),
            origin.extend(1.0),
        ),
    )
}

/// Resample `volume` onto the network grid centred on the scan's centre, normalised.
pub fn prepare(volume: &Volume, recipe: &Recipe) -> Result<Prepared, String> {
    let [nx, ny, nz] = volume.dims();
    if nx < 2 || ny < 2 || nz < 2 {
        return Err(format!(
            "a 3D volume is needed; this one is {nx}×{ny}×{nz} (a 2D image?)"
        ));
    }
    let (lo, hi) = volume.grid.world_bbox();
    let grid = network_grid(recipe, (lo + hi) * 0.5);
    let p = volume.percentiles(&recipe.clip_percentiles);
    let (p_lo, p_hi) = (p[0], p[1]);
    if !(p_hi - p_lo).is_finite() || p_hi <= p_lo {
        return Err(format!(
            "intensities are constant between the {}th and {}th percentiles ({p_lo}); nothing to see",
            recipe.clip_percentiles[0], recipe.clip_percentiles[1]
        ));
    }
    // Outside the scan is "nothing": the value of the lowest percentile, i.e. 0 after scaling.
    let resampled = volume.resample(&grid, Interpolation::Trilinear, p_lo);
    let scale = 1.0 / (p_hi - p_lo);
    let values = (0..resampled.voxels.len())
        .map(|i| ((resampled.voxels.get(i) - p_lo) * scale).clamp(0.0, 1.0))
        .collect();
    Ok(Prepared { values, grid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{lps_from_ras, Voxels};

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

    #[test]
    fn flipped_and_permuted_files_give_the_same_network_input() {
        let blob = DVec3::new(12.0, -20.0, 8.0);
        let recipe = Recipe {
            grid: [24, 24, 24],
            spacing_mm: 5.0,
            ..Default::default()
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
        let pa = prepare(&a, &recipe).unwrap();
        let pb = prepare(&b, &recipe).unwrap();
        let worst = pa
            .values
            .iter()
            .zip(&pb.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.02, "inputs differ by up to {worst}");
        assert!((pa.grid.world_bbox().0 - pb.grid.world_bbox().0).length() < 1e-9);
    }

    #[test]
    fn linear_rescaling_of_intensities_does_not_change_the_input() {
        let m = DMat4::from_scale(DVec3::splat(3.0));
        let a = blob_volume([30, 30, 30], m, DVec3::splat(40.0));
        let mut b = a.clone();
        b.voxels = Voxels::F32(a.voxels.to_f32().iter().map(|v| v * 0.255 - 7.0).collect());
        let r = Recipe {
            grid: [16, 16, 16],
            ..Default::default()
        };
        let (pa, pb) = (prepare(&a, &r).unwrap(), prepare(&b, &r).unwrap());
        let worst = pa
            .values
            .iter()
            .zip(&pb.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{worst}");
    }

    #[test]
    fn flat_and_2d_inputs_are_refused_clearly() {
        let flat = Volume::new(
            Grid::new([8, 8, 8], DMat4::IDENTITY),
            Voxels::F32(vec![3.0; 512]),
        );
        assert!(prepare(&flat, &Recipe::default())
            .unwrap_err()
            .contains("constant"));
        let img = Volume::new(
            Grid::new([8, 8, 1], DMat4::IDENTITY),
            Voxels::F32(vec![1.0; 64]),
        );
        assert!(prepare(&img, &Recipe::default())
            .unwrap_err()
            .contains("2D"));
    }

    #[test]
    fn recipe_round_trips_as_json() {
        let r = Recipe::default();
        let back: Recipe = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
