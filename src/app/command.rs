//! What the panels and keys ask for ([`Command`]), and the one place that does it
//! ([`HeartlocApp::apply`]); pane gestures ([`PaneAction`]) are applied here too.

use std::path::{Path, PathBuf};

use eframe::egui;
use glam::{DVec2, DVec3};

use super::document::{Origin, Source};
use super::keys::KeyAction;
use super::landmarks::{LandmarkEdit, LandmarkTarget, Pointer};
use super::models::{CaseOrder, News, OverlaySettings};
use super::panes::{to_d, PaneAction, SliceFrame};
use super::{HeartlocApp, Hover};
use crate::ml::preprocess::Method;
use crate::slice_view::{
    step_slice, Crop, Cut, DvrPreset, OrbitCamera, Pane, Plane, Slab, VolumeMode, Window,
    WindowPreset,
};
use crate::volume::Interpolation;
use crate::worklist::{CaseStatus, Worklist};

/// The landmark the heart models locate: their answers are offered for this slot only.
pub const MODELS_LANDMARK: &str = "heart-center";

/// A heart-center this far from every prediction (mm) is flagged.
pub const FAR_MM: f64 = 30.0;

/// What to ask the file dialog for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    File,
    Folder,
    WorklistFolder,
    WorklistCsv,
}

/// A request from a panel or key, run by [`HeartlocApp::apply`] after the UI pass.
#[must_use]
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Open(Source),
    /// Ask the dialog, then open what was picked.
    Pick(Pick),
    OpenWorklist(PathBuf, Option<PathBuf>),
    OpenCase(usize),
    StepCase(isize),
    ToggleCaseSkipped,
    ExportCsv,
    /// Ask where, then write the segmented heart and the label map's structures as 3D models.
    ExportModel,
    /// Save a screenshot of the window (`None`) or of one pane.
    Screenshot(Option<Pane>),
    SetMaximized(Option<Pane>),
    /// Open or close the About box (credits, the demo's attribution).
    ShowAbout(bool),
    SetPreset(WindowPreset),
    SetWindow(Window),
    SetCrosshair(DVec3),
    SetMode(VolumeMode),
    SetDvr(DvrPreset),
    SetIso(f64),
    /// What the 3D view renders of the volume, and the cube's side around the crosshair.
    SetCrop(Crop),
    SetCropSize(f64),
    /// Show phase `k` (0-based) of the time series on screen.
    SetPhase(usize),
    /// The series browser: select a row, open a series, show or hide the window.
    SelectSeries(usize),
    OpenSeries(usize),
    ShowSeries(bool),
    /// Play the cine loop at this many phases a second, or stop it (`None`).
    PlayCine(Option<f64>),
    /// Cut away one half of the 3D view at the crosshair's plane.
    SetCut(Cut),
    /// Name one value of the open label map (this session), or save the names for label maps
    /// that come without names of their own.
    RenameLabel(u32, String),
    SaveLabelNames,
    /// Show or hide one label value's structure in the 3D Labels mode.
    ShowStructure(u32, bool),
    ResetViews,
    /// Turn the three slice planes to this rotation (identity: the patient axes).
    SetRotation(glam::DQuat),
    /// Show the slice views as a thin plane, a maximum intensity projection or a mean slab.
    SetSlab(Slab),
    /// Centre every view on a point.
    GoTo(DVec3),
    Landmark(LandmarkEdit),
    RunModels,
    CancelModels,
    /// Put a method's centre into the active landmark slot.
    AcceptPrediction(Method),
    FrameHeart,
    ScoreWorklist,
    PickLabels,
    OpenLabels(PathBuf),
    SetOverlays(OverlaySettings),
    SetOrder(CaseOrder),
    /// Learn this landmark from the open worklist's annotated cases, in the background.
    TrainLandmark(String),
    CancelTraining,
    SetTrainingMinutes(f64),
    /// Make this version of a landmark's model the one that suggests (rolling back included).
    UseLandmarkVersion(String, u32),
    /// Put a landmark model's suggestion into its slot: this slot's, or (`None`, the key) the
    /// active slot's, else the first one offered.
    AcceptSuggestion(Option<String>),
}

