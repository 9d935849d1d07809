//! The real app driven headless through egui_kittest with the wgpu renderer (Mesa lavapipe
//! in CI): orientation proven by pixels, real CT and MR cases opened, slices stepped,
//! window/level and volume modes switched through AccessKit labels.
#![cfg(feature = "gui")]

mod common;

use std::path::PathBuf;

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use glam::{DMat4, DVec2, DVec3};
use heartloc::app::{FileDialog, HeartlocApp, NoDialog, Source};
use heartloc::io::nifti;
use heartloc::slice_view::{Plane, VolumeMode, WindowPreset};
use heartloc::volume::{lps_from_ras, Grid, Volume, Voxels};

fn harness(source: Source) -> Harness<'static, HeartlocApp> {
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::new(cc, source, Box::new(NoDialog)));
    wait_loaded(&mut h);
    h
}

fn wait_loaded(h: &mut Harness<'static, HeartlocApp>) {
    for _ in 0..3000 {
        h.step();
        if !h.state().is_loading() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!h.state().is_loading(), "volume did not load");
    h.run_steps(3);
}

/// Brightness-weighted centre of near-white pixels inside `rect` (margins excluded).
fn bright_centre(img: &image::RgbaImage, rect: egui::Rect) -> Option<DVec2> {
    let (mut sum, mut n) = (DVec2::ZERO, 0.0);
    let r = rect.shrink(45.0);
    for y in r.min.y as u32..r.max.y as u32 {
        for x in r.min.x as u32..r.max.x as u32 {
            let p = img.get_pixel(x, y);
            if p[0] > 200 && p[1] > 200 && p[2] > 200 {
                sum += DVec2::new(f64::from(x) + 0.5, f64::from(y) + 0.5);
                n += 1.0;
            }
        }
    }
    (n > 0.0).then(|| sum / n)
}

/// A RAS-stored volume (as NIfTI files usually are) with its centre at the LPS origin and a
/// bright 8 mm cube at 30 mm left, 20 mm anterior, 25 mm superior. Returns its path and the
/// marker's LPS centre.
fn marker_volume(dir: &std::path::Path) -> (PathBuf, DVec3) {
    let dims = [64usize, 64, 64];
    let world_from_voxel = lps_from_ras()
        * DMat4::from_translation(DVec3::splat(-63.0))
        * DMat4::from_scale(DVec3::splat(2.0));
    let grid = Grid::new(dims, world_from_voxel);
    assert_eq!(grid.orientation_code(), "RAS");
    let marker = DVec3::new(30.0, -20.0, 25.0);
    let mut vals = vec![0i16; 64 * 64 * 64];
    for k in 0..64 {
        for j in 0..64 {
            for i in 0..64 {
                let p = grid.world_from_index(DVec3::new(i as f64, j as f64, k as f64));
                if (p - marker).abs().max_element() <= 4.0 {
                    vals[i + 64 * (j + 64 * k)] = 1000;
                }
            }
        }
    }
    let path = dir.join("marker.nii.gz");
    nifti::write(&path, &Volume::new(grid, Voxels::I16(vals))).unwrap();
    (path, marker)
}

#[test]
fn a_bright_marker_at_a_known_lps_point_shows_where_it_should_in_every_pane() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, marker) = marker_volume(tmp.path());
    let mut h = harness(Source::Path(path));
    h.state_mut().crosshair = marker;
    h.state_mut().window = (0.0, 1000.0);
    h.run_steps(2);
    let img = h.render().expect("render");
    let rects = h.state().pane_rects();
    for (i, plane) in Plane::ALL.iter().enumerate() {
        let rect = rects[i];
        let found =
            bright_centre(&img, rect).unwrap_or_else(|| panic!("{plane:?}: marker not drawn"));
        let c = DVec2::new(f64::from(rect.center().x), f64::from(rect.center().y));
        let rel = found - c;
        match plane {
            // Patient left on screen right, anterior up.
            Plane::Axial => assert!(rel.x > 40.0 && rel.y < -25.0, "axial {rel}"),
            // Patient left on screen right, superior up.
            Plane::Coronal => assert!(rel.x > 40.0 && rel.y < -30.0, "coronal {rel}"),
            // Anterior on screen left, superior up.
            Plane::Sagittal => assert!(rel.x < -25.0 && rel.y < -30.0, "sagittal {rel}"),
        }
        // And exactly where the view's own mapping puts it (GPU and CPU agree).
        let view = h.state().views[i];
        let size = DVec2::new(f64::from(rect.width()), f64::from(rect.height()));
        let want = view.screen_from_world(marker, size)
            + DVec2::new(f64::from(rect.min.x), f64::from(rect.min.y));
        assert!(
            (found - want).length() < 2.0,
            "{plane:?}: drawn at {found}, mapped to {want}"
        );
    }
}

