//! The 3D view's pure math and settings: rendering modes, DVR presets, the crop of the
//! rendered box, and the orbit camera with its projection and orientation marker.

use glam::{DMat4, DVec2, DVec3};

use crate::volume::Grid;

/// Volume-view rendering modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VolumeMode {
    Mip,
    Dvr,
    Isosurface,
    /// The structures of the label map (and the segmentation) as coloured, shaded surfaces.
    Labels,
}

impl VolumeMode {
    pub const ALL: [VolumeMode; 4] = [
        VolumeMode::Mip,
        VolumeMode::Dvr,
        VolumeMode::Isosurface,
        VolumeMode::Labels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VolumeMode::Mip => "MIP",
            VolumeMode::Dvr => "DVR",
            VolumeMode::Isosurface => "Isosurface",
            VolumeMode::Labels => "Labels",
        }
    }
}

/// Transfer-function presets of the DVR mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DvrPreset {
    /// Soft tissue faint red, contrast blood and bone bright.
    CardiacCt,
    /// A warm ramp over the upper half of the window.
    Mr,
}

impl DvrPreset {
    pub const ALL: [DvrPreset; 2] = [DvrPreset::CardiacCt, DvrPreset::Mr];

    /// The HU range its transfer function spans, for CT with a known HU scale (the shader's
    /// thresholds are fractions of it: myocardium from 60 HU, contrast blood from 150, bone
    /// from 450; fat, lung, skin and muscle below 60 stay clear). `None`: the slice window.
    pub fn hu_window(self) -> Option<(f64, f64)> {
        match self {
            DvrPreset::CardiacCt => Some((-100.0, 700.0)),
            DvrPreset::Mr => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DvrPreset::CardiacCt => "Cardiac CT",
            DvrPreset::Mr => "MR",
        }
    }
}

/// How much of the volume the 3D view renders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Crop {
    /// All of it.
    #[default]
    Whole,
    /// The segmented heart's box with a margin (the heart alone).
    Heart,
    /// A cube around the crosshair.
    Crosshair,
}

impl Crop {
    pub const ALL: [Crop; 3] = [Crop::Whole, Crop::Heart, Crop::Crosshair];

    pub fn name(self) -> &'static str {
        match self {
            Crop::Whole => "Whole",
            Crop::Heart => "Heart only",
            Crop::Crosshair => "Cube",
        }
    }
}

/// A clip plane set from the crosshair: the half of the volume on one side of the plane through
/// the crosshair is cut away (to look into the heart from the front, say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cut {
    #[default]
    None,
    /// What lies anterior of the coronal plane.
    Anterior,
    /// What lies superior of the axial plane.
    Superior,
    /// What lies to the patient's left of the sagittal plane.
    Left,
    /// What lies to the patient's right of the sagittal plane.
    Right,
}

impl Cut {
    pub const ALL: [Cut; 5] = [
        Cut::None,
        Cut::Anterior,
        Cut::Superior,
        Cut::Left,
        Cut::Right,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cut::None => "None",
            Cut::Anterior => "Front",
            Cut::Superior => "Top",
            Cut::Left => "Left",
            Cut::Right => "Right",
        }
    }

    /// The LPS box (min, max) left of `bounds` once this side of the plane through `at` is cut.
    pub fn apply(self, (lo, hi): (DVec3, DVec3), at: DVec3) -> (DVec3, DVec3) {
        let (mut lo, mut hi) = (lo, hi);
        match self {
            Cut::None => {}
            // LPS: anterior is −y, superior +z, left +x.
            Cut::Anterior => lo.y = lo.y.max(at.y),
            Cut::Superior => hi.z = hi.z.min(at.z),
            Cut::Left => hi.x = hi.x.min(at.x),
            Cut::Right => lo.x = lo.x.max(at.x),
        }
        (lo, hi.max(lo))
    }
}

/// Margin around the segmented heart's box in the "Heart only" crop (mm).
pub const HEART_MARGIN_MM: f64 = 8.0;

/// The orientation marker's six arms: the patient direction's letter, where the arm points on
/// screen (unit length at most; x right, y down) and how far it points toward the viewer
/// (positive: in front, drawn last).
pub type MarkerArm = (char, DVec2, f64);

/// Orbit camera around a target, perspective, looking at the patient from the front by default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrbitCamera {
    pub target: DVec3,
    /// Rotation about the superior axis, radians (0 = from anterior).
    pub yaw: f64,
    /// Elevation, radians.
    pub pitch: f64,
    pub distance_mm: f64,
}

