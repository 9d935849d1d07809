//! Annotation in the real app (egui_kittest): landmarks placed, dragged, undone and saved,
//! worklists navigated and resumed, DICOM landmarks kept out of the export.
#![cfg(feature = "gui")]

mod common;

use common::gui::*;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use glam::DVec3;
use heartloc::app::{HeartlocApp, NoDialog, Source};

/// Find the marker on screen from the pixels alone, then place heart-center there (key 2):
/// where on screen, and the point placed.
fn place_heart_center_on_marker(h: &mut Harness<'static, HeartlocApp>) -> (egui::Pos2, DVec3) {
    let img = h.render().expect("render");
    let axial = h.state().pane_rects()[0];
    let seen = bright_centre(&img, axial).expect("marker visible");
    let at = egui::pos2(seen.x as f32, seen.y as f32);
    h.hover_at(at);
    h.run_steps(1);
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    assert!(h.state().landmarks.armed && h.state().landmarks.active_slot == "heart-center");
    click(h, at);
    (at, heart_center(h).expect("placed"))
}

#[test]
fn place_move_undo_redo_save_and_reopen_a_landmark() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, path, marker) = marker_harness(tmp.path(), 760.0);
    let (at, placed) = place_heart_center_on_marker(&mut h);
    // Within half a voxel (2 mm voxels) of the marker's true centre, in x and y; z is the slice.
    assert!(
        (placed.truncate() - marker.truncate()).length() < 1.0,
        "placed at {placed}, marker {marker}"
    );
    assert!((placed.z - marker.z).abs() < 1e-9);
    assert_eq!(
        h.state().crosshair,
        placed,
        "after a placement every view moves to the point"
    );

    // Drag it 30 points to screen right: patient left (+x) in the axial view.
    let mm_per_px = h.state().views[0].mm_per_px;
    drag(&mut h, at, at + egui::vec2(30.0, 0.0));
    let moved = heart_center(&h).expect("still defined");
    assert!(
        (moved.x - placed.x - 30.0 * mm_per_px).abs() < 0.5 * mm_per_px + 1e-6,
        "{moved} from {placed}"
    );
    assert!((moved.y - placed.y).abs() < mm_per_px);

    // Undo the move, redo it.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(1);
    assert_eq!(heart_center(&h), Some(placed));
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.run_steps(2);
    assert_eq!(heart_center(&h), Some(moved));

    // Saved beside the image on every change.
    let saved = heartloc::app::landmarks_beside(&path);
    let pts = heartloc::io::markups::read(&saved).expect("autosaved");
    let hc = pts
        .iter()
        .find(|p| p.label == "heart-center")
        .expect("saved slot");
    assert!(DVec3::from_array(hc.position_lps.expect("position")).distance(moved) < 1e-6);

    // Reopen through the command-line path (`view FILE --landmarks F`).
    drop(h);
    let launch = heartloc::app::Launch {
        input: Some(path),
        landmarks: Some(saved),
        ..Default::default()
    };
    let mut again = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::launch(cc, launch, Box::new(NoDialog)));
    wait_loaded(&mut again);
    let back = heart_center(&again).expect("reloaded");
    assert!(back.distance(moved) < 1e-6);

    // Escape cancels a drag in progress.
    let start = at + egui::vec2(30.0, 0.0);
    again.state_mut().crosshair = marker;
    again.run_steps(2);
    again.hover_at(start);
    again.run_steps(1);
    press(&mut again, start, true);
    again.run_steps(1);
    again.hover_at(start + egui::vec2(25.0, 10.0));
    again.run_steps(1);
    again.key_press(egui::Key::Escape);
    again.run_steps(1);
    press(&mut again, start + egui::vec2(25.0, 10.0), false);
    again.run_steps(2);
    assert!(heart_center(&again).expect("kept").distance(moved) < 1e-6);
}

