//! Landmark models in the app: teaching a landmark from the open worklist's annotations (Train,
//! progress with the held-out error, Cancel; the cases stay annotatable meanwhile), each
//! landmark's versions in the per-user models folder (pick the active one, roll back), and the
//! active versions' suggestions for the open volume, accepted with one key. The panel section
//! is [`ui`]; it reads the app and returns commands.

use std::sync::Arc;
use std::time::Instant;

use eframe::egui::{self, Color32};

use super::News;
use crate::app::command::Command;
use crate::app::HeartlocApp;
use crate::ml::learn::{split, LearnOptions, PointCase, MIN_CASES};
use crate::ml::versions::{user_models_folder, Store, Version};
use crate::volume::Volume;
use crate::worker::background::{LearnEvent, LearnProgress, Learner, Suggester, Suggestion};

/// A run in flight.
pub struct Training {
    pub learner: Learner,
    pub progress: LearnProgress,
    pub started: Instant,
}

/// One landmark's versions and the active one, as last read from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    pub landmark: String,
    pub versions: Vec<Version>,
    pub active: Option<u32>,
}

pub struct LandmarkModels {
    pub store: Store,
    /// How long a Train run may take (minutes).
    pub minutes: f64,
    pub training: Option<Training>,
    pub histories: Vec<History>,
    suggester: Option<Suggester>,
    /// The suggestions for a document (`GpuVolume::id`).
    pub suggestions: Option<(u64, Vec<Suggestion>)>,
}

impl Default for LandmarkModels {
    fn default() -> Self {
        Self::with_store(Store::new(user_models_folder()))
    }
}

impl LandmarkModels {
    pub fn with_store(store: Store) -> Self {
        let mut m = LandmarkModels {
            store,
            minutes: 10.0,
            training: None,
            histories: Vec::new(),
            suggester: None,
            suggestions: None,
        };
        m.refresh();
        m
    }

    /// Read the versions again (after a run, a change of the active one, a new store).
    pub fn refresh(&mut self) {
        self.histories = self
            .store
            .landmarks()
            .into_iter()
            .map(|landmark| {
                let versions = self.store.versions(&landmark);
                // The active number only where that version is listed, as `Store::active` says.
                let active = self
                    .store
                    .active_number(&landmark)
                    .filter(|n| versions.iter().any(|v| v.number == *n));
                History {
                    versions,
                    active,
                    landmark,
                }
            })
            .collect();
    }

    fn active_versions(&self) -> Vec<Version> {
        self.histories
            .iter()
            .filter_map(|h| {
                let n = h.active?;
                h.versions.iter().find(|v| v.number == n).cloned()
            })
            .collect()
    }

    /// Learn `landmark` from `cases` (a worklist's annotated cases) in the background.
    pub fn start_training(
        &mut self,
        landmark: &str,
        cases: Vec<PointCase>,
        source: &str,
        ctx: &egui::Context,
    ) -> Result<(), String> {
        if self.training.is_some() {
            return Err("a landmark is being trained already".into());
        }
        if cases.len() < MIN_CASES {
            return Err(format!(
                "{} cases have `{landmark}`: annotate at least {MIN_CASES} to train it",
                cases.len()
            ));
        }
        let (train, val) = split(cases, 5);
        let opts = LearnOptions {
            landmark: landmark.to_string(),
            source: source.to_string(),
            train,
            val,
            base: None,
            out: Default::default(),
            seed: 1,
            max_minutes: self.minutes,
            sigma_mm: crate::ml::learn::SIGMA_MM,
            cancel: None,
        };
        let ctx = ctx.clone();
        self.training = Some(Training {
            learner: Learner::start(self.store.clone(), opts, move || ctx.request_repaint()),
            progress: LearnProgress::default(),
            started: Instant::now(),
        });
        Ok(())
    }

    pub fn cancel_training(&self) {
        if let Some(t) = &self.training {
            t.learner.cancel();
        }
    }

    /// Make version `number` of `landmark` the active one; its suggestions replace the old.
    pub fn use_version(&mut self, landmark: &str, number: u32) -> Result<(), String> {
        self.store
            .set_active(landmark, number)
            .map_err(|e| e.to_string())?;
        self.refresh();
        self.suggestions = None;
        self.suggester = None;
        Ok(())
    }

    /// A new document is on screen: the suggestions were for another one.
    pub fn on_new_document(&mut self) {
        self.suggestions = None;
        self.suggester = None;
    }

    /// The suggestion for `slot` on document `doc`, if its model found one.
    pub fn suggestion(&self, doc: u64, slot: &str) -> Option<&Suggestion> {
        let (id, list) = self.suggestions.as_ref()?;
        (*id == doc)
            .then(|| list.iter().find(|s| s.version.landmark == slot))
            .flatten()
    }

