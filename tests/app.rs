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
use heartloc::slice_view::{Pane, Plane, VolumeMode, Window, WindowPreset};
use heartloc::volume::{lps_from_ras, Grid, Volume, Voxels};

fn harness(source: Source) -> Harness<'static, HeartlocApp> {
    harness_sized(source, 760.0)
}

/// A taller window shows the whole side panel (clicks need the widget on screen).
fn harness_sized(source: Source, height: f32) -> Harness<'static, HeartlocApp> {
    let mut h = Harness::builder()
        .with_size([1100.0, height])
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
    wait_models(h);
}

/// Step until no model run is queued or running (the demo runs them as it opens).
fn wait_models(h: &mut Harness<'static, HeartlocApp>) {
    for _ in 0..6000 {
        if !h.state().models_running() {
            break;
        }
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!h.state().models_running(), "the models did not finish");
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
    h.state_mut().window = Window::new(0.0, 1000.0);
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
    assert!(h.state().doc.as_ref().is_some_and(|d| d.source().is_none()));
    h.get_by_label("Synthetic phantom made in code — not patient data.");
    // The demo runs both models as it opens and shows what they found.
    let p = h
        .state()
        .models
        .predictions
        .as_ref()
        .expect("demo predictions");
    assert_eq!(p.findings.len(), 2, "{:?}", p.errors);
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
        .landmarks
        .annotation
        .set
        .get("heart-center")
        .and_then(|l| l.position_lps())
}

#[test]
fn place_move_undo_redo_save_and_reopen_a_landmark() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, marker) = marker_volume(tmp.path());
    let mut h = harness(Source::Path(path.clone()));
    h.state_mut().crosshair = marker;
    h.state_mut().window = Window::new(0.0, 1000.0);
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
    assert!(h.state().landmarks.armed && h.state().landmarks.active_slot == "heart-center");
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

/// A system where no file dialog can be shown (no portal, no zenity).
struct NoDialogAvailable;
impl FileDialog for NoDialogAvailable {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        None
    }
    fn save_file(&self, _: &str, _: &str) -> Option<PathBuf> {
        panic!("never asked where no dialog can be shown")
    }
    fn available(&self) -> bool {
        false
    }
}

