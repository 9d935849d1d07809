//! Training and evaluation data: a manifest CSV of cases (image, expert labels, heart centre),
//! loaded into memory, and augmented samples drawn from them on the networks' grids.

use std::path::{Path, PathBuf};

use glam::{DMat4, DQuat, DVec3};

use super::heatmap::gaussian_target;
use super::preprocess::{network_grid, Method, Normalizer, Recipe, Stage};
use super::repose::{self, Ventricles};
use super::rng::Rng;
use crate::io::{self, FileError};
use crate::volume::{about_point, ijk_of, Grid, Interpolation, Volume, Voxels};

/// One row of a manifest: `case` (a folder with `image.nii.gz` and `labels.nii.gz`, relative
/// to the manifest), `modality`, `heart_values` (label values that make up the heart) and
/// `heart_center_lps_mm`.
#[derive(Clone, Debug)]
pub struct ManifestRow {
    pub case: String,
    pub folder: PathBuf,
    pub modality: String,
    pub heart_values: Vec<u32>,
    pub heart_center_lps_mm: Option<DVec3>,
    pub heart_extent_mm: Option<DVec3>,
    /// `intensity_range` column ("lo hi"): a fixed normalisation instead of percentiles, for
    /// caches already normalised (see `examples/training_cache.rs`).
    pub intensity_range: Option<(f32, f32)>,
    /// The patient the case belongs to: for a folder named with an ACDC phase suffix (`_ED`,
    /// `_ES`) its name without it, so a patient's frames (in other folders too) are split
    /// together; else the whole `case` path.
    pub patient: String,
    /// `ED` or `ES` where the folder's name says so.
    pub phase: Option<String>,
    /// The ventricles' label values, where the `labels` column names them (short-axis MR that
    /// can be re-posed: `ml::repose`).
    pub ventricles: Option<Ventricles>,
}

/// A case folder's patient and phase: `mri-acdc-es/patient001_ES` is patient001 at ES;
/// `ct/Patient_03` is patient `ct/Patient_03`, no phase.
fn patient_and_phase(case: &str) -> (String, Option<String>) {
    let name = case
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(case);
    for phase in ["ED", "ES"] {
        if let Some(patient) = name.strip_suffix(&format!("_{phase}")) {
            return (patient.to_string(), Some(phase.to_string()));
        }
    }
    (case.to_string(), None)
}

fn parse_vec3(s: &str) -> Option<DVec3> {
    let v: Vec<f64> = s
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 3).then(|| DVec3::new(v[0], v[1], v[2]))
}

/// Read a manifest CSV (the shared data's format; extra columns are ignored).
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestRow>, FileError> {
    let table = crate::io::table::Table::read(path)?;
    let col = |name: &str| table.column(name);
    let case_col = Some(
        table
            .column("case")
            .ok_or_else(|| FileError::new(path, "the manifest has no `case` column"))?,
    );
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    for (n, row) in table.rows.iter().enumerate() {
        let get = |c: Option<usize>| row.get(c);
        let case = get(case_col).to_string();
        if case.is_empty() {
            return Err(FileError::new(
                path,
                format!("row {} (line {}) has no case", n + 2, row.line),
            ));
        }
        let heart_values = get(col("heart_values"))
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                FileError::new(
                    path,
                    format!(
                        "row {} (line {}): heart_values is not a list of labels",
                        n + 2,
                        row.line
                    ),
                )
            })?;
        let (patient, phase) = patient_and_phase(&case);
        rows.push(ManifestRow {
            folder: base.join(&case),
            patient,
            phase,
            ventricles: Ventricles::from_label_names(get(col("labels"))),
            case,
            modality: get(col("modality")).to_string(),
            heart_values,
            heart_center_lps_mm: parse_vec3(get(col("heart_center_lps_mm"))),
            heart_extent_mm: parse_vec3(get(col("heart_extent_mm"))),
            intensity_range: {
                let v: Vec<f32> = get(col("intensity_range"))
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (v.len() == 2 && v[1] > v[0]).then(|| (v[0], v[1]))
            },
        });
    }
    if rows.is_empty() {
        return Err(FileError::new(path, "the manifest lists no cases"));
    }
    Ok(rows)
}

