//! Whether a result may be wrong, and where the heart leaves the scan. A result carries its
//! doubts (each a reason in words); none means reliable. The limits were chosen on turned and
//! mirrored training cases (`heartloc-dev pose-dump`: the most failures flagged with at most
//! 5 % of good answers flagged) and measured on held-out ones (`heartloc eval --perturb`, see
//! the model card): they catch some failures, not most; an answer that both methods agree on
//! in a wrong pose is not caught.

use std::fmt;

use glam::DVec3;

use super::model::Finding;
use super::preprocess::Method;
use crate::volume::Grid;

/// A face of the scan's field of view, named by the patient direction it lies toward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Face {
    Right,
    Left,
    Anterior,
    Posterior,
    Inferior,
    Superior,
}

impl Face {
    pub fn name(self) -> &'static str {
        match self {
            Face::Right => "right",
            Face::Left => "left",
            Face::Anterior => "anterior",
            Face::Posterior => "posterior",
            Face::Inferior => "inferior",
            Face::Superior => "superior",
        }
    }

    /// The face lying toward `d` (LPS), by its largest component.
    fn toward(d: DVec3) -> Face {
        match crate::volume::direction_letter(d) {
            "L" => Face::Left,
            "R" => Face::Right,
            "P" => Face::Posterior,
            "A" => Face::Anterior,
            "S" => Face::Superior,
            _ => Face::Inferior,
        }
    }
}

/// The faces of `image` that the mask (`map` ≥ `threshold` on `grid`) comes within `reach_mm`
/// of, or crosses: there the heart is cut by the field of view.
pub fn cut_faces(
    image: &Grid,
    grid: &Grid,
    map: &[f32],
    threshold: f64,
    reach_mm: f64,
) -> Vec<Face> {
    let image_from_grid = image.voxel_from_world() * grid.world_from_voxel;
    let spacing = image.spacing_mm();
    let dirs = image.directions();
    // [axis][low, high]
    let mut touched = [[false; 2]; 3];
    for (idx, _) in map
        .iter()
        .enumerate()
        .filter(|(_, &v)| f64::from(v) >= threshold)
    {
        let [i, j, k] = crate::volume::ijk_of(grid.dims, idx);
        let p = image_from_grid.transform_point3(DVec3::new(i as f64, j as f64, k as f64));
        for a in 0..3 {
            let below = (p[a] + 0.5) * spacing[a];
            let above = (image.dims[a] as f64 - 0.5 - p[a]) * spacing[a];
            touched[a][0] |= below <= reach_mm;
            touched[a][1] |= above <= reach_mm;
        }
    }
    let mut faces: Vec<Face> = (0..3)
        .flat_map(|a| {
            let d = dirs[a];
            [(touched[a][0], -d), (touched[a][1], d)]
        })
        .filter(|(t, _)| *t)
        .map(|(_, d)| Face::toward(d))
        .collect();
    faces.sort();
    faces.dedup();
    faces
}

/// Why a result may be wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum Doubt {
    /// The two methods' centres are this far apart.
    MethodsDisagree { mm: f64 },
    /// The fine stage's answer lies this far from where the coarse stage looked.
    Drifted { mm: f64 },
    /// The model's own confidence is below the floor.
    LowConfidence { confidence: f64, floor: f64 },
    /// The segmented heart is smaller or larger than any heart the models learned from.
    ImplausibleVolume { ml: f64 },
}

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Doubt::MethodsDisagree { mm } => {
                write!(f, "the two methods' centres are {mm:.0} mm apart")
            }
            Doubt::Drifted { mm } => write!(
                f,
                "the close look landed {mm:.0} mm from where the whole-scan look put the heart"
            ),
            Doubt::LowConfidence { confidence, floor } => {
                write!(f, "confidence {confidence:.2} is below {floor:.2}")
            }
            Doubt::ImplausibleVolume { ml } => {
                write!(
                    f,
                    "a {ml:.0} ml heart is outside {MIN_ML:.0}-{MAX_ML:.0} ml"
                )
            }
        }
    }
}

