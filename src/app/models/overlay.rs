//! The models' overlays: label map, mask and heatmap rasterised over each slice pane (cached
//! until the view or the data changes; only the block that shows is uploaded), the centres and
//! the segmentation's box on the slices and in 3D.

use eframe::egui::{self, Color32, Pos2, Rect, Stroke, Vec2};
use glam::DVec3;

use std::sync::Arc;

use super::{method_color, LabelMap, ModelsState, Predictions};
use crate::app::panes::{SliceFrame, VolumeFrame};
use crate::ml::preprocess::Method;
use crate::overlay::{self, Layer, Paint};
use crate::render::{GpuStructures, GpuVolume, StructureDraw};
use crate::slice_view::{slice_cuts_box, Nearness, SliceView};

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

/// What a pane's overlay raster was made from: when any of it changes, it is made again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayKey {
    view: SliceView,
    crosshair: DVec3,
    size: [f32; 2],
    settings: OverlaySettings,
    predictions: u64,
    labels: u64,
}

/// The part of a slice pane's overlay that shows: where (a fraction of the pane) and its texture.
pub type OverlayBlock = (Rect, egui::TextureHandle);

/// Per slice pane: the overlay's key and, where anything shows, its visible block.
pub type OverlayCache = [Option<(OverlayKey, Option<OverlayBlock>)>; 3];

/// The raster layers that are switched on and present, bottom first.
fn layers<'a>(
    o: &OverlaySettings,
    p: Option<&'a Predictions>,
    labels: Option<&'a LabelMap>,
) -> Vec<Layer<'a>> {
    let mut layers = Vec::new();
    if let Some(l) = labels.filter(|_| o.labels) {
        layers.push(Layer {
            volume: &l.volume,
            paint: Paint::Labels,
            opacity: o.labels_opacity,
            outline: o.labels_outline,
            table: Some(&l.table),
        });
    }
    let Some(p) = p else { return layers };
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
    layers
}

/// Rasterise `layers` over the pane and upload the visible block into `old`'s texture (or a
/// new one). Only the block that shows is uploaded and drawn: on a CPU renderer a pane-sized
/// blended quad costs ~13 ms a frame, the heart's block a fraction.
fn rasterise(
    ctx: &egui::Context,
    frame: &SliceFrame,
    layers: &[Layer],
    old: Option<OverlayBlock>,
) -> Option<OverlayBlock> {
    let size = frame.size();
    let step = (size.x.max(size.y) / 320.0).max(1.0);
    let r = overlay::rasterise(&frame.view, frame.crosshair, size, step, layers);
    let (lo, hi, block) = r.visible_block()?;
    let [w, h] = r.size.map(|n| n as f32);
    let part = Rect::from_min_max(
        Pos2::new(lo[0] as f32 / w, lo[1] as f32 / h),
        Pos2::new(hi[0] as f32 / w, hi[1] as f32 / h),
    );
    let rgba: Vec<u8> = block.rgba.iter().flatten().copied().collect();
    let image = egui::ColorImage::from_rgba_unmultiplied(block.size, &rgba);
    let options = egui::TextureOptions::LINEAR;
    let tex = match old {
        Some((_, mut tex)) => {
            tex.set(image, options);
            tex
        }
        None => {
            let name = format!("heartloc-overlay-{}", frame.pane.index());
            ctx.load_texture(name, image, options)
        }
    };
    Some((part, tex))
}

/// Label map, mask and heatmap over a slice pane, then centres and the box.
pub fn paint_slice(
    ui: &egui::Ui,
    frame: &SliceFrame,
    o: &OverlaySettings,
    models: &mut super::ModelsState,
) {
    let i = frame.pane.index();
    let key = OverlayKey {
        view: frame.view,
        crosshair: frame.crosshair,
        size: [frame.rect.width(), frame.rect.height()],
        settings: *o,
        predictions: models.predictions.as_ref().map_or(0, |p| p.revision),
        labels: models.labels.as_ref().map_or(0, |l| l.revision),
    };
    let layers = layers(o, models.predictions.as_ref(), models.labels.as_ref());
    let cache = &mut models.overlay_cache[i];
    if layers.is_empty() {
        *cache = None;
    } else if !cache.as_ref().is_some_and(|(k, _)| *k == key) {
        let old = cache.take().and_then(|(_, t)| t);
        *cache = Some((key, rasterise(ui.ctx(), frame, &layers, old)));
    }
    let painter = ui.painter_at(frame.rect);
    if let Some((_, Some((part, tex)))) = cache.as_ref().filter(|_| !layers.is_empty()) {
        let rect = frame.rect;
        let at = |f: Pos2| rect.min + f.to_vec2() * rect.size();
        painter.image(
            tex.id(),
            Rect::from_min_max(at(part.min), at(part.max)),
            Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
            Color32::WHITE,
        );
    }
    if let Some(p) = &models.predictions {
        paint_slice_findings(&painter, frame, o, p);
    }
    if o.centres {
        paint_slice_suggestions(&painter, frame, &models.landmarks);
    }
}

