//! What gestures over the 3D pane do: orbit, pan, zoom, name the structure under the pointer
//! (Labels mode), and place the armed landmark where the ray meets the isosurface.

use glam::DVec2;

use super::landmarks::Pointer;
use super::panes::{to_d, PaneAction};
use super::{models, HeartlocApp, Hover};
use crate::slice_view::{Pane, VolumeMode};
use crate::volume::Interpolation;

impl HeartlocApp {
    /// In the Labels mode, the structure under the pointer in 3D: its name and point.
    fn hover_3d(&mut self, at: DVec2) {
        let Some(doc) = &self.doc else { return };
        if self.settings.mode != VolumeMode::Labels {
            return;
        }
        let size = to_d(self.pane_rects[3].size());
        let ray = self.camera.ray(at, size);
        let picked = models::overlay::pick_structure(&self.models, &doc.gpu, ray, self.crop_lps());
        self.hover = picked.map(|(name, world)| Hover {
            world,
            ijk: doc.volume.voxel_from_world().transform_point3(world),
            value: doc.volume.sample_world(world, Interpolation::Trilinear),
            structure: Some(name),
        });
    }

    /// Apply a gesture over the 3D pane of height `height` (points).
    pub(super) fn apply_volume_action(&mut self, height: f32, action: PaneAction) {
        match action {
            PaneAction::Orbit(d) => self.camera.orbit(d),
            PaneAction::Pan(d) => self.camera.pan(d, f64::from(height)),
            PaneAction::Zoom { factor, .. } => self.camera.zoom(factor),
            PaneAction::ToggleMaximized => self.toggle_maximized(Pane::Volume),
            PaneAction::Hover(at) => self.hover_3d(at),
            PaneAction::Pointer { at, click: true } if self.landmarks.armed => self.place_3d(at),
            _ => {}
        }
        self.interacting |= action.is_interactive();
    }

    /// Place the armed landmark where the ray through pane point `at` first meets the
    /// isosurface level (what the Isosurface mode draws), inside the rendered box; every view
    /// moves there. Where the ray meets no surface, nothing is placed and the status bar says
    /// so.
    fn place_3d(&mut self, at: DVec2) {
        let Some(doc) = &self.doc else { return };
        let ray = self.camera.ray(at, to_d(self.pane_rects[3].size()));
        let hit = crate::volume::pick::first_crossing(&doc.volume, ray, self.iso, self.crop_lps());
        let Some(world) = hit else {
            self.message = Some(format!(
                "No surface at level {:.0} under the pointer: nothing placed (set the level \
                 under Volume view, or place on a slice)",
                self.iso
            ));
            return;
        };
        if self.landmarks.pointer(world, true) == Pointer::Placed {
            self.crosshair = world;
            self.warn_if_far_from_predictions(world);
        }
    }
}
