//! Slice-view state and its pure mappings: screen pixel ↔ world (LPS mm), zoom, pan, slice
//! stepping, window/level presets and the 3D orbit camera. No GUI or GPU imports: the app reads
//! and writes this, the renderer draws what it says.
//!
//! Slices are cut in **world orientation** (planes of the LPS axes), not voxel orientation, so an
//! oblique or flipped file shows the patient the same way as a straight one. Display follows the
//! radiological convention: patient right on screen left (axial, coronal), anterior on screen
//! left (sagittal), superior up.

#[cfg(test)]
use glam::DMat4;
use glam::{DQuat, DVec2, DVec3};

use crate::volume::{direction_letter, Grid};

mod camera;
mod window;
pub use camera::{Crop, Cut, DvrPreset, MarkerArm, OrbitCamera, VolumeMode, HEART_MARGIN_MM};
pub use window::{Intensity, Modality, Window, WindowPreset};

/// The three orthogonal slice planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "Axial",
            Plane::Coronal => "Coronal",
            Plane::Sagittal => "Sagittal",
        }
    }

    /// LPS unit vectors of screen-right, screen-down and the plane normal.
    pub fn axes(self) -> (DVec3, DVec3, DVec3) {
        match self {
            // Looking from the feet: patient left (+x) on screen right, posterior (+y) down.
            Plane::Axial => (DVec3::X, DVec3::Y, DVec3::Z),
            // Looking from the front: left on screen right, superior up.
            Plane::Coronal => (DVec3::X, -DVec3::Z, DVec3::Y),
            // Looking from the patient's left: anterior on screen left, superior up.
            Plane::Sagittal => (DVec3::Y, -DVec3::Z, DVec3::X),
        }
    }

    /// Orientation letters at the left, right, top and bottom edges.
    pub fn edge_letters(self) -> [&'static str; 4] {
        match self {
            Plane::Axial => ["R", "L", "A", "P"],
            Plane::Coronal => ["R", "L", "S", "I"],
            Plane::Sagittal => ["A", "P", "S", "I"],
        }
    }
}

/// One slice pane: which plane, how the three planes are turned (oblique reformatting), where
/// its centre is and how many mm a pixel covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceView {
    pub plane: Plane,
    /// World rotation of the patient-axis planes (identity: axial, coronal, sagittal as they
    /// are). The three views share one, so they stay orthogonal and linked.
    pub rotation: DQuat,
    /// World point shown at the pane centre (its through-plane part is ignored: the crosshair
    /// decides which slice is shown).
    pub center_mm: DVec3,
    pub mm_per_px: f64,
}

impl SliceView {
    /// A view of `plane` along the patient axes.
    pub fn new(plane: Plane, center_mm: DVec3, mm_per_px: f64) -> Self {
        SliceView {
            plane,
            rotation: DQuat::IDENTITY,
            center_mm,
            mm_per_px,
        }
    }

    /// LPS unit vectors of screen-right, screen-down and the plane normal, turned by the
    /// view's rotation.
    pub fn axes(&self) -> (DVec3, DVec3, DVec3) {
        let (r, d, n) = self.plane.axes();
        (self.rotation * r, self.rotation * d, self.rotation * n)
    }

    pub fn normal(&self) -> DVec3 {
        self.axes().2
    }

    /// Frame the whole grid (its box as seen along the view's axes) in a pane of `size_px`.
    pub fn fit(self, grid: &Grid, size_px: DVec2) -> Self {
        let (lo, hi) = grid.world_bbox();
        let extent = hi - lo + DVec3::from_array(grid.spacing_mm());
        let (r, d, _) = self.axes();
        let w = extent.dot(r.abs());
        let h = extent.dot(d.abs());
        let mm_per_px = (w / size_px.x.max(1.0)).max(h / size_px.y.max(1.0)) * 1.05;
        SliceView {
            center_mm: (lo + hi) * 0.5,
            mm_per_px: mm_per_px.max(1e-3),
            ..self
        }
    }