#[test]
fn worklist_navigates_cases_autosaves_to_the_output_folder_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    for case in ["case_a", "case_b"] {
        std::fs::create_dir_all(tmp.path().join(case)).unwrap();
        let (made, _) = marker_volume(&tmp.path().join(case));
        std::fs::rename(made, tmp.path().join(case).join("image.nii.gz")).unwrap();
    }
    let out = tmp.path().join("labels");
    let launch = heartloc::app::Launch {
        worklist: Some(tmp.path().to_path_buf()),
        out: Some(out.clone()),
        ..Default::default()
    };
    let l2 = launch.clone();
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::launch(cc, launch, Box::new(NoDialog)));
    wait_loaded(&mut h);
    assert_eq!(h.state().worklist.as_ref().map(|w| w.current), Some(0));

    // Place heart-center on case_a at the axial pane centre.
    let centre = h.state().pane_rects()[0].center();
    h.hover_at(centre);
    h.run_steps(1);
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    click(&mut h, centre);
    let placed = heart_center(&h).expect("placed");
    let saved = heartloc::io::markups::read(&out.join("case_a.mrk.json")).expect("saved in --out");
    assert!(saved
        .iter()
        .any(|p| p.label == "heart-center"
            && p.status == heartloc::io::markups::PositionStatus::Defined));
    assert!(!tmp
        .path()
        .join("case_a")
        .join("landmarks.mrk.json")
        .exists());

    // N: next case, with its own (empty) landmarks; P: back, with the saved point.
    h.key_press(egui::Key::N);
    wait_loaded(&mut h);
    assert_eq!(h.state().worklist.as_ref().map(|w| w.current), Some(1));
    assert_eq!(heart_center(&h), None);
    h.key_press(egui::Key::P);
    wait_loaded(&mut h);
    assert_eq!(heart_center(&h), Some(placed));
    h.key_press(egui::Key::N);
    wait_loaded(&mut h);
    assert_eq!(
        h.state().settings.last_worklist,
        Some((tmp.path().to_path_buf(), Some(out.clone()))),
        "offered for resuming next time"
    );
    drop(h);

    // A restart resumes at the case it was on.
    let mut again = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::launch(cc, l2, Box::new(NoDialog)));
    wait_loaded(&mut again);
    assert_eq!(again.state().worklist.as_ref().map(|w| w.current), Some(1));
}

#[test]
fn landmarks_of_a_dicom_folder_go_to_the_user_folder_by_series_never_into_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    let (vol, _) = heartloc::phantom::chest_ct([48, 40, 24], 8.0);
    let opts = heartloc::io::dicom::WriteSeriesOptions {
        series_uid: "2.25.31337".into(),
        ..Default::default()
    };
    heartloc::io::dicom::write_series(&export.join("series"), &vol, &opts).unwrap();
    let before: Vec<_> = std::fs::read_dir(export.join("series")).unwrap().collect();
    let user = tmp.path().join("user-landmarks");
    // Only this test saves DICOM landmarks (the app reads the variable for them alone).
    std::env::set_var("HEARTLOC_LANDMARKS_DIR", &user);
    let mut h = harness(Source::Path(export.clone()));
    let at = h.state().pane_rects()[0].center();
    h.hover_at(at);
    h.run_steps(1);
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    click(&mut h, at);
    let placed = heart_center(&h).expect("placed");
    // The writer's study UID is the series UID with ".0" appended.
    let saved = user.join("2.25.31337.0").join("2.25.31337.mrk.json");
    let pts = heartloc::io::markups::read(&saved).expect("saved in the user folder");
    let hc = pts.iter().find(|p| p.label == "heart-center").unwrap();
    assert!(DVec3::from_array(hc.position_lps.unwrap()).distance(placed) < 1e-6);
    // Nothing new in the export.
    assert_eq!(
        std::fs::read_dir(export.join("series")).unwrap().count(),
        before.len()
    );
    assert_eq!(std::fs::read_dir(&export).unwrap().count(), 1);
    // Reopened from a copy elsewhere, the same series finds its landmarks.
    drop(h);
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(export.join("series")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    let h = harness(Source::Path(copy));
    assert_eq!(heart_center(&h), Some(placed));
}

