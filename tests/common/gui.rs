//! Driving the real app headless (egui_kittest on wgpu, lavapipe in CI): harnesses that wait
//! for loading and models, pointer gestures, pixel measures, and file dialogs for tests.

use std::path::PathBuf;

use eframe::egui;
use egui_kittest::Harness;
use glam::{DMat4, DVec2, DVec3};
use heartloc::app::{FileDialog, HeartlocApp, NoDialog, Source};
use heartloc::io::nifti;
use heartloc::volume::{lps_from_ras, Grid, Volume, Voxels};

pub fn harness(source: Source) -> Harness<'static, HeartlocApp> {
    harness_sized(source, 760.0)
}

/// A taller window shows the whole side panel (clicks need the widget on screen).
pub fn harness_sized(source: Source, height: f32) -> Harness<'static, HeartlocApp> {
    let mut h = Harness::builder()
        .with_size([1100.0, height])
        .wgpu()
        .build_eframe(move |cc| HeartlocApp::new(cc, source, Box::new(NoDialog)));
    wait_loaded(&mut h);
    h
}

pub fn wait_loaded(h: &mut Harness<'static, HeartlocApp>) {
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
pub fn wait_models(h: &mut Harness<'static, HeartlocApp>) {
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

/// Open `labels` over the volume on screen and step until it is loaded (or 5 s passed).
pub fn open_labels(h: &mut Harness<'static, HeartlocApp>, labels: PathBuf) {
    h.state_mut().open_labels(labels.clone());
    for _ in 0..500 {
        h.step();
        if h.state()
            .models
            .labels
            .as_ref()
            .is_some_and(|l| l.path == labels)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(2);
}

/// Brightness-weighted centre of near-white pixels inside `rect` (margins excluded).
pub fn bright_centre(img: &image::RgbaImage, rect: egui::Rect) -> Option<DVec2> {
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
pub fn marker_volume(dir: &std::path::Path) -> (PathBuf, DVec3) {
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

/// The marker volume (see [`marker_volume`]) open in a window `height` points tall, the
/// crosshair on the marker and a window that shows it: its path and the marker's LPS centre.
pub fn marker_harness(
    dir: &std::path::Path,
    height: f32,
) -> (Harness<'static, HeartlocApp>, PathBuf, DVec3) {
    let (path, marker) = marker_volume(dir);
    let mut h = harness_sized(Source::Path(path.clone()), height);
    h.state_mut().crosshair = marker;
    h.state_mut().window = heartloc::slice_view::Window::new(0.0, 1000.0);
    h.run_steps(2);
    (h, path, marker)
}

pub fn pane_stats(img: &image::RgbaImage, rect: egui::Rect) -> (f64, f64) {
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

pub fn press(h: &mut Harness<'static, HeartlocApp>, pos: egui::Pos2, pressed: bool) {
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    });
}

pub fn click(h: &mut Harness<'static, HeartlocApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.run_steps(1);
    press(h, pos, true);
    h.run_steps(1);
    press(h, pos, false);
    h.run_steps(2);
}

pub fn drag(h: &mut Harness<'static, HeartlocApp>, from: egui::Pos2, to: egui::Pos2) {
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

pub fn heart_center(h: &Harness<'static, HeartlocApp>) -> Option<DVec3> {
    landmark(h, "heart-center")
}

/// Where landmark `name` is (LPS), if it is placed.
pub fn landmark(h: &Harness<'static, HeartlocApp>, name: &str) -> Option<DVec3> {
    h.state()
        .landmarks
        .annotation
        .set
        .get(name)
        .and_then(|l| l.position_lps())
}

/// Where slice pane `i`'s own mapping puts a world point, in window points.
pub fn screen_of(h: &Harness<'static, HeartlocApp>, i: usize, world: DVec3) -> glam::DVec2 {
    let rect = h.state().pane_rects()[i];
    let size = glam::DVec2::new(f64::from(rect.width()), f64::from(rect.height()));
    h.state().views[i].screen_from_world(world, size)
        + glam::DVec2::new(f64::from(rect.min.x), f64::from(rect.min.y))
}

/// A dialog that answers with fixed paths.
pub struct FixedDialog {
    pub save_to: PathBuf,
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

/// A system where no file dialog can be shown (no portal, no zenity).
pub struct NoDialogAvailable;
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

/// Pixels inside `rect` tinted towards `color`: their colour minus their grey level points the
/// way `color`'s does (cosine > 0.9) and is not faint. Blended overlays count, grey CT does not.
pub fn count_color(img: &image::RgbaImage, rect: egui::Rect, color: egui::Color32) -> usize {
    count_hue(img, rect, color, 0.9)
}

/// Pixels inside `rect` whose hue (chroma direction) is within `min_cos` of `color`'s, shaded
/// or not: 0.9 tells hues apart, 0.99 also close reds.
pub fn count_hue(
    img: &image::RgbaImage,
    rect: egui::Rect,
    color: egui::Color32,
    min_cos: f64,
) -> usize {
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
            if c.length() > 12.0 && c.normalize().dot(want) > min_cos {
                n += 1;
            }
        }
    }
    n
}
