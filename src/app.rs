//! The desktop app: four panes (axial, coronal, sagittal, 3D) over one volume, a linked
//! crosshair in LPS mm, window/level presets, volume modes, files opened in the background.
//!
//! The UI only reads and writes [`crate::slice_view`] state and hands draw descriptions to
//! [`crate::render`]; file loading runs on a background thread and answers over a channel,
//! tagged with a request id so a stale answer is dropped.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use glam::{DVec2, DVec3};

use crate::annotation::{Annotation, LandmarkSet, Status};
use crate::io::{self, markups, OpenOptions};
use crate::render::{self, GpuVolume, PaneDraw, Renderer};
use crate::slice_view::{
    scale_bar_mm, slice_step_mm, step_slice, DvrPreset, Intensity, OrbitCamera, Plane, SliceView,
    VolumeMode, WindowPreset,
};
use crate::volume::{Interpolation, Volume};
use crate::worklist::{CaseStatus, Worklist};

mod models;
pub use models::{method_color, order_cases, CaseOrder, CaseScore, OverlaySettings, Predictions};

/// Ask the user for paths. Behind a trait so tests never open a dialog.
pub trait FileDialog {
    fn pick_file(&self) -> Option<PathBuf>;
    fn pick_folder(&self) -> Option<PathBuf>;
    /// Ask where to save a new file named like `suggested` with `extension` ("png", "csv").
    fn save_file(&self, suggested: &str, extension: &str) -> Option<PathBuf>;
    /// Whether a dialog can be shown at all (where not, screenshots go to a default folder).
    fn available(&self) -> bool {
        true
    }
}

/// Answers every question with "cancelled": for tests, benchmarks and headless runs.
pub struct NoDialog;

impl FileDialog for NoDialog {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        None
    }
    fn save_file(&self, _: &str, _: &str) -> Option<PathBuf> {
        None
    }
}

/// Native dialogs (rfd).
pub struct NativeDialog;

impl FileDialog for NativeDialog {
    fn pick_file(&self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("NIfTI or DICOM", &["nii", "gz", "dcm"])
            .add_filter("All files", &["*"])
            .pick_file()
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        rfd::FileDialog::new().pick_folder()
    }
    fn save_file(&self, suggested: &str, extension: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_file_name(suggested)
            .add_filter(extension.to_uppercase(), &[extension])
            .save_file()
    }
    /// rfd on Linux needs the desktop portal (over the session bus) or zenity; with neither it
    /// returns "cancelled" without showing anything.
    fn available(&self) -> bool {
        !cfg!(target_os = "linux")
            || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            || std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|d| d.join("zenity").is_file())
            })
    }
}

/// Where screenshots go when no file dialog can be shown: `$HEARTLOC_SCREENSHOT_DIR`, else
/// `~/Pictures/heartloc`, else `~/heartloc-screenshots`, else the temporary folder's.
pub fn default_screenshot_folder() -> PathBuf {
    if let Some(d) = std::env::var_os("HEARTLOC_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.join("Pictures").is_dir() => home.join("Pictures").join("heartloc"),
        Some(home) if home.is_dir() => home.join("heartloc-screenshots"),
        _ => std::env::temp_dir().join("heartloc-screenshots"),
    }
}

/// `stem-YYYYMMDD-HHMMSS.png` (UTC) in [`default_screenshot_folder`], which is created.
fn fallback_screenshot_path(stem: &str) -> std::io::Result<PathBuf> {
    let dir = default_screenshot_folder();
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let stamp = format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let mut path = dir.join(format!("{stem}-{stamp}.png"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{stamp}-{n}.png"));
        n += 1;
    }
    Ok(path)
}

/// Settings kept between runs (eframe storage).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent: Vec<PathBuf>,
    pub preset: WindowPreset,
    pub mode: VolumeMode,
    /// Index of the maximised pane (0 axial, 1 coronal, 2 sagittal, 3 volume).
    pub maximized: Option<usize>,
    pub dvr: DvrPreset,
    /// The last worklist opened (source, output folder), offered for resuming.
    pub last_worklist: Option<(PathBuf, Option<PathBuf>)>,
    pub overlays: OverlaySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recent: Vec::new(),
            preset: WindowPreset::Auto,
            mode: VolumeMode::Dvr,
            maximized: None,
            dvr: DvrPreset::CardiacCt,
            last_worklist: None,
            overlays: OverlaySettings::default(),
        }
    }
}

const SETTINGS_KEY: &str = "heartloc-settings";
const MAX_RECENT: usize = 10;

/// The volume on screen and what was derived from it once.
pub struct Document {
    pub name: String,
    pub source: Option<PathBuf>,
    pub volume: Arc<Volume>,
    pub gpu: Arc<GpuVolume>,
    pub intensity: Intensity,
    pub format: String,
    /// The demo phantom's true heart centre (LPS mm), to show how far the models are from it.
    pub truth: Option<DVec3>,
}

/// What to open.
#[derive(Clone, Debug)]
pub enum Source {
    Demo,
    Path(PathBuf),
}

/// Where the landmarks of the open volume come from and are saved to.
#[derive(Clone, Debug, PartialEq)]
pub enum LandmarkTarget {
    /// Not saved (the demo).
    None,
    /// A markups file (`view --landmarks`, or `<image>.mrk.json` beside an opened file).
    File(PathBuf),
    /// Case `i` of the open worklist.
    Case(usize),
}

/// Where the landmarks of a volume still loading will go.
#[derive(Clone, Debug, PartialEq)]
enum PendingLandmarks {
    Known(LandmarkTarget),
    /// Not beside the source (a DICOM export, a folder that cannot be written): the per-user
    /// landmarks folder, keyed by the series' UIDs once the volume has loaded
    /// ([`crate::worklist::series_landmarks_path`]).
    PerUser,
}

struct Pending {
    id: u64,
    what: String,
    rx: Receiver<Result<Document, String>>,
}

/// A readout of the point under the cursor.
#[derive(Clone, Copy, Debug)]
pub struct Hover {
    pub world: DVec3,
    pub ijk: DVec3,
    pub value: Option<f32>,
}

pub struct HeartlocApp {
    pub settings: Settings,
    pub doc: Option<Document>,
    pub views: [SliceView; 3],
    pub camera: OrbitCamera,
    pub crosshair: DVec3,
    /// Window low/high in stored values.
    pub window: (f64, f64),
    /// Isosurface level in stored values.
    pub iso: f64,
    pub message: Option<String>,
    pub hover: Option<Hover>,
    pending: Option<Pending>,
    next_id: u64,
    needs_fit: bool,
    interacting: bool,
    dialog: Box<dyn FileDialog>,
    max_texture_dim: u32,
    has_wgpu: bool,
    screenshot: Option<(Receiver<Arc<egui::ColorImage>>, PathBuf, Option<Rect>)>,
    pane_rects: [Rect; 4],
    /// Landmarks of the open volume, with undo/redo.
    pub annotation: Annotation,
    /// The slot that keys, Delete and placing act on.
    pub active_slot: String,
    /// The next left click in a slice places the active slot.
    pub armed: bool,
    pub show_landmarks: bool,
    pub landmark_target: LandmarkTarget,
    pub worklist: Option<Worklist>,
    /// Landmark being dragged and the set before the drag (for one undo step or Escape).
    drag: Option<(String, LandmarkSet)>,
    saved_revision: u64,
    new_slot_name: String,
    /// Landmark file to read when the pending volume arrives (`view --landmarks`).
    pending_landmarks: Option<PendingLandmarks>,
    /// The model worker, predictions, overlays and label map.
    pub models: models::ModelsState,
}