impl Command {
    /// The command of a key that works anywhere in the window (pane keys: `None`).
    pub fn of_key(key: KeyAction) -> Option<Command> {
        Some(match key {
            KeyAction::ArmSlot(n) => Command::Landmark(LandmarkEdit::Arm(n)),
            KeyAction::DeleteSlot => Command::Landmark(LandmarkEdit::Delete),
            KeyAction::Undo => Command::Landmark(LandmarkEdit::Undo),
            KeyAction::Redo => Command::Landmark(LandmarkEdit::Redo),
            KeyAction::Cancel => Command::Landmark(LandmarkEdit::Cancel),
            KeyAction::ToggleLandmarks => Command::Landmark(LandmarkEdit::ToggleShown),
            KeyAction::NextCase => Command::StepCase(1),
            KeyAction::PreviousCase => Command::StepCase(-1),
            KeyAction::RunModels => Command::RunModels,
            KeyAction::AcceptHeatmap => Command::AcceptPrediction(Method::Heatmap),
            KeyAction::AcceptSegmentation => Command::AcceptPrediction(Method::Segmentation),
            KeyAction::FrameHeart => Command::FrameHeart,
            KeyAction::AcceptSuggestion => Command::AcceptSuggestion(None),
            KeyAction::Slice(_)
            | KeyAction::Maximise
            | KeyAction::Turn(_)
            | KeyAction::Nudge { .. } => return None,
        })
    }
}

