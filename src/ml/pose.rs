//! The scan's pose: a scan whose header turns or mirrors the body (a short-axis stack stored as
//! axial, LPS written as RAS, a flipped axis) shows the networks a chest they never learned.
//! When the first answers are doubtful (a method failed, or the two methods disagree), the
//! heatmap's coarse stage looks at the scan in each of the 48 cube poses (24 turns, 24
//! mirrored); the poses where it sees the clearest heart are run through both methods, and a
//! pose whose answers are clearly more believable (a high coarse peak, the methods agreeing)
//! replaces the stored one. Searching also when the coarse peak was merely low turned more
//! scans right on training cases but moved correct answers on held-out unturned ones, so it is
//! not done. The limits were chosen on turned and mirrored training cases
//! (`heartloc-dev pose-dump`) and measured on held-out ones (see the model card).

use std::time::Instant;

use glam::{DMat3, DMat4, DVec3};

use super::model::{Finding, Model, ModelError, Timing};
use super::preprocess::{Method, Normalizer};
use crate::volume::{about_point, Grid, Volume};

/// How many of the best-looking poses both methods run in.
pub const CANDIDATES: usize = 3;
/// How much a mm of disagreement between the methods costs a pose (in coarse peak units).
pub const PER_MM: f64 = 0.0025;
/// How much more believable than the stored pose a searched one must be to replace it.
pub const MARGIN: f64 = 0.02;

/// A step of `locate_all`, for progress and cancelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Model `i` of the list starts.
    Method(usize),
    /// The pose search starts.
    PoseSearch,
}

/// What the coarse stage saw in one pose.
#[derive(Clone, Copy, Debug)]
pub struct Look {
    /// world_from_net directions of the networks' grid (orthonormal; det −1 mirrors).
    pub pose: DMat3,
    pub center_lps: DVec3,
    /// Segmentation: mean probability in the largest component; heatmap: peak height.
    pub score: f64,
}

/// `grid` turned by `pose` about `centre` (LPS mm).
pub fn posed(grid: Grid, centre: DVec3, pose: DMat3) -> Grid {
    if pose == DMat3::IDENTITY {
        return grid;
    }
    let world_from_world = about_point(centre, DMat4::from_mat3(pose));
    Grid::new(grid.dims, world_from_world * grid.world_from_voxel)
}

/// The 24 turns of a cube (signed permutation matrices of determinant 1), the identity first;
/// with `mirrored` also their 24 mirror images after them.
pub fn cube_poses(mirrored: bool) -> Vec<DMat3> {
    let perms = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    let mut out = Vec::new();
    for p in perms {
        for signs in 0..8u32 {
            let mut cols = [DVec3::ZERO; 3];
            for (c, &row) in p.iter().enumerate() {
                cols[c][row] = if signs & (1 << c) == 0 { 1.0 } else { -1.0 };
            }
            let m = DMat3::from_cols(cols[0], cols[1], cols[2]);
            if m.determinant() > 0.0 || mirrored {
                out.push(m);
            }
        }
    }
    out.sort_by_key(|m| (*m != DMat3::IDENTITY, m.determinant() < 0.0));
    out
}

/// The pose in words: "as stored", or "turned 90° about (0, 0, 1)", "mirrored, …".
pub fn describe(pose: DMat3) -> String {
    if pose == DMat3::IDENTITY {
        return "as stored".into();
    }
    let mirrored = pose.determinant() < 0.0;
    // A mirror is a turn after x → −x.
    let turn = if mirrored {
        pose * DMat3::from_diagonal(DVec3::new(-1.0, 1.0, 1.0))
    } else {
        pose
    };
    let (axis, angle) = glam::DQuat::from_mat3(&turn).to_axis_angle();
    let mut text = if mirrored {
        "mirrored left-right".to_string()
    } else {
        String::new()
    };
    if angle.to_degrees().abs() > 0.5 {
        if !text.is_empty() {
            text.push_str(", then ");
        }
        let a = axis.to_array().map(|v| (v * 100.0).round() / 100.0 + 0.0);
        text.push_str(&format!(
            "turned {:.0}° about ({}, {}, {})",
            angle.to_degrees(),
            a[0],
            a[1],
            a[2]
        ));
    }
    text
}

/// How believable one set of answers is: the heatmap's coarse peak, less `PER_MM` per mm the
/// methods are apart; `None` when a method failed. A searched pose replaces the stored one
/// only when it is `MARGIN` more believable.
fn belief(found: &[Result<Finding, ModelError>], heat: usize) -> Option<f64> {
    let ok: Vec<&Finding> = found
        .iter()
        .map(|f| f.as_ref().ok())
        .collect::<Option<_>>()?;
    let apart = ok
        .iter()
        .flat_map(|a| ok.iter().map(|b| a.center_lps.distance(b.center_lps)))
        .fold(0.0, f64::max);
    Some(ok[heat].coarse_score - PER_MM * apart)
}

