//! A synthetic chest CT phantom made in code: body, lungs, spine, ribs, aorta and a heart with
//! four chambers and myocardium, in Hounsfield-like units. It is the embedded demo and a unit
//! test fixture; it is **not** anatomy from a patient, and never replaces real-data checks.

use glam::{DMat4, DVec3};

use crate::volume::{Grid, Volume, Voxels};

/// Where the phantom's structures are, in LPS mm (for tests and for showing the answer).
#[derive(Clone, Copy, Debug)]
pub struct PhantomTruth {
    /// Centre of the heart ellipsoid.
    pub heart_center_lps_mm: DVec3,
    /// Semi-axes of the heart ellipsoid (mm).
    pub heart_radii_mm: DVec3,
}

/// Build the phantom on a `dims` grid with isotropic `spacing_mm`, axes along L, P, S and the
/// world origin at the volume centre.
pub fn chest_ct(dims: [usize; 3], spacing_mm: f64) -> (Volume, PhantomTruth) {
    let half = DVec3::new(dims[0] as f64, dims[1] as f64, dims[2] as f64) * 0.5 * spacing_mm;
    let world_from_voxel = DMat4::from_translation(-half + DVec3::splat(spacing_mm * 0.5))
        * DMat4::from_scale(DVec3::splat(spacing_mm));
    let grid = Grid::new(dims, world_from_voxel);
    // Heart: anterior (negative y in LPS) and to the patient's left (positive x), tilted.
    let truth = PhantomTruth {
        heart_center_lps_mm: DVec3::new(25.0, -30.0, 0.0),
        heart_radii_mm: DVec3::new(60.0, 45.0, 50.0),
    };
    let mut vals = Vec::with_capacity(grid.voxel_count());
    let mut noise_state = 0x9e37_79b9_7f4a_7c15u64;
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let p = grid.world_from_index(DVec3::new(i as f64, j as f64, k as f64));
                noise_state ^= noise_state << 13;
                noise_state ^= noise_state >> 7;
                noise_state ^= noise_state << 17;
                let noise = (noise_state % 21) as f64 - 10.0;
                vals.push((hu_at(p, &truth) + noise).round() as i16);
            }
        }
    }
    let mut vol = Volume::new(grid, Voxels::I16(vals));
    vol.warnings
        .push("synthetic phantom made in code: not patient data".to_string());
    (vol, truth)
}

fn ellipsoid(p: DVec3, c: DVec3, r: DVec3) -> bool {
    let d = (p - c) / r;
    d.length_squared() <= 1.0
}

fn hu_at(p: DVec3, t: &PhantomTruth) -> f64 {
    let (x, y, z) = (p.x, p.y, p.z);
    // Body: elliptic cylinder along z.
    let body = (x / 160.0).powi(2) + (y / 115.0).powi(2) <= 1.0;
    if !body {
        return -1000.0;
    }
    // Spine: vertebral body behind the heart (posterior = +y).
    if (x / 18.0).powi(2) + ((y - 75.0) / 18.0).powi(2) <= 1.0 {
        return 700.0;
    }
    // Ribs: thin bony rings every 25 mm in z, just inside the body wall.
    let wall = (x / 150.0).powi(2) + (y / 105.0).powi(2);
    if (0.86..=1.0).contains(&wall) && (z.rem_euclid(25.0)) < 6.0 && y > -90.0 {
        return 550.0;
    }
    // Descending aorta beside the spine, ascending aorta above the heart.
    if ((x - 25.0) / 12.0).powi(2) + ((y - 50.0) / 12.0).powi(2) <= 1.0 {
        return 250.0;
    }
    let c = t.heart_center_lps_mm;
    if z > c.z + 20.0 && (x - c.x + 15.0).powi(2) + (y - c.y - 5.0).powi(2) <= 13.0f64.powi(2) {
        return 250.0;
    }
    // Heart: myocardium shell with four blood-filled chambers.
    if ellipsoid(p, c, t.heart_radii_mm) {
        let q = p - c;
        let left = q.x > 0.0;
        let upper = q.z > 5.0;
        let chamber_r = DVec3::new(22.0, 22.0, 18.0);
        let chamber_c = c + DVec3::new(
            if left { 24.0 } else { -22.0 },
            if left { 8.0 } else { -6.0 },
            if upper { 24.0 } else { -14.0 },
        );
        if ellipsoid(p, chamber_c, chamber_r) {
            return 220.0; // contrast-filled blood
        }
        return 60.0; // myocardium
    }
    // Lungs: two ellipsoids either side of the mediastinum.
    for side in [-1.0, 1.0] {
        let lung = DVec3::new(side * 85.0, 10.0, 0.0);
        if ellipsoid(p, lung, DVec3::new(60.0, 85.0, 150.0)) {
            return -850.0;
        }
    }
    // Soft tissue with fat.
    if wall > 0.8 {
        -90.0
    } else {
        35.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_puts_blood_in_the_heart_and_air_outside() {
        let (vol, truth) = chest_ct([64, 64, 48], 6.0);
        assert_eq!(vol.grid.orientation_code(), "LPS");
        let at = |p: DVec3| {
            vol.sample_world(p, crate::volume::Interpolation::Nearest)
                .unwrap()
        };
        let c = truth.heart_center_lps_mm;
        let la = c + DVec3::new(24.0, 8.0, 24.0);
        assert!((at(la) - 220.0).abs() <= 10.0, "{}", at(la));
        assert!((at(DVec3::new(-90.0, 10.0, 0.0)) + 850.0).abs() <= 10.0);
        assert!((at(DVec3::new(185.0, 130.0, 0.0)) + 1000.0).abs() <= 10.0);
    }
}
