//! Starting the app: what the command line asked to open ([`Launch`]) and the native window.

use std::path::PathBuf;

use eframe::egui;

use super::dialog::{FileDialog, NativeDialog};
use super::document::Source;
use super::landmarks::LandmarkTarget;
use super::HeartlocApp;

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
            let target = LandmarkTarget::File(l.clone());
            app.open_with_landmarks(Source::Path(p), target, &cc.egui_ctx);
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
