//! Heatmap targets and their decoding: a Gaussian (sigma in mm) centred on a landmark in world
//! space, drawn on a network grid; and the inverse, the landmark read back from a predicted
//! heatmap's peak with sub-voxel refinement and a confidence.

use glam::DVec3;

use crate::volume::{face_neighbours, ijk_of, Grid};

/// A Gaussian of peak 1 at `center_lps` with `sigma_mm`, on `grid` (memory order).
pub fn gaussian_target(grid: &Grid, center_lps: DVec3, sigma_mm: f64) -> Vec<f32> {
    let [nx, ny, nz] = grid.dims;
    let inv = 1.0 / (2.0 * sigma_mm * sigma_mm);
    let mut out = Vec::with_capacity(grid.voxel_count());
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = grid.world_from_index(DVec3::new(i as f64, j as f64, k as f64));
                out.push((-(p - center_lps).length_squared() * inv).exp() as f32);
            }
        }
    }
    out
}

/// Peak heights from here up are treated as a plateau.
const SATURATED: f32 = 0.995;

/// Centroid (voxel index) of the 6-connected region of values ≥ `floor` around `start`.
fn plateau_centroid(dims: [usize; 3], heat: &[f32], start: usize, floor: f32) -> Option<DVec3> {
    let mut seen = vec![false; heat.len()];
    let mut stack = vec![start];
    seen[start] = true;
    let (mut sum, mut n) = (DVec3::ZERO, 0.0);
    while let Some(i) = stack.pop() {
        sum += DVec3::from_array(ijk_of(dims, i).map(|v| v as f64));
        n += 1.0;
        for j in face_neighbours(dims, i) {
            if !seen[j] && heat[j] >= floor {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    (n > 0.0).then(|| sum / n)
}

/// A decoded peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub center_lps: DVec3,
    /// The peak height (1.0 for a perfect target).
    pub confidence: f32,
}

/// The heatmap's maximum, refined to sub-voxel precision by a separable quadratic fit through
/// the peak and its neighbours along each axis (for a Gaussian sampled on a grid this is exact
/// to a few hundredths of a voxel). `None` when the map is empty or not finite.
pub fn decode_peak(grid: &Grid, heat: &[f32]) -> Option<Peak> {
    let [nx, ny, nz] = grid.dims;
    if heat.len() != nx * ny * nz || heat.is_empty() {
        return None;
    }
    let (best, &value) = heat
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let idx = ijk_of(grid.dims, best);
    if value >= SATURATED {
        // A flat top (the sigmoid saturates): the argmax is just the plateau's first voxel, so
        // take the centroid of the plateau instead.
        let centre = plateau_centroid(grid.dims, heat, best, value * 0.999)?;
        return Some(Peak {
            center_lps: grid.world_from_index(centre),
            confidence: value,
        });
    }
    let at = |i: usize, j: usize, k: usize| f64::from(heat[i + nx * (j + ny * k)]).max(1e-12);
    let mut sub = [0.0f64; 3];
    for axis in 0..3 {
        let c = idx[axis];
        let n = grid.dims[axis];
        if c == 0 || c + 1 >= n {
            continue;
        }
        let mut lo = idx;
        let mut hi = idx;
        lo[axis] -= 1;
        hi[axis] += 1;
        // Fit in log space: a Gaussian is a parabola there.
        let (a, b, d) = (
            at(lo[0], lo[1], lo[2]).ln(),
            at(idx[0], idx[1], idx[2]).ln(),
            at(hi[0], hi[1], hi[2]).ln(),
        );
        let denom = a - 2.0 * b + d;
        if denom < -1e-12 {
            sub[axis] = (0.5 * (a - d) / denom).clamp(-0.5, 0.5);
        }
    }
    let ijk = DVec3::new(
        idx[0] as f64 + sub[0],
        idx[1] as f64 + sub[1],
        idx[2] as f64 + sub[2],
    );
    Some(Peak {
        center_lps: grid.world_from_index(ijk),
        confidence: value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::preprocess::{network_grid, Method, Recipe, Stage};

    #[test]
    fn known_gaussians_decode_to_their_centres_within_a_tenth_of_a_voxel() {
        let stage = Stage {
            grid: [32, 28, 30],
            spacing_mm: 4.0,
            sigma_mm: 8.0,
        };
        let grid = network_grid(&stage, DVec3::new(10.0, -5.0, 3.0));
        for (centre, sigma) in [
            (DVec3::new(11.3, -7.9, 4.4), 8.0),
            (DVec3::new(-20.0, 12.7, -15.1), 12.0),
            (DVec3::new(35.5, 30.2, 40.9), 6.0),
        ] {
            let heat = gaussian_target(&grid, centre, sigma);
            let peak = decode_peak(&grid, &heat).unwrap();
            let err = peak.center_lps.distance(centre);
            assert!(
                err < 0.4,
                "decoded {} for {centre}: {err:.3} mm",
                peak.center_lps
            );
            assert!(peak.confidence > 0.9);
        }
    }

    #[test]
    fn a_saturated_plateau_decodes_to_its_centre() {
        let stage = Stage {
            grid: [20, 20, 20],
            spacing_mm: 4.0,
            sigma_mm: 8.0,
        };
        let grid = network_grid(&stage, DVec3::ZERO);
        let centre = DVec3::new(6.0, -4.0, 2.0);
        let heat: Vec<f32> = gaussian_target(&grid, centre, 20.0)
            .iter()
            .map(|v| (v * 3.0).min(1.0))
            .collect();
        let peak = decode_peak(&grid, &heat).unwrap();
        assert!(
            peak.center_lps.distance(centre) < 2.0,
            "{}",
            peak.center_lps
        );
    }

    #[test]
    fn empty_or_broken_maps_decode_to_nothing() {
        let grid = network_grid(&Recipe::new(Method::Heatmap).fine, DVec3::ZERO);
        assert!(decode_peak(&grid, &[]).is_none());
        assert!(decode_peak(&grid, &vec![f32::NAN; grid.voxel_count()]).is_none());
        assert!(decode_peak(&grid, &[0.0; 10]).is_none());
    }
}