impl HeartlocApp {
    /// Run one command.
    pub fn apply(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::Open(source) => self.open(source, ctx),
            Command::Pick(pick) => self.pick(pick, ctx),
            Command::OpenWorklist(source, out) => self.open_worklist(&source, out.as_deref(), ctx),
            Command::OpenCase(i) => self.open_case(i, ctx),
            Command::StepCase(delta) => self.step_case(delta, ctx),
            Command::ToggleCaseSkipped => self.toggle_case_skipped(ctx),
            Command::ExportCsv => self.export_csv(),
            Command::ExportModel => self.export_model(),
            Command::Screenshot(pane) => self.screenshot(pane, ctx),
            Command::SetMaximized(m) => self.settings.maximized = m,
            Command::ShowAbout(on) => self.about_open = on,
            Command::SetCrop(c) => {
                self.settings.crop = c;
                self.aim_at_crop();
            }
            Command::SetCut(c) => self.settings.cut = c,
            Command::SetSlab(s) => self.settings.slab = s,
            Command::PlayCine(fps) => self.play_cine(fps, ctx),
            Command::SetPhase(k) => self.set_phase(k, ctx),
            Command::SelectSeries(i) => {
                if let Some(b) = self.series_browser.as_mut() {
                    b.selected = i;
                }
            }
            Command::OpenSeries(i) => self.open_series(i, ctx),
            Command::ShowSeries(on) => {
                if let Some(b) = self.series_browser.as_mut() {
                    b.open = on;
                }
            }
            Command::RenameLabel(value, name) => self.rename_label(value, &name),
            Command::SaveLabelNames => self.save_label_names(),
            Command::ShowStructure(value, shown) => self.show_structure(value, shown),
            Command::SetCropSize(mm) => self.settings.crop_size_mm = mm.clamp(20.0, 400.0),
            Command::SetPreset(p) => self.set_preset(p),
            Command::SetWindow(w) => self.window = w,
            Command::SetCrosshair(c) => self.crosshair = c,
            Command::SetMode(m) => self.settings.mode = m,
            Command::SetDvr(p) => self.settings.dvr = p,
            Command::SetIso(iso) => self.iso = iso,
            Command::SetRotation(q) => self.set_rotation(q),
            Command::ResetViews => {
                if let Some(doc) = &self.doc {
                    self.needs_fit = true;
                    self.camera = OrbitCamera::fit(&doc.volume.grid);
                }
            }
            Command::GoTo(p) => {
                self.crosshair = p;
                for v in &mut self.views {
                    v.center_mm = p;
                }
                self.camera.target = p;
            }
            Command::Landmark(edit) => self.landmarks.apply(edit),
            Command::RunModels => self.run_models(ctx),
            Command::CancelModels => self.cancel_models(),
            Command::AcceptPrediction(m) => self.accept_prediction(m),
            Command::FrameHeart => self.frame_heart(),
            Command::ScoreWorklist => {
                if let Some(w) = &self.worklist {
                    self.models.score_cases(w.cases.len());
                }
            }
            Command::PickLabels => {
                if let Some(p) = self.dialog.pick_file() {
                    self.open_labels(p);
                }
            }
            Command::OpenLabels(p) => self.open_labels(p),
            Command::SetOverlays(o) => self.settings.overlays = o,
            Command::SetOrder(o) => self.models.order = o,
            Command::TrainLandmark(_)
            | Command::CancelTraining
            | Command::SetTrainingMinutes(_)
            | Command::UseLandmarkVersion(..)
            | Command::AcceptSuggestion(_) => self.apply_learning(command, ctx),
        }
    }

    /// The landmark models' commands.
    fn apply_learning(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::TrainLandmark(name) => self.train_landmark(&name, ctx),
            Command::CancelTraining => self.models.landmarks.cancel_training(),
            Command::SetTrainingMinutes(m) => self.models.landmarks.minutes = m,
            Command::UseLandmarkVersion(name, n) => {
                if let Err(e) = self.models.landmarks.use_version(&name, n) {
                    self.message = Some(e);
                }
            }
            Command::AcceptSuggestion(slot) => self.accept_suggestion(slot),
            _ => {}
        }
    }

    /// Start learning `landmark` from the open worklist's cases that have it.
    fn train_landmark(&mut self, landmark: &str, ctx: &egui::Context) {
        let Some(w) = &self.worklist else {
            self.message = Some("open a worklist to train a landmark from its cases".into());
            return;
        };
        let (found, problems) = w.landmark_cases(landmark);
        let cases: Vec<crate::ml::learn::PointCase> = found.into_iter().map(Into::into).collect();
        let source = format!("this worklist ({} cases)", w.cases.len());
        let n = cases.len();
        let started = self
            .models
            .landmarks
            .start_training(landmark, cases, &source, ctx);
        let mut m = match started {
            Ok(()) => format!(
                "training {landmark} in the background on the {n} cases that have it (one in \
                 five held out to measure it)"
            ),
            Err(e) => e,
        };
        if !problems.is_empty() {
            m += &format!("; unreadable, left out: {}", problems.join("; "));
        }
        self.message = Some(m);
    }

    /// Accept a landmark model's suggestion for the open volume (see
    /// [`Command::AcceptSuggestion`]), with a note naming the model version.
    fn accept_suggestion(&mut self, slot: Option<String>) {
        let Some(doc) = self.doc.as_ref().map(|d| d.gpu.id) else {
            return;
        };
        let lm = &self.models.landmarks;
        let offered = |s: &str| lm.suggestion(doc, s).filter(|s| s.found.is_ok());
        let chosen = match &slot {
            Some(s) => offered(s),
            None => offered(&self.landmarks.active_slot).or_else(|| {
                lm.suggestions
                    .as_ref()
                    .filter(|(id, _)| *id == doc)
                    .and_then(|(_, l)| l.iter().find(|s| s.found.is_ok()))
            }),
        };
        let Some((s, Ok(f))) = chosen.map(|s| (s, &s.found)) else {
            self.message = Some("no landmark suggestion to accept".into());
            return;
        };
        let note = format!(
            "suggested by the {} ({}), confidence {:.2}",
            s.version.label(),
            s.version.summary(),
            f.confidence
        );
        let (slot, at) = (s.version.landmark.clone(), f.center_lps);
        self.landmarks.accept(&slot, at, &note);
        self.crosshair = at;
    }

    /// Stop the run in flight and the worklist's batch.
    fn cancel_models(&mut self) {
        self.models.cancel();
        self.models.batch.clear();
        self.message = Some("model run cancelled".into());
    }

    fn pick(&mut self, pick: Pick, ctx: &egui::Context) {
        let path = match pick {
            Pick::File | Pick::WorklistCsv => self.dialog.pick_file(),
            Pick::Folder | Pick::WorklistFolder => self.dialog.pick_folder(),
        };
        let Some(p) = path else { return };
        match pick {
            Pick::File => self.open(Source::Path(p), ctx),
            Pick::Folder => self.browse_folder(p, ctx),
            Pick::WorklistFolder | Pick::WorklistCsv => self.open_worklist(&p, None, ctx),
        }
    }

    /// Open a worklist (folder or manifest CSV) and its current case.
    pub fn open_worklist(
        &mut self,
        source: &std::path::Path,
        out: Option<&std::path::Path>,
        ctx: &egui::Context,
    ) {
        self.autosave();
        match Worklist::open(source, out) {
            Ok(w) => {
                let current = w.current;
                self.worklist = Some(w);
                self.settings.last_worklist = Some((source.to_path_buf(), out.map(Into::into)));
                self.open_case(current, ctx);
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Show case `i` of the worklist (landmarks of the previous case are saved first).
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

    /// Skip the current case and go on to the next (or take the skip back).
    fn toggle_case_skipped(&mut self, ctx: &egui::Context) {
        let Some(w) = self.worklist.as_mut() else {
            return;
        };
        let current = w.current;
        let skipped = w.summary(current).status == CaseStatus::Skipped;
        match w.set_skipped(current, !skipped) {
            Err(e) => self.message = Some(e.to_string()),
            Ok(()) if !skipped => self.step_case(1, ctx),
            Ok(()) => {}
        }
    }

    fn export_csv(&mut self) {
        let Some(w) = &self.worklist else { return };
        if let Some(path) = self.dialog.save_file("landmarks.csv", "csv") {
            self.message = Some(match w.export_csv(&path) {
                Ok(e) if e.problems.is_empty() => {
                    format!("exported {} rows to {}", e.rows, path.display())
                }
                Ok(e) => format!(
                    "exported {} rows to {}; {} problem(s): {}",
                    e.rows,
                    path.display(),
                    e.problems.len(),
                    e.problems.join("; ")
                ),
                Err(e) => e.to_string(),
            });
        }
    }

    /// Show phase `k` of the scan on screen.
    fn set_phase(&mut self, k: usize, ctx: &egui::Context) {
        let Some(doc) = &self.doc else { return };
        let Some(path) = doc.source().map(Path::to_path_buf) else {
            return;
        };
        let series_uid = doc.volume.series.as_ref().map(|s| s.series_uid.clone());
        let source = Source::Part {
            path,
            series_uid,
            phase: k,
        };
        self.open(source, ctx);
    }

    /// Name one value of the open label map (for this session).
    fn rename_label(&mut self, value: u32, name: &str) {
        if let Some(l) = self.models.labels.as_mut() {
            l.table.rename(value, name);
        }
    }

    /// Show or hide one structure in the 3D Labels mode.
    fn show_structure(&mut self, value: u32, shown: bool) {
        let hidden = &mut self.models.hidden_structures;
        hidden.retain(|v| *v != value);
        if !shown {
            hidden.push(value);
        }
    }

    /// Save the open label map's names as the per-user table (durably; its folder made).
    fn save_label_names(&mut self) {
        let Some(l) = &self.models.labels else { return };
        let path = crate::worklist::user_label_names_path();
        let text = l.table.to_slicer_table();
        let saved = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| crate::io::FileError::io(&path, "cannot create its folder", e))
            .and_then(|_| crate::io::durable::write_atomic(&path, text.as_bytes()));
        self.message = Some(match saved {
            Ok(()) => format!(
                "saved label names to {}: label maps without names of their own use them",
                path.display()
            ),
            Err(e) => e.to_string(),
        });
    }

    /// Run both methods on the open volume (any earlier run is cancelled).
    pub fn run_models(&mut self, ctx: &egui::Context) {
        let Some(doc) = &self.doc else { return };
        let (volume, id) = (doc.volume.clone(), doc.gpu.id);
        self.models.run_on(volume, id, ctx);
    }

    /// True while a model run is queued or running.
    pub fn models_running(&self) -> bool {
        self.models.running()
    }

    /// Handle one worker event (public so tests can deliver a stale answer on purpose).
    pub fn accept_event(&mut self, event: crate::worker::Event) {
        let doc = self.doc.as_ref().map(|d| d.gpu.id);
        let case = self.worklist.as_ref().map(|w| w.current);
        let news = self.models.accept(event, doc, case);
        self.take_news(news);
    }

    pub(super) fn take_news(&mut self, news: Vec<News>) {
        for n in news {
            match n {
                News::Located(at) => {
                    self.crosshair = at;
                    // The built-in demo is there to show the heart: alone, in 3D.
                    let demo = self.doc.as_ref().is_some_and(|d| d.origin == Origin::Demo);
                    if demo && self.crop_lps_of(Crop::Heart).is_some() {
                        self.settings.crop = Crop::Heart;
                        self.aim_at_crop();
                    }
                }
                News::Message(m) => self.message = Some(m),
            }
        }
    }

    /// Put the predicted centre of `method` into the slot the models were trained for
    /// ([`MODELS_LANDMARK`]), never another, with a note naming the model (an ordinary,
    /// undoable edit, saved like any other).
    pub fn accept_prediction(&mut self, method: Method) {
        let found = self.models.predictions.as_ref().and_then(|p| p.get(method));
        let Some(f) = found else {
            self.message = Some(format!("no {} prediction to accept", method.name()));
            return;
        };
        let weights = match &self.models.weights {
            Some(d) => format!("weights {}", d.display()),
            None => "shipped weights".to_string(),
        };
        let note = format!(
            "heartloc {} model ({weights}), confidence {:.2}",
            method.name(),
            f.confidence
        );
        let at = f.center_lps;
        self.landmarks.accept(MODELS_LANDMARK, at, &note);
        self.crosshair = at;
    }

    /// Turn the 3D camera to what the crop shows (the whole volume when not cropped).
    fn aim_at_crop(&mut self) {
        let fit = self.doc.as_ref().map(|d| OrbitCamera::fit(&d.volume.grid));
        let (target, distance) = match (self.crop_lps(), fit) {
            (Some((lo, hi)), _) => ((lo + hi) * 0.5, (hi - lo).length() * 1.9),
            (None, Some(fit)) => (fit.target, fit.distance_mm),
            (None, None) => return,
        };
        self.camera.target = target;
        self.camera.distance_mm = distance;
    }

    /// Frame the slices and the 3D view on the located heart.
    pub fn frame_heart(&mut self) {
        let Some(p) = &self.models.predictions else {
            self.message = Some("run the models first: nothing located to frame".into());
            return;
        };
        let Some((centre, extent)) = p.heart_frame() else {
            return;
        };
        self.crosshair = centre;
        for (view, rect) in self.views.iter_mut().zip(self.pane_rects) {
            let size = if rect.is_positive() {
                to_d(rect.size())
            } else {
                DVec2::splat(400.0)
            };
            *view = view.framing(centre, extent, size);
        }
        self.camera.target = centre;
        self.camera.distance_mm = extent.length() * 2.0;
    }

    /// Open a label map over the open volume (in the background).
    pub fn open_labels(&mut self, path: PathBuf) {
        if let Some(doc) = &self.doc {
            self.models.open_labels(path, doc.gpu.id);
        }
    }

    /// Apply a window/level preset.
    pub fn set_preset(&mut self, preset: WindowPreset) {
        self.settings.preset = preset;
        if let Some(doc) = &self.doc {
            self.window = doc.intensity.window(preset);
            let (modality, _) = doc.modality();
            self.settings.preset_by_modality.insert(modality, preset);
        }
    }

    /// Move the crosshair by whole slices along a pane's normal.
    pub fn step(&mut self, plane: Plane, steps: f64) {
        if let Some(doc) = &self.doc {
            let normal = self.views[Pane::of_plane(plane).index()].normal();
            self.crosshair = step_slice(&doc.volume.grid, normal, self.crosshair, steps);
        }
    }

    /// A heart-center placed more than [`FAR_MM`] from every prediction gets a visible warning
    /// (a slip of the hand, or a model that failed: either way worth a second look).
    pub(super) fn warn_if_far_from_predictions(&mut self, at: glam::DVec3) {
        if self.landmarks.active_slot != MODELS_LANDMARK {
            return;
        }
        let Some(p) = &self.models.predictions else {
            return;
        };
        let nearest = p
            .findings
            .iter()
            .map(|f| f.center_lps.distance(at))
            .fold(f64::INFINITY, f64::min);
        if nearest.is_finite() && nearest > FAR_MM {
            self.message = Some(format!(
                "check this point: {nearest:.0} mm from the nearest model prediction \
                 (more than {FAR_MM:.0} mm)"
            ));
        }
    }

    /// Turn the three slice planes together (they stay orthogonal and linked).
    pub fn set_rotation(&mut self, rotation: glam::DQuat) {
        for v in &mut self.views {
            v.rotation = rotation.normalize();
        }
    }

    pub(super) fn toggle_maximized(&mut self, pane: Pane) {
        self.settings.maximized = if self.settings.maximized == Some(pane) {
            None
        } else {
            Some(pane)
        };
        self.needs_fit = true;
    }

    /// Apply a gesture over slice pane `frame` (its geometry as drawn last).
    pub(super) fn apply_slice_action(&mut self, frame: &SliceFrame, action: PaneAction) {
        let i = frame.pane.index();
        // The view may have changed since `frame` was made (zoom, then a click).
        let frame = SliceFrame {
            view: self.views[i],
            crosshair: self.crosshair,
            ..*frame
        };
        match action {
            PaneAction::Zoom { factor, at } => self.views[i].zoom_about(factor, at, frame.size()),
            PaneAction::Slice(s) => self.step(frame.view.plane, s),
            PaneAction::ToggleMaximized => self.toggle_maximized(frame.pane),
            PaneAction::Pan(d) => self.views[i].pan(d),
            PaneAction::DragWindow(d) => self.window = self.window.dragged(d),
            PaneAction::Orbit(_) => {}
            PaneAction::Press(at) => {
                if !self.landmarks.armed {
                    self.landmarks
                        .press(&frame, frame.rect.min + super::panes::to_v(at));
                }
            }
            PaneAction::Pointer { at, click } => {
                let world = frame.world(at);
                match self.landmarks.pointer(world, click) {
                    // After a placement every view moves to the point.
                    Pointer::Placed => {
                        self.crosshair = world;
                        self.warn_if_far_from_predictions(world);
                    }
                    Pointer::Free => self.crosshair = world,
                    Pointer::Dragged | Pointer::Waiting => {}
                }
            }
            PaneAction::Release => self.landmarks.release(),
            PaneAction::Turn(deg) => {
                let turn = glam::DQuat::from_axis_angle(frame.view.normal(), deg.to_radians());
                self.set_rotation(turn * frame.view.rotation);
            }
            PaneAction::Nudge(by) => {
                let (r, d, _) = frame.view.axes();
                if let Some(at) = self.landmarks.nudge_active(r * by.x + d * by.y) {
                    self.crosshair = at;
                }
            }
            PaneAction::Hover(at) => {
                let world = frame.world(at);
                let volume = self.doc.as_ref().map(|d| d.volume.clone());
                let structure = self.models.labels.as_ref().and_then(|l| {
                    let value = l.volume.sample_world(world, Interpolation::Nearest)? as u32;
                    (value > 0).then(|| l.table.name(value))
                });
                self.hover = volume.map(|v| Hover {
                    world,
                    ijk: v.voxel_from_world().transform_point3(world),
                    value: v.sample_world(world, Interpolation::Trilinear),
                    structure,
                });
            }
        }
        self.interacting |= action.is_interactive();
    }
}
