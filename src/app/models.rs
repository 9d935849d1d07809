//! The models in the app: runs on the worker thread (progress, Cancel, stale answers dropped),
//! the results panel, overlays on the slices and in 3D, accepting a prediction as a landmark,
//! label maps, framing the heart, and batch runs over the worklist for sorting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use eframe::egui::{self, Color32, Pos2, Rect, Stroke, Vec2};
use glam::{DVec2, DVec3};

use super::{to_d, to_v, HeartlocApp, FADED_MM};
use crate::ml::model::Finding;
use crate::ml::preprocess::Method;
use crate::overlay::{self, LabelTable, Layer, Paint};
use crate::render;
use crate::slice_view::{slice_step_mm, SliceView};
use crate::volume::{Volume, Voxels};
use crate::worker::{Event, Input, Request, Weights, Worker};

/// Overlay switches, kept between runs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OverlaySettings {
    pub centres: bool,
    pub bbox: bool,
    pub mask: bool,
    pub mask_outline: bool,
    pub mask_opacity: f32,
    pub heat: bool,
    pub heat_opacity: f32,
    pub labels: bool,
    pub labels_outline: bool,
    pub labels_opacity: f32,
    pub run_on_open: bool,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        OverlaySettings {
            centres: true,
            bbox: true,
            mask: true,
            mask_outline: false,
            mask_opacity: 0.35,
            heat: false,
            heat_opacity: 0.6,
            labels: true,
            labels_outline: false,
            labels_opacity: 0.4,
            run_on_open: false,
        }
    }
}

/// Colours of the two methods, everywhere they appear.
pub fn method_color(m: Method) -> Color32 {
    match m {
        // Apart from the landmark slots (red, magenta, cyan) and the crosshairs (blue, green,
        // orange).
        Method::Segmentation => Color32::from_rgb(190, 245, 40),
        Method::Heatmap => Color32::from_rgb(150, 110, 255),
    }
}

/// What the models found on the open volume.
pub struct Predictions {
    /// The document (`GpuVolume::id`) they belong to.
    pub volume_id: u64,
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
    /// The segmentation's probabilities and the heatmap (scaled to its peak) as volumes on the
    /// network's fine grid, for the overlays.
    pub mask: Option<(Volume, f32)>,
    pub heat: Option<Volume>,
    pub revision: u64,
}

impl Predictions {
    pub fn get(&self, m: Method) -> Option<&Finding> {
        self.findings.iter().find(|f| f.method == m)
    }

    /// Distance between the two methods' centres (mm).
    pub fn disagreement_mm(&self) -> Option<f64> {
        Some(
            self.get(Method::Segmentation)?
                .center_lps
                .distance(self.get(Method::Heatmap)?.center_lps),
        )
    }
}

/// A run in flight.
pub struct ModelRun {
    pub request: u64,
    /// The document it is for; `None` for a worklist batch case.
    pub volume_id: Option<u64>,
    pub batch_case: Option<usize>,
    pub step: String,
    pub fraction: f32,
    pub started: Instant,
    /// Not yet accepted by the worker's queue (retried each frame).
    pub queued: Option<Request>,
}

/// A label map shown over the open volume.
pub struct LabelMap {
    pub volume_id: u64,
    pub path: PathBuf,
    pub volume: Volume,
    pub table: LabelTable,
    /// Label values present, for the legend.
    pub present: Vec<u32>,
    pub revision: u64,
}

/// Per-case summary of a worklist batch run, for sorting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaseScore {
    /// The lower of the two methods' confidences.
    pub confidence: f64,
    pub disagreement_mm: f64,
}

/// How the worklist is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaseOrder {
    #[default]
    File,
    LowConfidence,
    Disagreement,
}

/// The part of a slice pane's overlay that shows: where (a fraction of the pane) and its texture.
pub type OverlayBlock = (Rect, egui::TextureHandle);

