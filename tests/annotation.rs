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
        locked: false,
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

/// `../shared/slicer-markups` (real files written by 3D Slicer), or `None` with a reason.
fn slicer_fixtures() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/slicer-markups");
    if dir.join("markups-schema-v1.0.3.json").is_file() {
        Some(dir)
    } else {
        println!("SKIP: {} is absent", dir.display());
        None
    }
}

/// Slicer's schema v1.0.3, with the two deviations Slicer's own writer makes allowed:
/// `"position": ""` for a point not placed, and `"positionStatus": "missing"` (skipped).
fn schema_problems(schema: &serde_json::Value, doc: &serde_json::Value) -> Vec<String> {
    let mut doc = doc.clone();
    for m in doc["markups"].as_array_mut().into_iter().flatten() {
        for cp in m["controlPoints"].as_array_mut().into_iter().flatten() {
            let o = cp.as_object_mut().unwrap();
            if o.get("position") == Some(&serde_json::json!("")) {
                o.remove("position");
            }
            if o.get("positionStatus") == Some(&serde_json::json!("missing")) {
                o.insert("positionStatus".into(), serde_json::json!("undefined"));
            }
        }
    }
    let v = jsonschema::validator_for(schema).expect("Slicer's schema compiles");
    v.iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn slicer_files_edited_here_keep_everything_else_and_match_slicers_schema() {
    let Some(dir) = slicer_fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("markups-schema-v1.0.3.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".mrk.json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for original in &files {
        let name = original.file_name().unwrap().to_string_lossy().to_string();
        let path = tmp.path().join(&name);
        std::fs::copy(original, &path).unwrap();
        let before: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let read = markups::read_file(&path).unwrap();
        // Move the first point 1 mm to the left (if any) and add a new, unplaced one.
        let mut points = read.points.clone();
        if let Some(p) = points.first_mut().filter(|p| p.position_lps.is_some()) {
            p.position_lps = p.position_lps.map(|[x, y, z]| [x + 1.0, y, z]);
        }
        points.push(markups::ControlPoint {
            label: "heart-center".into(),
            description: String::new(),
            position_lps: None,
            status: markups::PositionStatus::Undefined,
            locked: false,
        });
        markups::save(&path, &points).unwrap();
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            markups::read(&path).unwrap(),
            points,
            "{name}: reads back as saved"
        );
        assert_eq!(before["@schema"], after["@schema"], "{name}");
        let (b, a) = (
            before["markups"].as_array().unwrap(),
            after["markups"].as_array().unwrap(),
        );
        let lists = b.iter().filter(|m| m["type"] == "Fiducial").count();
        assert_eq!(
            a.len(),
            b.len() + usize::from(lists == 0),
            "{name}: markups kept"
        );
        for (mb, ma) in b.iter().zip(a) {
            if mb["type"] != "Fiducial" {
                assert_eq!(mb, ma, "{name}: a {} markup is untouched", mb["type"]);
                continue;
            }
            for (k, v) in mb.as_object().unwrap() {
                if k != "controlPoints" && k != "lastUsedControlPointNumber" {
                    assert_eq!(&ma[k], v, "{name}: markup field {k}");
                }
            }
            let (cb, ca) = (
                mb["controlPoints"].as_array().unwrap(),
                ma["controlPoints"].as_array().unwrap(),
            );
            for (pb, pa) in cb.iter().zip(ca) {
                for (k, v) in pb.as_object().unwrap() {
                    if k != "position" {
                        assert_eq!(&pa[k], v, "{name}: point field {k}");
                    }
                }
            }
        }
        // The new point has the next id and the markup remembers it.
        let list = a.iter().find(|m| m["type"] == "Fiducial").unwrap();
        let cps = list["controlPoints"].as_array().unwrap();
        let new = cps.last().unwrap();
        let last = list["lastUsedControlPointNumber"].as_u64().unwrap();
        assert_eq!(new["id"], serde_json::json!(last.to_string()), "{name}");
        let ids: std::collections::HashSet<&str> =
            cps.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), cps.len(), "{name}: ids unique");
        let problems = schema_problems(&schema, &after);
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
    // The check can fail: a status Slicer does not know is caught.
    let bad = serde_json::json!({"@schema": "x", "markups": [{"type": "Fiducial",
        "controlPoints": [{"id": "1", "position": [0, 0, 0], "positionStatus": "gone"}]}]});
    assert!(!schema_problems(&schema, &bad).is_empty());
    // A file heartloc writes from scratch validates too.
    let fresh = tmp.path().join("new.mrk.json");
    markups::write(&fresh, &LandmarkSet::default().to_points()).unwrap();
    let doc = serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
    assert_eq!(schema_problems(&schema, &doc), Vec::<String>::new());
}

#[test]
fn a_worklist_of_awkward_slicer_files_exports_every_readable_point_and_names_each_problem() {
    let Some(dir) = slicer_fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let vol = heartloc::phantom::chest_ct([16, 16, 8], 8.0).0;
    let case = |name: &str, files: &[(&str, String)]| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        nifti::write(&d.join("image.nii.gz"), &vol).unwrap();
        for (f, text) in files {
            std::fs::write(d.join(f), text).unwrap();
        }
    };
    let fixture = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    // Skipped and unplaced points as Slicer 5.4 writes them.
    case(
        "a-statuses",
        &[("slicer.mrk.json", fixture("slicer-5.4-statuses.mrk.json"))],
    );
    // A Line file beside a point file (Slicer saves one file per markup).
    case(
        "b-line",
        &[
            ("ACPC.mrk.json", fixture("ACPC.mrk.json")),
            ("points.mrk.json", fixture("slicer-5.x-pointlist.mrk.json")),
        ],
    );
    // Two points labelled alike.
    let dup = fixture("slicer-5.x-pointlist.mrk.json").replace("\"A1\"", "\"A\"");
    case("c-duplicates", &[("dup.mrk.json", dup)]);
    // A file cut short.
    let whole = fixture("slicer-5.x-pointlist.mrk.json");
    case(
        "d-truncated",
        &[("cut.mrk.json", whole[..whole.len() / 2].to_string())],
    );
    let w = heartloc::worklist::Worklist::open(tmp.path(), None).unwrap();
    let csv = tmp.path().join("all.csv");
    let export = w.export_csv(&csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    for row in [
        "a-statuses,crossed,,,,skipped",
        "a-statuses,editing,,,,undefined",
        "a-statuses,locked,",
        "b-line,A,",
        "b-line,A1,",
    ] {
        assert!(text.contains(row), "missing {row}:\n{text}");
    }
    let dup_rows = text
        .lines()
        .filter(|l| l.starts_with("c-duplicates,A,"))
        .count();
    assert_eq!(
        dup_rows, 2,
        "both points of a repeated label are exported:\n{text}"
    );
    assert!(!text.contains("d-truncated"), "{text}");
    assert_eq!(export.problems.len(), 2, "{:?}", export.problems);
    assert!(export.problems[0].contains("c-duplicates") && export.problems[0].contains("\"A\""));
    assert!(
        export.problems[1].contains("cut.mrk.json"),
        "{:?}",
        export.problems
    );
    assert!(
        export
            .notes
            .iter()
            .any(|n| n.contains("ACPC.mrk.json") && n.contains("Line")),
        "{:?}",
        export.notes
    );
    // The CLI writes the same CSV, prints the problems and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .args(["worklist", "--export-csv"])
        .arg(tmp.path().join("cli.csv"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.mrk.json") && err.contains("c-duplicates"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("cli.csv")).unwrap(),
        text
    );
}
