//! Short-axis cine MR stored as if it were axial (ACDC: the headers carry no scanner
//! orientation) put into the pose a correctly headed scan has, from its ventricle labels.
//!
//! What is known about such a stack: its slices are short-axis planes, so the left ventricle's
//! long axis is their normal; its images are shown as cardiologists read them — columns to the
//! right, rows down, looked at from the apex, the right ventricle on the left. That view fixes
//! the anatomy's handedness in the voxel frame: column × row points from the apex toward the
//! base. Where the stored affine says otherwise, the stored world is a mirror image of the
//! patient and is mirrored back first. The labels then give the long axis's direction (the
//! apex is the far end from the LV's centroid: a cone's centroid lies near its base) and the
//! right ventricle's side, and one rotation about the heart centre takes both where they lie
//! in a typical chest: the long axis from base to apex toward the left, anterior and inferior
//! (about 45° left of the sagittal plane, 55° from the body's long axis), the right ventricle
//! anterior and to the right of the left.

use glam::{DMat3, DMat4, DVec3};

use crate::volume::{about_point, ijk_of, Volume};

/// Which label values are the right and the left ventricle (cavity and myocardium).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ventricles {
    pub right: Vec<u32>,
    pub left: Vec<u32>,
}

impl Ventricles {
    /// From a manifest's `labels` column, e.g. "1=right-ventricle-cavity
    /// 2=left-ventricle-myocardium 3=left-ventricle-cavity"; `None` without both ventricles.
    pub fn from_label_names(column: &str) -> Option<Ventricles> {
        let (mut right, mut left) = (Vec::new(), Vec::new());
        for item in column.split_whitespace() {
            let Some((value, name)) = item.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse::<u32>() else {
                continue;
            };
            if name.starts_with("right-ventricle") {
                right.push(value);
            } else if name.starts_with("left-ventricle") {
                left.push(value);
            }
        }
        (!right.is_empty() && !left.is_empty()).then_some(Ventricles { right, left })
    }
}

/// Where the left ventricle's long axis points, base to apex, in a typical chest (LPS).
pub fn body_long_axis() -> DVec3 {
    DVec3::new(0.58, -0.58, -0.57).normalize()
}

/// The side the right ventricle lies on, seen from the left ventricle (LPS: right, anterior).
fn body_right_ventricle_side() -> DVec3 {
    DVec3::new(-1.0, -1.0, 0.0).normalize()
}

/// The left ventricle's long axis (unit, base to apex) and the right ventricle's side (unit,
/// perpendicular to it) in the world of `labels`, and the LV centroid.
#[derive(Clone, Copy, Debug)]
pub struct HeartAxes {
    pub long_axis: DVec3,
    pub right_ventricle_side: DVec3,
    pub left_centroid: DVec3,
    pub right_centroid: DVec3,
}

/// The ventricles' axes in `labels`' world; `None` when a ventricle is missing. The long axis
/// is taken along `normal` (the slices' normal) and signed toward the apex.
pub fn heart_axes(labels: &Volume, v: &Ventricles, normal: DVec3) -> Option<HeartAxes> {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for idx in 0..labels.voxels.len() {
        let value = labels.voxels.get(idx);
        if value < 0.5 {
            continue;
        }
        let value = value.round() as u32;
        let ijk = DVec3::from_array(ijk_of(labels.dims(), idx).map(|c| c as f64));
        if v.left.contains(&value) {
            left.push(labels.grid.world_from_index(ijk));
        } else if v.right.contains(&value) {
            right.push(labels.grid.world_from_index(ijk));
        }
    }
    let mean = |p: &[DVec3]| p.iter().sum::<DVec3>() / p.len() as f64;
    if left.is_empty() || right.is_empty() {
        return None;
    }
    let (lc, rc) = (mean(&left), mean(&right));
    let along = |p: &DVec3| (*p - lc).dot(normal);
    let far_plus = left.iter().map(along).fold(f64::MIN, f64::max);
    let far_minus = -left.iter().map(along).fold(f64::MAX, f64::min);
    let long_axis = if far_plus >= far_minus {
        normal
    } else {
        -normal
    };
    let side = rc - lc;
    let side = (side - long_axis * side.dot(long_axis)).try_normalize()?;
    Some(HeartAxes {
        long_axis,
        right_ventricle_side: side,
        left_centroid: lc,
        right_centroid: rc,
    })
}