impl OrbitCamera {
    pub fn fit(grid: &Grid) -> Self {
        let (lo, hi) = grid.world_bbox();
        OrbitCamera {
            target: (lo + hi) * 0.5,
            yaw: 0.0,
            pitch: 0.15,
            distance_mm: (hi - lo).length() * 1.9,
        }
    }

    pub fn eye(&self) -> DVec3 {
        // From anterior: the eye sits at -y (anterior) of the target, superior is up.
        let dir = DVec3::new(
            self.yaw.sin() * self.pitch.cos(),
            -self.yaw.cos() * self.pitch.cos(),
            self.pitch.sin(),
        );
        self.target + dir * self.distance_mm
    }

    /// Clip space (wgpu: depth 0..1) from LPS world.
    pub fn clip_from_world(&self, aspect: f64) -> DMat4 {
        perspective_rh(30f64.to_radians(), aspect.max(1e-3), 1.0, 1e5)
            * look_at_rh(self.eye(), self.target, DVec3::Z)
    }

    pub fn orbit(&mut self, delta_px: DVec2) {
        self.yaw -= delta_px.x * 0.01;
        self.pitch = (self.pitch + delta_px.y * 0.01).clamp(-1.5, 1.5);
    }

    pub fn zoom(&mut self, factor: f64) {
        self.distance_mm = (self.distance_mm / factor).clamp(10.0, 1e5);
    }

    pub fn pan(&mut self, delta_px: DVec2, viewport_height_px: f64) {
        let forward = (self.target - self.eye()).normalize();
        let right = forward.cross(DVec3::Z).normalize_or_zero();
        let up = right.cross(forward);
        let mm_per_px = 2.0 * self.distance_mm * (15f64.to_radians()).tan() / viewport_height_px;
        self.target += (-right * delta_px.x + up * delta_px.y) * mm_per_px;
    }
}

impl OrbitCamera {
    /// The ray through pane point `at` (from the pane's top-left, `size_px` the pane): its
    /// start on the near plane and its unit direction (LPS).
    pub fn ray(&self, at: DVec2, size_px: DVec2) -> (DVec3, DVec3) {
        let world_from_clip = self
            .clip_from_world(size_px.x / size_px.y.max(1.0))
            .inverse();
        let ndc = DVec2::new(
            at.x / size_px.x.max(1.0) * 2.0 - 1.0,
            1.0 - at.y / size_px.y.max(1.0) * 2.0,
        );
        let near = world_from_clip.project_point3(ndc.extend(0.0));
        let far = world_from_clip.project_point3(ndc.extend(1.0));
        (near, (far - near).normalize())
    }

    /// The orientation marker's arms (L, R, P, A, S, I) as this camera sees them.
    pub fn marker_arms(&self) -> [MarkerArm; 6] {
        let forward = (self.target - self.eye()).normalize();
        let right = forward.cross(DVec3::Z).normalize_or_zero();
        let up = right.cross(forward);
        [
            ('L', DVec3::X),
            ('R', -DVec3::X),
            ('P', DVec3::Y),
            ('A', -DVec3::Y),
            ('S', DVec3::Z),
            ('I', -DVec3::Z),
        ]
        .map(|(letter, d)| {
            (
                letter,
                DVec2::new(d.dot(right), -d.dot(up)),
                -d.dot(forward),
            )
        })
    }

    /// Pane point (from the pane's top-left) of a world point, or `None` behind the camera.
    pub fn screen_from_world(&self, world: DVec3, size_px: DVec2) -> Option<DVec2> {
        let clip = self.clip_from_world(size_px.x / size_px.y.max(1.0)) * world.extend(1.0);
        if clip.w <= 1e-6 {
            return None;
        }
        let ndc = clip.truncate() / clip.w;
        Some(DVec2::new(
            (ndc.x + 1.0) * 0.5 * size_px.x,
            (1.0 - ndc.y) * 0.5 * size_px.y,
        ))
    }
}

/// Right-handed view matrix: camera space from world, looking from `eye` at `target`.
fn look_at_rh(eye: DVec3, target: DVec3, up: DVec3) -> DMat4 {
    let f = (target - eye).normalize();
    let s = f.cross(up).normalize();
    let u = s.cross(f);
    DMat4::from_cols(
        glam::DVec4::new(s.x, u.x, -f.x, 0.0),
        glam::DVec4::new(s.y, u.y, -f.y, 0.0),
        glam::DVec4::new(s.z, u.z, -f.z, 0.0),
        glam::DVec4::new(-s.dot(eye), -u.dot(eye), f.dot(eye), 1.0),
    )
}