impl HeartlocApp {
    /// Build the app; `open` starts loading at once (the demo when the user named no file).
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        open: Source,
        dialog: Box<dyn FileDialog>,
    ) -> Self {
        let mut app = Self::blank(cc, dialog);
        app.open(open, &cc.egui_ctx);
        app
    }

    /// The app with nothing open yet.
    fn blank(cc: &eframe::CreationContext<'_>, dialog: Box<dyn FileDialog>) -> Self {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value::<Settings>(s, SETTINGS_KEY))
            .unwrap_or_default();
        let (has_wgpu, max_texture_dim) = match cc.wgpu_render_state.as_ref() {
            Some(rs) => {
                Renderer::install(rs);
                (true, rs.device.limits().max_texture_dimension_3d)
            }
            None => (false, 256),
        };
        HeartlocApp {
            settings,
            doc: None,
            views: Plane::ALL.map(|plane| SliceView {
                plane,
                center_mm: DVec3::ZERO,
                mm_per_px: 1.0,
            }),
            camera: OrbitCamera {
                target: DVec3::ZERO,
                yaw: 0.0,
                pitch: 0.0,
                distance_mm: 500.0,
            },
            crosshair: DVec3::ZERO,
            window: (0.0, 1.0),
            iso: 0.0,
            message: None,
            hover: None,
            pending: None,
            next_id: 1,
            needs_fit: false,
            interacting: false,
            dialog,
            max_texture_dim,
            has_wgpu,
            screenshot: None,
            pane_rects: [Rect::NOTHING; 4],
            annotation: Annotation::default(),
            active_slot: crate::annotation::DEFAULT_SLOTS[0].to_string(),
            armed: false,
            show_landmarks: true,
            landmark_target: LandmarkTarget::None,
            worklist: None,
            drag: None,
            saved_revision: 0,
            new_slot_name: String::new(),
            pending_landmarks: None,
            models: Default::default(),
        }
    }

    /// Start loading in the background; the answer replaces the shown volume when it arrives.
    pub fn open(&mut self, source: Source, ctx: &egui::Context) {
        let pending = match &source {
            Source::Demo => PendingLandmarks::Known(LandmarkTarget::None),
            Source::Path(p) => landmark_target_for(p),
        };
        self.start_open(source, pending, ctx);
    }

    /// Open a volume whose landmarks live in `target` (read when the volume arrives).
    pub fn open_with_landmarks(
        &mut self,
        source: Source,
        target: LandmarkTarget,
        ctx: &egui::Context,
    ) {
        self.start_open(source, PendingLandmarks::Known(target), ctx);
    }

    fn start_open(&mut self, source: Source, pending: PendingLandmarks, ctx: &egui::Context) {
        self.pending_landmarks = Some(pending);
        let id = self.next_id;
        self.next_id += 1;
        let what = match &source {
            Source::Demo => "synthetic demo".to_string(),
            Source::Path(p) => p.display().to_string(),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let ctx = ctx.clone();
        let max_dim = self.max_texture_dim;
        std::thread::Builder::new()
            .name("heartloc-open".into())
            .spawn(move || {
                let _ = tx.send(load_document(id, source, max_dim));
                ctx.request_repaint();
            })
            .ok();
        self.pending = Some(Pending { id, what, rx });
    }

    /// True while a file is loading.
    pub fn is_loading(&self) -> bool {
        self.pending.is_some()
    }

    fn poll_loading(&mut self, ctx: &egui::Context) {
        let Some(p) = &self.pending else { return };
        let Ok(result) = p.rx.try_recv() else { return };
        let id = p.id;
        self.pending = None;
        match result {
            Ok(doc) if doc.gpu.id == id => self.show(doc, ctx),
            Ok(_) => {} // stale: a newer request replaced it
            Err(e) => self.message = Some(e),
        }
    }

    fn show(&mut self, doc: Document, ctx: &egui::Context) {
        let target = match self.pending_landmarks.take() {
            Some(PendingLandmarks::PerUser) => {
                LandmarkTarget::File(per_user_landmarks(&doc.volume, doc.source.as_deref()))
            }
            Some(PendingLandmarks::Known(t)) => t,
            None => LandmarkTarget::None,
        };
        if let Some(path) = &doc.source {
            self.settings.recent.retain(|p| p != path);
            self.settings.recent.insert(0, path.clone());
            self.settings.recent.truncate(MAX_RECENT);
        }
        let grid = doc.volume.grid;
        let (lo, hi) = grid.world_bbox();
        self.crosshair = (lo + hi) * 0.5;
        self.camera = OrbitCamera::fit(&grid);
        self.window = doc.intensity.window(self.settings.preset);
        self.iso = default_iso(&doc.intensity);
        self.message = doc
            .volume
            .warnings
            .first()
            .map(|w| format!("{}: {w}", doc.name));
        if let Some(n) = &doc.gpu.notice {
            self.message = Some(n.clone());
        }
        self.doc = Some(doc);
        self.needs_fit = true;

        let set = match &target {
            LandmarkTarget::None => Ok(LandmarkSet::default()),
            LandmarkTarget::File(p) if p.is_file() => {
                markups::read(p).map(|pts| LandmarkSet::from_points(&pts))
            }
            LandmarkTarget::File(_) => Ok(LandmarkSet::default()),
            LandmarkTarget::Case(i) => self
                .worklist
                .as_ref()
                .map_or(Ok(LandmarkSet::default()), |w| w.load_landmarks(*i)),
        };
        match set {
            Ok(set) => {
                self.annotation = Annotation::new(set);
                self.landmark_target = target;
            }
            Err(e) => {
                // Never overwrite a file we could not read: keep landmarks unsaved until fixed.
                self.annotation = Annotation::default();
                self.landmark_target = LandmarkTarget::None;
                self.message = Some(format!("landmarks not loaded, not saving: {e}"));
            }
        }
        self.saved_revision = self.annotation.revision;
        self.drag = None;
        self.armed = false;
        self.models_on_new_document(ctx);
    }

    /// Apply a window/level preset.
    pub fn set_preset(&mut self, preset: WindowPreset) {
        self.settings.preset = preset;
        if let Some(doc) = &self.doc {
            self.window = doc.intensity.window(preset);
        }
    }

    /// Move the crosshair by whole slices along a pane's normal.
    pub fn step(&mut self, plane: Plane, steps: f64) {
        if let Some(doc) = &self.doc {
            self.crosshair = step_slice(&doc.volume.grid, plane, self.crosshair, steps);
        }
    }

    /// Where each pane was drawn last frame (points): axial, coronal, sagittal, volume.
    pub fn pane_rects(&self) -> [Rect; 4] {
        self.pane_rects
    }
}