    /// World point under pane pixel `pos_px` (from the pane's top-left), on the slice through
    /// `crosshair`.
    pub fn world_from_screen(&self, pos_px: DVec2, size_px: DVec2, crosshair: DVec3) -> DVec3 {
        let (r, d, n) = self.axes();
        let c = self.center_mm + n * (crosshair - self.center_mm).dot(n);
        c + r * (pos_px.x - size_px.x * 0.5) * self.mm_per_px
            + d * (pos_px.y - size_px.y * 0.5) * self.mm_per_px
    }

    /// Pane pixel of a world point (its through-plane part is dropped).
    pub fn screen_from_world(&self, world: DVec3, size_px: DVec2) -> DVec2 {
        let (r, d, _) = self.axes();
        let rel = world - self.center_mm;
        DVec2::new(
            rel.dot(r) / self.mm_per_px + size_px.x * 0.5,
            rel.dot(d) / self.mm_per_px + size_px.y * 0.5,
        )
    }

    /// Zoom by `factor` (>1 zooms in) keeping the world point under `pos_px` fixed.
    pub fn zoom_about(&mut self, factor: f64, pos_px: DVec2, size_px: DVec2) {
        let anchor = self.world_from_screen(pos_px, size_px, self.center_mm);
        self.mm_per_px = (self.mm_per_px / factor).clamp(1e-3, 1e3);
        let moved = self.world_from_screen(pos_px, size_px, self.center_mm);
        self.center_mm += anchor - moved;
    }

    /// Frame a box of `extent_mm` (LPS) around `centre` in a pane of `size_px`.
    pub fn framing(self, centre: DVec3, extent_mm: DVec3, size_px: DVec2) -> Self {
        let (r, d, _) = self.axes();
        SliceView {
            center_mm: centre,
            mm_per_px: (extent_mm.dot(r.abs()) / size_px.x).max(extent_mm.dot(d.abs()) / size_px.y),
            ..self
        }
    }

    /// Move the view by a drag of `delta_px` (content follows the pointer).
    pub fn pan(&mut self, delta_px: DVec2) {
        let (r, d, _) = self.axes();
        self.center_mm -= (r * delta_px.x + d * delta_px.y) * self.mm_per_px;
    }

    /// Orientation letters at the left, right, top and bottom edges: the patient direction
    /// each edge points to most (as [`Plane::edge_letters`] when not rotated).
    pub fn edge_letters(&self) -> [&'static str; 4] {
        let (r, d, _) = self.axes();
        [-r, r, -d, d].map(direction_letter)
    }
}

/// Step between slices along a normal: the spacing of the voxel axis most aligned with it
/// (10 mm for ACDC's axial slices, 1.5 mm in-plane).
pub fn slice_step_mm(grid: &Grid, normal: DVec3) -> f64 {
    let spacing = grid.spacing_mm();
    let dirs = grid.directions();
    let best = (0..3)
        .max_by(|&a, &b| {
            dirs[a]
                .dot(normal)
                .abs()
                .total_cmp(&dirs[b].dot(normal).abs())
        })
        .unwrap_or(2);
    spacing[best]
}

/// How a slice view shows the volume across a slab around its plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlabMode {
    /// The plane alone.
    #[default]
    Thin,
    /// Maximum intensity projection across the slab (contrast-filled vessels, the aortic root).
    Max,
    /// The slab's mean (a thick slice: less noise).
    Mean,
}

impl SlabMode {
    pub const ALL: [SlabMode; 3] = [SlabMode::Thin, SlabMode::Max, SlabMode::Mean];

    pub fn name(self) -> &'static str {
        match self {
            SlabMode::Thin => "Thin",
            SlabMode::Max => "MIP",
            SlabMode::Mean => "Mean",
        }
    }
}

/// A slab: the mode and its full thickness (mm), centred on the plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slab {
    pub mode: SlabMode,
    pub thickness_mm: f64,
}

impl Default for Slab {
    fn default() -> Self {
        Slab {
            mode: SlabMode::Thin,
            thickness_mm: 10.0,
        }
    }
}

/// What the renderer samples for a slab: `count` planes (odd) `step_mm` apart along the normal,
/// centred on the shown one, combined by `mode`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlabSamples {
    pub mode: SlabMode,
    pub count: u32,
    pub step_mm: f64,
}

