//! Geometry proven on the shared real data: every manifest case's shape and spacing through
//! `heartloc info --json`, and each heart centroid recomputed from `labels.nii.gz` through
//! `world_from_voxel` matching the manifest's LPS centre within 0.5 mm. Skips without
//! `../shared/data`.

mod common;

use glam::DVec3;
use heartloc::io::{self, dicom, nifti, OpenOptions};
use heartloc::volume::Volume;

#[test]
fn info_json_reports_manifest_shape_and_spacing_for_every_case() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let cases = common::manifest(&data);
    assert_eq!(cases.len(), 130);
    let inputs: Vec<_> = cases
        .iter()
        .map(|c| data.join(&c.case).join("image.nii.gz"))
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .arg("info")
        .arg("--json")
        .args(&inputs)
        .output()
        .expect("run heartloc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for (case, line) in cases.iter().zip(lines) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let dims: Vec<usize> = serde_json::from_value(v["dims"].clone()).expect("dims");
        assert_eq!(dims, case.shape, "{}", case.case);
        let spacing: Vec<f64> = serde_json::from_value(v["spacing_mm"].clone()).expect("spacing");
        for a in 0..3 {
            // The manifest rounds spacing to 3 decimals.
            assert!(
                (spacing[a] - case.spacing_mm[a]).abs() < 1.5e-3,
                "{}: spacing {:?} vs manifest {:?}",
                case.case,
                spacing,
                case.spacing_mm
            );
        }
        for key in [
            "world_from_voxel_lps",
            "intensity_min",
            "intensity_max",
            "warnings",
        ] {
            assert!(!v[key].is_null(), "{} lacks {key}", case.case);
        }
        assert_eq!(
            v["world_from_voxel_lps"].as_array().map(|a| a.len()),
            Some(16)
        );
    }
}

fn heart_centroid_and_box(labels: &Volume, heart_values: &[u32]) -> (DVec3, DVec3, DVec3) {
    let [nx, ny, nz] = labels.dims();
    let mut sum = DVec3::ZERO;
    let mut count = 0usize;
    let mut lo = DVec3::splat(f64::INFINITY);
    let mut hi = DVec3::splat(f64::NEG_INFINITY);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let v = labels.at(i, j, k);
                if heart_values.iter().any(|&h| h as f32 == v) {
                    let p = labels
                        .grid
                        .world_from_index(DVec3::new(i as f64, j as f64, k as f64));
                    sum += p;
                    count += 1;
                    lo = lo.min(p);
                    hi = hi.max(p);
                }
            }
        }
    }
    assert!(count > 0, "no heart voxels");
    (sum / count as f64, lo, hi)
}

#[test]
fn heart_centroids_through_world_from_voxel_match_the_manifest() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let mut worst = 0.0f64;
    for case in common::manifest(&data) {
        let path = data.join(&case.case).join("labels.nii.gz");
        let labels = nifti::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let (centre, lo, hi) = heart_centroid_and_box(&labels, &case.heart_values);
        let want = DVec3::from_array(case.heart_center_lps_mm);
        let err = centre.distance(want);
        worst = worst.max(err);
        assert!(
            err < 0.5,
            "{}: centroid {centre} vs manifest {want}: {err:.3} mm",
            case.case
        );
        let (want_lo, want_hi) = (
            DVec3::from_array(case.heart_bbox_lps_min_mm),
            DVec3::from_array(case.heart_bbox_lps_max_mm),
        );
        assert!(
            lo.distance(want_lo) < 0.5 && hi.distance(want_hi) < 0.5,
            "{}: box",
            case.case
        );
    }
    println!("worst heart-centre error over 130 cases: {worst:.4} mm");
}

#[test]
fn markups_centres_agree_with_the_manifest() {
    // The heart.mrk.json files are LPS; reading their position must give the manifest point.
    let Some(data) = common::shared_data() else {
        return;
    };
    for case in common::manifest(&data).iter().take(10) {
        let text = std::fs::read_to_string(data.join(&case.case).join("heart.mrk.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["markups"][0]["coordinateSystem"], "LPS");
        let pos: Vec<f64> =
            serde_json::from_value(v["markups"][0]["controlPoints"][0]["position"].clone())
                .unwrap();
        assert!(
            DVec3::from_slice(&pos).distance(DVec3::from_array(case.heart_center_lps_mm)) < 0.01
        );
    }
}

#[test]
fn quirk_files_load_with_a_spacing_warning_and_match_the_repaired_case() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let quirk = nifti::read(&data.join("quirks/acdc_original_patient001_frame01.nii.gz")).unwrap();
    assert!(
        quirk
            .warnings
            .iter()
            .any(|w| w.contains("disagrees with pixdim")),
        "{:?}",
        quirk.warnings
    );
    let labels =
        nifti::read(&data.join("quirks/acdc_original_patient001_frame01_gt.nii.gz")).unwrap();
    assert!(!labels.warnings.is_empty());
    let repaired = nifti::read(&data.join("mri-acdc/patient001_ED/image.nii.gz")).unwrap();
    assert!(repaired.warnings.is_empty(), "{:?}", repaired.warnings);
    assert_eq!(quirk.dims(), repaired.dims());
    assert_eq!(quirk.voxels, repaired.voxels);
    let d = (quirk.world_from_voxel() - repaired.world_from_voxel())
        .abs()
        .to_cols_array();
    assert!(d.iter().all(|x| *x < 1e-4), "{d:?}");
}

#[test]
fn real_dicom_series_matches_its_independent_geometry() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = data.join("dicom/LUNG1-001-part");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let vol = dicom::read_series_dir(&dir, None).unwrap();
    let dims: Vec<usize> = serde_json::from_value(expected["dims"].clone()).unwrap();
    assert_eq!(vol.dims().to_vec(), dims);
    let want: Vec<f64> = serde_json::from_value(expected["world_from_voxel_lps"].clone()).unwrap();
    let got = vol.world_from_voxel().transpose().to_cols_array();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-3, "{got:?} vs {want:?}");
    }
    let (lo, hi) = vol.intensity_range();
    assert_eq!((lo, hi), (-1024.0, 2232.0));
    assert_eq!(vol.at(256, 256, 16), 23.0);
    assert!(vol.warnings.is_empty(), "{:?}", vol.warnings);
}