#[test]
fn demo_opens_and_matches_its_snapshot() {
    let mut h = harness(Source::Demo);
    assert!(h.state().doc.as_ref().is_some_and(|d| d.source.is_none()));
    h.get_by_label("Synthetic phantom made in code — not patient data.");
    h.snapshot("demo_phantom");
}

fn pane_stats(img: &image::RgbaImage, rect: egui::Rect) -> (f64, f64) {
    let r = rect.shrink(30.0);
    let mut v = Vec::new();
    for y in r.min.y as u32..r.max.y as u32 {
        for x in r.min.x as u32..r.max.x as u32 {
            let p = img.get_pixel(x, y);
            v.push((f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 3.0);
        }
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn real_ct_and_mr_cases_open_step_window_and_render_in_every_mode() {
    let Some(data) = common::shared_data() else {
        return;
    };
    for case in ["ct-segthor/Patient_03", "mri-acdc/patient001_ED"] {
        let mut h = harness(Source::Path(data.join(case).join("image.nii.gz")));
        let doc_dims = h
            .state()
            .doc
            .as_ref()
            .map(|d| d.volume.dims())
            .expect("loaded");
        let want: Vec<usize> = common::manifest(&data)
            .into_iter()
            .find(|c| c.case == case)
            .map(|c| c.shape.to_vec())
            .expect("in manifest");
        assert_eq!(doc_dims.to_vec(), want);

        // Step the axial slice with the keyboard over the axial pane.
        let rects = h.state().pane_rects();
        let z0 = h.state().crosshair.z;
        h.hover_at(rects[0].center());
        h.run_steps(1);
        h.key_press(egui::Key::ArrowUp);
        h.run_steps(2);
        let step = h.state().crosshair.z - z0;
        let spacing_z = h
            .state()
            .doc
            .as_ref()
            .map(|d| d.volume.spacing_mm()[2])
            .unwrap_or(0.0);
        assert!(
            (step - spacing_z).abs() < 1e-6,
            "{case}: stepped {step} mm, slice spacing {spacing_z}"
        );

        // Window presets by their labels.
        let before = h.state().window;
        h.get_by_label("Lung").click();
        h.run_steps(2);
        assert_eq!(h.state().settings.preset, WindowPreset::Lung);
        let lung = h.state().window;
        h.get_by_label("Mediastinum").click();
        h.run_steps(2);
        let calibrated = h
            .state()
            .doc
            .as_ref()
            .is_some_and(|d| d.intensity.hu_from_value.is_some());
        // CT presets differ from each other (SegTHOR goes through the air/tissue calibration).
        if case.starts_with("ct") {
            assert!(calibrated, "{case}: no HU calibration");
            assert_ne!(h.state().window, lung, "{case}: presets differ");
        }
        h.get_by_label("Auto").click();
        h.run_steps(2);
        assert_eq!(
            h.state().window,
            before,
            "{case}: Auto restores the first window"
        );

        // Each volume mode renders something and the modes differ.
        let mut stats = Vec::new();
        for mode in VolumeMode::ALL {
            h.get_by_label(mode.name()).click();
            h.run_steps(2);
            assert_eq!(h.state().settings.mode, mode);
            let img = h.render().expect("render");
            // For looking at real cases: HEARTLOC_SCREENSHOT_DIR=/tmp/shots (never committed).
            if let Some(dir) = std::env::var_os("HEARTLOC_SCREENSHOT_DIR") {
                let name = format!("{}_{}.png", case.replace('/', "_"), mode.name());
                img.save(PathBuf::from(dir).join(name)).unwrap();
            }
            let s = pane_stats(&img, h.state().pane_rects()[3]);
            assert!(s.1 > 3.0, "{case} {mode:?}: volume pane is flat ({s:?})");
            stats.push(s);
            let axial = pane_stats(&img, h.state().pane_rects()[0]);
            assert!(axial.1 > 3.0, "{case}: axial pane is flat ({axial:?})");
        }
        assert!(
            stats[0] != stats[1] && stats[1] != stats[2],
            "{case}: modes look identical"
        );
    }
}

#[test]
fn a_broken_file_shows_a_message_and_the_app_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b not gzip").unwrap();
    let mut h = harness(Source::Path(bad));
    let msg = h.state().message.clone().unwrap_or_default();
    assert!(msg.contains("broken.nii.gz"), "{msg}");
    assert!(h.state().doc.is_none());
    let ctx = h.ctx.clone();
    h.state_mut().open(Source::Demo, &ctx);
    wait_loaded(&mut h);
    assert!(h.state().doc.is_some());
}

fn press(h: &mut Harness<'static, HeartlocApp>, pos: egui::Pos2, pressed: bool) {
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    });
}