/// Right-handed perspective projection with wgpu's 0..1 depth range.
fn perspective_rh(fov_y: f64, aspect: f64, near: f64, far: f64) -> DMat4 {
    let h = 1.0 / (fov_y * 0.5).tan();
    let r = far / (near - far);
    DMat4::from_cols(
        glam::DVec4::new(h / aspect, 0.0, 0.0, 0.0),
        glam::DVec4::new(0.0, h, 0.0, 0.0),
        glam::DVec4::new(0.0, 0.0, r, -1.0),
        glam::DVec4::new(0.0, 0.0, r * near, 0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid::new([100, 80, 40], DMat4::from_scale(DVec3::new(1.0, 1.0, 2.5)))
    }

    #[test]
    fn camera_starts_in_front_of_the_patient() {
        let cam = OrbitCamera::fit(&grid());
        assert!(cam.eye().y < cam.target.y, "eye is anterior");
        let m = cam.clip_from_world(1.0);
        let left = m.project_point3(cam.target + DVec3::X * 10.0);
        assert!(
            left.x > 0.0,
            "patient left appears on screen right from the front"
        );
        let up = m.project_point3(cam.target + DVec3::Z * 10.0);
        assert!(up.y > 0.0, "superior appears up");
        let centre = m.project_point3(cam.target);
        assert!(centre.truncate().length() < 1e-9 && centre.z > 0.0 && centre.z < 1.0);
    }

    #[test]
    fn cuts_remove_the_named_side_of_the_crosshair_plane() {
        let b = (DVec3::splat(-10.0), DVec3::splat(10.0));
        let at = DVec3::new(2.0, -3.0, 4.0);
        assert_eq!(Cut::None.apply(b, at), b);
        // Anterior is −y in LPS: what stays is posterior of y = −3.
        assert_eq!(Cut::Anterior.apply(b, at).0.y, -3.0);
        assert_eq!(Cut::Superior.apply(b, at).1.z, 4.0);
        assert_eq!(Cut::Left.apply(b, at).1.x, 2.0);
        assert_eq!(Cut::Right.apply(b, at).0.x, 2.0);
        // A plane outside the box leaves it whole or empty, never inverted.
        let (lo, hi) = Cut::Right.apply(b, DVec3::splat(50.0));
        assert!(hi.x >= lo.x);
    }

    #[test]
    fn the_orientation_marker_agrees_with_the_projection() {
        let mut cam = OrbitCamera::fit(&grid());
        for (yaw, pitch) in [(0.0, 0.0), (0.7, 0.3), (2.5, -1.0)] {
            (cam.yaw, cam.pitch) = (yaw, pitch);
            let size = DVec2::new(400.0, 400.0);
            let centre = cam.screen_from_world(cam.target, size).unwrap();
            for (letter, dir, _) in cam.marker_arms() {
                let d = match letter {
                    'L' => DVec3::X,
                    'R' => -DVec3::X,
                    'P' => DVec3::Y,
                    'A' => -DVec3::Y,
                    'S' => DVec3::Z,
                    _ => -DVec3::Z,
                };
                let moved = cam.screen_from_world(cam.target + d, size).unwrap() - centre;
                if dir.length() > 0.2 {
                    let cos = moved.normalize().dot(dir.normalize());
                    assert!(cos > 0.99, "{letter} at yaw {yaw}: {moved} vs {dir}");
                }
            }
        }
        // From the front: patient left on screen right, superior up, anterior toward us.
        (cam.yaw, cam.pitch) = (0.0, 0.0);
        let arms = cam.marker_arms();
        assert!(arms[0].1.x > 0.99 && arms[4].1.y < -0.99 && arms[3].2 > 0.99);
    }

    #[test]
    fn a_pane_point_s_ray_projects_back_onto_it() {
        let mut cam = OrbitCamera::fit(&grid());
        (cam.yaw, cam.pitch) = (0.9, -0.4);
        let size = DVec2::new(320.0, 200.0);
        let at = DVec2::new(70.0, 150.0);
        let (o, d) = cam.ray(at, size);
        for t in [10.0, 200.0, 900.0] {
            let p = cam.screen_from_world(o + d * t, size).unwrap();
            assert!((p - at).length() < 1e-6, "{p} vs {at}");
        }
        assert!((d.length() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn camera_projects_its_target_to_the_pane_centre_and_hides_points_behind_it() {
        let cam = OrbitCamera::fit(&grid());
        let size = DVec2::new(300.0, 200.0);
        let c = cam.screen_from_world(cam.target, size).unwrap();
        assert!((c - size * 0.5).length() < 1e-6);
        let behind = cam.eye() + (cam.eye() - cam.target);
        assert!(cam.screen_from_world(behind, size).is_none());
    }
}
