//! The side panel: what is open, window/level, slice positions, the volume view's mode, then
//! the landmark, models and worklist panels and the key help. It reads the app and returns
//! commands.

use eframe::egui::{self, Color32};

use super::command::{Command, Pick};
use super::document::{Document, Origin};
use super::{keys, landmarks, models, worklist_panel, HeartlocApp};
use crate::slice_view::{
    normal_along, voxel_planes, Crop, Cut, DvrPreset, Modality, Plane, Slab, SlabMode, VolumeMode,
    Window, WindowPreset,
};

pub fn controls_ui(ui: &mut egui::Ui, app: &HeartlocApp) -> Vec<Command> {
    let mut out = Vec::new();
    let Some(doc) = &app.doc else {
        ui.heading("heartloc");
        ui.label("No volume open.");
        if ui.button("Open…").clicked() {
            out.push(Command::Pick(Pick::File));
        }
        return out;
    };
    document_ui(ui, app, doc, &mut out);
    ui.separator();
    window_ui(ui, app, doc, &mut out);
    ui.separator();
    slices_ui(ui, app, doc, &mut out);
    ui.separator();
    volume_view_ui(ui, app, doc, &mut out);
    ui.separator();
    out.extend(landmarks::panel_ui(ui, &app.landmarks, &app.where_saved()));
    out.extend(models::panel::models_ui(ui, app));
    out.extend(worklist_panel::worklist_ui(ui, app));
    ui.separator();
    ui.small(keys::pane_help());
    ui.small(keys::window_help());
    out
}

/// Name, the demo's notice, size, type, spacing and orientation.
fn document_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    ui.heading(&doc.name);
    if doc.source().is_none() {
        let notice = match doc.origin {
            Origin::Demo => {
                "Real contrast chest CT (TCIA, CC BY 4.0; see Help > About). No expert heart label \
                 exists for it: the models' answers here cannot be checked against one."
            }
            _ => "Synthetic phantom made in code — not patient data.",
        };
        ui.colored_label(Color32::from_rgb(255, 200, 120), notice);
        if let Some((source, out_dir)) = &app.settings.last_worklist {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if ui.button(format!("Resume worklist {name}")).clicked() {
                out.push(Command::OpenWorklist(source.clone(), out_dir.clone()));
            }
        }
    }
    let v = &doc.volume;
    let [nx, ny, nz] = v.dims();
    let s = v.spacing_mm();
    let format = doc.format_name();
    let (modality, guessed) = doc.modality();
    let how = if guessed {
        " (guessed from the scan)"
    } else {
        ""
    };
    ui.label(format!("{format}  {nx}×{ny}×{nz} {}", v.voxels.type_name()));
    ui.label(format!("spacing {:.3}×{:.3}×{:.3} mm", s[0], s[1], s[2]));
    ui.label(format!("voxel axes point {}", v.grid.orientation_code()))
        .on_hover_text("Slices are cut along world (LPS) axes, shown radiologically.");
    ui.label(format!("modality {}{how}", modality.name()));
    let phase = v.phase;
    if phase.count() > 1 {
        let mut k = phase.index() + 1;
        let slider = egui::Slider::new(&mut k, 1..=phase.count()).text("Phase");
        if ui
            .add(slider)
            .on_hover_text("The phase of the cycle shown (1: the first in trigger order)")
            .changed()
        {
            out.push(Command::SetPhase(k - 1));
        }
        ui.horizontal(|ui| match app.cine {
            Some(c) => {
                if ui.button("Pause").clicked() {
                    out.push(Command::PlayCine(None));
                }
                let mut fps = c.fps;
                let speed = egui::DragValue::new(&mut fps)
                    .range(1.0..=30.0)
                    .suffix(" phases/s");
                if ui.add(speed).changed() {
                    out.push(Command::PlayCine(Some(fps)));
                }
            }
            None => {
                // At the acquisition's pace where the file says (one cycle in real time),
                // capped at 30 phases a second; else 10.
                let acquired = doc.volume.phase.interval_ms().map(|ms| 1e3 / ms);
                let fps = acquired.map_or(10.0, |f| f.clamp(1.0, 30.0));
                let hint = match acquired {
                    Some(f) => {
                        format!("Loop through the phases at the acquisition's {f:.1} phases/s")
                    }
                    None => {
                        "Loop through the phases (10 a second: the file gives no frame time)".into()
                    }
                };
                if ui.button("Play").on_hover_text(hint).clicked() {
                    out.push(Command::PlayCine(Some(fps)));
                }
            }
        });
    }
}

