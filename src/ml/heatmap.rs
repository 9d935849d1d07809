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

/// Centroid (voxel index) of the 6-connected region around `start` where the heat is at least
/// `floor`, each voxel weighted by how far it rises above the floor.
fn centroid_above(dims: [usize; 3], heat: &[f32], start: usize, floor: f32) -> Option<DVec3> {
    let mut seen = vec![false; heat.len()];
    let mut stack = vec![start];
    seen[start] = true;
    let (mut sum, mut weight) = (DVec3::ZERO, 0.0);
    while let Some(i) = stack.pop() {
        let w = f64::from(heat[i] - floor);
        sum += DVec3::from_array(ijk_of(dims, i).map(|v| v as f64)) * w;
        weight += w;
        for j in face_neighbours(dims, i) {
            if !seen[j] && heat[j] >= floor {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

/// A decoded peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub center_lps: DVec3,
    /// The peak height (1.0 for a perfect target).
    pub confidence: f32,
}

/// The heatmap's peak, refined to sub-voxel precision as the centroid of the connected region
/// above half the maximum, weighted by the height above that half. For a Gaussian this is its
/// centre; for a flat-topped or lopsided map it is the middle of the mass rather than whichever
/// voxel happens to be highest. `None` when the map is empty or not finite.
pub fn decode_peak(grid: &Grid, heat: &[f32]) -> Option<Peak> {
    if heat.len() != grid.voxel_count() || heat.is_empty() {
        return None;
    }
    let (best, &value) = heat
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let centre = if value > 0.0 {
        centroid_above(grid.dims, heat, best, value * 0.5)?
    } else {
        DVec3::from_array(ijk_of(grid.dims, best).map(|v| v as f64))
    };
    Some(Peak {
        center_lps: grid.world_from_index(centre),
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
