//! The four panes: their layout, the pointer and keys over each turned into [`PaneAction`]s,
//! and their drawing (the GPU image, crosshair, orientation letters, title, scale bar). Each
//! pane's geometry is a [`SliceFrame`] or [`VolumeFrame`], which the landmark and model
//! overlays draw through.

use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use glam::{DVec2, DVec3};

use super::keys::{self, KeyAction, Scope};
use crate::render::{self, GpuVolume, PaneDraw};
use crate::slice_view::{
    nearness, plane_outline, scale_bar_mm, DvrPreset, Nearness, OrbitCamera, Pane, Plane, Slab,
    SliceView, VolumeMode, Window,
};
use crate::volume::Grid;

/// The colours of the three slice planes (titles, frames, crosshair lines, 3D cross).
pub const PANE_COLORS: [Color32; 3] = [
    Color32::from_rgb(90, 200, 255),
    Color32::from_rgb(120, 230, 120),
    Color32::from_rgb(255, 190, 80),
];

pub fn to_d(v: Vec2) -> DVec2 {
    DVec2::new(f64::from(v.x), f64::from(v.y))
}

pub fn to_v(v: DVec2) -> Vec2 {
    Vec2::new(v.x as f32, v.y as f32)
}

/// Where each pane goes in `full`: a 2×2 grid, or one maximised pane (the others
/// `Rect::NOTHING`).
pub fn layout(full: Rect, maximized: Option<Pane>) -> [Rect; 4] {
    if let Some(m) = maximized {
        let mut rects = [Rect::NOTHING; 4];
        rects[m.index()] = full.shrink(1.0);
        return rects;
    }
    let half = full.size() / 2.0;
    [
        Rect::from_min_size(full.min, half),
        Rect::from_min_size(full.min + Vec2::new(half.x, 0.0), half),
        Rect::from_min_size(full.min + Vec2::new(0.0, half.y), half),
        Rect::from_min_size(full.min + half, half),
    ]
    .map(|r| r.shrink(1.0))
}

/// One slice pane's geometry this frame: screen ↔ world and what is on the slice.
pub struct SliceFrame<'a> {
    pub pane: Pane,
    pub rect: Rect,
    pub view: SliceView,
    pub crosshair: DVec3,
    pub grid: &'a Grid,
    /// The slab the image shows (thin: the plane alone).
    pub slab: Slab,
}

impl SliceFrame<'_> {
    pub fn size(&self) -> DVec2 {
        to_d(self.rect.size())
    }

    /// Screen point (egui points) of a world point.
    pub fn screen(&self, world: DVec3) -> Pos2 {
        self.rect.min + to_v(self.view.screen_from_world(world, self.size()))
    }

    /// World point on the shown slice under a point relative to the pane's top-left.
    pub fn world(&self, pos: DVec2) -> DVec3 {
        self.view
            .world_from_screen(pos, self.size(), self.crosshair)
    }

    pub fn nearness(&self, world: DVec3) -> Nearness {
        nearness(self.grid, self.view.normal(), self.crosshair, world)
    }
}

/// The 3D pane's geometry this frame.
pub struct VolumeFrame {
    pub rect: Rect,
    pub camera: OrbitCamera,
}

impl VolumeFrame {
    /// Screen point of a world point, `None` behind the camera.
    pub fn screen(&self, world: DVec3) -> Option<Pos2> {
        self.camera
            .screen_from_world(world, to_d(self.rect.size()))
            .map(|s| self.rect.min + to_v(s))
    }
}

/// What the pointer and keys did over a pane this frame. Points are relative to the pane's
/// top-left, in egui points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PaneAction {
    /// Ctrl+wheel: zoom by `factor` about `at`.
    Zoom {
        factor: f64,
        at: DVec2,
    },
    /// Move the slice by whole steps along the normal.
    Slice(f64),
    ToggleMaximized,
    /// Middle drag (slice: move the view; 3D: move the target).
    Pan(DVec2),
    /// Right drag: window/level.
    DragWindow(DVec2),
    /// 3D left drag: orbit.
    Orbit(DVec2),
    /// A left drag started here: grab a landmark under it.
    Press(DVec2),
    /// A left click or drag is here.
    Pointer {
        at: DVec2,
        click: bool,
    },
    Release,
    /// The pointer is over this point.
    Hover(DVec2),
    /// Turn the three planes about this pane's normal (degrees).
    Turn(f64),
    /// Move the active landmark by this much along the pane's screen axes (mm).
    Nudge(DVec2),
}

