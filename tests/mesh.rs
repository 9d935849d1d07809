//! 3D models out: `locate --mesh-out` on a shared CT and MR writes a closed surface in LPS mm
//! (`SPACE=LPS`) whose volume matches the written mask and whose centroid matches the reported
//! centre; a label map's structure gives the same. The files are read back by the tests' own
//! readers (`common`: STL welded by exact coordinates, PLY and OBJ by their indices).

mod common;

use std::path::Path;

use glam::DVec3;
use heartloc::io::{self, OpenOptions};
use heartloc::mesh::Mesh;

/// Volume of the non-zero voxels of a mask file (mm³).
fn mask_mm3(path: &Path) -> f64 {
    let (mask, _) = io::open(path, &OpenOptions::default()).unwrap();
    let n = (0..mask.voxels.len())
        .filter(|&i| mask.voxels.get(i) > 0.5)
        .count();
    n as f64 * mask.spacing_mm().iter().product::<f64>()
}

fn check_case(rel: &str, format: &str) {
    let Some(image) = common::shared_path(rel) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("heart.nii.gz");
    let mesh_path = dir.path().join(format!("heart.{format}"));
    let args = [
        "locate",
        "--method",
        "segmentation",
        "--json",
        "--mask-out",
        mask.to_str().unwrap(),
        "--mesh-out",
        mesh_path.to_str().unwrap(),
    ];
    let answer = common::cli_json(&args, &image);
    let result = &answer["results"][0];
    let centre: Vec<f64> = serde_json::from_value(result["heart_center_lps_mm"].clone()).unwrap();
    let centre = DVec3::from_slice(&centre);
    let mesh = match format {
        "stl" => common::welded(&common::read_stl(&mesh_path)),
        _ => common::read_indexed(&mesh_path),
    };
    assert!(
        mesh.triangles.len() > 1000,
        "{rel}: {}",
        mesh.triangles.len()
    );
    assert_eq!(mesh.open_edges(), 0, "{rel}: the surface is not closed");
    let ratio = mesh.volume_mm3() / mask_mm3(&mask);
    assert!(
        (0.9..1.1).contains(&ratio),
        "{rel}: mesh/mask volume {ratio}"
    );
    let off = mesh.centroid().unwrap().distance(centre);
    assert!(
        off < 3.0,
        "{rel}: centroid {off} mm from the reported centre"
    );
    let reported = result["mesh"]["volume_ml"].as_f64().unwrap();
    assert!(
        (reported - mesh.volume_mm3() / 1000.0).abs() < 1.0,
        "{rel}: {reported}"
    );
    println!("{rel} ({format}): mesh/mask volume {ratio:.3}, centroid {off:.2} mm off");
}

#[test]
fn a_shared_ct_heart_surface_is_closed_and_matches_its_mask_and_centre() {
    check_case("ct-segthor/Patient_03/image.nii.gz", "stl");
    check_case("ct-segthor/Patient_27/image.nii.gz", "ply");
}

#[test]
fn a_shared_mr_heart_surface_is_closed_and_matches_its_mask_and_centre() {
    check_case("mri-acdc/patient001_ED/image.nii.gz", "stl");
    check_case("mri-acdc-es/patient001_ES/image.nii.gz", "obj");
}

#[test]
fn a_label_map_structure_gives_a_closed_surface_of_its_volume() {
    let Some(labels) = common::shared_path("ct-segthor/Patient_03/labels.nii.gz") else {
        return;
    };
    let (labels, _) = io::open(&labels, &OpenOptions::default()).unwrap();
    for (label, name) in [(2, "heart"), (4, "aorta")] {
        let n = (0..labels.voxels.len())
            .filter(|&i| labels.voxels.get(i) == label as f32)
            .count();
        let voxels_mm3 = n as f64 * labels.spacing_mm().iter().product::<f64>();
        let mesh = Mesh::of_label(&labels, label);
        assert_eq!(mesh.open_edges(), 0, "{name}");
        let ratio = mesh.volume_mm3() / voxels_mm3;
        assert!((0.9..1.1).contains(&ratio), "{name}: volume ratio {ratio}");
        println!(
            "{name}: {} triangles, volume ratio {ratio:.3}",
            mesh.triangles.len()
        );
    }
}

#[test]
fn mesh_out_with_an_unknown_extension_is_refused_before_the_models_run() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("phantom.nii.gz");
    let (phantom, _) = heartloc::phantom::chest_ct([40, 40, 30], 4.0);
    io::nifti::write(&volume, &phantom).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .args(["locate", "--mesh-out"])
        .arg(dir.path().join("heart.vtk"))
        .arg(&volume)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("heart.vtk") && err.contains(".stl"),
        "{err}"
    );
}

#[test]
fn mesh_writes_one_named_closed_surface_per_structure_and_refuses_an_image() {
    let Some(case) = common::shared_path("mri-acdc/patient001_ED") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
            .args(["mesh", "--format", "ply", "--out"])
            .arg(dir.path())
            .arg(case.join(input))
            .output()
            .unwrap()
    };
    let out = run("labels.nii.gz");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    // Names from the manifest's `labels` column of the shared data.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[2].starts_with("labels-3-") && names[2].contains("cavity"),
        "{names:?}"
    );
    for name in &names {
        let mesh = common::read_indexed(&dir.path().join(name));
        assert_eq!(mesh.open_edges(), 0, "{name}");
        assert!(
            mesh.volume_mm3() > 10_000.0,
            "{name}: {}",
            mesh.volume_mm3()
        );
    }
    let out = run("image.nii.gz");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("image.nii.gz") && err.contains("not a label map"),
        "{err}"
    );
}