fn default_iso(i: &Intensity) -> f64 {
    // Bone/contrast for CT-like data; the upper quarter of the robust range otherwise.
    match i.hu_from_value {
        Some((s, o)) if s.abs() > 1e-12 => (200.0 - o) / s,
        _ => i.p1 + (i.p99_5 - i.p1) * 0.6,
    }
}

fn load_document(id: u64, source: Source, max_dim: u32) -> Result<Document, String> {
    let (volume, name, source_path, format, truth) = match source {
        Source::Demo => {
            let (v, t) = crate::phantom::chest_ct([176, 144, 128], 2.5);
            (
                v,
                "Demo (synthetic phantom)".to_string(),
                None,
                "phantom".to_string(),
                Some(t.heart_center_lps_mm),
            )
        }
        Source::Path(p) => {
            let (v, f) = io::open(&p, &OpenOptions::default()).map_err(|e| e.to_string())?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| p.display().to_string());
            (v, name, Some(p), f.name().to_string(), None)
        }
    };
    let intensity = Intensity::of(&volume);
    let gpu = GpuVolume::new(id, &volume, max_dim);
    Ok(Document {
        name,
        source: source_path,
        volume: Arc::new(volume),
        gpu: Arc::new(gpu),
        intensity,
        format,
        truth,
    })
}

/// Landmarks this close to a slice (mm) are drawn faded on it.
const FADED_MM: f64 = 10.0;

const PANE_COLORS: [Color32; 3] = [
    Color32::from_rgb(90, 200, 255),
    Color32::from_rgb(120, 230, 120),
    Color32::from_rgb(255, 190, 80),
];