/// The rows of several manifests, in order (e.g. the end-diastolic frames, then the
/// end-systolic ones of some of the same patients).
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<ManifestRow>, FileError> {
    let mut rows = Vec::new();
    for path in paths {
        rows.extend(read_manifest(path)?);
    }
    Ok(rows)
}

/// The validation split: every `every`-th case of the manifest (positions every−1, 2·every−1,
/// …), so it is stratified by the manifest's order (modality, ACDC group) and needs no seed.
pub fn is_validation(position: usize, every: usize) -> bool {
    every > 0 && position % every == every - 1
}

/// Which rows are held out: patients numbered in the order they first appear, every
/// `every`-th held out with all its rows (both phases), never one frame of a patient in
/// training and another in validation. With one row per patient this is
/// [`is_validation`] of the row's position; list the manifest with every patient first
/// (the end-diastolic one) so adding another phase's manifest keeps the split.
pub fn validation_rows(rows: &[ManifestRow], every: usize) -> Vec<bool> {
    let mut numbers: std::collections::HashMap<&str, usize> = Default::default();
    rows.iter()
        .map(|row| {
            let next = numbers.len();
            let n = *numbers.entry(row.patient.as_str()).or_insert(next);
            is_validation(n, every)
        })
        .collect()
}

/// A case in memory, ready to sample.
pub struct Case {
    pub name: String,
    pub modality: String,
    pub volume: Volume,
    /// 0/1 heart mask on the image grid (segmentation training and Dice).
    pub mask: Option<Volume>,
    /// The training target point (LPS mm).
    pub target_lps: DVec3,
    pub norm: Normalizer,
    /// Short-axis MR stored as if axial: the turn (and mirror) into a body pose about the
    /// target (`ml::repose`), which training applies to some of its samples.
    pub body_from_stored: Option<DMat4>,
}

/// The heart mask from a label map: 1 where the label is one of `heart_values`.
pub fn heart_mask(labels: &Volume, heart_values: &[u32]) -> Volume {
    let m = (0..labels.voxels.len())
        .map(|i| {
            let v = labels.voxels.get(i);
            u8::from(v >= 0.0 && heart_values.contains(&(v.round() as u32)))
        })
        .collect();
    Volume::new(labels.grid, Voxels::U8(m))
}

fn centroid(mask: &Volume) -> Option<DVec3> {
    let (mut sum, mut n) = (DVec3::ZERO, 0.0);
    for idx in 0..mask.voxels.len() {
        if mask.voxels.get(idx) > 0.5 {
            sum += DVec3::from_array(ijk_of(mask.dims(), idx).map(|v| v as f64));
            n += 1.0;
        }
    }
    (n > 0.0).then(|| mask.grid.world_from_index(sum / n))
}

/// Load one manifest row: image, heart mask and normalisation, its target the heart centre
/// (the manifest's, else the mask's centroid).
pub fn load_case(row: &ManifestRow, recipe: &Recipe) -> Result<Case, FileError> {
    let image_path = row.folder.join("image.nii.gz");
    let (volume, _) = io::open(&image_path, &Default::default())?;
    let norm = match row.intensity_range {
        Some((lo, hi)) => Normalizer { lo, hi },
        None => Normalizer::of(&volume, recipe.clip_percentiles)
            .map_err(|e| FileError::new(&image_path, e))?,
    };
    let labels_path = row.folder.join("labels.nii.gz");
    let (labels, _) = io::open(&labels_path, &Default::default())?;
    if labels.dims() != volume.dims() {
        return Err(FileError::new(
            &labels_path,
            format!(
                "labels are {:?}, the image is {:?}",
                labels.dims(),
                volume.dims()
            ),
        ));
    }
    let mask = heart_mask(&labels, &row.heart_values);
    let Some(mask_centre) = centroid(&mask) else {
        return Err(FileError::new(
            &labels_path,
            format!(
                "the heart mask (labels {:?}) is empty: nothing to learn from",
                row.heart_values
            ),
        ));
    };
    let target_lps = row.heart_center_lps_mm.unwrap_or(mask_centre);
    let body_from_stored = row
        .ventricles
        .as_ref()
        .and_then(|v| repose::body_from_stored(&labels, v, target_lps));
    Ok(Case {
        name: row.case.clone(),
        modality: row.modality.clone(),
        volume,
        mask: Some(mask),
        target_lps,
        norm,
        body_from_stored,
    })
}