impl PaneAction {
    /// Whether it moves the picture continuously (drawn faster, at lower quality, meanwhile).
    pub fn is_interactive(self) -> bool {
        matches!(self, PaneAction::Pan(_) | PaneAction::Orbit(_))
    }
}

/// Vertical mouse-wheel movement this frame in notches (lines), positive away from the user.
fn wheel_notches(input: &egui::InputState) -> f32 {
    input
        .raw
        .events
        .iter()
        .map(|e| match e {
            egui::Event::MouseWheel { unit, delta, .. } => match unit {
                egui::MouseWheelUnit::Point => delta.y / 50.0,
                egui::MouseWheelUnit::Line => delta.y,
                egui::MouseWheelUnit::Page => delta.y * 10.0,
            },
            _ => 0.0,
        })
        .sum()
}

/// The pane's response, labelled for AccessKit ("Axial view", "3D view").
fn interact(ui: &egui::Ui, pane: Pane, rect: Rect) -> egui::Response {
    let id = match pane {
        Pane::Volume => egui::Id::unique("heartloc-volume-pane"),
        _ => egui::Id::unique(("heartloc-pane", pane.index())),
    };
    let response = ui.interact(rect, id, Sense::click_and_drag());
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Image, true, format!("{} view", pane.name()))
    });
    response
}

/// Wheel, pane keys and double-click over a hovered pane.
fn hover_actions(ui: &egui::Ui, response: &egui::Response, slices: bool) -> Vec<PaneAction> {
    let mut out = Vec::new();
    if response.hovered() {
        let (scroll, ctrl, pointer, keys) = ui.input(|i| {
            (
                wheel_notches(i),
                i.modifiers.command || i.modifiers.ctrl,
                i.pointer.hover_pos(),
                keys::pressed(i, Scope::Pane),
            )
        });
        let factor = 1.15f64.powf(f64::from(scroll));
        match (scroll != 0.0, slices && !ctrl, pointer) {
            (false, _, _) => {}
            (true, true, _) => out.push(PaneAction::Slice(f64::from(scroll.signum()))),
            (true, false, Some(p)) => out.push(PaneAction::Zoom {
                factor,
                at: to_d(p - response.rect.min),
            }),
            (true, false, None) => {}
        }
        for k in keys {
            match k {
                KeyAction::Slice(s) if slices => out.push(PaneAction::Slice(f64::from(s))),
                KeyAction::Maximise => out.push(PaneAction::ToggleMaximized),
                KeyAction::Turn(deg) if slices => out.push(PaneAction::Turn(f64::from(deg))),
                KeyAction::Nudge {
                    right,
                    down,
                    coarse,
                } if slices => {
                    let mm = if coarse { 2.0 } else { 0.5 };
                    let by = DVec2::new(f64::from(right), f64::from(down)) * mm;
                    out.push(PaneAction::Nudge(by));
                }
                _ => {}
            }
        }
    }
    if response.double_clicked() {
        out.push(PaneAction::ToggleMaximized);
    }
    out
}

/// A slice pane's input this frame.
pub fn slice_input(ui: &egui::Ui, pane: Pane, rect: Rect) -> Vec<PaneAction> {
    use egui::PointerButton::{Middle, Primary, Secondary};
    let response = interact(ui, pane, rect).on_hover_cursor(egui::CursorIcon::Crosshair);
    let rel = |p: Pos2| to_d(p - rect.min);
    let mut out = hover_actions(ui, &response, true);
    if response.dragged_by(Middle) {
        out.push(PaneAction::Pan(to_d(response.drag_delta())));
    }
    if response.dragged_by(Secondary) {
        out.push(PaneAction::DragWindow(to_d(response.drag_delta())));
    }
    if response.drag_started_by(Primary) {
        if let Some(o) = ui.input(|i| i.pointer.press_origin()) {
            out.push(PaneAction::Press(rel(o)));
        }
    }
    if response.clicked_by(Primary) || response.dragged_by(Primary) {
        if let Some(p) = response.interact_pointer_pos() {
            let click = response.clicked_by(Primary);
            out.push(PaneAction::Pointer { at: rel(p), click });
        }
    }
    if response.drag_stopped_by(Primary) {
        out.push(PaneAction::Release);
    }
    if let Some(p) = response.hover_pos() {
        out.push(PaneAction::Hover(rel(p)));
    }
    out
}