impl eframe::App for HeartlocApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_loading(&ctx);
        self.poll_models(&ctx);
        self.handle_dropped_files(&ctx);
        self.handle_screenshot_events(&ctx);
        self.handle_annotation_keys(&ctx);
        self.handle_model_keys(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
            });
        egui::CentralPanel::no_frame().show(ui, |ui| self.panes(ui));
        self.autosave();
        if self.pending.is_some() || self.interacting {
            ctx.request_repaint();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

impl HeartlocApp {
    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(p) = dropped.into_iter().next() {
            self.open(Source::Path(p), ctx);
        }
    }

    fn handle_screenshot_events(&mut self, ctx: &egui::Context) {
        let Some((rx, _, _)) = &self.screenshot else {
            return;
        };
        let Ok(image) = rx.try_recv() else { return };
        let Some((_, path, crop)) = self.screenshot.take() else {
            return;
        };
        let image = match crop {
            Some(rect) => image.region(&rect, Some(ctx.pixels_per_point())),
            None => (*image).clone(),
        };
        self.message = Some(match save_png(&path, &image) {
            Ok(()) => format!("saved {}", path.display()),
            Err(e) => format!("cannot save screenshot {}: {e}", path.display()),
        });
    }

    /// Where a screenshot named like `stem` goes: the dialog's answer, or, where no dialog can
    /// be shown, a new file in [`default_screenshot_folder`] (the saved message says where).
    fn screenshot_path(&mut self, stem: &str) -> Option<PathBuf> {
        if self.dialog.available() {
            return self.dialog.save_file(&format!("{stem}.png"), "png");
        }
        match fallback_screenshot_path(stem) {
            Ok(p) => Some(p),
            Err(e) => {
                self.message = Some(format!(
                    "no file dialog on this system, and cannot create {}: {e}",
                    default_screenshot_folder().display()
                ));
                None
            }
        }
    }

    /// Ask for a screenshot of the window (`pane` None) or of one pane, saved as PNG at `path`.
    pub fn request_screenshot(&mut self, ctx: &egui::Context, path: PathBuf, pane: Option<usize>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let repaint = ctx.clone();
        self.screenshot = Some((rx, path, pane.map(|p| self.pane_rects[p])));
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
            egui::ScreenshotCallback::new(move |image| {
                let _ = tx.send(image);
                repaint.request_repaint();
            }),
        ));
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open file…").clicked() {
                    if let Some(p) = self.dialog.pick_file() {
                        self.open(Source::Path(p), ui.ctx());
                    }
                }
                if ui.button("Open DICOM folder…").clicked() {
                    if let Some(p) = self.dialog.pick_folder() {
                        self.open(Source::Path(p), ui.ctx());
                    }
                }
                if ui.button("Open worklist folder…").clicked() {
                    if let Some(p) = self.dialog.pick_folder() {
                        self.open_worklist(&p, None, ui.ctx());
                    }
                }
                if ui.button("Open worklist CSV…").clicked() {
                    if let Some(p) = self.dialog.pick_file() {
                        self.open_worklist(&p, None, ui.ctx());
                    }
                }
                let last = self.settings.last_worklist.clone();
                if ui
                    .add_enabled(last.is_some(), egui::Button::new("Resume last worklist"))
                    .clicked()
                {
                    if let Some((source, out)) = last {
                        self.open_worklist(&source, out.as_deref(), ui.ctx());
                    }
                }
                if ui.button("Open demo").clicked() {
                    self.open(Source::Demo, ui.ctx());
                }
                ui.menu_button("Recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("(none)");
                    }
                    for p in self.settings.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.open(Source::Path(p), ui.ctx());
                        }
                    }
                });
                ui.separator();
                if ui.button("Save screenshot (window)…").clicked() {
                    if let Some(p) = self.screenshot_path("heartloc") {
                        self.request_screenshot(ui.ctx(), p, None);
                    }
                }
                for (i, name) in ["axial", "coronal", "sagittal", "3D"].iter().enumerate() {
                    if ui
                        .button(format!("Save screenshot ({name} pane)…"))
                        .clicked()
                    {
                        if let Some(p) = self.screenshot_path(&format!("heartloc-{name}")) {
                            self.request_screenshot(ui.ctx(), p, Some(i));
                        }
                    }
                }
            });
            ui.menu_button("View", |ui| {
                for (i, name) in ["Axial", "Coronal", "Sagittal", "3D"].iter().enumerate() {
                    let on = self.settings.maximized == Some(i);
                    if ui
                        .selectable_label(on, format!("Maximise {name}"))
                        .clicked()
                    {
                        self.settings.maximized = if on { None } else { Some(i) };
                    }
                }
                if ui.button("Show all panes").clicked() {
                    self.settings.maximized = None;
                }
            });
            if let Some(p) = &self.pending {
                ui.spinner();
                ui.label(format!("Loading {}…", p.what));
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match self.hover {
                Some(h) => {
                    ui.label(format!(
                        "voxel ({:.1}, {:.1}, {:.1})   LPS ({:.1}, {:.1}, {:.1}) mm   value {}",
                        h.ijk.x,
                        h.ijk.y,
                        h.ijk.z,
                        h.world.x,
                        h.world.y,
                        h.world.z,
                        h.value.map_or("–".to_string(), |v| format!("{v:.1}"))
                    ));
                }
                None => {
                    let c = self.crosshair;
                    ui.label(format!(
                        "crosshair LPS ({:.1}, {:.1}, {:.1}) mm",
                        c.x, c.y, c.z
                    ));
                }
            }
            if let Some(m) = &self.message {
                ui.separator();
                ui.colored_label(Color32::from_rgb(255, 200, 120), m);
            }
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        let Some(doc) = self.doc.as_ref().map(|d| {
            (
                d.name.clone(),
                d.source.is_none(),
                d.volume.clone(),
                d.intensity,
                d.format.clone(),
            )
        }) else {
            ui.heading("heartloc");
            ui.label("No volume open.");
            if ui.button("Open…").clicked() {
                if let Some(p) = self.dialog.pick_file() {
                    self.open(Source::Path(p), ui.ctx());
                }
            }
            return;
        };
        let (name, is_demo, v, intensity, format) = doc;
        ui.heading(&name);
        if is_demo {
            ui.colored_label(
                Color32::from_rgb(255, 200, 120),
                "Synthetic phantom made in code — not patient data.",
            );
            if let Some((source, out)) = self.settings.last_worklist.clone() {
                let name = source
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                if ui.button(format!("Resume worklist {name}")).clicked() {
                    self.open_worklist(&source, out.as_deref(), ui.ctx());
                }
            }
        }
        let [nx, ny, nz] = v.dims();
        let s = v.spacing_mm();
        ui.label(format!("{format}  {nx}×{ny}×{nz} {}", v.voxels.type_name()));
        ui.label(format!("spacing {:.3}×{:.3}×{:.3} mm", s[0], s[1], s[2]));
        ui.label(format!("voxel axes point {}", v.grid.orientation_code()))
            .on_hover_text("Slices are cut along world (LPS) axes, shown radiologically.");
        ui.label("slices cut along world axes, radiological");
        ui.separator();

        ui.label("Window / level");
        let hu_note = match intensity.hu_from_value {
            Some((s, o)) if s == 1.0 && o == 0.0 => "CT presets in HU",
            Some(_) => "not HU: CT presets use HU estimated from air and soft-tissue peaks (meaningless for MR: use Auto)",
            None => "no HU scale: CT presets use percentiles",
        };
        ui.horizontal_wrapped(|ui| {
            for p in WindowPreset::ALL {
                if ui
                    .selectable_label(self.settings.preset == p, p.name())
                    .clicked()
                {
                    self.set_preset(p);
                }
            }
        });
        ui.small(hu_note);
        let (range_lo, range_hi) = (intensity.min, intensity.max);
        let mut level = (self.window.0 + self.window.1) / 2.0;
        let mut width = self.window.1 - self.window.0;
        let l = ui.add(egui::Slider::new(&mut level, range_lo..=range_hi).text("Level"));
        let w = ui.add(
            egui::Slider::new(&mut width, 1e-3..=(range_hi - range_lo).max(1e-3) * 2.0)
                .text("Width"),
        );
        if l.changed() || w.changed() {
            self.window = (level - width / 2.0, level + width / 2.0);
        }
        ui.separator();

        ui.label("Slices (mm along L, P, S)");
        let (lo, hi) = v.grid.world_bbox();
        for (axis, plane) in [
            (2usize, Plane::Axial),
            (1, Plane::Coronal),
            (0, Plane::Sagittal),
        ] {
            let mut x = self.crosshair[axis];
            if ui
                .add(
                    egui::Slider::new(&mut x, lo[axis]..=hi[axis])
                        .text(format!("{} slice", plane.name())),
                )
                .changed()
            {
                self.crosshair[axis] = x;
            }
        }
        ui.separator();

        ui.label("Volume view");
        ui.horizontal(|ui| {
            for m in VolumeMode::ALL {
                if ui
                    .selectable_label(self.settings.mode == m, m.name())
                    .clicked()
                {
                    self.settings.mode = m;
                }
            }
        });
        if self.settings.mode == VolumeMode::Dvr {
            ui.horizontal(|ui| {
                ui.label("Transfer");
                for p in DvrPreset::ALL {
                    if ui
                        .selectable_label(self.settings.dvr == p, p.name())
                        .clicked()
                    {
                        self.settings.dvr = p;
                    }
                }
            });
        }
        if self.settings.mode == VolumeMode::Isosurface {
            ui.add(egui::Slider::new(&mut self.iso, range_lo..=range_hi).text("Iso level"));
        }
        if ui.button("Reset views").clicked() {
            self.needs_fit = true;
            self.camera = OrbitCamera::fit(&v.grid);
        }
        ui.separator();
        self.landmark_controls(ui);
        self.models_panel(ui);
        self.worklist_controls(ui);
        ui.separator();
        ui.small(
            "Left: crosshair · wheel: slice · Ctrl+wheel: zoom · middle: pan · right: window/level · \
             Up/Down or PgUp/PgDn: slice · M: maximise pane",
        );
    }

    fn panes(&mut self, ui: &mut egui::Ui) {
        let full = ui.available_rect_before_wrap();
        let Some(doc) = &self.doc else {
            ui.painter().rect_filled(full, 0.0, Color32::from_gray(10));
            let text = if self.pending.is_some() {
                "Loading…"
            } else {
                "Open a NIfTI file or DICOM folder (File > Open, or drop it here)"
            };
            ui.painter().text(
                full.center(),
                egui::Align2::CENTER_CENTER,
                text,
                egui::FontId::proportional(16.0),
                Color32::GRAY,
            );
            return;
        };
        let gpu = doc.gpu.clone();
        let volume = doc.volume.clone();
        let half = full.size() / 2.0;
        let mut rects = [
            Rect::from_min_size(full.min, half),
            Rect::from_min_size(full.min + Vec2::new(half.x, 0.0), half),
            Rect::from_min_size(full.min + Vec2::new(0.0, half.y), half),
            Rect::from_min_size(full.min + half, half),
        ]
        .map(|r| r.shrink(1.0));
        if let Some(m) = self.settings.maximized {
            rects = [Rect::NOTHING; 4];
            rects[m.min(3)] = full.shrink(1.0);
        }
        if self.needs_fit && rects.iter().all(|r| r.width() > 10.0 || !r.is_positive()) {
            for (i, view) in self.views.iter_mut().enumerate() {
                let r = if rects[i].is_positive() {
                    rects[i]
                } else {
                    full
                };
                *view = SliceView::fit(view.plane, &volume.grid, to_d(r.size()));
            }
            self.needs_fit = false;
        }
        self.pane_rects = rects;
        self.hover = None;
        self.interacting = false;
        if !self.has_wgpu {
            ui.painter().text(
                full.center(),
                egui::Align2::CENTER_CENTER,
                "The viewer needs the wgpu renderer (no GPU adapter was found).",
                egui::FontId::proportional(16.0),
                Color32::LIGHT_RED,
            );
            return;
        }
        for (i, rect) in rects.iter().take(3).enumerate() {
            if rect.is_positive() {
                self.slice_pane(ui, i, *rect, &gpu, &volume);
            }
        }
        if rects[3].is_positive() {
            self.volume_pane(ui, rects[3], &gpu);
        }
    }

    fn slice_pane(
        &mut self,
        ui: &mut egui::Ui,
        i: usize,
        rect: Rect,
        gpu: &Arc<GpuVolume>,
        volume: &Volume,
    ) {
        let plane = self.views[i].plane;
        let response = ui
            .interact(
                rect,
                egui::Id::unique(("heartloc-pane", i)),
                Sense::click_and_drag(),
            )
            .on_hover_cursor(egui::CursorIcon::Crosshair);
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Image, true, format!("{} view", plane.name()))
        });
        let size = to_d(rect.size());
        let (scroll, ctrl, pointer, keys) = ui.input(|inp| {
            (
                wheel_notches(inp),
                inp.modifiers.command || inp.modifiers.ctrl,
                inp.pointer.hover_pos(),
                [
                    inp.key_pressed(egui::Key::ArrowUp) || inp.key_pressed(egui::Key::PageUp),
                    inp.key_pressed(egui::Key::ArrowDown) || inp.key_pressed(egui::Key::PageDown),
                    inp.key_pressed(egui::Key::M),
                ],
            )
        });
        if response.hovered() {
            if scroll != 0.0 {
                if ctrl {
                    if let Some(p) = pointer {
                        let f = 1.15f64.powf(f64::from(scroll));
                        self.views[i].zoom_about(f, to_d(p - rect.min), size);
                    }
                } else {
                    self.step(plane, f64::from(scroll.signum()));
                }
            }
            if keys[0] {
                self.step(plane, 1.0);
            }
            if keys[1] {
                self.step(plane, -1.0);
            }
            if keys[2] {
                self.toggle_maximized(i);
            }
        }
        if response.double_clicked() {
            self.toggle_maximized(i);
        }
        if response.dragged_by(egui::PointerButton::Middle) {
            self.views[i].pan(to_d(response.drag_delta()));
            self.interacting = true;
        }
        if response.dragged_by(egui::PointerButton::Secondary) {
            let d = response.drag_delta();
            let span = (self.window.1 - self.window.0).abs().max(1e-3);
            let level = (self.window.0 + self.window.1) / 2.0 - f64::from(d.y) * span * 0.005;
            let width = (span * (f64::from(d.x) * 0.005).exp()).max(1e-3);
            self.window = (level - width / 2.0, level + width / 2.0);
        }
        // Left button: drag a landmark that was under the press, place the armed slot, or move
        // the crosshair.
        if response.drag_started_by(egui::PointerButton::Primary) && !self.armed {
            let origin = ui.input(|inp| inp.pointer.press_origin());
            if let Some(name) = origin.and_then(|o| self.landmark_near(i, rect, o, volume)) {
                self.drag = Some((name.clone(), self.annotation.set.clone()));
                self.active_slot = name;
            }
        }
        if response.clicked_by(egui::PointerButton::Primary)
            || response.dragged_by(egui::PointerButton::Primary)
        {
            if let Some(p) = response.interact_pointer_pos() {
                let world =
                    self.views[i].world_from_screen(to_d(p - rect.min), size, self.crosshair);
                if let Some((name, _)) = &self.drag {
                    let name = name.clone();
                    self.annotation.drag_to(&name, world);
                } else if self.armed {
                    if response.clicked_by(egui::PointerButton::Primary) {
                        let slot = self.active_slot.clone();
                        self.annotation.place(&slot, world);
                        self.armed = false;
                    }
                } else {
                    self.crosshair = world;
                }
            }
        }
        if response.drag_stopped_by(egui::PointerButton::Primary) {
            if let Some((_, before)) = self.drag.take() {
                self.annotation.finish_drag(before, false);
            }
        }
        if let Some(p) = response.hover_pos() {
            let world = self.views[i].world_from_screen(to_d(p - rect.min), size, self.crosshair);
            self.hover = Some(Hover {
                world,
                ijk: volume.voxel_from_world().transform_point3(world),
                value: volume.sample_world(world, Interpolation::Trilinear),
            });
        }

        let view = self.views[i];
        let painter = ui.painter_at(rect);
        painter.add(render::pane_callback(
            i as u32,
            gpu.clone(),
            PaneDraw::Slice {
                view,
                crosshair: self.crosshair,
                window: self.window,
            },
            rect,
            ui.ctx().pixels_per_point(),
        ));
        self.paint_slice_overlays(ui, i, rect, volume);
        // Crosshair lines in the colours of the other two planes.
        let c = rect.min + to_v(view.screen_from_world(self.crosshair, size));
        let (vertical_plane, horizontal_plane) = match plane {
            Plane::Axial => (2, 1),
            Plane::Coronal => (2, 0),
            Plane::Sagittal => (1, 0),
        };
        painter.vline(
            c.x,
            rect.y_range(),
            Stroke::new(1.0, PANE_COLORS[vertical_plane].gamma_multiply(0.7)),
        );
        painter.hline(
            rect.x_range(),
            c.y,
            Stroke::new(1.0, PANE_COLORS[horizontal_plane].gamma_multiply(0.7)),
        );
        if self.show_landmarks {
            let (_, _, n) = plane.axes();
            let half = slice_step_mm(&volume.grid, plane) * 0.5;
            for (name, p) in self.annotation.set.defined() {
                let d = (p - self.crosshair).dot(n).abs();
                let at = rect.min + to_v(view.screen_from_world(p, size));
                let color = slot_color(name);
                let width = if name == self.active_slot { 2.5 } else { 1.5 };
                if d <= half.max(0.5) {
                    painter.circle_stroke(at, 7.0, Stroke::new(width, color));
                    painter.circle_filled(at, 1.5, color);
                    painter.text(
                        at + Vec2::new(9.0, -9.0),
                        egui::Align2::LEFT_BOTTOM,
                        name,
                        egui::FontId::proportional(12.0),
                        color,
                    );
                } else if d <= FADED_MM {
                    // Projection of a landmark on a nearby slice.
                    painter.circle_stroke(at, 5.0, Stroke::new(1.0, color.gamma_multiply(0.35)));
                }
            }
        }
        // Orientation letters, title, scale bar.
        let [l, r, t, b] = plane.edge_letters();
        let font = egui::FontId::proportional(15.0);
        let letter = |pos: Pos2, align: egui::Align2, s: &str| {
            painter.text(
                pos,
                align,
                s,
                font.clone(),
                Color32::from_rgb(255, 235, 120),
            );
        };
        letter(
            rect.left_center() + Vec2::new(4.0, 0.0),
            egui::Align2::LEFT_CENTER,
            l,
        );
        letter(
            rect.right_center() - Vec2::new(4.0, 0.0),
            egui::Align2::RIGHT_CENTER,
            r,
        );
        letter(
            rect.center_top() + Vec2::new(0.0, 4.0),
            egui::Align2::CENTER_TOP,
            t,
        );
        letter(
            rect.center_bottom() - Vec2::new(0.0, 4.0),
            egui::Align2::CENTER_BOTTOM,
            b,
        );
        let (_, _, n) = plane.axes();
        painter.text(
            rect.left_top() + Vec2::new(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            format!("{}  {:.1} mm", plane.name(), self.crosshair.dot(n)),
            egui::FontId::proportional(13.0),
            PANE_COLORS[i],
        );
        let bar_mm = scale_bar_mm(f64::from(rect.width()) * view.mm_per_px);
        let bar_px = (bar_mm / view.mm_per_px) as f32;
        let y = rect.bottom() - 22.0;
        let x0 = rect.left() + 10.0;
        painter.line_segment(
            [Pos2::new(x0, y), Pos2::new(x0 + bar_px, y)],
            Stroke::new(2.0, Color32::WHITE),
        );
        painter.text(
            Pos2::new(x0 + bar_px / 2.0, y - 3.0),
            egui::Align2::CENTER_BOTTOM,
            format!("{bar_mm} mm"),
            egui::FontId::proportional(11.0),
            Color32::WHITE,
        );
        painter.rect_stroke(
            rect,
            0.0,
            Stroke::new(1.0, PANE_COLORS[i].gamma_multiply(0.4)),
            egui::StrokeKind::Inside,
        );
    }

    fn volume_pane(&mut self, ui: &mut egui::Ui, rect: Rect, gpu: &Arc<GpuVolume>) {
        let response = ui.interact(
            rect,
            egui::Id::unique("heartloc-volume-pane"),
            Sense::click_and_drag(),
        );
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "3D view"));
        if response.dragged_by(egui::PointerButton::Primary) {
            self.camera.orbit(to_d(response.drag_delta()));
            self.interacting = true;
        }
        if response.dragged_by(egui::PointerButton::Middle) {
            self.camera
                .pan(to_d(response.drag_delta()), f64::from(rect.height()));
            self.interacting = true;
        }
        if response.hovered() {
            let (scroll, m) = ui.input(|i| (wheel_notches(i), i.key_pressed(egui::Key::M)));
            if scroll != 0.0 {
                self.camera.zoom(1.15f64.powf(f64::from(scroll)));
            }
            if m {
                self.toggle_maximized(3);
            }
        }
        if response.double_clicked() {
            self.toggle_maximized(3);
        }
        let painter = ui.painter_at(rect);
        painter.add(render::pane_callback(
            3,
            gpu.clone(),
            PaneDraw::Volume {
                camera: self.camera,
                mode: self.settings.mode,
                window: self.window,
                iso: self.iso,
                mr: self.settings.dvr == DvrPreset::Mr,
                // Coarser rays at a third of the resolution while the user drags keep the view
                // responsive without a GPU; the full-quality frame follows when they stop.
                step_voxels: if self.interacting { 2.0 } else { 1.0 },
                resolution_scale: if self.interacting { 0.33 } else { 1.0 },
            },
            rect,
            ui.ctx().pixels_per_point(),
        ));
        // The crosshair as a small 3D cross, each arm in its plane's colour.
        let size = to_d(rect.size());
        for (axis, color) in [
            (DVec3::Z, PANE_COLORS[0]),
            (DVec3::Y, PANE_COLORS[1]),
            (DVec3::X, PANE_COLORS[2]),
        ] {
            let a = render::project_to_pane(&self.camera, self.crosshair - axis * 20.0, size);
            let b = render::project_to_pane(&self.camera, self.crosshair + axis * 20.0, size);
            if let (Some(a), Some(b)) = (a, b) {
                painter.line_segment(
                    [rect.min + to_v(a), rect.min + to_v(b)],
                    Stroke::new(2.0, color),
                );
            }
        }
        self.paint_volume_overlays(&painter, rect);
        if self.show_landmarks {
            for (name, p) in self.annotation.set.defined() {
                if let Some(a) = render::project_to_pane(&self.camera, p, size) {
                    painter.circle_filled(rect.min + to_v(a), 5.0, slot_color(name));
                }
            }
        }
        painter.text(
            rect.left_top() + Vec2::new(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            format!("3D  {}", self.settings.mode.name()),
            egui::FontId::proportional(13.0),
            Color32::LIGHT_GRAY,
        );
        painter.rect_stroke(
            rect,
            0.0,
            Stroke::new(1.0, Color32::from_gray(60)),
            egui::StrokeKind::Inside,
        );
    }

    /// Keyboard-first annotation: 1..9 pick and arm a slot, Delete clears it, Ctrl+Z /
    /// Ctrl+Shift+Z (or Ctrl+Y) undo and redo, N / P next and previous case, O toggles the
    /// landmark overlay, Escape cancels a drag or placing.
    fn handle_annotation_keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (digits, delete, undo, redo, next, prev, overlay, escape) = ctx.input(|i| {
            let cmd = i.modifiers.command || i.modifiers.ctrl;
            let digits: Vec<usize> = [
                egui::Key::Num1,
                egui::Key::Num2,
                egui::Key::Num3,
                egui::Key::Num4,
                egui::Key::Num5,
                egui::Key::Num6,
                egui::Key::Num7,
                egui::Key::Num8,
                egui::Key::Num9,
            ]
            .iter()
            .enumerate()
            .filter(|(_, k)| i.key_pressed(**k))
            .map(|(n, _)| n)
            .collect();
            (
                digits,
                i.key_pressed(egui::Key::Delete) || i.key_pressed(egui::Key::Backspace),
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && ((i.modifiers.shift && i.key_pressed(egui::Key::Z))
                    || i.key_pressed(egui::Key::Y)),
                !cmd && i.key_pressed(egui::Key::N),
                !cmd && i.key_pressed(egui::Key::P),
                !cmd && i.key_pressed(egui::Key::O),
                i.key_pressed(egui::Key::Escape),
            )
        });
        for n in digits {
            if let Some(l) = self.annotation.set.landmarks.get(n) {
                self.active_slot = l.name.clone();
                self.armed = true;
            }
        }
        if escape {
            if let Some((_, before)) = self.drag.take() {
                self.annotation.finish_drag(before, true);
            }
            self.armed = false;
        }
        if delete {
            let slot = self.active_slot.clone();
            self.annotation.delete(&slot);
        }
        if undo {
            self.annotation.undo();
        }
        if redo {
            self.annotation.redo();
        }
        if overlay {
            self.show_landmarks = !self.show_landmarks;
        }
        if next {
            self.step_case(1, ctx);
        }
        if prev {
            self.step_case(-1, ctx);
        }
    }

    /// Save landmarks after every change (atomically: temporary file, fsync, rename).
    fn autosave(&mut self) {
        if self.annotation.revision == self.saved_revision || self.drag.is_some() {
            return;
        }
        let points = self.annotation.set.to_points();
        let result = match &self.landmark_target {
            LandmarkTarget::None => Ok(()),
            LandmarkTarget::File(p) => {
                // The per-user folder is made on the first save, never just by opening a scan.
                let user = crate::worklist::user_landmarks_folder();
                match p.parent().filter(|_| p.starts_with(&user)) {
                    Some(dir) => std::fs::create_dir_all(dir)
                        .map_err(|e| crate::io::LoadError::io(dir, "cannot create folder", e)),
                    None => Ok(()),
                }
                .and_then(|()| markups::write(p, &points))
            }
            LandmarkTarget::Case(i) => match self.worklist.as_mut() {
                Some(w) => w.save_landmarks(*i, &self.annotation.set),
                None => Ok(()),
            },
        };
        match result {
            Ok(()) => self.saved_revision = self.annotation.revision,
            Err(e) => self.message = Some(format!("NOT SAVED: {e}")),
        }
    }

    /// Open a worklist (folder or manifest CSV) and its current case.
    pub fn open_worklist(&mut self, source: &Path, out: Option<&Path>, ctx: &egui::Context) {
        self.autosave();
        match Worklist::open(source, out) {
            Ok(w) => {
                let current = w.current;
                self.worklist = Some(w);
                self.settings.last_worklist =
                    Some((source.to_path_buf(), out.map(Path::to_path_buf)));
                self.open_case(current, ctx);
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Show case `i` of the worklist (landmarks of the previous case are already saved).
    pub fn open_case(&mut self, i: usize, ctx: &egui::Context) {
        self.autosave();
        let Some(w) = self.worklist.as_mut() else {
            return;
        };
        if let Err(e) = w.go_to(i) {
            self.message = Some(e.to_string());
        }
        let i = w.current;
        let image = w.cases[i].image.clone();
        self.open_with_landmarks(Source::Path(image), LandmarkTarget::Case(i), ctx);
    }

    fn step_case(&mut self, delta: isize, ctx: &egui::Context) {
        if let Some(w) = &self.worklist {
            let i = (w.current as isize + delta).clamp(0, w.cases.len() as isize - 1) as usize;
            if i != w.current {
                self.open_case(i, ctx);
            }
        }
    }

    fn landmark_controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Landmarks");
            if ui
                .add_enabled(self.annotation.can_undo(), egui::Button::new("Undo"))
                .clicked()
            {
                self.annotation.undo();
            }
            if ui
                .add_enabled(self.annotation.can_redo(), egui::Button::new("Redo"))
                .clicked()
            {
                self.annotation.redo();
            }
        });
        let mut go_to = None;
        for (n, l) in self.annotation.set.landmarks.clone().iter().enumerate() {
            let active = l.name == self.active_slot;
            let text = match (l.status, l.position_lps) {
                (Status::Defined, Some(p)) => {
                    format!("{} {}  ({:.1}, {:.1}, {:.1})", n + 1, l.name, p.x, p.y, p.z)
                }
                (Status::Skipped, _) => format!("{} {}  skipped", n + 1, l.name),
                _ => format!("{} {}  –", n + 1, l.name),
            };
            let r =
                ui.selectable_label(active, egui::RichText::new(text).color(slot_color(&l.name)));
            if r.clicked() {
                self.active_slot = l.name.clone();
                go_to = l.position_lps;
            }
        }
        if let Some(p) = go_to {
            self.crosshair = p;
            for v in &mut self.views {
                v.center_mm = p;
            }
            self.camera.target = p;
        }
        ui.horizontal(|ui| {
            let slot = self.active_slot.clone();
            let place = if self.armed {
                "Click a slice…"
            } else {
                "Place"
            };
            if ui.selectable_label(self.armed, place).clicked() {
                self.armed = !self.armed;
            }
            if ui.button("Skip").clicked() {
                self.annotation.skip(&slot);
            }
            if ui.button("Delete").clicked() {
                self.annotation.delete(&slot);
            }
        });
        let slot = self.active_slot.clone();
        let mut note = self
            .annotation
            .set
            .get(&slot)
            .map(|l| l.note.clone())
            .unwrap_or_default();
        if ui
            .add(egui::TextEdit::singleline(&mut note).hint_text("note"))
            .lost_focus()
        {
            self.annotation.set_note(&slot, &note);
        }
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.new_slot_name)
                    .desired_width(110.0)
                    .hint_text("new landmark"),
            );
            if ui.button("Add").clicked() && !self.new_slot_name.trim().is_empty() {
                let name = self.new_slot_name.trim().to_string();
                self.annotation.add_slot(&name);
                self.active_slot = name;
                self.new_slot_name.clear();
            }
        });
        let where_saved = match &self.landmark_target {
            LandmarkTarget::None => "not saved (demo)".to_string(),
            LandmarkTarget::File(p) => format!("saved to {}", p.display()),
            LandmarkTarget::Case(i) => self
                .worklist
                .as_ref()
                .map(|w| format!("saved to {}", w.cases[*i].landmarks.display()))
                .unwrap_or_default(),
        };
        ui.small(where_saved);
    }

    fn worklist_controls(&mut self, ui: &mut egui::Ui) {
        let Some(w) = &self.worklist else { return };
        ui.separator();
        let (todo, done, skipped) = w.counts();
        ui.label(format!(
            "Worklist: {done} done, {todo} to do, {skipped} skipped"
        ));
        let current = w.current;
        let rows: Vec<(String, CaseStatus, usize)> = (0..w.cases.len())
            .map(|i| {
                (
                    w.cases[i].name.clone(),
                    w.summary(i).status,
                    w.summary(i).defined,
                )
            })
            .collect();
        let mut open = None;
        let mut skip_toggle = false;
        ui.horizontal(|ui| {
            if ui.button("Previous case").clicked() && current > 0 {
                open = Some(current - 1);
            }
            if ui.button("Next case").clicked() && current + 1 < rows.len() {
                open = Some(current + 1);
            }
            if ui.button("Skip case").clicked() {
                skip_toggle = true;
            }
        });
        if ui.button("Export CSV…").clicked() {
            if let Some(path) = self.dialog.save_file("landmarks.csv", "csv") {
                self.message = Some(match w.export_csv(&path) {
                    Ok(n) => format!("exported {n} rows to {}", path.display()),
                    Err(e) => e.to_string(),
                });
            }
        }
        let order = self.worklist_order_controls(ui);
        let scores: Vec<String> = (0..rows.len()).map(|i| self.case_score_text(i)).collect();
        egui::ScrollArea::vertical()
            .max_height(180.0)
            .show(ui, |ui| {
                for i in order {
                    let (name, status, defined) = &rows[i];
                    let mark = match status {
                        CaseStatus::Done => "done",
                        CaseStatus::ToDo => "to do",
                        CaseStatus::Skipped => "skipped",
                    };
                    if ui
                        .selectable_label(
                            i == current,
                            format!("{name}  {mark}  ({defined}){}", scores[i]),
                        )
                        .clicked()
                    {
                        open = Some(i);
                    }
                }
            });
        if skip_toggle {
            if let Some(w) = self.worklist.as_mut() {
                let skipped = w.summary(current).status == CaseStatus::Skipped;
                if let Err(e) = w.set_skipped(current, !skipped) {
                    self.message = Some(e.to_string());
                }
            }
        }
        if let Some(i) = open {
            self.open_case(i, ui.ctx());
        }
    }

    /// The defined landmark drawn within 8 points of `pos` on slice pane `i`, if any.
    fn landmark_near(&self, i: usize, rect: Rect, pos: Pos2, volume: &Volume) -> Option<String> {
        let view = self.views[i];
        let (_, _, n) = view.plane.axes();
        let half = slice_step_mm(&volume.grid, view.plane) * 0.5;
        let size = to_d(rect.size());
        self.annotation
            .set
            .defined()
            .filter(|(_, p)| (*p - self.crosshair).dot(n).abs() <= half.max(0.5))
            .map(|(name, p)| {
                (
                    name,
                    (rect.min + to_v(view.screen_from_world(p, size))).distance(pos),
                )
            })
            .filter(|(_, d)| *d <= 8.0)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, _)| name.to_string())
    }

    fn toggle_maximized(&mut self, pane: usize) {
        self.settings.maximized = if self.settings.maximized == Some(pane) {
            None
        } else {
            Some(pane)
        };
        self.needs_fit = true;
    }
}