/// Augmentation switches (the CLI's flags). Each is a range or a probability.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Rotation about a random axis, up to this many degrees either way.
    pub rotate_deg: f64,
    /// Isotropic scaling by up to this fraction either way (anatomy size).
    pub scale: f64,
    /// Random shift of the grid (mm, per axis, up to): position in the field of view.
    pub shift_mm: f64,
    /// Probability of cutting the field of view through or near the heart.
    pub partial_fov: f64,
    /// Gamma, contrast, brightness, noise and blur (image quality).
    pub intensity: bool,
    /// Probability of thick-slice resampling along one axis (resolution).
    pub resolution: f64,
    /// Probability of a uniformly random turn (any axis, any angle) instead of the one up to
    /// `rotate_deg`: scans in any pose.
    #[serde(default)]
    pub any_pose: f64,
    /// Probability of a left-right mirror image (a header with LPS written as RAS).
    #[serde(default)]
    pub mirror: f64,
    /// Probability of seeing a short-axis case in its body pose (`Case::body_from_stored`)
    /// rather than as stored.
    #[serde(default)]
    pub body_pose: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            rotate_deg: 25.0,
            scale: 0.15,
            shift_mm: 20.0,
            partial_fov: 0.2,
            intensity: true,
            resolution: 0.25,
            any_pose: 0.0,
            mirror: 0.0,
            body_pose: 0.0,
        }
    }
}

impl Augment {
    pub fn none() -> Self {
        Augment {
            rotate_deg: 0.0,
            scale: 0.0,
            shift_mm: 0.0,
            partial_fov: 0.0,
            intensity: false,
            resolution: 0.0,
            any_pose: 0.0,
            mirror: 0.0,
            body_pose: 0.0,
        }
    }
}

/// One training sample on a stage's grid: network input and target (both memory order).
pub struct Sample {
    pub input: Vec<f32>,
    pub target: Vec<f32>,
    pub grid: Grid,
}

/// The stage's sampling grid for one sample: centred at `center_lps` (the stored world's) plus
/// the random shift, turned (up to `rotate_deg`, or any pose), mirrored and scaled about that
/// centre, in the case's body pose where drawn; and the scale (the heatmap's sigma follows it).
fn augmented_grid(
    case: &Case,
    stage: &Stage,
    center_lps: DVec3,
    aug: &Augment,
    rng: &mut Rng,
) -> (Grid, f64) {
    // The case as stored or in its body pose (short-axis MR), turned about its target.
    let seen_from_stored = match case.body_from_stored {
        Some(m) if rng.chance(aug.body_pose) => m,
        _ => DMat4::IDENTITY,
    };
    let shift = DVec3::new(
        rng.range(-1.0, 1.0),
        rng.range(-1.0, 1.0),
        rng.range(-1.0, 1.0),
    ) * aug.shift_mm;
    let c = seen_from_stored.transform_point3(center_lps) + shift;
    let base = network_grid(stage, c);
    let axis = DVec3::new(rng.normal(), rng.normal(), rng.normal()).normalize_or(DVec3::Z);
    let angle = rng.range(-1.0, 1.0) * aug.rotate_deg.to_radians();
    let scale = (rng.range(-1.0, 1.0) * (1.0 + aug.scale).ln()).exp();
    let turn = if rng.chance(aug.any_pose) {
        // Uniform over all rotations: a unit quaternion from four normal draws.
        let q = glam::DVec4::new(rng.normal(), rng.normal(), rng.normal(), rng.normal());
        DQuat::from_vec4(q.normalize_or(glam::DVec4::W))
    } else {
        DQuat::from_axis_angle(axis, angle)
    };
    let mirror = if rng.chance(aug.mirror) { -1.0 } else { 1.0 };
    // world_from_world: rotate, mirror and scale the sampling grid about its centre (in the
    // seen world), then back to where the stored voxels are.
    let world_from_world = seen_from_stored.inverse()
        * about_point(
            c,
            DMat4::from_quat(turn) * DMat4::from_scale(DVec3::new(mirror, 1.0, 1.0) * scale),
        );
    let grid = Grid::new(base.dims, world_from_world * base.world_from_voxel);
    (grid, scale)
}

