//! The menu bar: File (open file, DICOM folder, worklist, demo CT or phantom, recent, export a 3D
//! model, screenshots), View (maximise a pane) and Help (the About box), with the loading spinner.
//! It reads the app and returns commands.

use eframe::egui;

use super::command::{Command, Pick};
use super::document::Source;
use super::HeartlocApp;
use crate::slice_view::Pane;

pub fn menu_ui(ui: &mut egui::Ui, app: &HeartlocApp) -> Vec<Command> {
    let mut out = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| file_menu_ui(ui, app, &mut out));
        ui.menu_button("View", |ui| {
            for pane in Pane::ALL {
                let on = app.settings.maximized == Some(pane);
                let label = format!("Maximise {}", pane.name());
                if ui.selectable_label(on, label).clicked() {
                    out.push(Command::SetMaximized((!on).then_some(pane)));
                }
            }
            if ui.button("Show all panes").clicked() {
                out.push(Command::SetMaximized(None));
            }
        });
        ui.menu_button("Help", |ui| {
            if ui.button("About heartloc").clicked() {
                out.push(Command::ShowAbout(true));
            }
        });
        if let Some(what) = app.loader.loading() {
            ui.spinner();
            ui.label(format!("Loading {what}…"));
        }
    });
    out
}

fn file_menu_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    for (label, pick) in [
        ("Open file…", Pick::File),
        ("Open DICOM folder…", Pick::Folder),
        ("Open worklist folder…", Pick::WorklistFolder),
        ("Open worklist CSV…", Pick::WorklistCsv),
    ] {
        if ui.button(label).clicked() {
            out.push(Command::Pick(pick));
        }
    }
    let series = egui::Button::new("Series of this folder…");
    if ui
        .add_enabled(app.series_browser.is_some(), series)
        .on_disabled_hover_text("Open a DICOM folder first")
        .clicked()
    {
        out.push(Command::ShowSeries(true));
    }
    let last = app.settings.last_worklist.clone();
    if ui
        .add_enabled(last.is_some(), egui::Button::new("Resume last worklist"))
        .clicked()
    {
        if let Some((source, out_dir)) = last {
            out.push(Command::OpenWorklist(source, out_dir));
        }
    }
    if ui.button("Open demo CT").clicked() {
        out.push(Command::Open(Source::Demo));
    }
    if ui.button("Open demo phantom").clicked() {
        out.push(Command::Open(Source::Phantom));
    }
    ui.menu_button("Recent", |ui| {
        if app.settings.recent.is_empty() {
            ui.label("(none)");
        }
        for p in &app.settings.recent {
            if ui.button(p.display().to_string()).clicked() {
                out.push(Command::Open(Source::Path(p.clone())));
            }
        }
    });
    ui.separator();
    let export = egui::Button::new("Export 3D model…");
    if ui
        .add_enabled(app.can_export_model(), export)
        .on_disabled_hover_text("Run the models (R) or open a label map first.")
        .clicked()
    {
        out.push(Command::ExportModel);
    }
    if ui.button("Save screenshot (window)…").clicked() {
        out.push(Command::Screenshot(None));
    }
    for pane in Pane::ALL {
        let name = pane_word(pane);
        if ui
            .button(format!("Save screenshot ({name} pane)…"))
            .clicked()
        {
            out.push(Command::Screenshot(Some(pane)));
        }
    }
}

/// The About box while it is open: what heartloc is and the demo scan's attribution (CC BY
/// 4.0 asks for it wherever the scan ships).
pub fn about_ui(ctx: &egui::Context, open: bool) -> Option<Command> {
    let mut still_open = open;
    egui::Window::new("About heartloc")
        .open(&mut still_open)
        .collapsible(false)
        .default_width(520.0)
        .show(ctx, |ui| {
            ui.label(format!(
                "heartloc {}: finds the heart in 3D CT and MRI.",
                env!("CARGO_PKG_VERSION")
            ));
            ui.separator();
            ui.strong("The built-in demo scan");
            egui::ScrollArea::vertical()
                .max_height(320.0)
                .show(ui, |ui| ui.small(crate::io::demo::ATTRIBUTION));
        });
    (still_open != open).then_some(Command::ShowAbout(still_open))
}

/// "axial", "coronal", "sagittal", "3D": a pane in menu entries and screenshot names.
pub fn pane_word(pane: Pane) -> String {
    match pane {
        Pane::Volume => "3D".to_string(),
        _ => pane.name().to_lowercase(),
    }
}