/// Vertical mouse-wheel movement this frame in notches (lines), positive away from the user.
fn wheel_notches(input: &egui::InputState) -> f32 {
    input
        .raw
        .events
        .iter()
        .map(|e| match e {
            egui::Event::MouseWheel { unit, delta, .. } => match unit {
                egui::MouseWheelUnit::Point => delta.y / 50.0,
                egui::MouseWheelUnit::Line => delta.y,
                egui::MouseWheelUnit::Page => delta.y * 10.0,
            },
            _ => 0.0,
        })
        .sum()
}

/// Where an opened file's landmarks go: beside a NIfTI file in a folder that can be written;
/// otherwise (a DICOM folder or file, a read-only folder) the per-user folder, never the
/// source folder.
fn landmark_target_for(path: &Path) -> PendingLandmarks {
    let dicom = path.is_dir()
        || crate::io::dicom::bounds::check(path)
            .is_ok_and(|p| p != crate::io::dicom::bounds::Probe::NotDicom);
    let folder = path.parent().filter(|d| !d.as_os_str().is_empty());
    let writable = crate::worklist::folder_is_writable(folder.unwrap_or(Path::new(".")));
    if dicom || !writable {
        PendingLandmarks::PerUser
    } else {
        PendingLandmarks::Known(LandmarkTarget::File(landmarks_beside(path)))
    }
}

