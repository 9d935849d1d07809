//! The models in the app: runs on the worker thread (progress, Cancel, stale answers dropped),
//! what they found ([`Predictions`]), label maps opened over the volume, and batch runs over
//! the worklist that score its cases for sorting. The results panel is in [`panel`], the
//! overlays in [`overlay`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use eframe::egui::{self, Color32};
use glam::DVec3;

use crate::ml::model::Finding;
use crate::ml::preprocess::Method;
use crate::overlay::LabelTable;
use crate::volume::{Volume, Voxels};
use crate::worker::{Event, Input, Request, Weights, Worker};
use crate::worklist::Worklist;

pub mod learning;
pub mod overlay;
pub mod panel;

pub use overlay::OverlaySettings;

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
            reliable: self.errors.is_empty() && self.findings.iter().all(|f| f.reliable()),
        }
    }

    /// The segmentation's box around the heart (LPS mm), if it found one.
    pub fn heart_box(&self) -> Option<(DVec3, DVec3)> {
        self.get(Method::Segmentation).and_then(|f| f.bbox_lps)
    }

    /// The box to frame the heart in: centre and extent (mm). The segmentation's box, else a
    /// typical adult heart around the first centre; at least 40 mm a side, with a 30% margin.
    pub fn heart_frame(&self) -> Option<(DVec3, DVec3)> {
        let (lo, hi) = match self.heart_box() {
            Some(b) => b,
            None => {
                let f = self.findings.first()?;
                (f.center_lps - 60.0, f.center_lps + 60.0)
            }
        };
        Some(((lo + hi) * 0.5, (hi - lo).max(DVec3::splat(40.0)) * 1.3))
    }
}

/// What a run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunFor {
    /// The document on screen (`GpuVolume::id`).
    Document(u64),
    /// Worklist case `i`, run in the background to score it.
    Case(usize),
}

/// A run in flight.
pub struct ModelRun {
    pub request: u64,
    pub target: RunFor,
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
    /// No method failed or doubted its answer.
    pub reliable: bool,
}

impl CaseScore {
    /// The score as a worklist row shows it.
    pub fn text(&self) -> String {
        if self.disagreement_mm.is_finite() {
            format!(
                "  conf {:.2}  Δ {:.0} mm{}",
                self.confidence,
                self.disagreement_mm,
                if self.reliable { "" } else { "  MAY BE WRONG" }
            )
        } else {
            "  model failed".to_string()
        }
    }
}

/// How the worklist is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaseOrder {
    #[default]
    File,
    /// Cases whose answers may be wrong first, then by confidence.
    Unreliable,
    LowConfidence,
    Disagreement,
}

impl CaseOrder {
    pub const ALL: [(CaseOrder, &'static str); 4] = [
        (CaseOrder::File, "file"),
        (CaseOrder::Unreliable, "may be wrong first"),
        (CaseOrder::LowConfidence, "low confidence"),
        (CaseOrder::Disagreement, "disagreement"),
    ];
}

/// Worklist rows in the chosen order; unscored cases keep file order after the scored ones.
pub fn order_cases(n: usize, scores: &HashMap<usize, CaseScore>, order: CaseOrder) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    let key = |i: &usize| -> f64 {
        match (order, scores.get(i)) {
            (CaseOrder::File, _) | (_, None) => f64::INFINITY,
            (CaseOrder::Unreliable, Some(s)) => s.confidence - if s.reliable { 0.0 } else { 2.0 },
            (CaseOrder::LowConfidence, Some(s)) => s.confidence,
            (CaseOrder::Disagreement, Some(s)) => -s.disagreement_mm,
        }
    };
    rows.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.cmp(b)));
    rows
}

/// What the app should do after the models answered.
#[derive(Clone, Debug, PartialEq)]
pub enum News {
    /// Predictions for the open volume arrived: go to this centre.
    Located(DVec3),
    /// Something to tell the user.
    Message(String),
}