/// The most planes one slab samples per pixel (a 50 mm slab of 0.5 mm voxels at half-voxel steps
/// would want 200).
pub const MAX_SLAB_SAMPLES: u32 = 129;

impl Slab {
    pub const MAX_THICKNESS_MM: f64 = 50.0;

    /// The planes to sample in `grid` along `normal`: half a voxel apart (the slice step), as many
    /// as fill the thickness, at most [`MAX_SLAB_SAMPLES`] (then further apart). Thin: one.
    pub fn samples(self, grid: &Grid, normal: DVec3) -> SlabSamples {
        let thickness = self.thickness_mm.clamp(0.0, Self::MAX_THICKNESS_MM);
        let step = 0.5 * slice_step_mm(grid, normal);
        if self.mode == SlabMode::Thin || !step.is_finite() || step <= 0.0 || thickness < step {
            return SlabSamples {
                mode: SlabMode::Thin,
                count: 1,
                step_mm: 0.0,
            };
        }
        let half = ((0.5 * thickness / step).floor() as u32).min(MAX_SLAB_SAMPLES / 2);
        let count = 2 * half + 1;
        SlabSamples {
            mode: self.mode,
            count,
            step_mm: thickness / (count - 1) as f64,
        }
    }

    /// "MIP 20 mm" for a pane's title; empty when thin.
    pub fn label(self) -> String {
        match self.mode {
            SlabMode::Thin => String::new(),
            mode => format!("{} {:.0} mm", mode.name(), self.thickness_mm),
        }
    }
}

/// Where the plane through `point` with `normal` cuts the grid's box (voxel centres' hull, as
/// oriented as the grid): the corners of that polygon in order around it, for drawing the slice
/// planes in the 3D view. Empty when the plane misses the box.
pub fn plane_outline(grid: &Grid, point: DVec3, normal: DVec3) -> Vec<DVec3> {
    let n = normal.normalize_or_zero();
    let hi = grid.dims.map(|d| d.saturating_sub(1) as f64);
    let corner = |c: usize| {
        let ijk = DVec3::new(
            if c & 1 != 0 { hi[0] } else { 0.0 },
            if c & 2 != 0 { hi[1] } else { 0.0 },
            if c & 4 != 0 { hi[2] } else { 0.0 },
        );
        grid.world_from_index(ijk)
    };
    let mut cuts = Vec::new();
    // The box's 12 edges join corners that differ in one index bit.
    for a in 0..8usize {
        for bit in [1usize, 2, 4] {
            let b = a | bit;
            if b == a {
                continue;
            }
            let (pa, pb) = (corner(a), corner(b));
            let (da, db) = ((pa - point).dot(n), (pb - point).dot(n));
            if (da <= 0.0) != (db <= 0.0) {
                cuts.push(pa + (pb - pa) * (da / (da - db)));
            }
        }
    }
    if cuts.len() < 3 {
        return Vec::new();
    }
    let centre = cuts.iter().sum::<DVec3>() / cuts.len() as f64;
    let u = n.any_orthonormal_vector();
    let v = n.cross(u);
    cuts.sort_by(|p, q| {
        let angle = |x: &DVec3| (*x - centre).dot(v).atan2((*x - centre).dot(u));
        angle(p).total_cmp(&angle(q))
    });
    cuts
}

/// Move `crosshair` by `steps` slices along `normal`, kept inside the grid's box.
pub fn step_slice(grid: &Grid, normal: DVec3, crosshair: DVec3, steps: f64) -> DVec3 {
    let (lo, hi) = grid.world_bbox();
    let moved = crosshair + normal * steps * slice_step_mm(grid, normal);
    moved.clamp(lo, hi)
}

/// The rotation that shows a grid in its own voxel planes: the axial view on voxel axes i
/// (screen right) and j (screen down), its normal along k (short-axis MR in its native plane).
pub fn voxel_planes(grid: &Grid) -> DQuat {
    let [i, j, _] = grid.directions();
    let i = i.normalize_or_zero();
    let j = (j - i * j.dot(i)).normalize_or_zero();
    if i == DVec3::ZERO || j == DVec3::ZERO {
        return DQuat::IDENTITY;
    }
    DQuat::from_mat3(&glam::DMat3::from_cols(i, j, i.cross(j))).normalize()
}

