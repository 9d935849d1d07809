//! The desktop app: four panes (axial, coronal, sagittal, 3D) over one volume, a linked
//! crosshair in LPS mm, window/level presets, volume modes, files opened in the background,
//! landmarks, worklists and the models.
//!
//! Each part has one job (see ARCHITECTURE.md): panels read the app and return
//! [`command::Command`]s that [`HeartlocApp::apply`] runs after the UI pass; panes turn the
//! pointer into [`panes::PaneAction`]s and hand plain draw data to [`crate::render`]; view
//! math lives below, in [`crate::slice_view`].

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use eframe::egui::{self, Color32, Rect};
use glam::DVec3;

use crate::annotation::LandmarkSet;
use crate::render::{GpuVolume, Renderer};
use crate::slice_view::{
    Crop, Cut, DvrPreset, Modality, OrbitCamera, Pane, Plane, Slab, SliceView, VolumeMode, Window,
    WindowPreset, HEART_MARGIN_MM,
};
use crate::volume::{Grid, Volume};
use crate::worklist::Worklist;

mod cine;
pub mod command;
mod controls;
mod dialog;
mod document;
mod export;
pub mod keys;
mod landmarks;
mod launch;
mod menu;
pub mod models;
pub mod panes;
mod series;
mod volume_pane;
mod worklist_panel;

pub use cine::Cine;
pub use command::Command;
pub use dialog::{default_screenshot_folder, save_png, FileDialog, NativeDialog, NoDialog};
pub use document::{Document, Origin, Source};
pub use landmarks::{landmarks_beside, LandmarkEdit, LandmarkTarget, LandmarksState};
pub use launch::{run, Launch};
pub use models::{method_color, order_cases, CaseOrder, CaseScore, OverlaySettings, Predictions};

use document::Loader;
use landmarks::PendingLandmarks;
use panes::{SliceFrame, VolumeFrame, VolumeLook};

/// Settings kept between runs (eframe storage).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent: Vec<PathBuf>,
    /// The window preset of the volume shown.
    pub preset: WindowPreset,
    /// The preset last chosen for each modality: an MR never opens in a CT window.
    pub preset_by_modality: std::collections::BTreeMap<Modality, WindowPreset>,
    pub mode: VolumeMode,
    /// The maximised pane, if any.
    pub maximized: Option<Pane>,
    pub dvr: DvrPreset,
    /// The last worklist opened (source, output folder), offered for resuming.
    pub last_worklist: Option<(PathBuf, Option<PathBuf>)>,
    pub overlays: OverlaySettings,
    /// What the 3D view renders of the volume, and the cube's side around the crosshair (mm);
    /// for this session only (a crop remembered from a heart of another scan would surprise).
    #[serde(skip)]
    pub crop: Crop,
    #[serde(skip, default = "default_crop_size_mm")]
    pub crop_size_mm: f64,
    /// The half cut away at the crosshair's plane (session only, like the crop).
    #[serde(skip)]
    pub cut: Cut,
    /// The slice views' slab (thin, MIP or mean; session only, like the cut).
    #[serde(skip)]
    pub slab: Slab,
}

fn default_crop_size_mm() -> f64 {
    120.0
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recent: Vec::new(),
            preset: WindowPreset::Auto,
            preset_by_modality: Default::default(),
            mode: VolumeMode::Dvr,
            maximized: None,
            dvr: DvrPreset::CardiacCt,
            last_worklist: None,
            overlays: OverlaySettings::default(),
            crop: Crop::Whole,
            crop_size_mm: default_crop_size_mm(),
            cut: Cut::None,
            slab: Slab::default(),
        }
    }
}

const SETTINGS_KEY: &str = "heartloc-settings";
const MAX_RECENT: usize = 10;

/// A readout of the point under the cursor.
#[derive(Clone, Debug)]
pub struct Hover {
    pub world: DVec3,
    pub ijk: DVec3,
    pub value: Option<f32>,
    /// The open label map's structure there, by name.
    pub structure: Option<String>,
}

/// A screenshot asked of eframe: where it arrives, where it goes, which part is kept.
struct PendingScreenshot {
    rx: Receiver<Arc<egui::ColorImage>>,
    path: PathBuf,
    crop: Option<Rect>,
}

