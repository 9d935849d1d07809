//! The cine loop: phases of the scan on screen shown one after another at a chosen rate.

use std::time::{Duration, Instant};

use eframe::egui;

use super::{HeartlocApp, Source};

/// A cine loop playing: phases advance at `fps` (Play starts it at the acquisition's rate where
/// the file gives one: `Phase::interval_ms`); the models run again on the phase shown when it
/// stops, if they had run.
#[derive(Clone, Copy, Debug)]
pub struct Cine {
    pub fps: f64,
    last: Instant,
    rerun_after: bool,
}

impl HeartlocApp {
    /// Start (at `fps`) or stop the cine loop; stopping runs the models on the phase shown if
    /// they had run before it started.
    pub fn play_cine(&mut self, fps: Option<f64>, ctx: &egui::Context) {
        match (fps, self.cine.take()) {
            (Some(fps), cine) => {
                let rerun_after = cine.map_or(self.models.predictions.is_some(), |c| c.rerun_after);
                self.cine = Some(Cine {
                    fps: fps.clamp(1.0, 30.0),
                    last: Instant::now(),
                    rerun_after,
                });
                ctx.request_repaint();
            }
            (None, Some(c)) if c.rerun_after && self.is_loading() => self.rerun_when_shown = true,
            (None, Some(c)) if c.rerun_after => self.run_models(ctx),
            (None, _) => {}
        }
    }

    /// The next phase once its time has come and the last one is on screen.
    pub(super) fn advance_cine(&mut self, ctx: &egui::Context) {
        let Some(cine) = self.cine else { return };
        let Some(doc) = &self.doc else { return };
        let phase = doc.volume.phase;
        let Some(path) = doc.source().map(std::path::Path::to_path_buf) else {
            return;
        };
        let series_uid = doc.volume.series.as_ref().map(|s| s.series_uid.clone());
        if phase.count() < 2 {
            self.cine = None;
            return;
        }
        let due = Duration::from_secs_f64(1.0 / cine.fps);
        let waited = cine.last.elapsed();
        if self.is_loading() || waited < due {
            ctx.request_repaint_after(due.saturating_sub(waited));
            return;
        }
        let next = (phase.index() + 1) % phase.count();
        let source = Source::Part {
            path,
            series_uid,
            phase: next,
        };
        self.open(source, ctx);
        if let Some(c) = self.cine.as_mut() {
            c.last = Instant::now();
        }
    }
}