/// The colour of landmark models' suggestions (apart from the slots, crosshairs and methods).
pub const SUGGESTION_COLOR: Color32 = Color32::from_rgb(255, 215, 0);

/// Each landmark model's suggestion on the slice: a gold ring with the landmark's name, faded
/// on nearby slices.
fn paint_slice_suggestions(
    painter: &egui::Painter,
    frame: &SliceFrame,
    lm: &super::learning::LandmarkModels,
) {
    let Some((_, list)) = &lm.suggestions else {
        return;
    };
    for s in list {
        let Ok(f) = &s.found else { continue };
        let at = frame.screen(f.center_lps);
        match frame.nearness(f.center_lps) {
            Nearness::On => {
                painter.circle_stroke(at, 7.0, Stroke::new(2.0, SUGGESTION_COLOR));
                painter.text(
                    at + Vec2::new(9.0, -9.0),
                    egui::Align2::LEFT_BOTTOM,
                    format!("{}?", s.version.landmark),
                    egui::FontId::proportional(12.0),
                    SUGGESTION_COLOR,
                );
            }
            Nearness::Near => {
                let faded = SUGGESTION_COLOR.gamma_multiply(0.35);
                painter.circle_stroke(at, 5.0, Stroke::new(1.0, faded));
            }
            Nearness::Away => {}
        }
    }
}

/// The segmentation's box where the slice cuts it, and each method's centre (faded on nearby
/// slices).
fn paint_slice_findings(
    painter: &egui::Painter,
    frame: &SliceFrame,
    o: &OverlaySettings,
    p: &Predictions,
) {
    if o.bbox {
        if let Some((lo, hi)) = p.heart_box() {
            if slice_cuts_box(frame.grid, frame.view.normal(), frame.crosshair, lo, hi) {
                let color = method_color(Method::Segmentation).gamma_multiply(0.8);
                painter.rect_stroke(
                    Rect::from_two_pos(frame.screen(lo), frame.screen(hi)),
                    0.0,
                    Stroke::new(1.0, color),
                    egui::StrokeKind::Middle,
                );
            }
        }
    }
    if !o.centres {
        return;
    }
    for f in &p.findings {
        let at = frame.screen(f.center_lps);
        let color = method_color(f.method);
        match frame.nearness(f.center_lps) {
            Nearness::On => {
                cross(painter, at, 9.0, Stroke::new(2.0, color));
                painter.text(
                    at + Vec2::new(8.0, 8.0),
                    egui::Align2::LEFT_TOP,
                    f.method.name()[..1].to_uppercase(),
                    egui::FontId::proportional(12.0),
                    color,
                );
            }
            Nearness::Near => {
                cross(
                    painter,
                    at,
                    6.0,
                    Stroke::new(1.0, color.gamma_multiply(0.35)),
                );
            }
            Nearness::Away => {}
        }
    }
}

/// Centres and the box in the 3D pane.
pub fn paint_volume(
    painter: &egui::Painter,
    frame: &VolumeFrame,
    o: &OverlaySettings,
    p: &Predictions,
) {
    if o.bbox {
        if let Some((lo, hi)) = p.heart_box() {
            let corner = |c: usize| {
                DVec3::new(
                    if c & 1 == 0 { lo.x } else { hi.x },
                    if c & 2 == 0 { lo.y } else { hi.y },
                    if c & 4 == 0 { lo.z } else { hi.z },
                )
            };
            let stroke = Stroke::new(1.0, method_color(Method::Segmentation));
            for a in 0..8usize {
                for bit in [1, 2, 4].into_iter().filter(|b| a & b == 0) {
                    let ends = (frame.screen(corner(a)), frame.screen(corner(a | bit)));
                    if let (Some(p0), Some(p1)) = ends {
                        painter.line_segment([p0, p1], stroke);
                    }
                }
            }
        }
    }
    if o.centres {
        for f in &p.findings {
            if let Some(at) = frame.screen(f.center_lps) {
                cross(painter, at, 8.0, Stroke::new(2.0, method_color(f.method)));
            }
        }
    }
}