/// The 3D pane's input this frame.
pub fn volume_input(ui: &egui::Ui, rect: Rect) -> Vec<PaneAction> {
    let response = interact(ui, Pane::Volume, rect);
    let mut out = Vec::new();
    if response.dragged_by(egui::PointerButton::Primary) {
        out.push(PaneAction::Orbit(to_d(response.drag_delta())));
    }
    if response.clicked_by(egui::PointerButton::Primary) {
        if let Some(p) = response.interact_pointer_pos() {
            let at = to_d(p - rect.min);
            out.push(PaneAction::Pointer { at, click: true });
        }
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        out.push(PaneAction::Pan(to_d(response.drag_delta())));
    }
    out.extend(hover_actions(ui, &response, false));
    if let Some(p) = response.hover_pos() {
        out.push(PaneAction::Hover(to_d(p - rect.min)));
    }
    out
}

/// The slice image itself (the GPU callback).
pub fn paint_slice_image(ui: &egui::Ui, frame: &SliceFrame, gpu: &Arc<GpuVolume>, window: Window) {
    let draw = PaneDraw::Slice {
        view: frame.view,
        crosshair: frame.crosshair,
        window,
        slab: frame.slab.samples(frame.grid, frame.view.normal()),
    };
    let callback = render::pane_callback(
        frame.pane,
        gpu.clone(),
        draw,
        frame.rect,
        ui.ctx().pixels_per_point(),
    );
    ui.painter_at(frame.rect).add(callback);
}

/// Crosshair lines in the colours of the other two planes.
pub fn paint_crosshair(painter: &egui::Painter, frame: &SliceFrame) {
    let c = frame.screen(frame.crosshair);
    let (vertical_plane, horizontal_plane) = match frame.view.plane {
        Plane::Axial => (2, 1),
        Plane::Coronal => (2, 0),
        Plane::Sagittal => (1, 0),
    };
    let rect = frame.rect;
    let line = |i: usize| Stroke::new(1.0, PANE_COLORS[i].gamma_multiply(0.7));
    painter.vline(c.x, rect.y_range(), line(vertical_plane));
    painter.hline(rect.x_range(), c.y, line(horizontal_plane));
}

/// Orientation letters, the title with the slice position, the scale bar and the frame.
pub fn paint_slice_decorations(painter: &egui::Painter, frame: &SliceFrame) {
    let (rect, plane, view) = (frame.rect, frame.view.plane, frame.view);
    let [l, r, t, b] = view.edge_letters();
    let font = egui::FontId::proportional(15.0);
    let yellow = Color32::from_rgb(255, 235, 120);
    for (pos, align, s) in [
        (
            rect.left_center() + Vec2::new(4.0, 0.0),
            egui::Align2::LEFT_CENTER,
            l,
        ),
        (
            rect.right_center() - Vec2::new(4.0, 0.0),
            egui::Align2::RIGHT_CENTER,
            r,
        ),
        (
            rect.center_top() + Vec2::new(0.0, 4.0),
            egui::Align2::CENTER_TOP,
            t,
        ),
        (
            rect.center_bottom() - Vec2::new(0.0, 4.0),
            egui::Align2::CENTER_BOTTOM,
            b,
        ),
    ] {
        painter.text(pos, align, s, font.clone(), yellow);
    }
    let n = view.normal();
    let color = PANE_COLORS[frame.pane.index()];
    let oblique = if view.rotation.angle_between(glam::DQuat::IDENTITY) > 1e-6 {
        " (oblique)"
    } else {
        ""
    };
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        format!(
            "{}{oblique}  {:.1} mm  {}",
            plane.name(),
            frame.crosshair.dot(n),
            frame.slab.label()
        ),
        egui::FontId::proportional(13.0),
        color,
    );
    let bar_mm = scale_bar_mm(f64::from(rect.width()) * view.mm_per_px);
    let bar_px = (bar_mm / view.mm_per_px) as f32;
    let y = rect.bottom() - 22.0;
    let x0 = rect.left() + 10.0;
    painter.line_segment(
        [Pos2::new(x0, y), Pos2::new(x0 + bar_px, y)],
        Stroke::new(2.0, Color32::WHITE),
    );
    painter.text(
        Pos2::new(x0 + bar_px / 2.0, y - 3.0),
        egui::Align2::CENTER_BOTTOM,
        format!("{bar_mm} mm"),
        egui::FontId::proportional(11.0),
        Color32::WHITE,
    );
    let edge = Stroke::new(1.0, color.gamma_multiply(0.4));
    painter.rect_stroke(rect, 0.0, edge, egui::StrokeKind::Inside);
}