    /// Read the training run's events and the suggestions; ask for suggestions on `doc` when
    /// there are active versions and none were asked for it yet.
    pub fn poll(&mut self, ctx: &egui::Context, doc: Option<(u64, Arc<Volume>)>) -> Vec<News> {
        let mut news = Vec::new();
        let events = self
            .training
            .as_ref()
            .map_or(Vec::new(), |t| t.learner.poll());
        for e in events {
            match e {
                LearnEvent::Progress(p) => {
                    if let Some(t) = self.training.as_mut() {
                        t.progress = p;
                    }
                }
                LearnEvent::Finished(result) => {
                    let landmark = self.training.take().map(|t| t.learner.landmark);
                    let landmark = landmark.unwrap_or_default();
                    news.push(News::Message(match result {
                        Ok(v) => format!("{} trained: {}", v.label(), v.summary()),
                        Err(e) => format!("training {landmark}: {e}; the active version is kept"),
                    }));
                    self.refresh();
                    self.on_new_document();
                }
            }
        }
        if let Some(s) = &self.suggester {
            if let Some(list) = s.poll() {
                self.suggestions = Some((s.volume_id, list));
                self.suggester = None;
            }
        }
        let asked = |id: u64| {
            self.suggester.as_ref().is_some_and(|s| s.volume_id == id)
                || self.suggestions.as_ref().is_some_and(|(d, _)| *d == id)
        };
        if let Some((id, volume)) = doc {
            let active = self.active_versions();
            if !asked(id) && !active.is_empty() {
                let ctx = ctx.clone();
                self.suggester = Some(Suggester::start(id, volume, active, move || {
                    ctx.request_repaint()
                }));
            }
        }
        if self.training.is_some() || self.suggester.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
        news
    }
}

/// What to expect, as measured with a stand-in landmark (`heartloc learning-curve`, the carina
/// on chest CT, 10 minutes a run; weights/MODEL_CARD.md).
const EXPECT: &str = "What to expect (carina stand-in, 10 min a run, held-out median): 5 cases \
                      about 15 mm, 10 to 20 cases 7 to 8 mm, 24 cases 4 to 6 mm.";

/// The panel section: suggestions for this volume, Train per slot, progress, versions.
pub fn ui(ui: &mut egui::Ui, app: &HeartlocApp) -> Vec<Command> {
    let mut out = Vec::new();
    let lm = &app.models.landmarks;
    ui.separator();
    ui.strong("Landmark models");
    suggestions_ui(ui, app, &mut out);
    match &lm.training {
        Some(t) => {
            let held = t
                .progress
                .held_out_median_mm
                .map_or(String::new(), |m| format!(", held-out median {m:.1} mm"));
            ui.add(egui::ProgressBar::new(t.progress.fraction).text(format!(
                "{}: {}{held} ({:.0} s)",
                t.learner.landmark,
                t.progress.stage,
                t.started.elapsed().as_secs_f64()
            )));
            if ui.button("Cancel training").clicked() {
                out.push(Command::CancelTraining);
            }
        }
        None if app.worklist.is_some() => {
            let mut minutes = lm.minutes;
            ui.add(
                egui::DragValue::new(&mut minutes)
                    .range(0.1..=120.0)
                    .speed(0.5)
                    .prefix("train for ")
                    .suffix(" min"),
            );
            if minutes != lm.minutes {
                out.push(Command::SetTrainingMinutes(minutes));
            }
            // The slots of the case on screen, and every landmark trained before.
            let mut names: Vec<&str> = app
                .landmarks
                .annotation
                .set
                .landmarks
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            for h in &lm.histories {
                if !names.contains(&h.landmark.as_str()) {
                    names.push(&h.landmark);
                }
            }
            for name in names {
                if ui
                    .button(format!("Train {name} from this worklist"))
                    .clicked()
                {
                    out.push(Command::TrainLandmark(name.to_string()));
                }
            }
            ui.small(EXPECT).on_hover_text(
                "heartloc learning-curve measures it on your own worklist; figures per \
                 landmark in weights/MODEL_CARD.md",
            );
        }
        None => {
            ui.small("Open a worklist to train a landmark from its cases.");
        }
    }
    for h in &lm.histories {
        ui.label(format!("{} versions", h.landmark));
        for v in &h.versions {
            let active = h.active == Some(v.number);
            if ui.radio(active, v.summary()).clicked() && !active {
                out.push(Command::UseLandmarkVersion(h.landmark.clone(), v.number));
            }
        }
    }
    out
}

fn suggestions_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    let (Some(doc), Some((id, list))) = (&app.doc, &app.models.landmarks.suggestions) else {
        return;
    };
    if doc.gpu.id != *id {
        return;
    }
    for s in list {
        let slot = &s.version.landmark;
        match &s.found {
            Ok(f) => {
                let c = f.center_lps;
                ui.label(format!(
                    "{} suggests {slot} at ({:.1}, {:.1}, {:.1}) mm, confidence {:.2}",
                    s.version.label(),
                    c.x,
                    c.y,
                    c.z,
                    f.confidence
                ));
                for w in f.warnings() {
                    ui.colored_label(Color32::from_rgb(255, 170, 60), w);
                }
                if ui.button(format!("Accept {slot} (G)")).clicked() {
                    out.push(Command::AcceptSuggestion(Some(slot.clone())));
                }
            }
            Err(e) => {
                ui.colored_label(Color32::LIGHT_RED, format!("{}: {e}", s.version.label()));
            }
        }
    }
}