/// All model state of the app.
#[derive(Default)]
pub struct ModelsState {
    pub worker: Option<Worker>,
    pub weights: Option<PathBuf>,
    pub run: Option<ModelRun>,
    pub predictions: Option<Predictions>,
    pub labels: Option<LabelMap>,
    pub pending_labels: Option<(u64, Receiver<Result<LabelMap, String>>)>,
    /// Per slice pane: the overlay's key and, where anything shows, its visible block.
    pub overlay_cache: [Option<(OverlayKey, Option<OverlayBlock>)>; 3],
    pub next_request: u64,
    pub revision: u64,
    pub scores: HashMap<usize, CaseScore>,
    pub batch: Vec<usize>,
    pub order: CaseOrder,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayKey {
    view: SliceView,
    crosshair: DVec3,
    size: [f32; 2],
    settings: OverlaySettings,
    predictions: u64,
    labels: u64,
}

impl HeartlocApp {
    fn worker(&mut self, ctx: &egui::Context) -> &Worker {
        let weights = match &self.models.weights {
            Some(d) => Weights::Dir(d.clone()),
            None => Weights::Shipped,
        };
        self.models.worker.get_or_insert_with(|| {
            let ctx = ctx.clone();
            Worker::spawn(weights, move || ctx.request_repaint())
        })
    }

    /// Run both methods on the open volume (any earlier run is cancelled).
    pub fn run_models(&mut self, ctx: &egui::Context) {
        let Some(doc) = &self.doc else { return };
        let (volume, volume_id) = (doc.volume.clone(), doc.gpu.id);
        self.cancel_models();
        self.models.batch.clear();
        self.submit(Input::Volume(volume), Some(volume_id), None, ctx);
    }

    fn submit(
        &mut self,
        input: Input,
        volume_id: Option<u64>,
        batch_case: Option<usize>,
        ctx: &egui::Context,
    ) {
        self.models.next_request += 1;
        let id = self.models.next_request;
        let req = Request { id, input };
        let queued = self.worker(ctx).submit(req).err();
        self.models.run = Some(ModelRun {
            request: id,
            volume_id,
            batch_case,
            step: "queued".into(),
            fraction: 0.0,
            started: Instant::now(),
            queued,
        });
    }

    /// Stop the run in flight (its answer, if it still comes, is dropped).
    pub fn cancel_models(&mut self) {
        if let (Some(run), Some(w)) = (self.models.run.take(), &self.models.worker) {
            w.cancel_up_to(run.request);
        }
    }

    /// True while a model run is queued or running.
    pub fn models_running(&self) -> bool {
        self.models.run.is_some()
    }

    /// A new document is on screen: earlier predictions and label maps belong to another one.
    pub(super) fn models_on_new_document(&mut self, ctx: &egui::Context) {
        let batch = self
            .models
            .run
            .as_ref()
            .is_some_and(|r| r.batch_case.is_some());
        if !batch {
            self.cancel_models();
        }
        self.models.predictions = None;
        self.models.labels = None;
        self.models.pending_labels = None;
        let is_demo = self.doc.as_ref().is_some_and(|d| d.source.is_none());
        if (self.settings.overlays.run_on_open || is_demo) && !batch {
            self.run_models(ctx);
        }
    }