/// How the 3D view is drawn this frame.
pub struct VolumeLook {
    pub mode: VolumeMode,
    pub dvr: DvrPreset,
    pub window: Window,
    pub iso: f64,
    /// The user is dragging: coarser rays at a third of the resolution keep the view
    /// responsive without a GPU; the full-quality frame follows when they stop.
    pub interacting: bool,
    /// The fraction of the pane's resolution drawn while interacting ([`Preview`]).
    pub preview_scale: f64,
    /// Only this LPS box is rendered.
    pub crop_lps: Option<(DVec3, DVec3)>,
    /// The Labels mode's structures and palette.
    pub structures: Option<Box<crate::render::StructureDraw>>,
}

/// The 3D view's resolution while the user orbits: the fraction of the pane drawn adapts to the
/// time between interactive frames, so that orbiting stays near 10–16 fps on a software
/// rasteriser on a busy machine and sharper where frames are cheap (a GPU). Still frames are
/// always drawn at full resolution.
#[derive(Clone, Copy, Debug)]
pub struct Preview {
    pub scale: f64,
    last: Option<std::time::Instant>,
}

impl Default for Preview {
    fn default() -> Self {
        Preview {
            scale: 0.33,
            last: None,
        }
    }
}

impl Preview {
    const MIN: f64 = 0.12;
    const MAX: f64 = 0.6;

    /// Once per frame: `interacting` tells whether the frame before was an interactive one
    /// (only the time between two of those says how costly previews are).
    pub fn frame(&mut self, now: std::time::Instant, interacting: bool) {
        if !interacting {
            self.last = None;
            return;
        }
        if let Some(last) = self.last {
            let ms = now.duration_since(last).as_secs_f64() * 1e3;
            if ms > 90.0 {
                self.scale *= 0.8;
            } else if ms < 55.0 {
                self.scale *= 1.1;
            }
            self.scale = self.scale.clamp(Self::MIN, Self::MAX);
        }
        self.last = Some(now);
    }
}

/// The 3D image (the GPU callback), the three slice planes' outlines where they cut the volume,
/// and the crosshair as a small 3D cross, each in its plane's colour (arms along the normals,
/// turned planes included).
pub fn paint_volume_image(
    ui: &egui::Ui,
    frame: &VolumeFrame,
    gpu: &Arc<GpuVolume>,
    look: &VolumeLook,
    planes: (&[SliceView; 3], &Grid),
    crosshair: DVec3,
) {
    let draw = PaneDraw::Volume {
        camera: frame.camera,
        mode: look.mode,
        window: look.window,
        iso: look.iso,
        dvr: look.dvr,
        step_voxels: if look.interacting { 2.0 } else { 1.0 },
        resolution_scale: if look.interacting {
            look.preview_scale
        } else {
            1.0
        },
        crop_lps: look.crop_lps,
        structures: look.structures.clone(),
    };
    let painter = ui.painter_at(frame.rect);
    painter.add(render::pane_callback(
        Pane::Volume,
        gpu.clone(),
        draw,
        frame.rect,
        ui.ctx().pixels_per_point(),
    ));
    let (views, grid) = planes;
    for (view, color) in views.iter().zip(PANE_COLORS) {
        let outline = plane_outline(grid, crosshair, view.normal());
        let corners: Option<Vec<Pos2>> = outline.iter().map(|p| frame.screen(*p)).collect();
        if let Some(corners) = corners.filter(|c| c.len() >= 3) {
            let stroke = Stroke::new(1.0, color.gamma_multiply(0.6));
            painter.add(egui::Shape::closed_line(corners, stroke));
        }
        let axis = view.normal();
        let a = frame.screen(crosshair - axis * 20.0);
        let b = frame.screen(crosshair + axis * 20.0);
        if let (Some(a), Some(b)) = (a, b) {
            painter.line_segment([a, b], Stroke::new(2.0, color));
        }
    }
}