/// All model state of the app.
#[derive(Default)]
pub struct ModelsState {
    pub worker: Option<Worker>,
    pub weights: Option<PathBuf>,
    pub run: Option<ModelRun>,
    pub predictions: Option<Predictions>,
    pub labels: Option<LabelMap>,
    pending_labels: Option<(u64, Receiver<Result<LabelMap, String>>)>,
    pub overlay_cache: overlay::OverlayCache,
    /// The 3D Labels mode's structure texture (its key names what it was built from), and the
    /// label values the user hid there.
    pub structures: Option<Arc<crate::render::GpuStructures>>,
    pub hidden_structures: Vec<u32>,
    pub next_request: u64,
    pub revision: u64,
    pub scores: HashMap<usize, CaseScore>,
    pub batch: Vec<usize>,
    pub order: CaseOrder,
    /// Landmark models: training, versions, suggestions.
    pub landmarks: learning::LandmarkModels,
}

impl ModelsState {
    fn worker(&mut self, ctx: &egui::Context) -> &Worker {
        let weights = match &self.weights {
            Some(d) => Weights::Dir(d.clone()),
            None => Weights::Shipped,
        };
        self.worker.get_or_insert_with(|| {
            let ctx = ctx.clone();
            Worker::spawn(weights, move || ctx.request_repaint())
        })
    }

    /// Run both methods on the open volume (any earlier run and batch are cancelled).
    pub fn run_on(&mut self, volume: Arc<Volume>, volume_id: u64, ctx: &egui::Context) {
        self.cancel();
        self.batch.clear();
        self.submit(Input::Volume(volume), RunFor::Document(volume_id), ctx);
    }

    fn submit(&mut self, input: Input, target: RunFor, ctx: &egui::Context) {
        self.next_request += 1;
        let id = self.next_request;
        let queued = self.worker(ctx).submit(Request { id, input }).err();
        self.run = Some(ModelRun {
            request: id,
            target,
            step: "queued".into(),
            fraction: 0.0,
            started: Instant::now(),
            queued,
        });
    }

    /// Stop the run in flight (its answer, if it still comes, is dropped).
    pub fn cancel(&mut self) {
        if let (Some(run), Some(w)) = (self.run.take(), &self.worker) {
            w.cancel_up_to(run.request);
        }
    }

    /// True while a model run is queued or running.
    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    /// True while a label map is loading.
    pub fn labels_loading(&self) -> bool {
        self.pending_labels.is_some()
    }