/// The isosurface level: in HU where the scale is known (−1000…2000), else over the robust
/// range (1st to 99.5th percentile), so the useful levels fill the slider.
fn iso_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    let i = doc.intensity;
    match i.hu_from_value.filter(|(s, _)| *s > 1e-12) {
        Some((scale, offset)) => {
            let mut hu = app.iso * scale + offset;
            let slider = egui::Slider::new(&mut hu, -1000.0..=2000.0)
                .text("Iso level (HU)")
                .fixed_decimals(0);
            if ui.add(slider).changed() {
                out.push(Command::SetIso((hu - offset) / scale));
            }
        }
        None => {
            let mut iso = app.iso;
            let slider = egui::Slider::new(&mut iso, i.p1..=i.p99_5)
                .text("Iso level")
                .clamping(egui::SliderClamping::Never);
            if ui.add(slider).changed() {
                out.push(Command::SetIso(iso));
            }
        }
    }
}

/// What the 3D view renders: the whole volume, the heart alone (the segmentation's box with
/// a margin) or a cube around the crosshair.
fn crop_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    let s = &app.settings;
    let has_heart = app
        .models
        .predictions
        .as_ref()
        .is_some_and(|p| p.heart_box().is_some());
    ui.horizontal_wrapped(|ui| {
        ui.label("Show");
        for c in Crop::ALL {
            let enabled = c != Crop::Heart || has_heart;
            let button = ui
                .add_enabled(enabled, egui::Button::selectable(s.crop == c, c.name()))
                .on_hover_text(match c {
                    Crop::Whole => "The whole volume",
                    Crop::Heart => "The segmented heart's box with a margin",
                    Crop::Crosshair => "A cube around the crosshair",
                })
                .on_disabled_hover_text(
                    "Run the models first: the heart's box comes from the segmentation.",
                );
            if button.clicked() {
                out.push(Command::SetCrop(c));
            }
        }
    });
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Cut away")
            .selected_text(s.cut.name())
            .show_ui(ui, |ui| {
                for c in Cut::ALL {
                    if ui.selectable_label(s.cut == c, c.name()).clicked() {
                        out.push(Command::SetCut(c));
                    }
                }
            })
            .response
            .on_hover_text(
                "The half on that side of the crosshair's plane (move the crosshair to move \
                 the cut)",
            );
        if ui.button("Reset views").clicked() {
            out.push(Command::ResetViews);
        }
    });
    if s.crop == Crop::Heart && !has_heart {
        ui.small("No segmentation yet: showing the whole volume.");
    }
    if s.crop == Crop::Crosshair {
        let mut size = s.crop_size_mm;
        let slider = egui::Slider::new(&mut size, 20.0..=400.0)
            .text("cube (mm)")
            .fixed_decimals(0);
        if ui.add(slider).changed() {
            out.push(Command::SetCropSize(size));
        }
    }
}

/// Presets, what they mean for this volume, and level/width sliders.
fn window_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    ui.label("Window / level");
    let intensity = doc.intensity;
    let hu_note = match intensity.hu_from_value {
        Some((s, o)) if s == 1.0 && o == 0.0 => "CT presets in HU",
        Some(_) => "not HU: CT presets use HU estimated from air and soft-tissue peaks (meaningless for MR: use Auto)",
        None => "no HU scale: CT presets use percentiles",
    };
    let (modality, _) = doc.modality();
    ui.horizontal_wrapped(|ui| {
        for p in WindowPreset::ALL {
            let allowed = !(p.is_ct() && modality == Modality::Mr);
            let button = egui::Button::selectable(app.settings.preset == p, p.name());
            if ui
                .add_enabled(allowed, button)
                .on_disabled_hover_text("A CT window in HU: not for an MR")
                .clicked()
            {
                out.push(Command::SetPreset(p));
            }
        }
    });
    ui.small(hu_note);
    let (range_lo, range_hi) = (intensity.min, intensity.max);
    let (mut level, mut width) = (app.window.level(), app.window.width());
    let l = ui.add(egui::Slider::new(&mut level, range_lo..=range_hi).text("Level"));
    let w = ui.add(
        egui::Slider::new(&mut width, 1e-3..=(range_hi - range_lo).max(1e-3) * 2.0).text("Width"),
    );
    if l.changed() || w.changed() {
        out.push(Command::SetWindow(Window::from_level_width(level, width)));
    }
}