/// The per-user landmarks file of a loaded volume: by its DICOM study and series UIDs, or for
/// a NIfTI file (in a folder that cannot be written) by its name and a hash of its full path.
fn per_user_landmarks(volume: &Volume, source: Option<&Path>) -> PathBuf {
    match &volume.series {
        Some(ids) => crate::worklist::series_landmarks_path(&ids.study_uid, &ids.series_uid),
        None => {
            let path = source.unwrap_or(Path::new("volume"));
            let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let hash = full
                .to_string_lossy()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
            let name = landmarks_beside(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "volume.mrk.json".into());
            crate::worklist::user_landmarks_folder()
                .join("files")
                .join(format!("{hash:016x}-{name}"))
        }
    }
}

/// `<image>.mrk.json` beside an image file (or inside a DICOM folder, for `--landmarks`
/// defaults chosen by the user).
pub fn landmarks_beside(image: &Path) -> PathBuf {
    if image.is_dir() {
        return image.join(crate::worklist::LANDMARKS_FILE);
    }
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.trim_end_matches(".gz").trim_end_matches(".nii");
    image.with_file_name(format!("{stem}.mrk.json"))
}

fn slot_color(name: &str) -> Color32 {
    match name {
        "aortic-valve" => Color32::from_rgb(255, 80, 80),
        "heart-center" => Color32::from_rgb(255, 90, 255),
        _ => Color32::from_rgb(80, 230, 230),
    }
}