/// The rotation whose axial normal points from `a` to `b` (e.g. along the aortic root), turned
/// as little as possible from the patient axes.
pub fn normal_along(a: DVec3, b: DVec3) -> Option<DQuat> {
    let dir = (b - a).try_normalize()?;
    Some(DQuat::from_rotation_arc(DVec3::Z, dir))
}

/// The four panes of the viewer, in screen order (top-left, top-right, bottom-left,
/// bottom-right). Stored in settings as its index (0–3), as earlier versions did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Pane {
    Axial,
    Coronal,
    Sagittal,
    Volume,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Axial, Pane::Coronal, Pane::Sagittal, Pane::Volume];
    pub const SLICES: [Pane; 3] = [Pane::Axial, Pane::Coronal, Pane::Sagittal];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The slice plane a pane shows (`None` for the 3D view).
    pub fn plane(self) -> Option<Plane> {
        match self {
            Pane::Axial => Some(Plane::Axial),
            Pane::Coronal => Some(Plane::Coronal),
            Pane::Sagittal => Some(Plane::Sagittal),
            Pane::Volume => None,
        }
    }

    pub fn of_plane(plane: Plane) -> Self {
        match plane {
            Plane::Axial => Pane::Axial,
            Plane::Coronal => Pane::Coronal,
            Plane::Sagittal => Pane::Sagittal,
        }
    }

    /// "Axial", "Coronal", "Sagittal", "3D".
    pub fn name(self) -> &'static str {
        self.plane().map_or("3D", Plane::name)
    }
}

impl From<Pane> for u8 {
    fn from(p: Pane) -> u8 {
        p as u8
    }
}

impl TryFrom<u8> for Pane {
    type Error = String;
    fn try_from(i: u8) -> Result<Self, String> {
        Pane::ALL
            .get(usize::from(i))
            .copied()
            .ok_or_else(|| format!("pane {i} is not 0..3"))
    }
}

/// How a world point sits relative to the slice shown: on it (within half a slice step, at
/// least 0.5 mm), near it (within [`FADED_MM`], drawn faded) or away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nearness {
    On,
    Near,
    Away,
}

/// Points this close to a slice (mm) are drawn faded on it.
pub const FADED_MM: f64 = 10.0;

/// Where `point` lies relative to the slice with `normal` through `crosshair` on `grid`.
pub fn nearness(grid: &Grid, normal: DVec3, crosshair: DVec3, point: DVec3) -> Nearness {
    let d = (point - crosshair).dot(normal).abs();
    if d <= (slice_step_mm(grid, normal) * 0.5).max(0.5) {
        Nearness::On
    } else if d <= FADED_MM {
        Nearness::Near
    } else {
        Nearness::Away
    }
}

/// Whether the slice with normal `n` through `crosshair` cuts the box `lo`–`hi` (within half
/// a slice).
pub fn slice_cuts_box(grid: &Grid, n: DVec3, crosshair: DVec3, lo: DVec3, hi: DVec3) -> bool {
    let half = slice_step_mm(grid, n) * 0.5;
    let d = crosshair.dot(n);
    let (a, b) = (lo.dot(n).min(hi.dot(n)), lo.dot(n).max(hi.dot(n)));
    d >= a - half && d <= b + half
}

/// The item of `items` (name, screen point) nearest `pos` within `radius` screen units.
pub fn hit_test<T>(
    items: impl IntoIterator<Item = (T, DVec2)>,
    pos: DVec2,
    radius: f64,
) -> Option<T> {
    items
        .into_iter()
        .map(|(t, at)| (t, at.distance(pos)))
        .filter(|(_, d)| *d <= radius)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(t, _)| t)
}