#[test]
fn dicom_series_written_from_a_shared_case_round_trips_world_geometry() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["ct-segthor/Patient_03", "mri-acdc/patient001_ED"] {
        let src = nifti::read(&data.join(case).join("image.nii.gz")).unwrap();
        let dir = tmp.path().join(case.replace('/', "_"));
        dicom::write_series(&dir, &src, &Default::default()).unwrap();
        let (back, format) = io::open(&dir, &OpenOptions::default()).unwrap();
        assert_eq!(format, io::Format::DicomDir);
        assert_eq!(back.dims(), src.dims());
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        let [nx, ny, nz] = src.dims();
        for corner in 0..8 {
            let ijk = DVec3::new(
                if corner & 1 == 0 {
                    0.0
                } else {
                    nx as f64 - 1.0
                },
                if corner & 2 == 0 {
                    0.0
                } else {
                    ny as f64 - 1.0
                },
                if corner & 4 == 0 {
                    0.0
                } else {
                    nz as f64 - 1.0
                },
            );
            let d = src
                .grid
                .world_from_index(ijk)
                .distance(back.grid.world_from_index(ijk));
            assert!(d < 0.01, "{case}: corner {ijk} moved {d} mm");
        }
        for idx in (0..src.voxels.len()).step_by(997) {
            assert_eq!(
                src.voxels.get(idx),
                back.voxels.get(idx),
                "{case} voxel {idx}"
            );
        }
    }
}

#[test]
fn ct_window_calibration_puts_the_heart_at_soft_tissue_hu() {
    // SegTHOR intensities are min-max scaled per volume, not HU: the presets go through an
    // air/soft-tissue calibration. Checked against the expert heart mask of every CT case.
    let Some(data) = common::shared_data() else {
        return;
    };
    for case in common::manifest(&data)
        .iter()
        .filter(|c| c.modality == "CT")
    {
        let image = nifti::read(&data.join(&case.case).join("image.nii.gz")).unwrap();
        let labels = nifti::read(&data.join(&case.case).join("labels.nii.gz")).unwrap();
        let intensity = heartloc::slice_view::Intensity::of(&image);
        let (scale, offset) = intensity
            .hu_from_value
            .unwrap_or_else(|| panic!("{}: no HU calibration", case.case));
        let mut heart: Vec<f64> = (0..labels.voxels.len())
            .filter(|&i| {
                case.heart_values
                    .iter()
                    .any(|&h| h as f32 == labels.voxels.get(i))
            })
            .map(|i| f64::from(image.voxels.get(i)) * scale + offset)
            .collect();
        heart.sort_by(f64::total_cmp);
        let median = heart[heart.len() / 2];
        println!("{}: heart median {median:.0} HU (estimated)", case.case);
        assert!(
            (-60.0..=450.0).contains(&median),
            "{}: heart at {median:.0} HU",
            case.case
        );
    }
}

#[test]
fn preprocessing_is_orientation_invariant_on_a_real_case() {
    use heartloc::ml::{heatmap, preprocess};
    let Some(data) = common::shared_data() else {
        return;
    };
    let case = &common::manifest(&data)[0];
    let vol = nifti::read(&data.join(&case.case).join("image.nii.gz")).unwrap();
    let moved = common::flipped_and_permuted(&vol);
    assert_ne!(moved.grid.orientation_code(), vol.grid.orientation_code());
    let recipe = preprocess::Recipe::new(preprocess::Method::Heatmap);
    let prep = |v: &heartloc::volume::Volume| {
        let norm = preprocess::Normalizer::of(v, recipe.clip_percentiles).unwrap();
        preprocess::prepare(v, &norm, &recipe.fine, preprocess::scan_center(v))
    };
    let (a, b) = (prep(&vol), prep(&moved));
    let worst = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    // f32 trilinear weights applied in another axis order round differently (~1e-4 of the
    // 0..1 range); a geometry error would differ by order 1.
    assert!(worst < 1e-3, "{}: inputs differ by {worst}", case.case);
    // The manifest centre drawn as a target on the network grid decodes back to itself.
    let centre = DVec3::from_array(case.heart_center_lps_mm);
    let target = heatmap::gaussian_target(&a.grid, centre, recipe.fine.sigma_mm);
    let peak = heatmap::decode_peak(&a.grid, &target).unwrap();
    assert!(
        peak.center_lps.distance(centre) < 0.5,
        "{}",
        peak.center_lps
    );
}