fn to_d(v: Vec2) -> DVec2 {
    DVec2::new(f64::from(v.x), f64::from(v.y))
}

fn to_v(v: DVec2) -> Vec2 {
    Vec2::new(v.x as f32, v.y as f32)
}

/// Write an egui image as PNG, durably (see [`crate::io::durable`]).
pub fn save_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    crate::io::durable::replace_with(path, |tmp| {
        let file = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        let mut enc = png::Encoder::new(file, image.size[0] as u32, image.size[1] as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        w.write_image_data(image.as_raw())
            .map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())
}

/// What the app opens at start (from the command line).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub input: Option<PathBuf>,
    pub landmarks: Option<PathBuf>,
    pub worklist: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Model weights folder (default: the shipped models).
    pub weights: Option<PathBuf>,
    /// Run the models on every volume as it opens.
    pub run: bool,
}

impl HeartlocApp {
    /// Start as the command line asked: a worklist, a file (with landmarks), or the demo.
    pub fn launch(
        cc: &eframe::CreationContext<'_>,
        launch: Launch,
        dialog: Box<dyn FileDialog>,
    ) -> Self {
        let first = match (&launch.worklist, &launch.input) {
            (Some(_), _) => None,
            (None, Some(p)) => Some(Source::Path(p.clone())),
            (None, None) => Some(Source::Demo),
        };
        let mut app = HeartlocApp::blank(cc, dialog);
        app.models.weights = launch.weights.clone();
        if launch.run {
            app.settings.overlays.run_on_open = true;
        }
        app.open(first.clone().unwrap_or(Source::Demo), &cc.egui_ctx);
        if let Some(w) = &launch.worklist {
            app.open_worklist(w, launch.out.as_deref(), &cc.egui_ctx);
        } else if let (Some(Source::Path(p)), Some(l)) = (first, &launch.landmarks) {
            app.open_with_landmarks(
                Source::Path(p),
                LandmarkTarget::File(l.clone()),
                &cc.egui_ctx,
            );
        }
        app
    }
}

/// Run the app (blocking until the window closes).
pub fn run(launch: Launch) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("heartloc")
            .with_inner_size([1280.0, 860.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "heartloc",
        options,
        Box::new(move |cc| {
            Ok(Box::new(HeartlocApp::launch(
                cc,
                launch,
                Box::new(NativeDialog),
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the app: {e}"))
}