fn click(h: &mut Harness<'static, HeartlocApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.run_steps(1);
    press(h, pos, true);
    h.run_steps(1);
    press(h, pos, false);
    h.run_steps(2);
}

fn drag(h: &mut Harness<'static, HeartlocApp>, from: egui::Pos2, to: egui::Pos2) {
    h.hover_at(from);
    h.run_steps(1);
    press(h, from, true);
    h.run_steps(1);
    for t in 1..=5 {
        h.hover_at(from + (to - from) * (t as f32 / 5.0));
        h.run_steps(1);
    }
    press(h, to, false);
    h.run_steps(2);
}

fn heart_center(h: &Harness<'static, HeartlocApp>) -> Option<DVec3> {
    h.state()
        .annotation
        .set
        .get("heart-center")
        .and_then(|l| l.position_lps)
}

#[test]
fn place_move_undo_redo_save_and_reopen_a_landmark() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, marker) = marker_volume(tmp.path());
    let mut h = harness(Source::Path(path.clone()));
    h.state_mut().crosshair = marker;
    h.state_mut().window = (0.0, 1000.0);
    h.run_steps(2);
    // Find the marker on screen from the pixels alone, then place heart-center there (key 2).
    let img = h.render().expect("render");
    let axial = h.state().pane_rects()[0];
    let seen = bright_centre(&img, axial).expect("marker visible");
    let at = egui::pos2(seen.x as f32, seen.y as f32);
    h.hover_at(at);
    h.run_steps(1);
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    assert!(h.state().armed && h.state().active_slot == "heart-center");
    click(&mut h, at);
    let placed = heart_center(&h).expect("placed");
    // Within half a voxel (2 mm voxels) of the marker's true centre, in x and y; z is the slice.
    assert!(
        (placed.truncate() - marker.truncate()).length() < 1.0,
        "placed at {placed}, marker {marker}"
    );
    assert!((placed.z - marker.z).abs() < 1e-9);
    assert_eq!(
        h.state().crosshair,
        marker,
        "placing does not move the crosshair"
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
    let start = egui::pos2(seen.x as f32 + 30.0, seen.y as f32);
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

/// A dialog that answers with fixed paths.
struct FixedDialog {
    save_to: PathBuf,
}
impl FileDialog for FixedDialog {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        None
    }
    fn save_file(&self, _: &str, _: &str) -> Option<PathBuf> {
        Some(self.save_to.clone())
    }
}

#[test]
fn screenshot_of_a_pane_is_saved_as_png_through_the_file_menu() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("axial.png");
    let save_to = png.clone();
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| {
            HeartlocApp::new(cc, Source::Demo, Box::new(FixedDialog { save_to }))
        });
    wait_loaded(&mut h);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Save screenshot (axial pane)…").click();
    for _ in 0..10 {
        h.run_steps(1);
        if png.is_file() {
            break;
        }
    }
    let img = image::open(&png).expect("a PNG was written").to_rgba8();
    let rect = h.state().pane_rects()[0];
    assert!(
        (img.width() as f32 - rect.width()).abs() <= 2.0
            && (img.height() as f32 - rect.height()).abs() <= 2.0,
        "{}x{} vs pane {:?}",
        img.width(),
        img.height(),
        rect.size()
    );
    assert!(h
        .state()
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("saved")));
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
        .any(|p| p.label == "heart-center" && p.status == "defined"));
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
fn settings_round_trip_through_storage_format() {
    let s = heartloc::app::Settings {
        recent: vec![PathBuf::from("/data/a.nii.gz")],
        preset: WindowPreset::Cardiac,
        mode: VolumeMode::Isosurface,
        maximized: Some(3),
        dvr: heartloc::slice_view::DvrPreset::Mr,
        last_worklist: Some((PathBuf::from("/data/list.csv"), None)),
    };
    let text = serde_json::to_string(&s).unwrap();
    let back: heartloc::app::Settings = serde_json::from_str(&text).unwrap();
    assert_eq!(back.recent, s.recent);
    assert_eq!(
        (back.preset, back.mode, back.maximized),
        (s.preset, s.mode, s.maximized)
    );
    // Settings written by an older version with fewer fields still load.
    let old: heartloc::app::Settings = serde_json::from_str(r#"{"recent": []}"#).unwrap();
    assert_eq!(old.maximized, None);
}