/// Centres of the two methods further apart than this are doubted (both).
pub const DISAGREE_MM: f64 = 12.0;
/// A fine answer further than this from the coarse stage's centre is doubted.
pub const DRIFT_MM: f64 = 30.0;
/// Confidence floors per method.
pub const MIN_CONFIDENCE_SEGMENTATION: f64 = 0.80;
pub const MIN_CONFIDENCE_HEATMAP: f64 = 0.30;
/// Plausible segmented heart volumes (ml): ACDC's ventricles to SegTHOR's whole hearts, with
/// room either side.
pub const MIN_ML: f64 = 80.0;
pub const MAX_ML: f64 = 1600.0;

/// The doubts one result raises on its own.
pub fn own_doubts(f: &Finding) -> Vec<Doubt> {
    let mut out = Vec::new();
    let drift = f.center_lps.distance(f.coarse_center_lps);
    if drift > DRIFT_MM {
        out.push(Doubt::Drifted { mm: drift });
    }
    let floor = match f.method {
        Method::Segmentation => MIN_CONFIDENCE_SEGMENTATION,
        Method::Heatmap => MIN_CONFIDENCE_HEATMAP,
    };
    if f.confidence < floor {
        out.push(Doubt::LowConfidence {
            confidence: f.confidence,
            floor,
        });
    }
    if let Some(ml) = f.volume_ml.filter(|ml| !(MIN_ML..=MAX_ML).contains(ml)) {
        out.push(Doubt::ImplausibleVolume { ml });
    }
    out
}

/// Fill in every result's doubts: its own, and the methods' disagreement when both ran.
pub fn assess<E>(found: &mut [Result<Finding, E>]) {
    let centres: Vec<DVec3> = found
        .iter()
        .filter_map(|f| f.as_ref().ok().map(|f| f.center_lps))
        .collect();
    for f in found.iter_mut().filter_map(|f| f.as_mut().ok()) {
        f.doubts = own_doubts(f);
        let apart = centres
            .iter()
            .map(|c| c.distance(f.center_lps))
            .fold(0.0, f64::max);
        if apart > DISAGREE_MM {
            f.doubts.push(Doubt::MethodsDisagree { mm: apart });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DMat4;

    #[test]
    fn faces_are_named_by_the_patient_direction_of_the_cut() {
        // Image: 10×10×10 at 2 mm, i → L, j → P, k → S; a second, RAS-stored, copy.
        let lps = Grid::new([10; 3], DMat4::from_scale(DVec3::splat(2.0)));
        let ras = Grid::new(
            [10; 3],
            DMat4::from_translation(DVec3::new(18.0, 18.0, 0.0))
                * DMat4::from_scale(DVec3::new(-2.0, -2.0, 2.0)),
        );
        // A mask grid of 1 mm; a blob against the superior and left faces.
        let grid = Grid::new([20; 3], DMat4::IDENTITY);
        let map: Vec<f32> = (0..grid.voxel_count())
            .map(|idx| {
                let p = grid.world_from_flat(idx);
                f32::from(u8::from(
                    p.x > 12.0 && p.z > 15.0 && p.y > 4.0 && p.y < 12.0,
                ))
            })
            .collect();
        for image in [lps, ras] {
            assert_eq!(
                cut_faces(&image, &grid, &map, 0.5, 2.0),
                vec![Face::Left, Face::Superior]
            );
        }
        let inside: Vec<f32> = (0..grid.voxel_count())
            .map(|idx| {
                let p = grid.world_from_flat(idx);
                f32::from(u8::from((p - DVec3::splat(9.0)).length() < 4.0))
            })
            .collect();
        assert!(cut_faces(&lps, &grid, &inside, 0.5, 2.0).is_empty());
    }
}
