//! Where a ray first meets an iso level of a volume: placing a landmark on the surface the 3D
//! view shows (a ray pick).

use glam::DVec3;

use super::{Interpolation, Volume};

/// The first point along `ray` (origin, direction; LPS mm) where the volume's trilinear value
/// rises to `level`, inside the voxel box and `within` (an LPS box, e.g. the 3D view's crop):
/// marched at half the smallest voxel spacing, then refined by bisection to a hundredth of a
/// step. `None` when the ray never reaches the level there.
pub fn first_crossing(
    volume: &Volume,
    ray: (DVec3, DVec3),
    level: f64,
    within: Option<(DVec3, DVec3)>,
) -> Option<DVec3> {
    let (origin, dir) = ray;
    let dir = dir.try_normalize()?;
    // Enter and leave the voxel box in index space (the ray is a line there too).
    let voxel_from_world = volume.voxel_from_world();
    let (o, d) = (
        voxel_from_world.transform_point3(origin),
        voxel_from_world.transform_vector3(dir),
    );
    let hi = volume.dims().map(|n| n as f64 - 0.5);
    let (mut t0, mut t1) = ray_box(o, d, DVec3::splat(-0.5), DVec3::from_array(hi))?;
    if let Some((lo, hi)) = within {
        let (a, b) = ray_box(origin, dir, lo, hi)?;
        (t0, t1) = (t0.max(a), t1.min(b));
    }
    let step = 0.5
        * volume
            .spacing_mm()
            .into_iter()
            .fold(f64::INFINITY, f64::min);
    if !(step > 0.0 && t0 <= t1) {
        return None;
    }
    let value = |t: f64| {
        volume
            .sample_world(origin + dir * t, Interpolation::Trilinear)
            .map_or(f64::NEG_INFINITY, f64::from)
    };
    let mut t = t0.max(0.0);
    if value(t) >= level {
        return Some(origin + dir * t);
    }
    while t < t1 {
        let next = (t + step).min(t1);
        if value(next) >= level {
            let (mut below, mut above) = (t, next);
            while above - below > 0.01 * step {
                let mid = 0.5 * (below + above);
                if value(mid) >= level {
                    above = mid;
                } else {
                    below = mid;
                }
            }
            return Some(origin + dir * above);
        }
        t = next;
    }
    None
}

/// The ray parameters where `o + t·d` is inside the box `lo..hi` (slab method; the whole
/// line, behind `o` too), or `None` where it misses the box.
pub fn ray_box(o: DVec3, d: DVec3, lo: DVec3, hi: DVec3) -> Option<(f64, f64)> {
    let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
    for a in 0..3 {
        if d[a].abs() < 1e-12 {
            if o[a] < lo[a] || o[a] > hi[a] {
                return None;
            }
            continue;
        }
        let (ta, tb) = ((lo[a] - o[a]) / d[a], (hi[a] - o[a]) / d[a]);
        t0 = t0.max(ta.min(tb));
        t1 = t1.min(ta.max(tb));
    }
    (t0 <= t1).then_some((t0, t1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Grid, Voxels};
    use glam::DMat4;

    /// A 40 mm ball of 100 in a 2 mm grid centred at (10, -20, 30) LPS, 0 around it.
    fn ball() -> (Volume, DVec3) {
        let centre = DVec3::new(10.0, -20.0, 30.0);
        let dims = [50, 50, 50];
        let grid = Grid::new(
            dims,
            DMat4::from_translation(centre - DVec3::splat(49.0))
                * DMat4::from_scale(DVec3::splat(2.0)),
        );
        let v = (0..50 * 50 * 50)
            .map(|idx| {
                let p = grid.world_from_flat(idx);
                if p.distance(centre) <= 20.0 {
                    100.0
                } else {
                    0.0
                }
            })
            .collect();
        (Volume::new(grid, Voxels::F32(v)), centre)
    }

    #[test]
    fn a_ray_meets_the_ball_on_its_near_surface() {
        let (vol, c) = ball();
        // From 200 mm anterior, looking posterior (+y): the surface 20 mm anterior of the centre.
        let hit = first_crossing(&vol, (c - DVec3::Y * 200.0, DVec3::Y), 50.0, None).unwrap();
        assert!((hit - (c - DVec3::Y * 20.0)).length() < 1.0, "{hit}");
        // An oblique ray off the centre line still lands on the sphere.
        let from = c + DVec3::new(-150.0, -100.0, 60.0);
        let aim = c + DVec3::new(5.0, 0.0, -3.0);
        let hit = first_crossing(&vol, (from, aim - from), 50.0, None).unwrap();
        assert!((hit.distance(c) - 20.0).abs() < 1.0, "{}", hit.distance(c));
        // Missing the ball, or a level above every value: nothing.
        let by = first_crossing(
            &vol,
            (c + DVec3::X * 30.0 - DVec3::Y * 200.0, DVec3::Y),
            50.0,
            None,
        );
        assert!(by.is_none());
        assert!(first_crossing(&vol, (c - DVec3::Y * 200.0, DVec3::Y), 150.0, None).is_none());
        // A crop box that starts behind the centre: the ray enters there, already inside.
        let lo = c - DVec3::new(50.0, 5.0, 50.0);
        let hit = first_crossing(
            &vol,
            (c - DVec3::Y * 200.0, DVec3::Y),
            50.0,
            Some((lo, c + 50.0)),
        );
        assert!((hit.unwrap().y - lo.y).abs() < 1e-6);
    }
}
