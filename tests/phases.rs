//! Time series (issue 18's cine, first step): a classic multi-phase DICOM series (several
//! images per position told apart by TriggerTime) and a 4D NIfTI load phase by phase, each
//! phase's geometry that of a single-phase stack; `info --json` and `locate --json` report it.

mod common;

use common::cine::{cine, phase_volume, PHASES};
use glam::{DMat4, DQuat, DVec3};
use heartloc::io::{self, OpenOptions};

#[test]
fn a_dicom_cine_loads_each_phase_with_the_geometry_of_a_single_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let m = DMat4::from_scale_rotation_translation(
        DVec3::new(1.4, 1.4, 8.0),
        DQuat::from_euler(glam::EulerRot::XYZ, 0.5, -0.2, 0.3),
        DVec3::new(-40.0, 10.0, 30.0),
    );
    let dir = cine(tmp.path(), m);
    for p in 0..PHASES {
        let opts = OpenOptions {
            phase: p,
            ..Default::default()
        };
        let (v, _) = io::open(&dir, &opts).unwrap();
        assert_eq!((v.phase.index(), v.phase.count()), (p, PHASES));
        assert_eq!(
            v.voxels.to_f32(),
            phase_volume(m, p).voxels.to_f32(),
            "phase {p}"
        );
        let d = (v.world_from_voxel() - m).abs().to_cols_array();
        assert!(d.iter().all(|x| *x < 1e-4), "phase {p}: {d:?}");
    }
    let too_far = OpenOptions {
        phase: PHASES,
        ..Default::default()
    };
    let e = io::open(&dir, &too_far).unwrap_err().to_string();
    assert!(e.contains("phase 5") && e.contains("has 4"), "{e}");

    // The CLI: info reports the phases and the acquisition's time between them (TriggerTime
    // 0, 40, 80, 120 ms: 25 phases a second, what Play starts at).
    let r = common::cli_json(&["info", "--json", "--phase", "3"], &dir);
    assert_eq!(
        (r["phase"].as_u64(), r["phases"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(r["phase_interval_ms"].as_f64(), Some(40.0));

    // One image fewer at one position is not a cine: refused, naming the problem.
    let first = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let e = io::open(&dir, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("same position") && e.contains("not as a cine"),
        "{e}"
    );
}

#[test]
fn a_4d_nifti_phase_is_the_matching_3d_case() {
    let Some(cine) = common::shared_path("mri-acdc-4d/patient090_4d.nii.gz") else {
        return;
    };
    let data = cine.parent().unwrap().parent().unwrap();
    // The folder's README: ED is t = 3, ES is t = 10 (0-based), stored as the two cases.
    for (t, case) in [
        (3, "mri-acdc/patient090_ED"),
        (10, "mri-acdc-es/patient090_ES"),
    ] {
        let opts = OpenOptions {
            phase: t,
            ..Default::default()
        };
        let (phase, _) = io::open(&cine, &opts).unwrap();
        let (single, _) =
            io::open(&data.join(case).join("image.nii.gz"), &Default::default()).unwrap();
        assert_eq!(phase.phase.count(), 12);
        assert_eq!(phase.dims(), single.dims(), "{case}");
        assert_eq!(
            phase.world_from_voxel(),
            single.world_from_voxel(),
            "{case}"
        );
        assert_eq!(phase.voxels.to_f32(), single.voxels.to_f32(), "{case}");
    }
    let r = common::cli_json(
        &["locate", "--json", "--method", "heatmap", "--phase", "11"],
        &cine,
    );
    assert_eq!(
        (r["phase"].as_u64(), r["phases"].as_u64()),
        (Some(11), Some(12))
    );
    // ACDC's pixdim[4] is 1.0 with no time unit: a frame index, no frame rate.
    let info = common::cli_json(&["info", "--json"], &cine);
    assert!(info["phase_interval_ms"].is_null(), "{info}");
}

/// The answers without their timings (which differ run to run) and phase numbers.
fn answers(results: &serde_json::Value) -> Vec<serde_json::Value> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for k in ["seconds", "timing", "phase"] {
                r.as_object_mut().unwrap().remove(k);
            }
            r
        })
        .collect()
}

#[test]
fn all_phases_of_the_real_4d_cine_match_locate_on_its_ed_and_es_cases() {
    let Some(cine) = common::shared_path("mri-acdc-4d/patient090_4d.nii.gz") else {
        return;
    };
    let data = cine.parent().unwrap().parent().unwrap();
    let all = common::cli_json(&["locate", "--json", "--all-phases"], &cine);
    assert_eq!(all["phases"], 12);
    let per_phase = all["per_phase"].as_array().unwrap();
    assert_eq!(per_phase.len(), 12);
    for (i, p) in per_phase.iter().enumerate() {
        assert_eq!(p["phase"], i + 1);
        assert!(p["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["phase"] == i + 1));
    }
    // ED is phase 4, ES phase 11 (the folder's README).
    for (phase, case) in [
        (4, "mri-acdc/patient090_ED"),
        (11, "mri-acdc-es/patient090_ES"),
    ] {
        let single = common::cli_json(&["locate", "--json"], &data.join(case).join("image.nii.gz"));
        assert_eq!(
            answers(&per_phase[phase - 1]["results"]),
            answers(&single["results"]),
            "{case}"
        );
    }
    let seg = &all["cycle"]["methods"][0];
    assert_eq!(seg["method"], "segmentation");
    assert_eq!(seg["centre_path_lps_mm"].as_array().unwrap().len(), 12);
    assert!(seg["whole_heart_volume_change_fraction"].as_f64().unwrap() > 0.0);
    println!("patient090 cycle: {}", all["cycle"]);
}