/// `body_from_stored`: the world transform (a rotation about `pivot`, after a mirror where the
/// stored world is a mirror image) that puts a short-axis stack's heart into a typical chest's
/// pose. Apply it to the image's and the labels' `world_from_voxel` alike; `pivot` (the heart
/// centre) stays where it is. `None` when the labels lack a ventricle.
pub fn body_from_stored(labels: &Volume, v: &Ventricles, pivot: DVec3) -> Option<DMat4> {
    let [col, row, slice] = labels.grid.directions();
    let normal = slice.try_normalize()?;
    let axes = heart_axes(labels, v, normal)?;
    // Seen from the apex with columns right and rows down, column × row points to the base.
    let mirrored = col.cross(row).dot(axes.long_axis) > 0.0;
    let mirror = if mirrored {
        // A reflection along the long axis, about the pivot: the apex side swaps, so the
        // axis flips and the right ventricle's side stays.
        DMat4::from_mat3(reflection_along(axes.long_axis))
    } else {
        DMat4::IDENTITY
    };
    let long_axis = mirror.transform_vector3(axes.long_axis);
    let side = mirror.transform_vector3(axes.right_ventricle_side);
    let frame = |d: DVec3, r: DVec3| DMat3::from_cols(d, r, d.cross(r));
    let body_d = body_long_axis();
    let body_r = {
        let r = body_right_ventricle_side();
        (r - body_d * r.dot(body_d)).normalize()
    };
    let rotation = frame(body_d, body_r) * frame(long_axis, side).transpose();
    Some(about_point(pivot, DMat4::from_mat3(rotation) * mirror))
}

/// The reflection that reverses the unit vector `n` and keeps the plane perpendicular to it.
pub fn reflection_along(n: DVec3) -> DMat3 {
    DMat3::IDENTITY - 2.0 * DMat3::from_cols(n * n.x, n * n.y, n * n.z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Grid, Voxels};

    /// A stack stored as ACDC stores it (columns +x, rows +y, slices +z in LPS, right-handed):
    /// a cone of LV (label 3) from its base at slice 1 to its apex at slice 8, an RV blob
    /// (label 1) at lower columns, i.e. on the screen's left.
    fn acdc_like() -> Volume {
        let dims = [40, 40, 10];
        let grid = Grid::new(dims, DMat4::from_scale(DVec3::new(2.0, 2.0, 8.0)));
        let mut v = vec![0u8; 40 * 40 * 10];
        for k in 1..9 {
            let radius = 8.0 * (9 - k) as f64 / 8.0;
            for j in 0..40 {
                for i in 0..40 {
                    let (x, y) = (i as f64 - 22.0, j as f64 - 20.0);
                    let idx = i + 40 * (j + 40 * k);
                    if x * x + y * y <= radius * radius {
                        v[idx] = 3;
                    } else if k < 6 && (x + 11.0).powi(2) + y * y <= 16.0 {
                        v[idx] = 1;
                    }
                }
            }
        }
        Volume::new(grid, Voxels::U8(v))
    }

    #[test]
    fn label_names_give_the_ventricles() {
        let v = Ventricles::from_label_names(
            "1=right-ventricle-cavity 2=left-ventricle-myocardium 3=left-ventricle-cavity",
        )
        .unwrap();
        assert_eq!(v.right, vec![1]);
        assert_eq!(v.left, vec![2, 3]);
        assert!(Ventricles::from_label_names("1=esophagus 2=heart").is_none());
    }

    #[test]
    fn a_stored_short_axis_stack_is_mirrored_and_turned_into_a_body_pose() {
        let labels = acdc_like();
        let v = Ventricles {
            right: vec![1],
            left: vec![3],
        };
        let stored = heart_axes(&labels, &v, DVec3::Z).unwrap();
        // The apex is at the high slices, the RV at low columns.
        assert!(stored.long_axis.z > 0.99, "{:?}", stored.long_axis);
        assert!(stored.right_ventricle_side.x < -0.99);
        let pivot = DVec3::new(44.0, 40.0, 30.0);
        let m = body_from_stored(&labels, &v, pivot).unwrap();
        // ACDC's stored world is a mirror image (column × row points to the apex).
        assert!(DMat3::from_mat4(m).determinant() < 0.0);
        assert!(m.transform_point3(pivot).distance(pivot) < 1e-9);
        let mut posed = labels.clone();
        posed.grid.world_from_voxel = m * posed.grid.world_from_voxel;
        let [_, _, slice] = posed.grid.directions();
        let body = heart_axes(&posed, &v, slice.normalize()).unwrap();
        assert!(body.long_axis.distance(body_long_axis()) < 1e-9);
        // Apex toward the left, anterior and inferior; the LV left of the RV; the RV anterior.
        assert!(body.long_axis.x > 0.0 && body.long_axis.y < 0.0 && body.long_axis.z < 0.0);
        assert!(body.left_centroid.x > body.right_centroid.x);
        assert!(body.right_centroid.y < body.left_centroid.y);
        // Seen from the apex the columns now run right of the rows, as in the stored view.
        let [col, row, _] = posed.grid.directions();
        assert!(col.cross(row).dot(body.long_axis) < 0.0);
    }
}