/// Search the scan's pose when the answers in its own pose are doubtful (a method failed or
/// the methods disagree): the answers of a more believable pose replace `found`, each charged
/// the search's time (as are the kept ones when the stored pose stays). `proceed` is asked
/// again every few looks, so a cancel stops the search. Needs the heatmap model in `models`.
pub fn search_pose(
    models: &[Model],
    volume: &Volume,
    norm: &Normalizer,
    found: &mut Vec<Result<Finding, ModelError>>,
    proceed: &mut impl FnMut(Step) -> bool,
) -> Result<(), ModelError> {
    let Some(heat) = models
        .iter()
        .position(|m| m.recipe.method == Method::Heatmap)
    else {
        return Ok(());
    };
    let as_stored = belief(found, heat);
    let disagree = found.iter().flatten().any(|f| {
        f.doubts
            .iter()
            .any(|d| matches!(d, super::reliability::Doubt::MethodsDisagree { .. }))
    });
    if as_stored.is_some() && !disagree {
        return Ok(());
    }
    let t = Instant::now();
    let mut looks = Vec::new();
    for (i, pose) in cube_poses(true).into_iter().enumerate().skip(1) {
        if i % 8 == 1 && !proceed(Step::PoseSearch) {
            return Err(ModelError::Cancelled);
        }
        looks.push(models[heat].coarse_look(volume, norm, pose, &mut Timing::default())?);
    }
    looks.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best: Option<(f64, Vec<Result<Finding, ModelError>>)> = None;
    for look in looks.into_iter().take(CANDIDATES) {
        let mut answers = Vec::with_capacity(models.len());
        for (i, model) in models.iter().enumerate() {
            let own = if i == heat {
                Ok(look)
            } else {
                model.coarse_look(volume, norm, look.pose, &mut Timing::default())
            };
            answers
                .push(own.and_then(|own| model.locate_posed(volume, norm, own, Timing::default())));
        }
        let Some(b) = belief(&answers, heat) else {
            continue;
        };
        if as_stored.is_none_or(|a| b > a + MARGIN) && best.as_ref().is_none_or(|(bb, _)| b > *bb) {
            best = Some((b, answers));
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    if let Some((_, mut answers)) = best {
        for (f, before) in answers.iter_mut().zip(found.iter()) {
            if let (Ok(f), Ok(before)) = (f.as_mut(), before) {
                // The first answer's steps, then the search (which ran this one).
                f.timing = before.timing;
            }
        }
        *found = answers;
    }
    for f in found.iter_mut().flatten() {
        f.timing.search += seconds;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cube_poses_are_48_distinct_orthonormal_matrices_identity_first() {
        let all = cube_poses(true);
        assert_eq!(all.len(), 48);
        assert_eq!(all[0], DMat3::IDENTITY);
        assert_eq!(cube_poses(false).len(), 24);
        for (i, a) in all.iter().enumerate() {
            assert!((*a * a.transpose() - DMat3::IDENTITY).abs_diff_eq(DMat3::ZERO, 1e-12));
            assert_eq!(a.determinant().abs(), 1.0);
            assert!(all[..i].iter().all(|b| b != a));
            assert_eq!(a.determinant() < 0.0, i >= 24);
        }
    }

    #[test]
    fn poses_are_described_in_words() {
        assert_eq!(describe(DMat3::IDENTITY), "as stored");
        let quarter = DMat3::from_rotation_z(std::f64::consts::FRAC_PI_2);
        let quarter = DMat3::from_cols_array(&quarter.to_cols_array().map(f64::round));
        assert_eq!(describe(quarter), "turned 90° about (0, 0, 1)");
        let mirror = DMat3::from_diagonal(DVec3::new(-1.0, 1.0, 1.0));
        assert_eq!(describe(mirror), "mirrored left-right");
        assert!(describe(quarter * mirror).starts_with("mirrored left-right, then turned 90°"));
    }

    #[test]
    fn a_posed_grid_turns_about_its_centre() {
        let g = Grid::new([3, 3, 3], DMat4::from_translation(DVec3::splat(-1.0)));
        let quarter = DMat3::from_rotation_z(std::f64::consts::FRAC_PI_2);
        let p = posed(g, DVec3::ZERO, quarter);
        // The centre voxel stays; the +i neighbour now lies toward +y.
        assert!(p.world_from_index(DVec3::ONE).length() < 1e-12);
        let step = p.world_from_index(DVec3::new(2.0, 1.0, 1.0));
        assert!((step - DVec3::Y).length() < 1e-12, "{step}");
    }
}