    /// Read the worker's events; answers for anything but the current run are dropped.
    pub(super) fn poll_models(&mut self, ctx: &egui::Context) {
        if let Some(run) = self.models.run.as_mut() {
            if let (Some(req), Some(w)) = (run.queued.take(), &self.models.worker) {
                run.queued = w.submit(req).err();
            }
        }
        while let Some(event) = self.models.worker.as_ref().and_then(Worker::try_recv) {
            self.accept_event(event);
        }
        if let Some((id, rx)) = &self.models.pending_labels {
            if let Ok(result) = rx.try_recv() {
                let current = self.doc.as_ref().map(|d| d.gpu.id);
                if current == Some(*id) {
                    match result {
                        Ok(l) => self.models.labels = Some(l),
                        Err(e) => self.message = Some(e),
                    }
                }
                self.models.pending_labels = None;
            }
        }
        if self.models.run.is_none() {
            if let Some(i) = self.models.batch.pop() {
                if let Some(w) = &self.worklist {
                    let image = w.cases[i].image.clone();
                    self.submit(Input::File(image), None, Some(i), ctx);
                }
            }
        }
        if self.models.run.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Handle one worker event. Public so tests can deliver a stale answer on purpose.
    pub fn accept_event(&mut self, event: Event) {
        let Some(run) = &self.models.run else { return };
        let current_doc = self.doc.as_ref().map(|d| d.gpu.id);
        match event {
            Event::Progress {
                id,
                done,
                total,
                step,
            } if id == run.request => {
                let run = self.models.run.as_mut().expect("checked");
                run.step = step;
                run.fraction = done as f32 / total.max(1) as f32;
            }
            Event::Done { id, results } if id == run.request => {
                let run = self.models.run.take().expect("checked");
                let mut findings = Vec::new();
                let mut errors = Vec::new();
                for (m, r) in results {
                    match r {
                        Ok(f) => findings.push(f),
                        Err(e) => errors.push(format!("{}: {e}", m.name())),
                    }
                }
                if let Some(case) = run.batch_case {
                    let p = Predictions::new(0, findings, errors, 0);
                    self.models.scores.insert(case, p.score());
                } else if run.volume_id.is_some() && run.volume_id == current_doc {
                    self.models.revision += 1;
                    let p = Predictions::new(
                        run.volume_id.unwrap_or(0),
                        findings,
                        errors,
                        self.models.revision,
                    );
                    if let Some(w) = &self.worklist {
                        self.models.scores.insert(w.current, p.score());
                    }
                    if !p.errors.is_empty() {
                        self.message = Some(format!("model error: {}", p.errors.join("; ")));
                    }
                    // Go to what was found (segmentation first: the more accurate centre).
                    if let Some(f) = p.findings.first() {
                        self.crosshair = f.center_lps;
                    }
                    self.models.predictions = Some(p);
                }
            }
            Event::Failed { id, error } if id == run.request || id == 0 => {
                let batch = self.models.run.take().and_then(|r| r.batch_case);
                if let Some(case) = batch {
                    self.models.scores.insert(
                        case,
                        CaseScore {
                            confidence: 0.0,
                            disagreement_mm: f64::INFINITY,
                        },
                    );
                }
                self.message = Some(match batch {
                    Some(i) => format!("models on case {}: {error}", i + 1),
                    None => format!("models: {error}"),
                });
            }
            _ => {} // an answer to a cancelled or superseded run
        }
    }

    /// Queue every worklist case without a score for a background run.
    pub fn run_worklist(&mut self) {
        let Some(w) = &self.worklist else { return };
        self.models.batch = (0..w.cases.len())
            .rev()
            .filter(|i| !self.models.scores.contains_key(i))
            .collect();
    }

    /// Put the predicted centre of `method` into the active landmark slot (an ordinary,
    /// undoable edit, saved like any other).
    pub fn accept_prediction(&mut self, method: Method) {
        let Some(f) = self.models.predictions.as_ref().and_then(|p| p.get(method)) else {
            self.message = Some(format!("no {} prediction to accept", method.name()));
            return;
        };
        let (slot, at) = (self.active_slot.clone(), f.center_lps);
        self.annotation.place(&slot, at);
        self.crosshair = at;
        self.armed = false;
    }

    /// Frame the slices and the 3D view on the located heart.
    pub fn frame_heart(&mut self) {
        let Some(p) = &self.models.predictions else {
            self.message = Some("run the models first: nothing located to frame".into());
            return;
        };
        let (lo, hi) = match p.get(Method::Segmentation).and_then(|f| f.bbox_lps) {
            Some(b) => b,
            None => match p.findings.first() {
                // No box: a typical adult heart around the centre.
                Some(f) => (f.center_lps - 60.0, f.center_lps + 60.0),
                None => return,
            },
        };
        let centre = (lo + hi) * 0.5;
        let extent = (hi - lo).max(DVec3::splat(40.0)) * 1.3;
        self.crosshair = centre;
        for (i, view) in self.views.iter_mut().enumerate() {
            let rect = self.pane_rects[i];
            let size = if rect.is_positive() {
                to_d(rect.size())
            } else {
                DVec2::splat(400.0)
            };
            let (r, d, _) = view.plane.axes();
            view.center_mm = centre;
            view.mm_per_px = (extent.dot(r.abs()) / size.x).max(extent.dot(d.abs()) / size.y);
        }
        self.camera.target = centre;
        self.camera.distance_mm = extent.length() * 2.0;
    }

    /// Open a label map over the open volume (in the background).
    pub fn open_labels(&mut self, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let id = doc.gpu.id;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.models.revision += 1;
        let revision = self.models.revision;
        std::thread::Builder::new()
            .name("heartloc-labels".into())
            .spawn(move || {
                let _ = tx.send(load_labels(&path, id, revision));
            })
            .ok();
        self.models.pending_labels = Some((id, rx));
    }

    /// The results panel and model controls.
    pub(super) fn models_panel(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        ui.strong("Models");
        ui.horizontal(|ui| {
            let running = self
                .models
                .run
                .as_ref()
                .is_some_and(|r| r.batch_case.is_none());
            if ui
                .add_enabled(!running, egui::Button::new("Run models (R)"))
                .clicked()
            {
                self.run_models(ui.ctx());
            }
            if ui
                .add_enabled(self.models.run.is_some(), egui::Button::new("Cancel"))
                .clicked()
            {
                self.cancel_models();
                self.models.batch.clear();
                self.message = Some("model run cancelled".into());
            }
        });
        if let Some(run) = &self.models.run {
            let what = match run.batch_case {
                Some(i) => format!("worklist case {}: {}", i + 1, run.step),
                None => run.step.clone(),
            };
            ui.add(egui::ProgressBar::new(run.fraction).text(format!(
                "{what} ({:.1} s)",
                run.started.elapsed().as_secs_f64()
            )));
        }
        ui.checkbox(&mut self.settings.overlays.run_on_open, "Run on open");
        let o = &mut self.settings.overlays;
        ui.horizontal_wrapped(|ui| {
            ui.checkbox(&mut o.centres, "Centres");
            ui.checkbox(&mut o.bbox, "Box");
            ui.checkbox(&mut o.mask, "Mask");
            ui.checkbox(&mut o.mask_outline, "outline");
        });
        ui.add(egui::Slider::new(&mut o.mask_opacity, 0.0..=1.0).text("Mask opacity"));
        ui.horizontal(|ui| {
            ui.checkbox(&mut o.heat, "Heatmap")
                .on_hover_text("Black-red-yellow-white, scaled to its peak");
            ui.add(
                egui::Slider::new(&mut o.heat_opacity, 0.0..=1.0)
                    .show_value(false)
                    .text("opacity"),
            );
        });
        let Some(p) = &self.models.predictions else {
            ui.small("No predictions for this volume yet.");
            self.labels_panel(ui);
            return;
        };
        let mut accept = None;
        for f in &p.findings {
            let c = f.center_lps;
            ui.colored_label(
                method_color(f.method),
                format!(
                    "{}: ({:.1}, {:.1}, {:.1}) mm",
                    f.method.name(),
                    c.x,
                    c.y,
                    c.z
                ),
            );
            let mut line = format!("confidence {:.2} · {:.2} s", f.confidence, f.timing.total());
            if let (Some(e), Some(ml)) = (f.extent_mm(), f.volume_ml) {
                line = format!(
                    "extent {:.0}×{:.0}×{:.0} mm · {ml:.0} ml · {line}",
                    e.x, e.y, e.z
                );
            }
            ui.small(line);
            for (name, at) in self.annotation.set.defined() {
                ui.small(format!("  {:.1} mm from {name}", at.distance(c)));
            }
            let key = match f.method {
                Method::Heatmap => "A",
                Method::Segmentation => "Shift+A",
            };
            if ui
                .button(format!("Accept as {} ({key})", self.active_slot))
                .clicked()
            {
                accept = Some(f.method);
            }
        }
        if let Some(d) = p.disagreement_mm() {
            ui.label(format!("Methods {d:.1} mm apart"));
        }
        if let Some(truth) = self.doc.as_ref().and_then(|d| d.truth) {
            // The demo says how the models, trained on real scans only, do on its phantom.
            let lines: Vec<String> = p
                .findings
                .iter()
                .map(|f| format!("{} {:.1} mm", f.method.name(), f.center_lps.distance(truth)))
                .collect();
            ui.colored_label(
                Color32::from_rgb(255, 200, 120),
                format!(
                    "Phantom heart centre known: {} off. The models never saw this phantom.",
                    lines.join(", ")
                ),
            );
        }
        for e in &p.errors {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
        if ui.button("Frame heart (F)").clicked() {
            self.frame_heart();
        }
        if let Some(m) = accept {
            self.accept_prediction(m);
        }
        self.labels_panel(ui);
    }

    fn labels_panel(&mut self, ui: &mut egui::Ui) {
        let beside = self
            .doc
            .as_ref()
            .and_then(|d| d.source.as_ref())
            .and_then(|s| s.parent())
            .map(|d| d.join("labels.nii.gz"))
            .filter(|p| p.is_file());
        ui.horizontal(|ui| {
            if ui.button("Label map…").clicked() {
                if let Some(p) = self.dialog.pick_file() {
                    self.open_labels(p);
                }
            }
            if let Some(p) = beside {
                let shown = self.models.labels.as_ref().is_some_and(|l| l.path == p);
                if !shown && ui.button("labels.nii.gz").clicked() {
                    self.open_labels(p);
                }
            }
        });
        let Some(l) = &self.models.labels else { return };
        let o = &mut self.settings.overlays;
        ui.horizontal(|ui| {
            ui.checkbox(&mut o.labels, "Labels");
            ui.checkbox(&mut o.labels_outline, "outline");
            ui.add(
                egui::Slider::new(&mut o.labels_opacity, 0.0..=1.0)
                    .show_value(false)
                    .text("opacity"),
            );
        });
        for v in &l.present {
            let [r, g, b] = l.table.color(*v);
            ui.colored_label(
                Color32::from_rgb(r, g, b),
                format!("{v}: {}", l.table.name(*v)),
            );
        }
    }

    /// Worklist ordering by the models' scores.
    pub(super) fn worklist_order_controls(&mut self, ui: &mut egui::Ui) -> Vec<usize> {
        let Some(w) = &self.worklist else {
            return Vec::new();
        };
        let n = w.cases.len();
        ui.horizontal(|ui| {
            ui.label("Order");
            for (o, name) in [
                (CaseOrder::File, "file"),
                (CaseOrder::LowConfidence, "low confidence"),
                (CaseOrder::Disagreement, "disagreement"),
            ] {
                if ui.selectable_label(self.models.order == o, name).clicked() {
                    self.models.order = o;
                }
            }
        });
        let scored = self.models.scores.len();
        ui.horizontal(|ui| {
            ui.small(format!("{scored}/{n} cases scored"));
            if scored < n && ui.button("Score all cases").clicked() {
                self.run_worklist();
            }
        });
        order_cases(n, &self.models.scores, self.models.order)
    }

    /// The score text of a worklist row.
    pub(super) fn case_score_text(&self, i: usize) -> String {
        self.models.scores.get(&i).map_or(String::new(), |s| {
            if s.disagreement_mm.is_finite() {
                format!("  conf {:.2}  Δ {:.0} mm", s.confidence, s.disagreement_mm)
            } else {
                "  model failed".to_string()
            }
        })
    }

    /// Keys: R run, A / Shift+A accept the heatmap / segmentation centre, F frame the heart.
    pub(super) fn handle_model_keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (run, accept_heat, accept_seg, frame) = ctx.input(|i| {
            let plain = !(i.modifiers.command || i.modifiers.ctrl || i.modifiers.alt);
            (
                plain && !i.modifiers.shift && i.key_pressed(egui::Key::R),
                plain && !i.modifiers.shift && i.key_pressed(egui::Key::A),
                plain && i.modifiers.shift && i.key_pressed(egui::Key::A),
                plain && i.key_pressed(egui::Key::F),
            )
        });
        if run {
            self.run_models(ctx);
        }
        if accept_heat {
            self.accept_prediction(Method::Heatmap);
        }
        if accept_seg {
            self.accept_prediction(Method::Segmentation);
        }
        if frame {
            self.frame_heart();
        }
    }

    /// Label map, mask and heatmap over slice pane `i`, then centres and the box.
    pub(super) fn paint_slice_overlays(
        &mut self,
        ui: &egui::Ui,
        i: usize,
        rect: Rect,
        volume: &Volume,
    ) {
        let painter = ui.painter_at(rect);
        let view = self.views[i];
        let size = to_d(rect.size());
        let o = self.settings.overlays;
        let key = OverlayKey {
            view,
            crosshair: self.crosshair,
            size: [rect.width(), rect.height()],
            settings: o,
            predictions: self.models.predictions.as_ref().map_or(0, |p| p.revision),
            labels: self.models.labels.as_ref().map_or(0, |l| l.revision),
        };
        let mut layers = Vec::new();
        if let Some(l) = self.models.labels.as_ref().filter(|_| o.labels) {
            layers.push(Layer {
                volume: &l.volume,
                paint: Paint::Labels,
                opacity: o.labels_opacity,
                outline: o.labels_outline,
                table: Some(&l.table),
            });
        }
        if let Some(p) = &self.models.predictions {
            if let Some((m, threshold)) = p.mask.as_ref().filter(|_| o.mask) {
                let c = method_color(Method::Segmentation);
                layers.push(Layer {
                    volume: m,
                    paint: Paint::Mask {
                        threshold: *threshold,
                        color: [c.r(), c.g(), c.b()],
                    },
                    opacity: o.mask_opacity,
                    outline: o.mask_outline,
                    table: None,
                });
            }
            if let Some(h) = p.heat.as_ref().filter(|_| o.heat) {
                layers.push(Layer {
                    volume: h,
                    paint: Paint::Heat,
                    opacity: o.heat_opacity,
                    outline: false,
                    table: None,
                });
            }
        }
        if layers.is_empty() {
            self.models.overlay_cache[i] = None;
        } else {
            let fresh = self.models.overlay_cache[i]
                .as_ref()
                .is_some_and(|(k, _)| *k == key);
            if !fresh {
                let step = (size.x.max(size.y) / 320.0).max(1.0);
                let r = overlay::rasterise(&view, self.crosshair, size, step, &layers);
                // Only the block that shows is uploaded and drawn: on a CPU renderer a
                // pane-sized blended quad costs ~13 ms a frame, the heart's block a fraction.
                let shown = r.visible_block().map(|(lo, hi, block)| {
                    let [w, h] = r.size.map(|n| n as f32);
                    let part = Rect::from_min_max(
                        Pos2::new(lo[0] as f32 / w, lo[1] as f32 / h),
                        Pos2::new(hi[0] as f32 / w, hi[1] as f32 / h),
                    );
                    let image = egui::ColorImage::from_rgba_unmultiplied(
                        block.size,
                        &block.rgba.iter().flatten().copied().collect::<Vec<u8>>(),
                    );
                    (part, image)
                });
                let old = self.models.overlay_cache[i].take().and_then(|(_, t)| t);
                let texture = shown.map(|(part, image)| {
                    let options = egui::TextureOptions::LINEAR;
                    let tex = match old {
                        Some((_, mut tex)) => {
                            tex.set(image, options);
                            tex
                        }
                        None => {
                            ui.ctx()
                                .load_texture(format!("heartloc-overlay-{i}"), image, options)
                        }
                    };
                    (part, tex)
                });
                self.models.overlay_cache[i] = Some((key, texture));
            }
            if let Some((_, Some((part, tex)))) = &self.models.overlay_cache[i] {
                let at = |f: Pos2| rect.min + f.to_vec2() * rect.size();
                painter.image(
                    tex.id(),
                    Rect::from_min_max(at(part.min), at(part.max)),
                    Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                    Color32::WHITE,
                );
            }
        }
        let Some(p) = &self.models.predictions else {
            return;
        };
        let (_, _, n) = view.plane.axes();
        let half = slice_step_mm(&volume.grid, view.plane) * 0.5;
        if o.bbox {
            if let Some((lo, hi)) = p.get(Method::Segmentation).and_then(|f| f.bbox_lps) {
                let d = self.crosshair.dot(n);
                let (a, b) = (lo.dot(n).min(hi.dot(n)), lo.dot(n).max(hi.dot(n)));
                if d >= a - half && d <= b + half {
                    let p0 = rect.min + to_v(view.screen_from_world(lo, size));
                    let p1 = rect.min + to_v(view.screen_from_world(hi, size));
                    painter.rect_stroke(
                        Rect::from_two_pos(p0, p1),
                        0.0,
                        Stroke::new(1.0, method_color(Method::Segmentation).gamma_multiply(0.8)),
                        egui::StrokeKind::Middle,
                    );
                }
            }
        }
        if o.centres {
            for f in &p.findings {
                let at = rect.min + to_v(view.screen_from_world(f.center_lps, size));
                let d = (f.center_lps - self.crosshair).dot(n).abs();
                let color = method_color(f.method);
                if d <= half.max(0.5) {
                    cross(&painter, at, 9.0, Stroke::new(2.0, color));
                    painter.text(
                        at + Vec2::new(8.0, 8.0),
                        egui::Align2::LEFT_TOP,
                        f.method.name()[..1].to_uppercase(),
                        egui::FontId::proportional(12.0),
                        color,
                    );
                } else if d <= FADED_MM {
                    cross(
                        &painter,
                        at,
                        6.0,
                        Stroke::new(1.0, color.gamma_multiply(0.35)),
                    );
                }
            }
        }
    }

    /// Centres and the box in the 3D pane.
    pub(super) fn paint_volume_overlays(&self, painter: &egui::Painter, rect: Rect) {
        let Some(p) = &self.models.predictions else {
            return;
        };
        let o = self.settings.overlays;
        let size = to_d(rect.size());
        let project =
            |w: DVec3| render::project_to_pane(&self.camera, w, size).map(|s| rect.min + to_v(s));
        if o.bbox {
            if let Some((lo, hi)) = p.get(Method::Segmentation).and_then(|f| f.bbox_lps) {
                let corner = |c: usize| {
                    DVec3::new(
                        if c & 1 == 0 { lo.x } else { hi.x },
                        if c & 2 == 0 { lo.y } else { hi.y },
                        if c & 4 == 0 { lo.z } else { hi.z },
                    )
                };
                let stroke = Stroke::new(1.0, method_color(Method::Segmentation));
                for a in 0..8usize {
                    for bit in [1, 2, 4] {
                        if a & bit == 0 {
                            if let (Some(p0), Some(p1)) =
                                (project(corner(a)), project(corner(a | bit)))
                            {
                                painter.line_segment([p0, p1], stroke);
                            }
                        }
                    }
                }
            }
        }
        if o.centres {
            for f in &p.findings {
                if let Some(at) = project(f.center_lps) {
                    cross(painter, at, 8.0, Stroke::new(2.0, method_color(f.method)));
                }
            }
        }
    }
}

fn cross(painter: &egui::Painter, at: Pos2, r: f32, stroke: Stroke) {
    painter.line_segment([at - Vec2::new(r, 0.0), at + Vec2::new(r, 0.0)], stroke);
    painter.line_segment([at - Vec2::new(0.0, r), at + Vec2::new(0.0, r)], stroke);
}

impl Predictions {
    pub fn new(volume_id: u64, findings: Vec<Finding>, errors: Vec<String>, revision: u64) -> Self {
        let mut mask = None;
        let mut heat = None;
        for f in &findings {
            match f.method {
                Method::Segmentation => {
                    mask = Some((
                        Volume::new(f.grid, Voxels::F32(f.map.clone())),
                        f.threshold as f32,
                    ));
                }
                Method::Heatmap => {
                    let peak = f.map.iter().copied().fold(0.0f32, f32::max).max(1e-6);
                    let scaled = f.map.iter().map(|v| (v / peak).clamp(0.0, 1.0)).collect();
                    heat = Some(Volume::new(f.grid, Voxels::F32(scaled)));
                }
            }
        }
        Predictions {
            volume_id,
            findings,
            errors,
            mask,
            heat,
            revision,
        }
    }

