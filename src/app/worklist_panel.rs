//! The worklist panel: counts, previous/next/skip, CSV export, ordering by the models'
//! scores, and one row per case (a click opens it). It reads the app and returns commands.

use eframe::egui;

use super::command::Command;
use super::models::{order_cases, CaseOrder};
use super::HeartlocApp;

/// Height of the case list (points).
const LIST_HEIGHT: f32 = 180.0;

pub fn worklist_ui(ui: &mut egui::Ui, app: &HeartlocApp) -> Vec<Command> {
    let mut out = Vec::new();
    let Some(w) = &app.worklist else { return out };
    ui.separator();
    let (todo, done, skipped) = w.counts();
    ui.label(format!(
        "Worklist: {done} done, {todo} to do, {skipped} skipped"
    ));
    let (current, n) = (w.current, w.cases.len());
    ui.horizontal(|ui| {
        if ui.button("Previous case").clicked() && current > 0 {
            out.push(Command::OpenCase(current - 1));
        }
        if ui.button("Next case").clicked() && current + 1 < n {
            out.push(Command::OpenCase(current + 1));
        }
        if ui.button("Skip case").clicked() {
            out.push(Command::ToggleCaseSkipped);
        }
    });
    if ui.button("Export CSV…").clicked() {
        out.push(Command::ExportCsv);
    }
    order_ui(ui, app, n, &mut out);
    let models = &app.models;
    // The list scrolls to the current case once each time it changes (and stays where the
    // user scrolls it otherwise).
    let scrolled_id = egui::Id::unique("heartloc-worklist-scrolled-to");
    let follow = ui.data(|d| d.get_temp::<usize>(scrolled_id)) != Some(current);
    let order = order_cases(n, &models.scores, models.order);
    let mut list = egui::ScrollArea::vertical().max_height(LIST_HEIGHT);
    if follow {
        // Only this list scrolls (not the side panel around it): the current row mid-list.
        let row = ui.spacing().interact_size.y + ui.spacing().item_spacing.y;
        let pos = order.iter().position(|&i| i == current).unwrap_or(0) as f32;
        list = list.vertical_scroll_offset((pos * row - LIST_HEIGHT / 2.0).max(0.0));
    }
    list.show(ui, |ui| {
        // One line a case (long names are cut, not wrapped), the current one kept in view.
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        for &i in &order {
            let s = w.summary(i);
            let score = models.scores.get(&i).map_or(String::new(), |s| s.text());
            let text = format!("{}  {}  ({}){score}", w.cases[i].name, s.status, s.defined);
            if ui.selectable_label(i == current, text).clicked() {
                out.push(Command::OpenCase(i));
            }
        }
    });
    ui.data_mut(|d| d.insert_temp(scrolled_id, current));
    out
}

/// Ordering by the models' scores, and scoring the cases not yet scored.
fn order_ui(ui: &mut egui::Ui, app: &HeartlocApp, n: usize, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.label("Order");
        for (o, name) in CaseOrder::ALL {
            if ui.selectable_label(app.models.order == o, name).clicked() {
                out.push(Command::SetOrder(o));
            }
        }
    });
    let scored = app.models.scores.len();
    ui.horizontal(|ui| {
        ui.small(format!("{scored}/{n} cases scored"));
        if scored < n && ui.button("Score all cases").clicked() {
            out.push(Command::ScoreWorklist);
        }
    });
}