    /// True while a worklist case is being scored in the background.
    pub fn scoring(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| matches!(r.target, RunFor::Case(_)))
    }

    /// A new document is on screen: earlier predictions and label maps belong to another one,
    /// and a run for the old document is cancelled (a batch run goes on).
    pub fn on_new_document(&mut self) {
        if !self.scoring() {
            self.cancel();
        }
        self.predictions = None;
        self.labels = None;
        self.pending_labels = None;
        self.landmarks.on_new_document();
    }

    /// Queue every worklist case without a score for a background run.
    pub fn score_cases(&mut self, n: usize) {
        self.batch = (0..n)
            .rev()
            .filter(|i| !self.scores.contains_key(i))
            .collect();
    }

    /// Read the worker's and the label loader's answers; start the next batch case when idle.
    /// `doc` is the document on screen, `worklist` the open one.
    pub fn poll(
        &mut self,
        ctx: &egui::Context,
        doc: Option<u64>,
        worklist: Option<&Worklist>,
    ) -> Vec<News> {
        if let Some(run) = self.run.as_mut() {
            if let (Some(req), Some(w)) = (run.queued.take(), &self.worker) {
                run.queued = w.submit(req).err();
            }
        }
        let mut news = Vec::new();
        while let Some(event) = self.worker.as_ref().and_then(Worker::try_recv) {
            news.extend(self.accept(event, doc, worklist.map(|w| w.current)));
        }
        if let Some((id, rx)) = &self.pending_labels {
            if let Ok(result) = rx.try_recv() {
                if doc == Some(*id) {
                    match result {
                        Ok(l) => self.labels = Some(l),
                        Err(e) => news.push(News::Message(e)),
                    }
                }
                self.pending_labels = None;
            }
        }
        if self.run.is_none() {
            if let (Some(i), Some(w)) = (self.batch.pop(), worklist) {
                let image = w.cases[i].image.clone();
                self.submit(Input::File(image), RunFor::Case(i), ctx);
            }
        }
        if self.run.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        news
    }

    /// Handle one worker event; answers for anything but the current run are dropped.
    /// `doc` is the document on screen, `case` the open worklist case.
    pub fn accept(&mut self, event: Event, doc: Option<u64>, case: Option<usize>) -> Vec<News> {
        let Some(run) = self.run.as_mut() else {
            return Vec::new();
        };
        match event {
            Event::Progress {
                id,
                done,
                total,
                step,
            } if id == run.request => {
                run.step = step;
                run.fraction = done as f32 / total.max(1) as f32;
                Vec::new()
            }
            Event::Done { id, results } if id == run.request => {
                let target = run.target;
                self.run = None;
                let (mut findings, mut errors) = (Vec::new(), Vec::new());
                for (m, r) in results {
                    match r {
                        Ok(f) => findings.push(f),
                        Err(e) => errors.push(format!("{}: {e}", m.name())),
                    }
                }
                self.finished(target, findings, errors, doc, case)
            }
            Event::Failed { id, error } if id == run.request || id == 0 => {
                let target = run.target;
                self.run = None;
                if let RunFor::Case(i) = target {
                    let failed = CaseScore {
                        confidence: 0.0,
                        disagreement_mm: f64::INFINITY,
                        reliable: false,
                    };
                    self.scores.insert(i, failed);
                    return vec![News::Message(format!("models on case {}: {error}", i + 1))];
                }
                vec![News::Message(format!("models: {error}"))]
            }
            _ => Vec::new(), // an answer to a cancelled or superseded run
        }
    }

    /// A run finished: a batch case gets its score; the open document its predictions.
    fn finished(
        &mut self,
        target: RunFor,
        findings: Vec<Finding>,
        errors: Vec<String>,
        doc: Option<u64>,
        case: Option<usize>,
    ) -> Vec<News> {
        match target {
            RunFor::Case(i) => {
                let p = Predictions::new(0, findings, errors, 0);
                self.scores.insert(i, p.score());
                Vec::new()
            }
            RunFor::Document(id) if Some(id) == doc => {
                self.revision += 1;
                let p = Predictions::new(id, findings, errors, self.revision);
                if let Some(c) = case {
                    self.scores.insert(c, p.score());
                }
                let mut news = Vec::new();
                if !p.errors.is_empty() {
                    news.push(News::Message(format!(
                        "model error: {}",
                        p.errors.join("; ")
                    )));
                }
                // Go to what was found (segmentation first: the more accurate centre).
                news.extend(p.findings.first().map(|f| News::Located(f.center_lps)));
                self.predictions = Some(p);
                news
            }
            RunFor::Document(_) => Vec::new(),
        }
    }

    /// Open a label map over document `volume_id` (in the background).
    pub fn open_labels(&mut self, path: PathBuf, volume_id: u64) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.revision += 1;
        let revision = self.revision;
        std::thread::Builder::new()
            .name("heartloc-labels".into())
            .spawn(move || {
                let _ = tx.send(load_labels(&path, volume_id, revision));
            })
            .ok();
        self.pending_labels = Some((volume_id, rx));
    }
}

fn load_labels(path: &Path, volume_id: u64, revision: u64) -> Result<LabelMap, String> {
    let (volume, _) =
        crate::io::open(path, &crate::io::OpenOptions::default()).map_err(|e| e.to_string())?;
    let present =
        crate::mesh::label_values(&volume).map_err(|e| format!("{}: {e}", path.display()))?;
    // Names of its own (a table beside it, a manifest above it), else the ones the user saved.
    let mut table = LabelTable::find_for(path);
    if table.entries.is_empty() {
        if let Ok(text) = std::fs::read_to_string(crate::worklist::user_label_names_path()) {
            table = LabelTable::from_table_text(&text);
        }
    }
    Ok(LabelMap {
        volume_id,
        path: path.to_path_buf(),
        table,
        volume,
        present,
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
                reliable: true,
            },
        );
        s.insert(
            0,
            CaseScore {
                confidence: 0.9,
                disagreement_mm: 40.0,
                reliable: false,
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
        // The doubted case comes first though its confidence is the higher.
        assert_eq!(order_cases(4, &s, CaseOrder::Unreliable), vec![0, 2, 1, 3]);
        assert!(s[&0].text().contains("MAY BE WRONG") && !s[&2].text().contains("MAY BE"));
    }
}
