//! Landmarks on disk: crash-safety of saves, the shared Slicer markups, worklist export.

mod common;

use std::process::Command;
use std::time::Duration;

use glam::DVec3;
use heartloc::annotation::{LandmarkSet, Status};
use heartloc::io::{markups, nifti};

#[test]
fn killing_a_saving_process_never_leaves_a_torn_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("landmarks.mrk.json");
    // Version "-1" exists before the first kill.
    let seed = vec![markups::ControlPoint {
        label: "aortic-valve".into(),
        description: String::new(),
        position_lps: Some([-1.0, -1.0, -1.0]),
        status: heartloc::io::markups::PositionStatus::Defined,
    }];
    markups::write(&file, &seed).unwrap();
    let mut last_seen = -1.0;
    let mut versions_seen = 0;
    for round in 0..30u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_heartloc"))
            .arg("stress-save")
            .arg(&file)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 40));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let points = markups::read(&file).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let first = points[0].position_lps.unwrap()[0];
        for p in &points {
            assert_eq!(
                p.position_lps,
                Some([first; 3]),
                "round {round}: mixed versions"
            );
        }
        if first != last_seen {
            versions_seen += 1;
            last_seen = first;
        }
    }
    assert!(
        versions_seen > 5,
        "the child should have saved between kills ({versions_seen})"
    );
    // No temporary files are left behind as landmarks.
    let stray: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".mrk.json"))
        .collect();
    assert_eq!(stray.len(), 1);
}

#[test]
fn every_shared_heart_markup_loads_on_the_heart() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let mut inside = 0;
    let cases = common::manifest(&data);
    for case in &cases {
        let path = data.join(&case.case).join("heart.mrk.json");
        let set = LandmarkSet::from_points(&markups::read(&path).unwrap());
        let heart = set.get("heart-center").expect("heart-center slot");
        assert!(matches!(heart.status, Status::Defined(_)), "{}", case.case);
        let p = heart.position_lps().unwrap();
        assert!(
            p.distance(DVec3::from_array(case.heart_center_lps_mm)) < 0.01,
            "{}",
            case.case
        );
        // The point lies in the heart: the label under it (or within 5 mm) is a heart label.
        let labels = nifti::read(&data.join(&case.case).join("labels.nii.gz")).unwrap();
        let near_heart = [
            DVec3::ZERO,
            DVec3::X,
            -DVec3::X,
            DVec3::Y,
            -DVec3::Y,
            DVec3::Z,
            -DVec3::Z,
        ]
        .iter()
        .any(|d| {
            labels
                .sample_world(p + *d * 5.0, heartloc::volume::Interpolation::Nearest)
                .is_some_and(|v| case.heart_values.iter().any(|&h| h as f32 == v))
        });
        inside += usize::from(near_heart);
    }
    println!(
        "{inside}/{} heart centres on or within 5 mm of heart voxels",
        cases.len()
    );
    assert_eq!(inside, cases.len());
}

#[test]
fn worklist_over_the_manifest_exports_every_seeded_centre() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("all.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .arg("worklist")
        .arg(data.join("manifest.csv"))
        .arg("--out")
        .arg(tmp.path().join("landmarks"))
        .arg("--export-csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("130 cases: 0 done, 130 to do, 0 skipped"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let manifest = common::manifest(&data);
    assert_eq!(text.lines().count(), 1 + 2 * manifest.len());
    for case in &manifest {
        let c = case.heart_center_lps_mm;
        let row = format!(
            "{},heart-center,{:.3},{:.3},{:.3},defined",
            case.case, c[0], c[1], c[2]
        );
        assert!(text.contains(&row), "missing {row}");
    }
}