pub struct HeartlocApp {
    pub settings: Settings,
    pub doc: Option<Document>,
    pub views: [SliceView; 3],
    pub camera: OrbitCamera,
    pub crosshair: DVec3,
    pub window: Window,
    /// Isosurface level in stored values.
    pub iso: f64,
    pub message: Option<String>,
    pub hover: Option<Hover>,
    loader: Loader,
    /// Landmark target of the volume loading (read when it arrives).
    pending_landmarks: Option<PendingLandmarks>,
    needs_fit: bool,
    interacting: bool,
    /// The 3D view's resolution while interacting, adapted to the frame time.
    preview: panes::Preview,
    dialog: Box<dyn FileDialog>,
    has_wgpu: bool,
    screenshot: Option<PendingScreenshot>,
    pane_rects: [Rect; 4],
    /// Landmarks of the open volume, and placing and dragging them.
    pub landmarks: LandmarksState,
    pub worklist: Option<Worklist>,
    /// The model worker, predictions, overlays and label map.
    pub models: models::ModelsState,
    /// The About box is open.
    pub about_open: bool,
    /// The cine loop while it plays.
    pub cine: Option<Cine>,
    /// Run the models on the next volume shown (a cine stopped while a phase was loading).
    rerun_when_shown: bool,
    /// A DICOM folder being listed, and the series of the last one listed.
    listing: Option<series::PendingListing>,
    pub series_browser: Option<series::SeriesBrowser>,
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
            views: Plane::ALL.map(|plane| SliceView::new(plane, DVec3::ZERO, 1.0)),
            camera: OrbitCamera {
                target: DVec3::ZERO,
                yaw: 0.0,
                pitch: 0.0,
                distance_mm: 500.0,
            },
            crosshair: DVec3::ZERO,
            window: Window::new(0.0, 1.0),
            iso: 0.0,
            message: None,
            hover: None,
            loader: Loader::new(max_texture_dim),
            pending_landmarks: None,
            needs_fit: false,
            interacting: false,
            preview: Default::default(),
            dialog,
            has_wgpu,
            screenshot: None,
            pane_rects: [Rect::NOTHING; 4],
            landmarks: LandmarksState::default(),
            worklist: None,
            models: Default::default(),
            about_open: false,
            cine: None,
            rerun_when_shown: false,
            listing: None,
            series_browser: None,
        }
    }

    /// Start loading in the background; the answer replaces the shown volume when it arrives.
    pub fn open(&mut self, source: Source, ctx: &egui::Context) {
        let pending = match &source {
            Source::Demo | Source::Phantom => PendingLandmarks::Known(LandmarkTarget::None),
            Source::Path(p) | Source::Part { path: p, .. } => PendingLandmarks::for_path(p),
        };
        self.pending_landmarks = Some(pending);
        self.loader.start(source, ctx);
    }

    /// Open a volume whose landmarks live in `target` (read when the volume arrives).
    pub fn open_with_landmarks(
        &mut self,
        source: Source,
        target: LandmarkTarget,
        ctx: &egui::Context,
    ) {
        self.pending_landmarks = Some(PendingLandmarks::Known(target));
        self.loader.start(source, ctx);
    }

    /// True while a file is loading.
    pub fn is_loading(&self) -> bool {
        self.loader.loading().is_some()
    }

    /// Where each pane was drawn last frame (points): axial, coronal, sagittal, volume.
    pub fn pane_rects(&self) -> [Rect; 4] {
        self.pane_rects
    }

    fn poll_loading(&mut self, ctx: &egui::Context) {
        match self.loader.poll() {
            Some(Ok(doc)) => self.show(doc, ctx),
            Some(Err(e)) => self.message = Some(e),
            None => {}
        }
    }

    /// Put a loaded document on screen with its landmarks; a run for the old one is dropped.
    fn show(&mut self, doc: Document, ctx: &egui::Context) {
        let target = match self.pending_landmarks.take() {
            Some(p) => p.resolve(&doc.volume, doc.source()),
            None => LandmarkTarget::None,
        };
        if let Some(path) = doc.source() {
            let path = path.to_path_buf();
            self.settings.recent.retain(|p| *p != path);
            self.settings.recent.insert(0, path);
            self.settings.recent.truncate(MAX_RECENT);
        }
        // Another phase of the scan on screen keeps the views, the window and the models' run.
        let another_phase = self.doc.as_ref().is_some_and(|d| {
            d.source().is_some()
                && d.source() == doc.source()
                && d.volume.grid == doc.volume.grid
                && d.volume.series == doc.volume.series
        });
        let rerun = another_phase
            && (self.models.predictions.is_some() || std::mem::take(&mut self.rerun_when_shown))
            && self.cine.is_none();
        if !another_phase {
            self.frame_new_scan(&doc);
            self.cine = None;
        }
        self.message = doc
            .volume
            .warnings
            .first()
            .map(|w| format!("{}: {w}", doc.name));
        if let Some(n) = &doc.gpu.notice {
            self.message = Some(n.clone());
        }
        let is_demo = doc.source().is_none();
        self.doc = Some(doc);
        self.needs_fit |= !another_phase;
        let loaded = self.read_landmarks(&target);
        if let Ok((_, notes)) = &loaded {
            if let Some(n) = notes.first() {
                self.message = Some(format!("landmarks: {n}"));
            }
        }
        let loaded = loaded.map(|(set, _)| (set, target));
        if let Some(m) = self.landmarks.reset(loaded.map_err(|e| e.to_string())) {
            self.message = Some(m);
        }
        let scoring = self.models.scoring();
        self.models.on_new_document();
        if (self.settings.overlays.run_on_open || is_demo || rerun) && !scoring {
            self.run_models(ctx);
        }
    }

    /// A new scan: crosshair at its centre, camera around it, the window and DVR preset of its
    /// modality, the default isosurface level.
    fn frame_new_scan(&mut self, doc: &Document) {
        let grid = doc.volume.grid;
        let (lo, hi) = grid.world_bbox();
        self.crosshair = (lo + hi) * 0.5;
        self.camera = OrbitCamera::fit(&grid);
        let (modality, _) = doc.modality();
        self.settings.preset = self.preset_for(modality);
        self.window = doc.intensity.window(self.settings.preset);
        self.settings.dvr = match modality {
            Modality::Mr => DvrPreset::Mr,
            Modality::Ct => DvrPreset::CardiacCt,
            Modality::Other => self.settings.dvr,
        };
        self.iso = doc.default_iso();
    }

    /// The window preset for a scan of `modality`: the one last chosen for it, never a CT
    /// window for an MR, else Auto.
    fn preset_for(&self, modality: Modality) -> WindowPreset {
        let remembered = self.settings.preset_by_modality.get(&modality).copied();
        match remembered {
            Some(p) if modality == Modality::Mr && p.is_ct() => WindowPreset::Auto,
            Some(p) => p,
            None => WindowPreset::Auto,
        }
    }

    /// The landmarks saved at `target` (none yet: the default slots), and notes on what else
    /// the file holds.
    fn read_landmarks(
        &self,
        target: &LandmarkTarget,
    ) -> Result<(LandmarkSet, Vec<String>), crate::io::FileError> {
        match target {
            LandmarkTarget::File(p) if p.is_file() => LandmarkSet::read(p),
            LandmarkTarget::Case(i) => match &self.worklist {
                Some(w) => w.load_landmarks(*i).map(|set| (set, Vec::new())),
                None => Ok((LandmarkSet::default(), Vec::new())),
            },
            _ => Ok((LandmarkSet::default(), Vec::new())),
        }
    }

    /// Save the landmarks if they changed (every change is saved at once).
    fn autosave(&mut self) {
        if let Err(e) = self.landmarks.autosave(self.worklist.as_mut()) {
            self.message = Some(e);
        }
    }

    /// Where the landmarks panel says they are saved.
    fn where_saved(&self) -> String {
        match &self.landmarks.target {
            LandmarkTarget::None => "not saved (demo)".to_string(),
            LandmarkTarget::File(p) => format!("saved to {}", p.display()),
            LandmarkTarget::Case(i) => self
                .worklist
                .as_ref()
                .map(|w| format!("saved to {}", w.cases[*i].landmarks.display()))
                .unwrap_or_default(),
        }
    }
}