#[test]
fn an_aortic_valve_placed_in_a_turned_plane_lands_where_its_pixel_maps_and_nudges_and_undoes() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, path, _) = marker_harness(tmp.path(), 760.0);
    // Turn the planes 15° about the axial normal ("]" three times over the axial pane).
    let axial = h.state().pane_rects()[0];
    h.hover_at(axial.center());
    h.run_steps(1);
    for _ in 0..3 {
        h.key_press(egui::Key::CloseBracket);
        h.run_steps(1);
    }
    let coronal = h.state().views[1];
    let turned = coronal
        .rotation
        .angle_between(glam::DQuat::IDENTITY)
        .to_degrees();
    assert!((turned - 15.0).abs() < 1e-6, "turned {turned}°");
    assert!((coronal.normal().dot(DVec3::Y) - 15f64.to_radians().cos()).abs() < 1e-9);
    // Arm aortic-valve (key 1) and click a pixel of the turned coronal pane.
    let rect = h.state().pane_rects()[1];
    let at = rect.center() + egui::vec2(23.0, -17.0);
    let size = glam::DVec2::new(f64::from(rect.width()), f64::from(rect.height()));
    let rel = glam::DVec2::new(f64::from(at.x - rect.min.x), f64::from(at.y - rect.min.y));
    let want = coronal.world_from_screen(rel, size, h.state().crosshair);
    h.hover_at(at);
    h.run_steps(1);
    h.key_press(egui::Key::Num1);
    h.run_steps(1);
    click(&mut h, at);
    let valve = |h: &Harness<'static, HeartlocApp>| landmark(h, "aortic-valve");
    let placed = valve(&h).expect("placed");
    // Within half a voxel (2 mm) of where the oblique pixel maps; saved so.
    assert!(
        placed.distance(want) < 1.0,
        "placed {placed}, pixel maps to {want}"
    );
    assert_eq!(h.state().crosshair, placed, "every view moves to the point");
    let saved = |p: &std::path::Path| {
        heartloc::io::markups::read(p)
            .unwrap()
            .into_iter()
            .find(|c| c.label == "aortic-valve")
            .and_then(|c| c.position_lps)
            .map(DVec3::from_array)
    };
    let file = heartloc::app::landmarks_beside(&path);
    assert!(saved(&file).expect("saved").distance(placed) < 1e-9);
    // Its marker is drawn where the turned plane shows it.
    let img = h.render().expect("render");
    let shown = coronal.screen_from_world(placed, size);
    let spot = egui::Rect::from_center_size(
        rect.min + egui::vec2(shown.x as f32, shown.y as f32),
        egui::vec2(20.0, 20.0),
    );
    let red = count_color(&img, spot, egui::Color32::from_rgb(255, 80, 80));
    assert!(red >= 10, "{red} marker pixels around {spot:?}");
    // Alt+Right nudges it 0.5 mm along the turned pane's screen-right; undo puts it back.
    h.hover_at(at);
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::ALT, egui::Key::ArrowRight);
    h.run_steps(2);
    let (r, _, _) = coronal.axes();
    let nudged = valve(&h).expect("still placed");
    assert!(
        (nudged - (placed + r * 0.5)).length() < 1e-9,
        "{nudged} vs {placed}"
    );
    assert!(saved(&file).unwrap().distance(nudged) < 1e-9);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(valve(&h), Some(placed));
    assert!(saved(&file).unwrap().distance(placed) < 1e-9);
    // Back to the patient axes with the controls' button.
    h.get_by_label("Patient axes").click();
    h.run_steps(2);
    assert_eq!(h.state().views[1].rotation, glam::DQuat::IDENTITY);
}

#[test]
fn the_worklist_list_follows_the_current_case_and_skip_case_moves_on() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = heartloc::phantom::chest_ct([16, 16, 8], 8.0).0;
    for i in 0..30 {
        let d = tmp.path().join(format!("case_{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        heartloc::io::nifti::write(&d.join("image.nii.gz"), &vol).unwrap();
    }
    let launch = heartloc::app::Launch {
        worklist: Some(tmp.path().to_path_buf()),
        out: Some(tmp.path().join("labels")),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size([1100.0, 1500.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::launch(cc, launch, Box::new(NoDialog)));
    wait_loaded(&mut h);
    let ctx = h.ctx.clone();
    h.state_mut().open_case(25, &ctx);
    wait_loaded(&mut h);
    let list_top = h.get_by_label("Score all cases").rect().bottom();
    let row = h.get_by_label("case_25  to do  (0)").rect();
    assert!(
        row.center().y > list_top && row.center().y < list_top + 190.0,
        "current row at {row:?}, list from {list_top}"
    );
    // Skip case marks it skipped and opens the next one.
    h.get_by_label("Skip case").click();
    wait_loaded(&mut h);
    let w = h.state().worklist.as_ref().unwrap();
    assert_eq!(w.current, 26);
    assert_eq!(
        w.summary(25).status,
        heartloc::worklist::CaseStatus::Skipped
    );
}

#[test]
fn typed_coordinates_move_the_active_landmark_as_one_undoable_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, _, _) = marker_harness(tmp.path(), 1300.0);
    let at = h.state().pane_rects()[0].center();
    h.hover_at(at);
    h.run_steps(1);
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    click(&mut h, at);
    let placed = heart_center(&h).expect("placed");
    h.run_steps(3);
    assert_eq!(
        heart_center(&h),
        Some(placed),
        "showing the fields changes nothing"
    );
    // Set a new superior coordinate in the S field (as a screen reader or typed value does).
    h.get_by_label("S (LPS mm)").set_value_accesskit(12.5);
    h.run_steps(3);
    let typed = heart_center(&h).expect("still placed");
    assert_eq!(typed, DVec3::new(placed.x, placed.y, 12.5));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(heart_center(&h), Some(placed));
}

/// A locked landmark (the panel's Lock button) is not moved by a drag, a placing click, a
/// nudge or Delete; the status bar says why; the lock is saved as Slicer's per-point `locked`
/// and comes back on reopening; Unlock frees it again.
#[test]
fn a_locked_landmark_stays_put_is_saved_locked_and_unlocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, path, marker) = marker_harness(tmp.path(), 760.0);
    let (at, placed) = place_heart_center_on_marker(&mut h);
    h.get_by_label("Lock").click();
    h.run_steps(2);
    assert!(h.state().landmarks.annotation.set.is_locked("heart-center"));
    drag(&mut h, at, at + egui::vec2(30.0, 0.0));
    assert_eq!(heart_center(&h), Some(placed), "a drag leaves it");
    let msg = h.state().message.clone().unwrap_or_default();
    assert!(msg.contains("heart-center is locked"), "{msg}");
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    let crosshair = h.state().crosshair;
    click(&mut h, at + egui::vec2(20.0, 20.0));
    assert_eq!(
        h.state().crosshair,
        crosshair,
        "a refused placement moves no view"
    );
    h.hover_at(at);
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::ALT, egui::Key::ArrowUp);
    h.key_press(egui::Key::Delete);
    h.run_steps(2);
    assert_eq!(
        heart_center(&h),
        Some(placed),
        "placing, nudging, Delete leave it"
    );
    assert_eq!(
        h.query_all_by_label_contains("  locked").count(),
        1,
        "the row says so"
    );
    if let Ok(dir) = std::env::var("HEARTLOC_SHOTS") {
        let img = h.render().expect("render");
        img.save(std::path::Path::new(&dir).join("locked.png"))
            .unwrap();
    }
    let saved = heartloc::app::landmarks_beside(&path);
    let pts = heartloc::io::markups::read(&saved).expect("autosaved");
    let hc = pts.iter().find(|p| p.label == "heart-center").unwrap();
    assert!(hc.locked, "saved as Slicer's locked");
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains("\"locked\": true"), "{text}");
    drop(h);
    // Reopened, it is still locked; unlocked, it moves again.
    let (mut again, _, _) = marker_harness(tmp.path(), 760.0);
    assert!(again
        .state()
        .landmarks
        .annotation
        .set
        .is_locked("heart-center"));
    assert_eq!(heart_center(&again), Some(placed));
    again.state_mut().landmarks.active_slot = "heart-center".into();
    again.run_steps(1);
    again.get_by_label("Unlock").click();
    again.run_steps(2);
    again.state_mut().crosshair = marker;
    again.run_steps(2);
    drag(&mut again, at, at + egui::vec2(30.0, 0.0));
    assert_ne!(
        heart_center(&again),
        Some(placed),
        "unlocked, a drag moves it"
    );
}