fn cross(painter: &egui::Painter, at: Pos2, r: f32, stroke: Stroke) {
    painter.line_segment([at - Vec2::new(r, 0.0), at + Vec2::new(r, 0.0)], stroke);
    painter.line_segment([at - Vec2::new(0.0, r), at + Vec2::new(0.0, r)], stroke);
}

/// The 3D Labels mode's structure slots on `gpu`'s texels (built once per volume, label map,
/// prediction and mask switch) and its palette: the label map's structures in their colours
/// (those the user hid transparent), the segmentation in its colour where the mask overlay is
/// on. `None` when there is nothing to show.
pub fn structures_3d(
    models: &mut ModelsState,
    gpu: &GpuVolume,
    o: &OverlaySettings,
) -> Option<Box<StructureDraw>> {
    let labels = models.labels.as_ref().filter(|l| l.volume_id == gpu.id);
    let mask = models
        .predictions
        .as_ref()
        .filter(|p| p.volume_id == gpu.id && o.mask)
        .and_then(|p| p.mask.as_ref());
    if labels.is_none() && mask.is_none() {
        return None;
    }
    let key =
        crate::io::fnv1a(format!("{} {} {}", gpu.id, models.revision, mask.is_some()).as_bytes())
            .max(1);
    if models.structures.as_ref().is_none_or(|s| s.key != key) {
        let texels = overlay::structure_texels(
            gpu.dims,
            gpu.world_from_texel(),
            labels.map(|l| (&l.volume, l.present.as_slice())),
            mask.map(|(v, t)| (v, *t)),
        );
        models.structures = Some(Arc::new(GpuStructures {
            key,
            dims: gpu.dims,
            texels,
        }));
    }
    let mut palette = [[0.0f32; 4]; 16];
    if let Some(l) = labels {
        let slots = l.present.iter().take(overlay::MASK_SLOT as usize - 1);
        for (slot, value) in (1..).zip(slots) {
            let [r, g, b] = l.table.color(*value).map(|c| f32::from(c) / 255.0);
            let shown = !models.hidden_structures.contains(value);
            palette[slot] = [r, g, b, if shown { 1.0 } else { 0.0 }];
        }
    }
    if mask.is_some() {
        let c = method_color(Method::Segmentation);
        let [r, g, b] = [c.r(), c.g(), c.b()].map(|x| f32::from(x) / 255.0);
        palette[overlay::MASK_SLOT as usize] = [r, g, b, 1.0];
    }
    let slots = models.structures.clone()?;
    Some(Box::new(StructureDraw { slots, palette }))
}

/// What the 3D Labels mode shows along the ray through a pane point: the first shown
/// structure inside the rendered box, its name and where the ray meets it (LPS); the same
/// slots and box the renderer uses, marched at half a texel.
pub fn pick_structure(
    models: &ModelsState,
    gpu: &GpuVolume,
    ray: (DVec3, DVec3),
    crop_lps: Option<(DVec3, DVec3)>,
) -> Option<(String, DVec3)> {
    let slots = models.structures.as_ref().filter(|s| s.dims == gpu.dims)?;
    let (origin, dir) = ray;
    let [nx, ny, nz] = gpu.dims.map(|n| n as i64);
    let (lo, hi) = gpu.tex_box(crop_lps);
    let tex = |p: DVec3| gpu.tex_from_world.transform_point3(p);
    // Enter and leave the box in texture space (the ray is a line there too).
    let (o, e) = (tex(origin), tex(origin + dir));
    let d = e - o;
    let (t0, t1) = crate::volume::pick::ray_box(o, d, lo.as_dvec3(), hi.as_dvec3())?;
    // In front of the eye only.
    let t0 = t0.max(0.0);
    let texel = 1.0 / f64::from(*gpu.dims.iter().max()?);
    let step = 0.5 * texel / d.length().max(1e-12);
    let labels = models.labels.as_ref();
    let mut t = t0;
    while t <= t1 {
        let p = o + d * t;
        let i = [p.x * nx as f64, p.y * ny as f64, p.z * nz as f64].map(|x| x.floor() as i64);
        if (0..3).all(|a| (0..[nx, ny, nz][a]).contains(&i[a])) {
            let slot = slots.texels[(i[0] + nx * (i[1] + ny * i[2])) as usize];
            let name = match slot {
                0 => None,
                s if s == overlay::MASK_SLOT => Some("heart (segmentation)".to_string()),
                s => labels.and_then(|l| {
                    let value = l.present.get(s as usize - 1)?;
                    let shown = !models.hidden_structures.contains(value);
                    shown.then(|| l.table.name(*value))
                }),
            };
            if let Some(name) = name {
                return Some((name, origin + dir * t));
            }
        }
        t += step;
    }
    None
}