impl eframe::App for HeartlocApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.preview
            .frame(std::time::Instant::now(), self.interacting);
        self.poll_loading(&ctx);
        self.poll_listing(&ctx);
        self.advance_cine(&ctx);
        let news = self.models.poll(
            &ctx,
            self.doc.as_ref().map(|d| d.gpu.id),
            self.worklist.as_ref(),
        );
        self.take_news(news);
        let doc = self.doc.as_ref().map(|d| (d.gpu.id, d.volume.clone()));
        let news = self.models.landmarks.poll(&ctx, doc);
        self.take_news(news);
        self.handle_dropped_files(&ctx);
        self.handle_screenshot_events(&ctx);
        if !ctx.egui_wants_keyboard_input() {
            let keys = ctx.input(|i| keys::pressed(i, keys::Scope::Window));
            for c in keys.into_iter().filter_map(Command::of_key) {
                self.apply(c, &ctx);
            }
        }
        let mut commands = Vec::new();
        egui::Panel::top("menu").show(ui, |ui| commands.extend(menu::menu_ui(ui, self)));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| commands.extend(controls::controls_ui(ui, self)));
            });
        egui::CentralPanel::no_frame().show(ui, |ui| self.panes_ui(ui));
        commands.extend(menu::about_ui(&ctx, self.about_open));
        commands.extend(series::series_ui(&ctx, self.series_browser.as_ref()));
        for c in commands {
            self.apply(c, &ctx);
        }
        if let Some(notice) = self.landmarks.notice.take() {
            self.message = Some(notice);
        }
        self.autosave();
        if self.is_loading() || self.interacting {
            ctx.request_repaint();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

impl HeartlocApp {
    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Option<PathBuf> =
            ctx.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()));
        if let Some(p) = dropped {
            self.open(Source::Path(p), ctx);
        }
    }

    fn handle_screenshot_events(&mut self, ctx: &egui::Context) {
        let Some(s) = &self.screenshot else { return };
        let Ok(image) = s.rx.try_recv() else { return };
        let Some(s) = self.screenshot.take() else {
            return;
        };
        let image = match s.crop {
            Some(rect) => image.region(&rect, Some(ctx.pixels_per_point())),
            None => (*image).clone(),
        };
        let path = s.path;
        self.message = Some(match save_png(&path, &image) {
            Ok(()) => format!("saved {}", path.display()),
            Err(e) => format!("cannot save screenshot {}: {e}", path.display()),
        });
    }

    /// Ask where, then save a screenshot of the window (`None`) or of one pane.
    fn screenshot(&mut self, pane: Option<Pane>, ctx: &egui::Context) {
        let stem = match pane {
            None => "heartloc".to_string(),
            Some(p) => format!("heartloc-{}", menu::pane_word(p)),
        };
        if let Some(p) = self.screenshot_path(&stem) {
            self.request_screenshot(ctx, p, pane);
        }
    }

    /// Where a screenshot named like `stem` goes: the dialog's answer, or, where no dialog can
    /// be shown, a new file in [`default_screenshot_folder`] (the saved message says where).
    fn screenshot_path(&mut self, stem: &str) -> Option<PathBuf> {
        if self.dialog.available() {
            return self.dialog.save_file(&format!("{stem}.png"), "png");
        }
        match dialog::fallback_screenshot_path(stem) {
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
    pub fn request_screenshot(&mut self, ctx: &egui::Context, path: PathBuf, pane: Option<Pane>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let repaint = ctx.clone();
        let crop = pane.map(|p| self.pane_rects[p.index()]);
        self.screenshot = Some(PendingScreenshot { rx, path, crop });
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
            egui::ScreenshotCallback::new(move |image| {
                let _ = tx.send(image);
                repaint.request_repaint();
            }),
        ));
    }

    fn status_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.hover {
                Some(h) => {
                    let value = h.value.map_or("–".to_string(), |v| format!("{v:.1}"));
                    ui.label(format!(
                        "voxel ({:.1}, {:.1}, {:.1})   LPS ({:.1}, {:.1}, {:.1}) mm   value {value}",
                        h.ijk.x, h.ijk.y, h.ijk.z, h.world.x, h.world.y, h.world.z,
                    ));
                    if let Some(name) = &h.structure {
                        ui.strong(name);
                    }
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

    /// Lay out the panes, fit the views once a volume arrives, then each pane's input and
    /// drawing.
    fn panes_ui(&mut self, ui: &mut egui::Ui) {
        let full = ui.available_rect_before_wrap();
        let Some(doc) = &self.doc else {
            ui.painter().rect_filled(full, 0.0, Color32::from_gray(10));
            let text = if self.is_loading() {
                "Loading…"
            } else {
                "Open a NIfTI file or DICOM folder (File > Open, or drop it here)"
            };
            panes::paint_notice(ui, full, text, Color32::GRAY);
            return;
        };
        let (gpu, volume) = (doc.gpu.clone(), doc.volume.clone());
        let rects = panes::layout(full, self.settings.maximized);
        if self.needs_fit && rects.iter().all(|r| r.width() > 10.0 || !r.is_positive()) {
            for (view, rect) in self.views.iter_mut().zip(rects) {
                let r = if rect.is_positive() { rect } else { full };
                *view = view.fit(&volume.grid, panes::to_d(r.size()));
            }
            self.needs_fit = false;
        }
        self.pane_rects = rects;
        self.hover = None;
        self.interacting = false;
        if !self.has_wgpu {
            let text = "The viewer needs the wgpu renderer (no GPU adapter was found).";
            panes::paint_notice(ui, full, text, Color32::LIGHT_RED);
            return;
        }
        for pane in Pane::SLICES {
            if rects[pane.index()].is_positive() {
                self.slice_pane_ui(ui, pane, rects[pane.index()], &gpu, &volume);
            }
        }
        if rects[3].is_positive() {
            self.volume_pane_ui(ui, rects[3], &gpu, &volume.grid);
        }
    }

    fn slice_pane_ui(
        &mut self,
        ui: &mut egui::Ui,
        pane: Pane,
        rect: Rect,
        gpu: &Arc<GpuVolume>,
        volume: &Volume,
    ) {
        let i = pane.index();
        let frame = |app: &Self| SliceFrame {
            pane,
            rect,
            view: app.views[i],
            crosshair: app.crosshair,
            grid: &volume.grid,
            slab: app.settings.slab,
        };
        for action in panes::slice_input(ui, pane, rect) {
            self.apply_slice_action(&frame(self), action);
        }
        let frame = frame(self);
        panes::paint_slice_image(ui, &frame, gpu, self.window);
        models::overlay::paint_slice(ui, &frame, &self.settings.overlays, &mut self.models);
        let painter = ui.painter_at(rect);
        panes::paint_crosshair(&painter, &frame);
        if self.landmarks.shown {
            landmarks::paint_slice(&painter, &frame, &self.landmarks);
        }
        panes::paint_slice_decorations(&painter, &frame);
    }

    fn volume_pane_ui(&mut self, ui: &mut egui::Ui, rect: Rect, gpu: &Arc<GpuVolume>, grid: &Grid) {
        for action in panes::volume_input(ui, rect) {
            self.apply_volume_action(rect.height(), action);
        }
        let frame = VolumeFrame {
            rect,
            camera: self.camera,
        };
        let look = VolumeLook {
            mode: self.settings.mode,
            dvr: self.settings.dvr,
            window: self.volume_window(),
            iso: self.iso,
            interacting: self.interacting,
            preview_scale: self.preview.scale,
            crop_lps: self.crop_lps(),
            structures: if self.settings.mode == VolumeMode::Labels {
                models::overlay::structures_3d(&mut self.models, gpu, &self.settings.overlays)
            } else {
                None
            },
        };
        let planes = (&self.views, grid);
        panes::paint_volume_image(ui, &frame, gpu, &look, planes, self.crosshair);
        let painter = ui.painter_at(rect);
        if let Some(p) = &self.models.predictions {
            models::overlay::paint_volume(&painter, &frame, &self.settings.overlays, p);
        }
        if self.landmarks.shown {
            landmarks::paint_volume(&painter, &frame, &self.landmarks);
        }
        panes::paint_volume_decorations(&painter, &frame, self.settings.mode);
    }

    /// The window the 3D view uses: a DVR preset's own HU range on CT with a known HU
    /// scale, else the slice window.
    fn volume_window(&self) -> Window {
        let Some(doc) = &self.doc else {
            return self.window;
        };
        match (self.settings.mode, self.settings.dvr.hu_window()) {
            (VolumeMode::Dvr, Some((lo, hi))) => {
                doc.intensity.window_hu(lo, hi).unwrap_or(self.window)
            }
            _ => self.window,
        }
    }

    /// The LPS box the 3D view renders: the crop, less the half cut away at the crosshair
    /// (`None`: all of the volume, also when "Heart only" has no segmentation yet).
    pub fn crop_lps(&self) -> Option<(DVec3, DVec3)> {
        let crop = self.crop_lps_of(self.settings.crop);
        if self.settings.cut == Cut::None {
            return crop;
        }
        let whole = self.doc.as_ref().map(|d| d.volume.grid.world_bbox())?;
        Some(
            self.settings
                .cut
                .apply(crop.unwrap_or(whole), self.crosshair),
        )
    }

    fn crop_lps_of(&self, crop: Crop) -> Option<(DVec3, DVec3)> {
        match crop {
            Crop::Whole => None,
            Crop::Heart => {
                let (lo, hi) = self.models.predictions.as_ref()?.heart_box()?;
                Some((lo - HEART_MARGIN_MM, hi + HEART_MARGIN_MM))
            }
            Crop::Crosshair => {
                let half = DVec3::splat(self.settings.crop_size_mm * 0.5);
                Some((self.crosshair - half, self.crosshair + half))
            }
        }
    }
}