#[test]
fn without_a_file_dialog_a_screenshot_goes_to_the_default_folder_and_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("shots");
    // Only this test reads the variable (the app reads it only when no dialog is available).
    std::env::set_var("HEARTLOC_SCREENSHOT_DIR", &folder);
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(|cc| HeartlocApp::new(cc, Source::Demo, Box::new(NoDialogAvailable)));
    wait_loaded(&mut h);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Save screenshot (window)…").click();
    let mut saved = Vec::new();
    for _ in 0..10 {
        h.run_steps(1);
        saved = std::fs::read_dir(&folder)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        if !saved.is_empty() && h.state().message.is_some() {
            break;
        }
    }
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("heartloc-") && name.ends_with(".png"),
        "{name}"
    );
    image::open(&saved[0]).expect("a PNG was written");
    let message = h.state().message.clone().unwrap_or_default();
    assert!(
        message.contains(&*saved[0].display().to_string()),
        "{message}"
    );
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
fn settings_round_trip_through_storage_format() {
    let s = heartloc::app::Settings {
        recent: vec![PathBuf::from("/data/a.nii.gz")],
        preset: WindowPreset::Cardiac,
        mode: VolumeMode::Isosurface,
        maximized: Some(Pane::Volume),
        dvr: heartloc::slice_view::DvrPreset::Mr,
        last_worklist: Some((PathBuf::from("/data/list.csv"), None)),
        overlays: heartloc::app::OverlaySettings {
            mask_outline: true,
            heat_opacity: 0.25,
            ..Default::default()
        },
    };
    let text = serde_json::to_string(&s).unwrap();
    let back: heartloc::app::Settings = serde_json::from_str(&text).unwrap();
    assert_eq!(back.recent, s.recent);
    assert_eq!(
        (back.preset, back.mode, back.maximized),
        (s.preset, s.mode, s.maximized)
    );
    assert_eq!(back.overlays, s.overlays);
    // Settings written by an older version with fewer fields still load.
    let old: heartloc::app::Settings = serde_json::from_str(r#"{"recent": []}"#).unwrap();
    assert_eq!(old.maximized, None);
}

/// Pixels inside `rect` tinted towards `color`: their colour minus their grey level points the
/// way `color`'s does (cosine > 0.9) and is not faint. Blended overlays count, grey CT does not.
fn count_color(img: &image::RgbaImage, rect: egui::Rect, color: egui::Color32) -> usize {
    let chroma = |r: f64, g: f64, b: f64| {
        let m = (r + g + b) / 3.0;
        DVec3::new(r - m, g - m, b - m)
    };
    let want = chroma(
        f64::from(color.r()),
        f64::from(color.g()),
        f64::from(color.b()),
    )
    .normalize();
    let mut n = 0;
    for y in rect.min.y.max(0.0) as u32..(rect.max.y as u32).min(img.height()) {
        for x in rect.min.x.max(0.0) as u32..(rect.max.x as u32).min(img.width()) {
            let p = img.get_pixel(x, y);
            let c = chroma(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            if c.length() > 12.0 && c.normalize().dot(want) > 0.9 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn models_run_on_a_real_case_overlay_and_the_heatmap_centre_is_accepted_and_saved() {
    let Some(data) = common::shared_data() else {
        return;
    };
    use heartloc::app::{method_color, LandmarkTarget};
    use heartloc::ml::preprocess::Method;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("review.mrk.json");
    let image = data.join("ct-segthor/Patient_12/image.nii.gz");
    let mut h = harness(Source::Demo);
    let ctx = h.ctx.clone();
    h.state_mut()
        .open_with_landmarks(Source::Path(image), LandmarkTarget::File(out.clone()), &ctx);
    wait_loaded(&mut h);
    assert!(h.state().models.predictions.is_none(), "nothing run yet");
    let before = h.render().expect("render");
    let axial = h.state().pane_rects()[0];
    let heat = method_color(Method::Heatmap);
    let seg = method_color(Method::Segmentation);
    let seg_before = count_color(&before, axial, seg);
    h.get_by_label("Run models (R)").click();
    h.run_steps(2);
    assert!(h.state().models_running());
    wait_models(&mut h);
    let (seg_centre, heat_centre) = {
        let p = h.state().models.predictions.as_ref().expect("predictions");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        (
            p.get(Method::Segmentation).unwrap().center_lps,
            p.get(Method::Heatmap).unwrap().center_lps,
        )
    };
    // The app went to the segmentation centre; its mask and both centres are drawn there.
    assert!(h.state().crosshair.distance(seg_centre) < 1e-6);
    let after = h.render().expect("render");
    let mask_px = count_color(&after, axial, seg);
    assert!(
        mask_px > seg_before + 500,
        "mask overlay: {seg_before} → {mask_px} green pixels"
    );
    h.state_mut().crosshair = heat_centre;
    h.run_steps(2);
    let img = h.render().expect("render");
    assert!(count_color(&img, axial, heat) > 10, "heatmap centre marker");
    // The results panel lists both methods and their distance.
    h.get_by_label_contains("Methods ");
    // Select heart-center (key 2) and accept the heatmap centre (A).
    h.key_press(egui::Key::Num2);
    h.run_steps(1);
    h.key_press(egui::Key::A);
    h.run_steps(3);
    let saved = heartloc::io::markups::read(&out).expect("saved markups");
    let hc = saved
        .iter()
        .find(|p| p.label == "heart-center")
        .and_then(|p| p.position_lps)
        .expect("heart-center saved");
    assert!(
        DVec3::from_array(hc).distance(heat_centre) < 1e-3,
        "{hc:?} vs {heat_centre}"
    );
    // It is an ordinary landmark: undo takes it back and the file follows.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(3);
    assert!(heart_center(&h).is_none());
    // Frame the heart: every slice view centred on the segmentation box.
    h.key_press(egui::Key::F);
    h.run_steps(2);
    let (lo, hi) = h
        .state()
        .models
        .predictions
        .as_ref()
        .and_then(|p| p.get(Method::Segmentation))
        .and_then(|f| f.bbox_lps)
        .unwrap();
    for v in h.state().views {
        assert!(v.center_mm.distance((lo + hi) * 0.5) < 1e-6);
    }
}

#[test]
fn a_result_for_a_volume_no_longer_open_is_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = marker_volume(tmp.path());
    let mut h = harness(Source::Path(a));
    // Start a run on A, then open B at once. (On a busy machine A's run may already have
    // ended; the answer for A delivered by hand below covers the slow case either way.)
    let before = h.state().models.next_request;
    h.key_press(egui::Key::R);
    h.run_steps(1);
    let stale = h.state().models.next_request;
    assert_eq!(stale, before + 1, "R submitted a run for A");
    let ctx = h.ctx.clone();
    h.state_mut().open(Source::Demo, &ctx);
    h.state_mut().settings.overlays.run_on_open = false;
    wait_loaded(&mut h);
    // The demo runs its own models; whatever A produced is not among them.
    let demo_id = h.state().doc.as_ref().unwrap().gpu.id;
    let p = h
        .state()
        .models
        .predictions
        .as_ref()
        .expect("demo predictions");
    assert_eq!(p.volume_id, demo_id);
    let revision = p.revision;
    // An answer for A delivered now (as a slow worker would) is dropped.
    let finding = heartloc::ml::model::Finding {
        method: heartloc::ml::preprocess::Method::Heatmap,
        center_lps: DVec3::new(1.0, 2.0, 3.0),
        confidence: 1.0,
        bbox_lps: None,
        volume_ml: None,
        grid: Grid::new([2, 2, 2], DMat4::IDENTITY),
        map: vec![0.0; 8],
        threshold: 0.5,
        timing: Default::default(),
    };
    h.key_press(egui::Key::R);
    h.run_steps(1);
    h.state_mut().accept_event(heartloc::worker::Event::Done {
        id: stale,
        results: vec![(finding.method, Ok(finding))],
    });
    wait_models(&mut h);
    let p = h.state().models.predictions.as_ref().expect("predictions");
    assert_eq!(p.volume_id, demo_id);
    assert!(p.revision > revision, "the demo's own rerun arrived");
    assert!(p
        .findings
        .iter()
        .all(|f| f.center_lps.distance(DVec3::new(1.0, 2.0, 3.0)) > 1.0));
}

#[test]
fn a_model_failure_shows_a_message_and_the_app_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = marker_volume(tmp.path());
    let mut h = harness(Source::Path(a));
    h.state_mut().models.weights = Some(tmp.path().join("no-weights-here"));
    h.key_press(egui::Key::R);
    h.run_steps(1);
    wait_models(&mut h);
    let msg = h.state().message.clone().unwrap_or_default();
    assert!(
        msg.contains("cannot load the models") && msg.contains("no-weights-here"),
        "{msg}"
    );
    assert!(h.state().models.predictions.is_none());
    h.state_mut().step(Plane::Axial, 1.0);
    h.run_steps(2);
    assert!(h.state().doc.is_some());
}

#[test]
fn a_label_map_opens_over_a_real_case_with_names_and_colours() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let case = data.join("ct-segthor/Patient_12");
    let mut h = harness(Source::Path(case.join("image.nii.gz")));
    let before = h.render().expect("render");
    // The case folder has labels.nii.gz: the panel offers it (names come from the manifest).
    h.get_by_label("labels.nii.gz");
    h.state_mut().open_labels(case.join("labels.nii.gz"));
    for _ in 0..500 {
        h.step();
        if h.state().models.labels.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(2);
    let l = h.state().models.labels.as_ref().unwrap_or_else(|| {
        panic!("labels not loaded: {:?}", h.state().message);
    });
    assert_eq!(l.table.name(2), "heart", "{:?}", l.table);
    assert_eq!(l.present, vec![1, 2, 3, 4]);
    h.get_by_label("2: heart");
    h.get_by_label("4: aorta");
    let l = h.state().models.labels.as_ref().expect("labels loaded");
    let heart = l.table.color(2);
    // Go to the heart's centre from the manifest: it is painted in the heart's colour.
    let centre = DVec3::from_array(
        common::manifest(&data)
            .into_iter()
            .find(|c| c.case == "ct-segthor/Patient_12")
            .unwrap()
            .heart_center_lps_mm,
    );
    h.state_mut().crosshair = centre;
    h.run_steps(2);
    let after = h.render().expect("render");
    let axial = h.state().pane_rects()[0];
    let tint = egui::Color32::from_rgb(heart[0], heart[1], heart[2]);
    let n_before = count_color(&before, axial, tint);
    let n_after = count_color(&after, axial, tint);
    assert!(n_after > n_before + 500, "{n_before} → {n_after}");
}

#[test]
fn scoring_a_worklist_runs_every_case_in_the_background_and_orders_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    let (vol, _) = heartloc::phantom::chest_ct([96, 80, 72], 4.0);
    nifti::write(&cases.join("a_phantom.nii.gz"), &vol).unwrap();
    marker_volume(&cases);
    let mut h = harness_sized(Source::Demo, 1500.0);
    let ctx = h.ctx.clone();
    let out = tmp.path().join("out");
    h.state_mut().open_worklist(&cases, Some(&out), &ctx);
    wait_loaded(&mut h);
    h.get_by_label("Score all cases").click();
    for _ in 0..6000 {
        h.step();
        if h.state().models.scores.len() == 2 && !h.state().models_running() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let scores = h.state().models.scores.clone();
    assert_eq!(scores.len(), 2, "{:?}", h.state().message);
    // The worklist never left its case while scoring.
    assert_eq!(h.state().worklist.as_ref().unwrap().current, 0);
    let by_disagreement =
        heartloc::app::order_cases(2, &scores, heartloc::app::CaseOrder::Disagreement);
    let d = |i: usize| scores[&i].disagreement_mm;
    assert!(d(by_disagreement[0]) >= d(by_disagreement[1]));
    // The phantom (case 0, "a_phantom") has a heart; both methods find one.
    assert!(scores[&0].disagreement_mm.is_finite(), "{scores:?}");
    h.get_by_label("disagreement").click();
    h.run_steps(2);
    assert_eq!(
        h.state().models.order,
        heartloc::app::CaseOrder::Disagreement
    );
}

#[test]
fn a_nested_dicom_study_folder_opens_in_the_app() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("export").join("study 1");
    let (vol, _) = heartloc::phantom::chest_ct([48, 40, 24], 8.0);
    let opts = heartloc::io::dicom::WriteSeriesOptions::default();
    heartloc::io::dicom::write_series(&study.join("series 1"), &vol, &opts).unwrap();
    let rt = heartloc::io::dicom::WriteSeriesOptions {
        series_uid: "2.25.9".into(),
        modality: "RTSTRUCT".into(),
        description: "structures".into(),
    };
    let one = Volume::new(
        Grid::new([4, 4, 1], DMat4::IDENTITY),
        Voxels::I16(vec![0; 16]),
    );
    heartloc::io::dicom::write_series(&study.join("rt"), &one, &rt).unwrap();
    let path = tmp.path().join("export");
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::new(cc, Source::Path(path), Box::new(NoDialog)));
    wait_loaded(&mut h);
    let doc = h.state().doc.as_ref().expect("the study opened");
    assert_eq!(doc.volume.dims(), [48, 40, 24]);
    assert_eq!(doc.format_name(), "DICOM series");
    assert!(
        doc.volume.warnings.iter().any(|w| w.contains("RTSTRUCT")),
        "{:?}",
        doc.volume.warnings
    );
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