/// A "nice" scale-bar length (1, 2 or 5 × 10^n mm) close to a fifth of `pane_mm`.
pub fn scale_bar_mm(pane_mm: f64) -> f64 {
    let target = (pane_mm / 5.0).max(1e-6);
    let base = 10f64.powf(target.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&v| v <= target)
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Volume, Voxels};

    fn grid() -> Grid {
        Grid::new([100, 80, 40], DMat4::from_scale(DVec3::new(1.0, 1.0, 2.5)))
    }

    #[test]
    fn a_plane_cuts_the_box_in_an_ordered_polygon() {
        let g = grid(); // voxel centres span x 0..99, y 0..79, z 0..97.5
        let axial = plane_outline(&g, DVec3::new(10.0, 10.0, 50.0), DVec3::Z);
        assert_eq!(axial.len(), 4);
        assert!(axial.iter().all(|p| (p.z - 50.0).abs() < 1e-9));
        // In order around it: consecutive corners share an edge of the box (x or y fixed).
        for k in 0..4 {
            let (p, q) = (axial[k], axial[(k + 1) % 4]);
            assert!(
                (p.x - q.x).abs() < 1e-9 || (p.y - q.y).abs() < 1e-9,
                "{p} {q}"
            );
        }
        let corners: f64 = axial.iter().map(|p| p.x + p.y).sum();
        assert!((corners - 2.0 * (99.0 + 79.0)).abs() < 1e-9);
        // An oblique plane through the centre cuts a hexagon or fewer corners, all on it.
        let n = DVec3::new(1.0, 1.0, 1.0).normalize();
        let c = DVec3::new(49.5, 39.5, 48.75);
        let oblique = plane_outline(&g, c, n);
        assert!((3..=6).contains(&oblique.len()), "{}", oblique.len());
        assert!(oblique.iter().all(|p| (*p - c).dot(n).abs() < 1e-9));
        assert!(plane_outline(&g, DVec3::new(0.0, 0.0, 500.0), DVec3::Z).is_empty());
    }

    #[test]
    fn a_slab_samples_half_voxel_steps_across_its_thickness() {
        let g = grid();
        let slab = |mode, thickness_mm| Slab { mode, thickness_mm };
        let thin = slab(SlabMode::Thin, 10.0).samples(&g, DVec3::Z);
        assert_eq!((thin.count, thin.mode), (1, SlabMode::Thin));
        // 2.5 mm slices along z: 1.25 mm steps, 9 planes over 10 mm.
        let mip = slab(SlabMode::Max, 10.0).samples(&g, DVec3::Z);
        assert_eq!((mip.count, mip.mode), (9, SlabMode::Max));
        assert!((mip.step_mm - 1.25).abs() < 1e-12);
        // Thinner than a step: thin. Thicker than the limit: clamped to 50 mm.
        assert_eq!(slab(SlabMode::Mean, 0.5).samples(&g, DVec3::Z).count, 1);
        let thick = slab(SlabMode::Mean, 500.0).samples(&g, DVec3::Z);
        assert!((f64::from(thick.count - 1) * thick.step_mm - 50.0).abs() < 1e-9);
        // A fine grid hits the sample cap, the steps widen to keep the thickness.
        let fine = Grid::new([10, 10, 10], DMat4::from_scale(DVec3::splat(0.2)));
        let capped = slab(SlabMode::Max, 50.0).samples(&fine, DVec3::X);
        assert_eq!(capped.count, MAX_SLAB_SAMPLES);
        assert!((f64::from(capped.count - 1) * capped.step_mm - 50.0).abs() < 1e-9);
        assert_eq!(slab(SlabMode::Max, 20.0).label(), "MIP 20 mm");
        assert_eq!(slab(SlabMode::Thin, 20.0).label(), "");
    }

    #[test]
    fn radiological_convention_puts_patient_left_on_screen_right() {
        let size = DVec2::new(200.0, 200.0);
        let c = DVec3::new(50.0, 40.0, 50.0);
        for plane in Plane::ALL {
            let v = SliceView::new(plane, c, 1.0);
            assert_eq!(v.edge_letters(), plane.edge_letters());
            let center = v.screen_from_world(c, size);
            let left = v.screen_from_world(c + DVec3::X * 10.0, size);
            let anterior = v.screen_from_world(c - DVec3::Y * 10.0, size);
            let superior = v.screen_from_world(c + DVec3::Z * 10.0, size);
            match plane {
                Plane::Axial => {
                    assert!(left.x > center.x, "patient left must be on screen right");
                    assert!(anterior.y < center.y, "anterior must be up");
                }
                Plane::Coronal => {
                    assert!(left.x > center.x);
                    assert!(superior.y < center.y, "superior must be up");
                }
                Plane::Sagittal => {
                    assert!(anterior.x < center.x, "anterior must be on screen left");
                    assert!(superior.y < center.y);
                }
            }
        }
    }

    #[test]
    fn screen_and_world_round_trip_and_zoom_keeps_the_anchor() {
        let size = DVec2::new(300.0, 200.0);
        let cross = DVec3::new(10.0, 20.0, 30.0);
        for plane in Plane::ALL {
            let mut v = SliceView::new(plane, DVec3::ZERO, 1.0).fit(&grid(), size);
            let px = DVec2::new(37.0, 151.0);
            let w = v.world_from_screen(px, size, cross);
            assert!((v.screen_from_world(w, size) - px).length() < 1e-9);
            let (_, _, n) = plane.axes();
            assert!(
                (w.dot(n) - cross.dot(n)).abs() < 1e-9,
                "slice goes through the crosshair"
            );
            v.zoom_about(2.0, px, size);
            let w2 = v.world_from_screen(px, size, cross);
            assert!((w2 - w).length() < 1e-9);
        }
    }

    #[test]
    fn slice_steps_follow_voxel_spacing() {
        let g = grid();
        assert_eq!(slice_step_mm(&g, DVec3::Z), 2.5);
        assert_eq!(slice_step_mm(&g, DVec3::Y), 1.0);
        let p = step_slice(&g, DVec3::Z, DVec3::new(5.0, 5.0, 5.0), 2.0);
        assert_eq!(p, DVec3::new(5.0, 5.0, 10.0));
        let clamped = step_slice(&g, DVec3::Z, p, 1000.0);
        assert_eq!(clamped.z, 39.0 * 2.5);
    }

    #[test]
    fn presets_use_hu_directly_or_through_the_air_tissue_calibration() {
        // HU data: presets are the textbook windows.
        // Air, soft tissue and a little bone (well under 1% of voxels, as in a chest CT).
        let mut hu: Vec<i16> = vec![-1000; 600];
        hu.extend(vec![40i16; 396]);
        hu.extend(vec![1000i16; 4]);
        let v = Volume::new(
            Grid::new([10, 10, 10], DMat4::IDENTITY),
            Voxels::I16(hu.clone()),
        );
        let i = Intensity::of(&v);
        assert_eq!(
            i.window(WindowPreset::Mediastinum),
            Window::new(-160.0, 240.0)
        );
        // The same data min-max scaled to 0..255, as SegTHOR was.
        let scaled: Vec<u8> = hu
            .iter()
            .map(|&x| ((f64::from(x) + 1000.0) / 2000.0 * 255.0).round() as u8)
            .collect();
        let v = Volume::new(Grid::new([10, 10, 10], DMat4::IDENTITY), Voxels::U8(scaled));
        let i = Intensity::of(&v);
        let Window { low: lo, high: hi } = i.window(WindowPreset::Mediastinum);
        // -160..240 HU is 107..158 on this scale (within a histogram bin).
        assert!(
            (lo - 107.1).abs() < 2.0 && (hi - 158.1).abs() < 2.0,
            "{lo} {hi}"
        );
        // MR-like data without an air/tissue structure falls back to percentiles.
        let mr: Vec<f32> = (0..1000).map(|x| (x % 500) as f32).collect();
        let v = Volume::new(Grid::new([10, 10, 10], DMat4::IDENTITY), Voxels::F32(mr));
        let i = Intensity::of(&v);
        assert_eq!(i.window(WindowPreset::Lung), i.window(WindowPreset::Auto));
    }

    #[test]
    fn scale_bars_are_round_numbers() {
        assert_eq!(scale_bar_mm(500.0), 100.0);
        assert_eq!(scale_bar_mm(240.0), 20.0);
        assert_eq!(scale_bar_mm(30.0), 5.0);
    }

    #[test]
    fn panes_are_stored_as_their_index_and_refuse_others() {
        for p in Pane::ALL {
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(text, p.index().to_string());
            assert_eq!(serde_json::from_str::<Pane>(&text).unwrap(), p);
        }
        assert!(serde_json::from_str::<Pane>("4").is_err());
        assert_eq!(
            Pane::of_plane(Plane::Sagittal).plane(),
            Some(Plane::Sagittal)
        );
    }

    #[test]
    fn window_level_width_and_drag() {
        let w = Window::from_level_width(40.0, 400.0);
        assert_eq!((w.low, w.high), (-160.0, 240.0));
        assert_eq!((w.level(), w.width()), (40.0, 400.0));
        assert_eq!(w.dragged(DVec2::ZERO), w);
        // Dragging up lowers the level by half a percent of the width per pixel.
        let up = w.dragged(DVec2::new(0.0, 10.0));
        assert!((up.level() - 20.0).abs() < 1e-9 && (up.width() - 400.0).abs() < 1e-9);
        let wide = w.dragged(DVec2::new(100.0, 0.0));
        assert!((wide.width() - 400.0 * 0.5f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn nearness_uses_half_a_slice_then_the_faded_band() {
        let g = grid(); // 2.5 mm axial slices
        let c = DVec3::new(10.0, 10.0, 20.0);
        let at = |dz: f64| nearness(&g, DVec3::Z, c, c + DVec3::new(30.0, -4.0, dz));
        assert_eq!(at(1.2), Nearness::On);
        assert_eq!(at(-1.3), Nearness::Near);
        assert_eq!(at(10.0), Nearness::Near);
        assert_eq!(at(10.5), Nearness::Away);
        let (lo, hi) = (DVec3::new(0.0, 0.0, 25.0), DVec3::new(5.0, 5.0, 30.0));
        assert!(!slice_cuts_box(&g, DVec3::Z, c, lo, hi));
        assert!(slice_cuts_box(&g, DVec3::Z, c + DVec3::Z * 4.0, lo, hi));
        let items = [("a", DVec2::new(0.0, 0.0)), ("b", DVec2::new(5.0, 0.0))];
        assert_eq!(hit_test(items, DVec2::new(3.0, 0.0), 8.0), Some("b"));
        assert_eq!(hit_test(items, DVec2::new(30.0, 0.0), 8.0), None);
    }

    #[test]
    fn turned_planes_stay_orthogonal_and_map_screen_and_world_both_ways() {
        let turn = DQuat::from_axis_angle(DVec3::new(1.0, 2.0, 0.5).normalize(), 0.7);
        let size = DVec2::new(300.0, 200.0);
        let c = DVec3::new(5.0, -3.0, 12.0);
        let views = Plane::ALL.map(|p| SliceView {
            rotation: turn,
            ..SliceView::new(p, c, 0.8)
        });
        let normals = views.map(|v| v.normal());
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            assert!(
                normals[a].dot(normals[b]).abs() < 1e-12,
                "planes stay orthogonal"
            );
        }
        for v in views {
            let px = DVec2::new(37.25, 151.5);
            let w = v.world_from_screen(px, size, c);
            assert!(
                (w - c).dot(v.normal()).abs() < 1e-9,
                "on the slice through c"
            );
            assert!((v.screen_from_world(w, size) - px).length() < 1e-9);
        }
        // Along the aortic-valve → heart-centre line: the axial normal follows it.
        let (a, b) = (DVec3::new(0.0, 0.0, 0.0), DVec3::new(30.0, -20.0, -40.0));
        let q = normal_along(a, b).unwrap();
        let axial = SliceView {
            rotation: q,
            ..SliceView::new(Plane::Axial, a, 1.0)
        };
        assert!((axial.normal() - (b - a).normalize()).length() < 1e-12);
        assert!(normal_along(a, a).is_none());
        // A grid's own planes: the axial view's normal is its k axis.
        let m = DMat4::from_rotation_y(0.4) * DMat4::from_scale(DVec3::new(1.5, 1.5, 8.0));
        let g = Grid::new([10, 10, 10], m);
        let own = SliceView {
            rotation: voxel_planes(&g),
            ..SliceView::new(Plane::Axial, c, 1.0)
        };
        assert!((own.normal() - g.directions()[2].normalize()).length() < 1e-9);
        assert!((slice_step_mm(&g, own.normal()) - 8.0).abs() < 1e-9);
    }
}