/// Draw a sample of `case` for `stage`, the grid centred at `center_lps` (the stored world's;
/// plus the random shift), seen through a random rotation/mirror/scaling about that centre,
/// and in the case's body pose where `aug.body_pose` draws it.
pub fn sample(
    case: &Case,
    method: Method,
    stage: &Stage,
    center_lps: DVec3,
    aug: &Augment,
    rng: &mut Rng,
) -> Sample {
    let (grid, scale) = augmented_grid(case, stage, center_lps, aug, rng);
    let mut input = case.norm.sample(&case.volume, &grid);
    let mut target = match method {
        Method::Segmentation => {
            let mask = case.mask.as_ref().expect("segmentation cases carry a mask");
            mask.resample(&grid, Interpolation::Trilinear, 0.0)
                .voxels
                .to_f32()
        }
        Method::Heatmap => gaussian_target(&grid, case.target_lps, stage.sigma_mm * scale),
    };
    if rng.chance(aug.partial_fov) {
        // A scan edge somewhere within 60 mm of the target, along a random world axis.
        let a = rng.below(3);
        let cut = case.target_lps[a] + rng.range(-60.0, 60.0);
        let keep_below = rng.chance(0.5);
        for (idx, v) in input.iter_mut().enumerate() {
            let p = grid.world_from_flat(idx)[a];
            if (p < cut) != keep_below {
                *v = 0.0;
                if method == Method::Segmentation {
                    target[idx] = 0.0;
                }
            }
        }
    }
    if rng.chance(aug.resolution) {
        thick_slices(&mut input, grid.dims, rng.below(3), 2 + rng.below(2));
    }
    if aug.intensity {
        let gamma = rng.range(-0.4, 0.4).exp() as f32;
        let contrast = rng.range(0.8, 1.2) as f32;
        let brightness = rng.range(-0.1, 0.1) as f32;
        let noise = rng.range(0.0, 0.04) as f32;
        let blur = rng.chance(0.2);
        for v in input.iter_mut() {
            *v = (v.max(0.0).powf(gamma) - 0.5) * contrast + 0.5 + brightness;
        }
        if blur {
            for axis in 0..3 {
                smooth_axis(&mut input, grid.dims, axis);
            }
        }
        for v in input.iter_mut() {
            *v += noise * rng.normal() as f32;
        }
    }
    Sample {
        input,
        target,
        grid,
    }
}

fn stride_of(dims: [usize; 3], axis: usize) -> usize {
    match axis {
        0 => 1,
        1 => dims[0],
        _ => dims[0] * dims[1],
    }
}

/// Average blocks of `factor` voxels along `axis` (a thick-slice acquisition).
fn thick_slices(values: &mut [f32], dims: [usize; 3], axis: usize, factor: usize) {
    let stride = stride_of(dims, axis);
    let n = dims[axis];
    for idx in 0..values.len() {
        let pos = (idx / stride) % n;
        if pos % factor != 0 {
            continue;
        }
        let len = factor.min(n - pos);
        let mean = (0..len).map(|t| values[idx + t * stride]).sum::<f32>() / len as f32;
        for t in 0..len {
            values[idx + t * stride] = mean;
        }
    }
}