/// One slider per plane for its slice position (mm along L, P, S).
fn slices_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    ui.label("Slices (mm along L, P, S)");
    let (lo, hi) = doc.volume.grid.world_bbox();
    for (axis, plane) in [
        (2usize, Plane::Axial),
        (1, Plane::Coronal),
        (0, Plane::Sagittal),
    ] {
        let mut x = app.crosshair[axis];
        // Always two decimals shown (the value itself is not rounded): a crosshair that moves
        // by a fraction does not change the panel's width, which would shift the panes.
        let slider = egui::Slider::new(&mut x, lo[axis]..=hi[axis])
            .custom_formatter(|v, _| format!("{v:.2}"))
            .text(format!("{} slice", plane.name()));
        if ui.add(slider).changed() {
            let mut c = app.crosshair;
            c[axis] = x;
            out.push(Command::SetCrosshair(c));
        }
    }
    planes_ui(ui, app, doc, out);
    slab_ui(ui, app, out);
}

/// How the three planes are turned: patient axes, the volume's own voxel planes, or the axial
/// normal along the aortic valve → heart centre line ([ and ] turn them in a pane).
fn planes_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    let set = &app.landmarks.annotation.set;
    let at = |name: &str| set.get(name).and_then(|l| l.position_lps());
    let axis = at("aortic-valve").zip(at("heart-center"));
    ui.horizontal_wrapped(|ui| {
        ui.label("Planes");
        if ui.button("Patient axes").clicked() {
            out.push(Command::SetRotation(glam::DQuat::IDENTITY));
        }
        if ui
            .button("Voxel planes")
            .on_hover_text("The volume's own slices (e.g. short-axis MR)")
            .clicked()
        {
            out.push(Command::SetRotation(voxel_planes(&doc.volume.grid)));
        }
        let line = ui
            .add_enabled(axis.is_some(), egui::Button::new("Valve to centre"))
            .on_hover_text("Axial normal along the aortic-valve to heart-center line");
        if line.clicked() {
            if let Some(q) = axis.and_then(|(a, b)| normal_along(a, b)) {
                out.push(Command::SetRotation(q));
            }
        }
    });
}

/// The slice views' slab: the plane alone, a maximum intensity projection or a mean, and its
/// thickness.
fn slab_ui(ui: &mut egui::Ui, app: &HeartlocApp, out: &mut Vec<Command>) {
    let slab = app.settings.slab;
    ui.horizontal_wrapped(|ui| {
        ui.label("Slab");
        for mode in SlabMode::ALL {
            let on = slab.mode == mode;
            let r = ui.selectable_label(on, mode.name());
            // Named apart from the 3D view's own MIP.
            let name = format!("Slab {}", mode.name());
            r.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, on, &name));
            if r.clicked() {
                out.push(Command::SetSlab(Slab { mode, ..slab }));
            }
        }
        let mut mm = slab.thickness_mm;
        let thickness = ui
            .add_enabled(
                slab.mode != SlabMode::Thin,
                egui::DragValue::new(&mut mm)
                    .range(1.0..=Slab::MAX_THICKNESS_MM)
                    .speed(0.5)
                    .suffix(" mm"),
            )
            .on_hover_text("The slab's thickness, centred on the plane");
        thickness.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::SpinButton, true, "Slab thickness")
        });
        if mm != slab.thickness_mm {
            out.push(Command::SetSlab(Slab {
                thickness_mm: mm,
                ..slab
            }));
        }
    });
}

/// Mode, DVR transfer preset, iso level, reset.
fn volume_view_ui(ui: &mut egui::Ui, app: &HeartlocApp, doc: &Document, out: &mut Vec<Command>) {
    ui.label("Volume view");
    let s = &app.settings;
    ui.horizontal(|ui| {
        for m in VolumeMode::ALL {
            if ui.selectable_label(s.mode == m, m.name()).clicked() {
                out.push(Command::SetMode(m));
            }
        }
    });
    if s.mode == VolumeMode::Dvr {
        ui.horizontal(|ui| {
            ui.label("Transfer");
            for p in DvrPreset::ALL {
                if ui.selectable_label(s.dvr == p, p.name()).clicked() {
                    out.push(Command::SetDvr(p));
                }
            }
        });
    }
    if s.mode == VolumeMode::Isosurface {
        iso_ui(ui, app, doc, out);
    }
    if s.mode == VolumeMode::Labels {
        let has_mask = app
            .models
            .predictions
            .as_ref()
            .is_some_and(|p| p.mask.is_some());
        ui.small(match (app.models.labels.is_some(), has_mask) {
            (false, false) => "Labels: open a label map or run the models to see structures.",
            (true, _) => "Structures of the label map (switch each in its legend); the segmentation where the mask overlay is on.",
            (false, true) => "The segmentation, where the mask overlay is on.",
        });
    }
    crop_ui(ui, app, out);
}
