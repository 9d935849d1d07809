//! The models panel: Run/Cancel with progress, the overlay switches, what each method found
//! (centre, extent, volume, confidence, time, distances to the landmarks), accepting a centre
//! as a landmark, and the label map with its legend. It reads the app and returns commands.

use eframe::egui::{self, Color32};

use super::{method_color, OverlaySettings, Predictions, RunFor};
use crate::app::command::Command;
use crate::app::HeartlocApp;
use crate::ml::preprocess::Method;

/// The whole panel.
pub fn models_ui(ui: &mut egui::Ui, app: &HeartlocApp) -> Vec<Command> {
    let mut out = Vec::new();
    ui.separator();
    ui.strong("Models");
    run_ui(ui, app, &mut out);
    let mut o = app.settings.overlays;
    overlay_switches_ui(ui, &mut o);
    if o != app.settings.overlays {
        out.push(Command::SetOverlays(o));
    }
    match &app.models.predictions {
        Some(p) => findings_ui(ui, app, p, &mut out),
        None => {
            ui.small("No predictions for this volume yet.");
        }
    }
    labels_ui(ui, app, &mut out);
    out.extend(super::learning::ui(ui, app));
    out
}

/// Run, Cancel and the progress of the run in flight.
fn run_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    let run = app.models.run.as_ref();
    ui.horizontal(|ui| {
        let running = run.is_some_and(|r| matches!(r.target, RunFor::Document(_)));
        if ui
            .add_enabled(!running, egui::Button::new("Run models (R)"))
            .clicked()
        {
            out.push(Command::RunModels);
        }
        if ui
            .add_enabled(run.is_some(), egui::Button::new("Cancel"))
            .clicked()
        {
            out.push(Command::CancelModels);
        }
    });
    if let Some(run) = run {
        let what = match run.target {
            RunFor::Case(i) => format!("worklist case {}: {}", i + 1, run.step),
            RunFor::Document(_) => run.step.clone(),
        };
        ui.add(egui::ProgressBar::new(run.fraction).text(format!(
            "{what} ({:.1} s)",
            run.started.elapsed().as_secs_f64()
        )));
    }
}

fn overlay_switches_ui(ui: &mut egui::Ui, o: &mut OverlaySettings) {
    ui.checkbox(&mut o.run_on_open, "Run on open");
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
}

/// One block per method, then their disagreement, the phantom's truth and errors.
fn findings_ui(ui: &mut egui::Ui, app: &HeartlocApp, p: &Predictions, out: &mut Vec<Command>) {
    let slot = crate::app::command::MODELS_LANDMARK;
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
        ui.small(f.describe());
        for w in f.warnings() {
            ui.colored_label(Color32::from_rgb(255, 170, 60), w);
        }
        for (name, at) in app.landmarks.annotation.set.defined() {
            ui.small(format!("  {:.1} mm from {name}", at.distance(c)));
        }
        let key = match f.method {
            Method::Heatmap => "A",
            Method::Segmentation => "Shift+A",
        };
        if ui.button(format!("Accept as {slot} ({key})")).clicked() {
            out.push(Command::AcceptPrediction(f.method));
        }
    }
    if let Some(d) = p.disagreement_mm() {
        ui.label(format!("Methods {d:.1} mm apart"));
    }
    if let Some(truth) = app.doc.as_ref().and_then(|d| d.truth()) {
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
        out.push(Command::FrameHeart);
    }
}

/// Open a label map (or the `labels.nii.gz` beside the image), its switches and legend.
fn labels_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    let beside = app
        .doc
        .as_ref()
        .and_then(|d| d.source())
        .and_then(|s| s.parent())
        .map(|d| d.join("labels.nii.gz"))
        .filter(|p| p.is_file());
    let labels = app.models.labels.as_ref();
    ui.horizontal(|ui| {
        if ui.button("Label map…").clicked() {
            out.push(Command::PickLabels);
        }
        if let Some(p) = beside {
            let shown = labels.is_some_and(|l| l.path == p);
            if !shown && ui.button("labels.nii.gz").clicked() {
                out.push(Command::OpenLabels(p));
            }
        }
    });
    let Some(l) = labels else { return };
    let mut o = app.settings.overlays;
    ui.horizontal(|ui| {
        ui.checkbox(&mut o.labels, "Labels");
        ui.checkbox(&mut o.labels_outline, "outline");
        ui.add(
            egui::Slider::new(&mut o.labels_opacity, 0.0..=1.0)
                .show_value(false)
                .text("opacity"),
        );
    });
    if o != app.settings.overlays {
        out.push(Command::SetOverlays(o));
    }
    let in_3d = app.settings.mode == crate::slice_view::VolumeMode::Labels;
    for v in &l.present {
        let [r, g, b] = l.table.color(*v);
        ui.horizontal(|ui| {
            if in_3d {
                let mut shown = !app.models.hidden_structures.contains(v);
                let toggle = ui.checkbox(&mut shown, "").on_hover_text("Shown in 3D");
                if toggle.changed() {
                    out.push(Command::ShowStructure(*v, shown));
                }
            }
            ui.colored_label(
                Color32::from_rgb(r, g, b),
                format!("{v}: {}", l.table.name(*v)),
            );
        });
    }
    names_ui(ui, l, out);
}

/// Naming the labels: each value's name, and saving the names once for every later label map
/// that comes without names of its own.
fn names_ui(ui: &mut egui::Ui, l: &super::LabelMap, out: &mut Vec<Command>) {
    ui.collapsing("Name the labels", |ui| {
        for v in &l.present {
            let mut name = l.table.name(*v);
            let field = egui::TextEdit::singleline(&mut name).desired_width(140.0);
            let edited = ui
                .horizontal(|ui| {
                    ui.label(format!("{v}"));
                    ui.add(field).on_hover_text(format!("name of label {v}"))
                })
                .inner;
            if edited.changed() && !name.trim().is_empty() {
                out.push(Command::RenameLabel(*v, name));
            }
        }
        let path = crate::worklist::user_label_names_path();
        if ui
            .button("Save names for other label maps")
            .on_hover_text(format!(
                "Label maps without names of their own will use them ({})",
                path.display()
            ))
            .clicked()
        {
            out.push(Command::SaveLabelNames);
        }
    });
}