/// Placing in the 3D view (issue 22): with aortic-valve armed, a click on the marker cube in the
/// 3D pane puts the landmark where the ray first meets the isosurface level — on the cube's
/// near face, saved there — and every view moves to it; a click beside the cube places nothing
/// and says why.
#[test]
fn a_click_in_the_3d_view_places_on_the_isosurface() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, path, marker) = marker_harness(tmp.path(), 760.0);
    h.state_mut().iso = 500.0;
    h.state_mut().settings.mode = heartloc::slice_view::VolumeMode::Isosurface;
    h.run_steps(2);
    let rect = h.state().pane_rects()[3];
    let size = glam::DVec2::new(f64::from(rect.width()), f64::from(rect.height()));
    let camera = h.state().camera;
    let on = camera.screen_from_world(marker, size).expect("in front");
    let at = rect.min + egui::vec2(on.x as f32, on.y as f32);
    let valve = |h: &Harness<'static, HeartlocApp>| landmark(h, "aortic-valve");
    // Beside the cube (40 points off it): nothing to meet, nothing placed.
    h.hover_at(at + egui::vec2(0.0, 60.0));
    h.run_steps(1);
    h.key_press(egui::Key::Num1);
    h.run_steps(1);
    click(&mut h, at + egui::vec2(0.0, 60.0));
    assert_eq!(valve(&h), None);
    let said = h.state().message.clone().unwrap_or_default();
    assert!(said.contains("No surface"), "{said}");

    click(&mut h, at);
    let placed = valve(&h).expect("placed on the cube");
    // On the cube's surface (8 mm a side, 2 mm voxels: within a voxel of a face) and on the
    // camera's side of its centre.
    let off = (placed - marker).abs().max_element();
    assert!(
        (off - 4.0).abs() < 2.0,
        "placed {placed}, {off} mm from the centre"
    );
    assert!(placed.distance(camera.eye()) < marker.distance(camera.eye()));
    assert_eq!(h.state().crosshair, placed, "every view moves to the point");
    let file = heartloc::app::landmarks_beside(&path);
    let saved = heartloc::io::markups::read(&file)
        .unwrap()
        .into_iter()
        .find(|c| c.label == "aortic-valve")
        .and_then(|c| c.position_lps)
        .map(DVec3::from_array)
        .expect("saved");
    assert!(saved.distance(placed) < 1e-9);
}