/// The 3D pane's title, frame and orientation marker.
pub fn paint_volume_decorations(painter: &egui::Painter, frame: &VolumeFrame, mode: VolumeMode) {
    let rect = frame.rect;
    paint_orientation_marker(painter, rect, &frame.camera);
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        format!("3D  {}", mode.name()),
        egui::FontId::proportional(13.0),
        Color32::LIGHT_GRAY,
    );
    let edge = Stroke::new(1.0, Color32::from_gray(60));
    painter.rect_stroke(rect, 0.0, edge, egui::StrokeKind::Inside);
}

/// An orientation cube in the 3D pane's lower-left corner: each face that turns toward the
/// viewer is lettered with the patient direction it faces (L/R, A/P, S/I) and tinted in the
/// colour of the plane it is parallel to, so the view's orientation reads at a glance.
fn paint_orientation_marker(painter: &egui::Painter, rect: Rect, camera: &OrbitCamera) {
    let centre = rect.left_bottom() + Vec2::new(44.0, -44.0);
    let arms = camera.marker_arms();
    // Screen offset (points) of a world vector: linear in it, so the +X, +Y, +Z arms span it.
    let half = 15.0;
    let screen = |v: DVec3| {
        let d = arms[0].1 * v.x + arms[2].1 * v.y + arms[4].1 * v.z;
        centre + Vec2::new(d.x as f32, d.y as f32) * half
    };
    let mut faces: Vec<(f64, char, DVec3, Color32)> = arms
        .iter()
        .enumerate()
        .map(|(i, &(letter, _, depth))| {
            let axis = [DVec3::X, DVec3::Y, DVec3::Z][i / 2];
            let normal = if i % 2 == 0 { axis } else { -axis };
            let color = [PANE_COLORS[2], PANE_COLORS[1], PANE_COLORS[0]][i / 2];
            (depth, letter, normal, color)
        })
        .collect();
    faces.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (depth, letter, n, color) in faces.into_iter().filter(|f| f.0 > 0.02) {
        // The face's two in-plane axes.
        let (u, v) = if n.x != 0.0 {
            (DVec3::Y, DVec3::Z)
        } else if n.y != 0.0 {
            (DVec3::X, DVec3::Z)
        } else {
            (DVec3::X, DVec3::Y)
        };
        let corners = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
            .map(|(a, b)| screen(n + u * a + v * b))
            .to_vec();
        let fill = color.gamma_multiply(0.25 + 0.45 * depth as f32);
        painter.add(egui::Shape::convex_polygon(
            corners,
            fill,
            Stroke::new(1.0, Color32::from_gray(150)),
        ));
        painter.text(
            screen(n),
            egui::Align2::CENTER_CENTER,
            letter,
            egui::FontId::proportional(9.0 + 5.0 * depth as f32),
            Color32::from_gray(235),
        );
    }
}

/// The message drawn over the pane area when there is nothing to show.
pub fn paint_notice(ui: &egui::Ui, full: Rect, text: &str, color: Color32) {
    ui.painter().text(
        full.center(),
        egui::Align2::CENTER_CENTER,
        text,
        egui::FontId::proportional(16.0),
        color,
    );
}

#[cfg(test)]
mod tests {
    use super::Preview;
    use std::time::{Duration, Instant};

    #[test]
    fn the_preview_shrinks_when_frames_are_slow_and_grows_when_they_are_fast() {
        let mut p = Preview::default();
        let mut t = Instant::now();
        p.frame(t, true);
        for _ in 0..30 {
            t += Duration::from_millis(250);
            p.frame(t, true);
        }
        assert!((p.scale - Preview::MIN).abs() < 1e-9, "{}", p.scale);
        // A pause (no interaction) is not a slow frame.
        p.frame(t + Duration::from_secs(5), false);
        p.frame(t + Duration::from_secs(6), true);
        assert!((p.scale - Preview::MIN).abs() < 1e-9);
        for i in 1..60 {
            p.frame(
                t + Duration::from_secs(6) + Duration::from_millis(20 * i),
                true,
            );
        }
        assert!((p.scale - Preview::MAX).abs() < 1e-9, "{}", p.scale);
    }
}
