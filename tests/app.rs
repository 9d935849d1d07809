//! The real app driven headless through egui_kittest with the wgpu renderer (Mesa lavapipe
//! in CI): orientation proven by pixels, real CT and MR cases opened, slices stepped,
//! window/level and volume modes switched through AccessKit labels, screenshots, settings.
#![cfg(feature = "gui")]

mod common;

use std::path::PathBuf;

use common::gui::*;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use glam::{DMat4, DVec2};
use heartloc::app::{HeartlocApp, Launch, NoDialog, Origin, Source};
use heartloc::ml::model::{load_models, locate_all};
use heartloc::ml::preprocess::Method;
use heartloc::slice_view::{Crop, Cut, Pane, Plane, VolumeMode, WindowPreset};
use heartloc::volume::{Grid, Volume, Voxels};

#[test]
fn a_bright_marker_at_a_known_lps_point_shows_where_it_should_in_every_pane() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, _, marker) = marker_harness(tmp.path(), 760.0);
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
        let want = screen_of(&h, i, marker);
        assert!(
            (found - want).length() < 2.0,
            "{plane:?}: drawn at {found}, mapped to {want}"
        );
    }
}

#[test]
fn demo_opens_and_matches_its_snapshot() {
    let mut h = harness(Source::Phantom);
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

#[test]
fn with_nothing_named_the_app_opens_the_real_demo_ct_finds_its_heart_and_credits_it() {
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(|cc| HeartlocApp::launch(cc, Launch::default(), Box::new(NoDialog)));
    wait_loaded(&mut h);
    let doc = h.state().doc.as_ref().expect("the demo opened");
    assert_eq!(doc.origin, Origin::Demo);
    assert_eq!(doc.volume.dims(), [256, 216, 79]);
    let volume = doc.volume.clone();
    // Honest about what it is: real, credited, and without an expert label.
    h.get_by_label_contains("No expert heart label exists for it");
    // The models ran as it opened, on this very scan: the same answers as outside the app.
    let found = h.state().models.predictions.as_ref().expect("predictions");
    assert_eq!(found.findings.len(), 2, "{:?}", found.errors);
    let models = load_models(&[Method::Segmentation, Method::Heatmap], None).unwrap();
    let direct = locate_all(&models, &heartloc::io::demo::chest_ct().unwrap(), |_| true).unwrap();
    for (app, alone) in found.findings.iter().zip(direct) {
        let alone = alone.unwrap();
        assert!(
            app.center_lps.distance(alone.center_lps) < 0.01,
            "{:?}",
            app.method
        );
    }
    // Both land in the heart: they agree, and the centre is soft tissue or contrast blood
    // (not lung, fat or bone).
    let [seg, heat] = [0, 1].map(|i| found.findings[i].center_lps);
    assert!(seg.distance(heat) < 10.0, "methods {seg} vs {heat}");
    let hu = volume
        .sample_world(seg, heartloc::volume::Interpolation::Trilinear)
        .unwrap();
    assert!(
        (0.0..600.0).contains(&hu),
        "{hu} HU at the segmentation centre"
    );
    // The 3D view shows the heart alone: the segmented box with its margin.
    assert_eq!(h.state().settings.crop, Crop::Heart);
    let (lo, hi) = h.state().crop_lps().expect("a crop box");
    assert!((lo.x..hi.x).contains(&seg.x) && (hi - lo).max_element() < 200.0);
    let shots = std::env::var("HEARTLOC_SHOTS").ok().map(PathBuf::from);
    let whole = h.render().expect("render");
    if let Some(dir) = &shots {
        whole.save(dir.join("demo-ct.png")).unwrap();
    }
    // A clip plane from the crosshair: the front half cut away changes the 3D view, not the
    // slices.
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(heartloc::app::Command::SetCut(Cut::Anterior), &ctx);
    h.run_steps(3);
    let (cut_lo, _) = h.state().crop_lps().unwrap();
    assert_eq!(cut_lo.y, h.state().crosshair.y);
    let cut = h.render().expect("render");
    let changed = |pane: usize| {
        let r = h.state().pane_rects()[pane];
        let mut n = 0;
        for y in r.min.y as u32..r.max.y as u32 {
            for x in r.min.x as u32..r.max.x as u32 {
                n += usize::from(whole.get_pixel(x, y) != cut.get_pixel(x, y));
            }
        }
        n
    };
    assert!(
        changed(3) > 1000,
        "the cut changed {} px of the 3D view",
        changed(3)
    );
    assert_eq!(changed(0), 0, "slices are not cut");
    h.state_mut()
        .apply(heartloc::app::Command::SetCut(Cut::None), &ctx);
    h.get_by_label("Help").click();
    h.run_steps(2);
    h.get_by_label("About heartloc").click();
    h.run_steps(3);
    h.get_by_label_contains("Pancreatic-CT-CBCT-SEG");
    h.get_by_label_contains("Creative Commons Attribution 4.0");
    if let Some(dir) = &shots {
        h.render()
            .expect("render")
            .save(dir.join("demo-ct-about.png"))
            .unwrap();
    }
}

#[test]
fn an_mr_opened_after_a_ct_window_gets_an_mr_window_and_the_ct_keeps_its_own() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let ct = data.join("ct-segthor/Patient_03/image.nii.gz");
    let mr = data.join("mri-acdc/patient001_ED/image.nii.gz");
    let mut h = harness(Source::Path(ct.clone()));
    h.get_by_label("modality CT (guessed from the scan)");
    h.get_by_label("Cardiac").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.preset, WindowPreset::Cardiac);
    let ctx = h.ctx.clone();
    h.state_mut().open(Source::Path(mr), &ctx);
    wait_loaded(&mut h);
    h.get_by_label("modality MR (guessed from the scan)");
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(h.state().settings.preset, WindowPreset::Auto);
    assert_eq!(h.state().window, doc.intensity.window(WindowPreset::Auto));
    assert_eq!(h.state().settings.dvr, heartloc::slice_view::DvrPreset::Mr);
    h.state_mut().open(Source::Path(ct), &ctx);
    wait_loaded(&mut h);
    assert_eq!(
        h.state().settings.preset,
        WindowPreset::Cardiac,
        "the CT's own preset"
    );
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
        // CT windows in HU are not offered for an MR.
        let want = if case.starts_with("ct") {
            WindowPreset::Lung
        } else {
            WindowPreset::Auto
        };
        assert_eq!(h.state().settings.preset, want, "{case}");
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
    h.state_mut().open(Source::Phantom, &ctx);
    wait_loaded(&mut h);
    assert!(h.state().doc.is_some());
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
            HeartlocApp::new(cc, Source::Phantom, Box::new(FixedDialog { save_to }))
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
fn without_a_file_dialog_a_screenshot_goes_to_the_default_folder_and_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("shots");
    // Only this test reads the variable (the app reads it only when no dialog is available).
    std::env::set_var("HEARTLOC_SCREENSHOT_DIR", &folder);
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(|cc| HeartlocApp::new(cc, Source::Phantom, Box::new(NoDialogAvailable)));
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
fn settings_round_trip_through_storage_format() {
    let s = heartloc::app::Settings {
        recent: vec![PathBuf::from("/data/a.nii.gz")],
        preset: WindowPreset::Cardiac,
        preset_by_modality: [(heartloc::slice_view::Modality::Ct, WindowPreset::Cardiac)].into(),
        mode: VolumeMode::Isosurface,
        maximized: Some(Pane::Volume),
        dvr: heartloc::slice_view::DvrPreset::Mr,
        last_worklist: Some((PathBuf::from("/data/list.csv"), None)),
        overlays: heartloc::app::OverlaySettings {
            mask_outline: true,
            heat_opacity: 0.25,
            ..Default::default()
        },
        crop: heartloc::slice_view::Crop::Heart,
        crop_size_mm: 60.0,
        cut: Cut::Anterior,
        slab: heartloc::slice_view::Slab {
            mode: heartloc::slice_view::SlabMode::Max,
            thickness_mm: 20.0,
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
    assert_eq!(back.preset_by_modality, s.preset_by_modality);
    // The crop is for the session only: the next scan opens whole.
    assert_eq!(
        (back.crop, back.crop_size_mm, back.cut),
        (heartloc::slice_view::Crop::Whole, 120.0, Cut::None)
    );
    assert_eq!(back.slab, heartloc::slice_view::Slab::default());
    // Settings written by an older version with fewer fields still load.
    let old: heartloc::app::Settings = serde_json::from_str(r#"{"recent": []}"#).unwrap();
    assert_eq!(old.maximized, None);
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

/// A dialog that picks one folder.
struct PickFolder(PathBuf);

impl heartloc::app::FileDialog for PickFolder {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        Some(self.0.clone())
    }
    fn save_file(&self, _: &str, _: &str) -> Option<PathBuf> {
        None
    }
}

#[test]
fn the_series_browser_lists_a_two_series_folder_and_opens_the_chosen_one() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("CD").join("study");
    let (ct, _) = heartloc::phantom::chest_ct([48, 40, 30], 8.0);
    let (mr, _) = heartloc::phantom::chest_ct([40, 32, 10], 10.0);
    for (dir, vol, uid, modality) in [("a", &ct, "2.25.11", "CT"), ("b", &mr, "2.25.22", "MR")] {
        let opts = heartloc::io::dicom::WriteSeriesOptions {
            series_uid: uid.into(),
            modality: modality.into(),
            description: format!("{modality} series"),
        };
        heartloc::io::dicom::write_series(&study.join(dir), vol, &opts).unwrap();
    }
    let folder = tmp.path().join("CD");
    let mut h = Harness::builder()
        .with_size([1100.0, 760.0])
        .wgpu()
        .build_eframe(move |cc| {
            HeartlocApp::new(cc, Source::Phantom, Box::new(PickFolder(folder)))
        });
    wait_loaded(&mut h);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open DICOM folder…").click();
    for _ in 0..500 {
        h.step();
        if h.state().series_browser.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(2);
    let b = h
        .state()
        .series_browser
        .as_ref()
        .expect("the browser opened");
    assert_eq!(b.series.len(), 2);
    // The likeliest (CT or MR, most images) is preselected: the 30-slice CT.
    assert_eq!(b.series[b.selected].series_uid, "2.25.11");
    h.get_by_label("MR series");
    h.get_by_label("CT series");
    if let Ok(dir) = std::env::var("HEARTLOC_SHOTS") {
        let img = h.render().expect("render");
        img.save(PathBuf::from(dir).join("series-browser.png"))
            .unwrap();
    }
    // Choose the MR and open it.
    h.get_by_label("2").click();
    h.run_steps(2);
    h.get_by_label("Open").click();
    h.run_steps(2);
    wait_loaded(&mut h);
    let doc = h.state().doc.as_ref().expect("a series opened");
    assert_eq!(doc.volume.dims(), [40, 32, 10]);
    let ids = doc.volume.series.as_ref().unwrap();
    assert_eq!(
        (ids.series_uid.as_str(), ids.modality.as_str()),
        ("2.25.22", "MR")
    );
    // The folder's series stay one click away.
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Series of this folder…").click();
    h.run_steps(2);
    assert!(h.state().series_browser.as_ref().unwrap().open);
}

/// A thick slab (issue 22): with the axial plane 12 mm above the marker cube (it spans 8 mm),
/// the thin slice misses it; a 30 mm MIP slab shows it, bright, where the marker projects; a
/// 30 mm mean shows it dimmer (8 of 30 mm bright). Mode and thickness set through AccessKit.
#[test]
fn a_mip_slab_shows_what_lies_beside_the_plane() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, _, marker) = marker_harness(tmp.path(), 900.0);
    h.state_mut().crosshair = marker + glam::DVec3::Z * 12.0;
    h.run_steps(2);
    let axial = h.state().pane_rects()[0];
    let img = h.render().expect("render");
    assert!(
        bright_centre(&img, axial).is_none(),
        "the thin slice misses the cube"
    );
    let (thin_mean, _) = pane_stats(&img, axial);

    h.get_by_label("Slab MIP").click();
    h.run_steps(1);
    h.get_by_label("Slab thickness").set_value_accesskit(30.0);
    h.run_steps(2);
    let slab = h.state().settings.slab;
    assert_eq!(slab.mode, heartloc::slice_view::SlabMode::Max);
    assert!((slab.thickness_mm - 30.0).abs() < 1e-9, "{slab:?}");
    let img = h.render().expect("render");
    let found = bright_centre(&img, axial).expect("the MIP shows the cube");
    let want = screen_of(&h, 0, marker);
    assert!(
        (found - want).length() < 2.0,
        "drawn at {found}, marker at {want}"
    );
    if let Ok(dir) = std::env::var("HEARTLOC_SHOTS") {
        img.save(PathBuf::from(dir).join("slab_mip.png")).unwrap();
    }

    h.get_by_label("Slab Mean").click();
    h.run_steps(2);
    let img = h.render().expect("render");
    assert!(
        bright_centre(&img, axial).is_none(),
        "a mean slab is no MIP"
    );
    let (mean_mean, _) = pane_stats(&img, axial);
    assert!(
        mean_mean > thin_mean,
        "mean slab {mean_mean}, thin {thin_mean}"
    );
}

/// A DICOM cine whose TriggerTimes are 40 ms apart plays at the acquisition's 25 phases a
/// second (issue 18): Play starts the loop at that rate.
#[test]
fn a_dicom_cine_plays_at_its_acquisition_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let m = glam::DMat4::from_scale(glam::DVec3::new(1.5, 1.5, 8.0));
    let dir = common::cine::cine(tmp.path(), m);
    let mut h = harness_sized(Source::Path(dir), 1000.0);
    assert_eq!(
        h.state().doc.as_ref().unwrap().volume.phase.interval_ms(),
        Some(40.0)
    );
    h.get_by_label("Play").click();
    h.step();
    assert_eq!(h.state().cine.map(|c| c.fps), Some(25.0));
}