    /// A failed method counts as confidence 0 and an unknown disagreement as infinite, so
    /// failures sort first.
    fn score(&self) -> CaseScore {
        let confidence = if self.errors.is_empty() {
            self.findings
                .iter()
                .map(|f| f.confidence)
                .fold(1.0, f64::min)
        } else {
            0.0
        };
        CaseScore {
            confidence,
            disagreement_mm: self.disagreement_mm().unwrap_or(f64::INFINITY),
        }
    }
}

/// Worklist rows in the chosen order; unscored cases keep file order after the scored ones.
pub fn order_cases(n: usize, scores: &HashMap<usize, CaseScore>, order: CaseOrder) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    let key = |i: &usize| -> f64 {
        match (order, scores.get(i)) {
            (CaseOrder::File, _) | (_, None) => f64::INFINITY,
            (CaseOrder::LowConfidence, Some(s)) => s.confidence,
            (CaseOrder::Disagreement, Some(s)) => -s.disagreement_mm,
        }
    };
    rows.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.cmp(b)));
    rows
}

fn load_labels(path: &Path, volume_id: u64, revision: u64) -> Result<LabelMap, String> {
    let (volume, _) =
        crate::io::open(path, &crate::io::OpenOptions::default()).map_err(|e| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..volume.voxels.len() {
        let v = volume.voxels.get(i);
        if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > 65535.0 {
            return Err(format!(
                "{}: not a label map (voxel {i} holds {v}; labels are whole numbers 0..65535)",
                path.display()
            ));
        }
        if v > 0.0 {
            seen.insert(v as u32);
        }
        if seen.len() > 1000 {
            return Err(format!(
                "{}: not a label map (over 1000 distinct values)",
                path.display()
            ));
        }
    }
    Ok(LabelMap {
        volume_id,
        path: path.to_path_buf(),
        table: LabelTable::find_for(path),
        volume,
        present: seen.into_iter().collect(),
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worklist_orders_put_hard_cases_first_and_unscored_last() {
        let mut s = HashMap::new();
        s.insert(
            2,
            CaseScore {
                confidence: 0.3,
                disagreement_mm: 5.0,
            },
        );
        s.insert(
            0,
            CaseScore {
                confidence: 0.9,
                disagreement_mm: 40.0,
            },
        );
        assert_eq!(order_cases(4, &s, CaseOrder::File), vec![0, 1, 2, 3]);
        assert_eq!(
            order_cases(4, &s, CaseOrder::LowConfidence),
            vec![2, 0, 1, 3]
        );
        assert_eq!(
            order_cases(4, &s, CaseOrder::Disagreement),
            vec![0, 2, 1, 3]
        );
    }
}