/// [1, 2, 1]/4 smoothing along `axis`, edges clamped.
fn smooth_axis(values: &mut [f32], dims: [usize; 3], axis: usize) {
    let stride = stride_of(dims, axis);
    let n = dims[axis];
    let src = values.to_vec();
    for (idx, v) in values.iter_mut().enumerate() {
        let pos = (idx / stride) % n;
        let lo = if pos > 0 { idx - stride } else { idx };
        let hi = if pos + 1 < n { idx + stride } else { idx };
        *v = 0.25 * src[lo] + 0.5 * src[idx] + 0.25 * src[hi];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phantom;

    fn phantom_case() -> Case {
        let (volume, truth) = phantom::chest_ct([64, 64, 48], 6.0);
        let norm = Normalizer::of(&volume, [0.5, 99.5]).unwrap();
        Case {
            name: "phantom".into(),
            modality: "CT".into(),
            mask: None,
            target_lps: truth.heart_center_lps_mm,
            volume,
            norm,
            body_from_stored: None,
        }
    }

    #[test]
    fn heatmap_samples_follow_the_augmented_grid() {
        let mut case = phantom_case();
        // A body pose: turned 70° about an oblique axis through the target.
        let turn = DQuat::from_axis_angle(DVec3::new(1.0, 2.0, -1.0).normalize(), 1.2);
        case.body_from_stored = Some(about_point(case.target_lps, DMat4::from_quat(turn)));
        let recipe = Recipe::new(Method::Heatmap);
        let mut rng = Rng::new(5);
        let any_pose = Augment {
            any_pose: 0.5,
            mirror: 0.5,
            body_pose: 0.5,
            ..Augment::default()
        };
        for aug in [
            Augment::default(),
            any_pose.clone(),
            any_pose.clone(),
            any_pose,
        ] {
            let s = sample(
                &case,
                Method::Heatmap,
                &recipe.fine,
                case.target_lps,
                &aug,
                &mut rng,
            );
            assert_eq!(s.input.len(), s.grid.voxel_count());
            assert!(s.input.iter().all(|v| v.is_finite()));
            // The target's peak sits on the target point in world space, whatever the
            // rotation and scaling of the grid.
            let peak = super::super::heatmap::decode_peak(&s.grid, &s.target).unwrap();
            assert!(peak.center_lps.distance(case.target_lps) < 1.0);
        }
    }

    #[test]
    fn thick_slices_and_smoothing_keep_the_mean() {
        let dims = [4, 3, 5];
        let mut v: Vec<f32> = (0..60).map(|i| (i * 7 % 11) as f32).collect();
        let before: f32 = v.iter().sum();
        thick_slices(&mut v, dims, 1, 3);
        assert!((v.iter().sum::<f32>() - before).abs() < 1e-3);
        assert_eq!(v[0], v[4]);
        assert_eq!(v[4], v[8]);
        let mut w = vec![0.0f32; 60];
        w[1 + 4 + 12 * 2] = 1.0;
        smooth_axis(&mut w, dims, 2);
        assert_eq!(w[1 + 4 + 12 * 2], 0.5);
        assert_eq!(w[1 + 4 + 12], 0.25);
    }

    #[test]
    fn manifest_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "name,modality\nx,CT\n").unwrap();
        let e = read_manifest(&p).unwrap_err().to_string();
        assert!(e.contains("no `case` column") && e.contains("m.csv"), "{e}");
        std::fs::write(&p, "case,heart_values\nx,two\n").unwrap();
        assert!(read_manifest(&p).unwrap_err().to_string().contains("row 2"));
        std::fs::write(&p, "case,heart_values,heart_center_lps_mm\nx,2,1 2 3\n").unwrap();
        let rows = read_manifest(&p).unwrap();
        assert_eq!(rows[0].heart_center_lps_mm, Some(DVec3::new(1.0, 2.0, 3.0)));
        assert_eq!(rows[0].folder, dir.path().join("x"));
        assert!((0..10).filter(|&i| is_validation(i, 5)).eq([4, 9]));
    }

    #[test]
    fn the_split_keeps_a_patients_frames_together() {
        assert_eq!(
            patient_and_phase("mri-acdc-es/patient001_ES"),
            ("patient001".to_string(), Some("ES".to_string()))
        );
        // Without a phase suffix the whole path names the patient: folders of one name in
        // two places are two patients.
        assert_eq!(patient_and_phase("a/scan").0, "a/scan");
        let dir = tempfile::tempdir().unwrap();
        let (ed, es) = (dir.path().join("ed.csv"), dir.path().join("es.csv"));
        let names: Vec<String> = (1..=10).map(|i| format!("acdc/p{i:02}_ED")).collect();
        std::fs::write(&ed, format!("case\n{}\n", names.join("\n"))).unwrap();
        std::fs::write(&es, "case\nes/p05_ES\nes/p07_ES\nes/p10_ES\nb/scan\n").unwrap();
        let rows = read_manifests(&[ed, es]).unwrap();
        let held = validation_rows(&rows, 5);
        // The ED rows keep their positional split (p05, p10); the ES frames follow their
        // patients; a new patient continues the count (the 11th: trains).
        let held_cases: Vec<&str> = rows
            .iter()
            .zip(&held)
            .filter(|(_, h)| **h)
            .map(|(r, _)| r.case.as_str())
            .collect();
        assert_eq!(
            held_cases,
            ["acdc/p05_ED", "acdc/p10_ED", "es/p05_ES", "es/p10_ES"]
        );
    }
}
