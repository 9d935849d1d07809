//! The volume core: voxels that know where they are in the patient.
//!
//! Conventions, stated once for the whole crate:
//! - **Voxel index** `(i, j, k)`: `i` is the fastest-varying axis in memory, then `j`, then `k`
//!   (NIfTI and DICOM order: `i` = column, `j` = row, `k` = slice). The flat index of `(i, j, k)`
//!   is `i + nx * (j + ny * k)`.
//! - **World space** is LPS millimetres (x toward patient Left, y toward Posterior, z toward
//!   Superior), the convention of DICOM, ITK and 3D Slicer. NIfTI's RAS is converted when a file
//!   is read or written, never inside.
//! - `world_from_voxel` maps a voxel *centre* index to world mm:
//!   `pos_in_world = world_from_voxel * (i, j, k, 1)`. Voxel `(0,0,0)`'s centre is the origin.
//! - This module imports no GUI, GPU or ML crate (checked by `tests/layers.rs`).
//!
//! Memory: voxels keep their source type when it is `u8`, `i16` or `u16` (a 512×512×600 int16 CT
//! is 315 MB instead of 629 MB as `f32`); every other type, and any data with a non-identity
//! NIfTI `scl_slope/scl_inter` or a DICOM rescale that is not integral, is stored as `f32`.

use glam::{DMat4, DVec3, DVec4};
use rayon::prelude::*;

pub mod pick;
mod voxels;
pub use voxels::Voxels;

/// A grid in world space: how many voxels and where they are. Shared by volumes and resampling
/// targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub dims: [usize; 3],
    /// Voxel centre index → LPS mm.
    pub world_from_voxel: DMat4,
}

impl Grid {
    pub fn new(dims: [usize; 3], world_from_voxel: DMat4) -> Self {
        Grid {
            dims,
            world_from_voxel,
        }
    }

    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// LPS mm → voxel index (continuous).
    pub fn voxel_from_world(&self) -> DMat4 {
        self.world_from_voxel.inverse()
    }

    /// Voxel size along each voxel axis: the lengths of the affine's first three columns.
    pub fn spacing_mm(&self) -> [f64; 3] {
        let m = &self.world_from_voxel;
        [
            m.x_axis.truncate().length(),
            m.y_axis.truncate().length(),
            m.z_axis.truncate().length(),
        ]
    }

    /// Unit vectors (LPS) along which each voxel axis increases.
    pub fn directions(&self) -> [DVec3; 3] {
        let m = &self.world_from_voxel;
        [
            m.x_axis.truncate().normalize_or_zero(),
            m.y_axis.truncate().normalize_or_zero(),
            m.z_axis.truncate().normalize_or_zero(),
        ]
    }

    /// Three letters naming the patient direction each voxel axis points *toward*
    /// (i, j, k), e.g. `"LPS"` when i increases to patient left, j to posterior, k to superior;
    /// a file stored radiologically in RAS has `"RAS"`. Oblique axes take their dominant
    /// direction.
    pub fn orientation_code(&self) -> String {
        self.directions()
            .iter()
            .map(|d| direction_letter(*d))
            .collect()
    }

    /// Voxel centre → LPS mm.
    pub fn world_from_index(&self, ijk: DVec3) -> DVec3 {
        self.world_from_voxel.transform_point3(ijk)
    }

    /// Voxel centre at memory-order position `idx` → LPS mm.
    pub fn world_from_flat(&self, idx: usize) -> DVec3 {
        let [i, j, k] = ijk_of(self.dims, idx);
        self.world_from_index(DVec3::new(i as f64, j as f64, k as f64))
    }

    /// Axis-aligned LPS box around all voxel centres: (min, max).
    pub fn world_bbox(&self) -> (DVec3, DVec3) {
        let mut lo = DVec3::splat(f64::INFINITY);
        let mut hi = DVec3::splat(f64::NEG_INFINITY);
        for c in 0..8 {
            let ijk = DVec3::new(
                if c & 1 == 0 {
                    0.0
                } else {
                    self.dims[0] as f64 - 1.0
                },
                if c & 2 == 0 {
                    0.0
                } else {
                    self.dims[1] as f64 - 1.0
                },
                if c & 4 == 0 {
                    0.0
                } else {
                    self.dims[2] as f64 - 1.0
                },
            );
            let p = self.world_from_index(ijk);
            lo = lo.min(p);
            hi = hi.max(p);
        }
        (lo, hi)
    }

    /// An axis-aligned LPS grid (i → L, j → P, k → S) with the given spacing that covers this
    /// grid's voxel centres. Used to bring any file to one canonical orientation.
    pub fn canonical_lps(&self, spacing_mm: [f64; 3]) -> Grid {
        let (lo, hi) = self.world_bbox();
        let mut dims = [1usize; 3];
        for a in 0..3 {
            dims[a] = ((hi[a] - lo[a]) / spacing_mm[a]).floor() as usize + 1;
        }
        let world_from_voxel = DMat4::from_cols(
            DVec4::new(spacing_mm[0], 0.0, 0.0, 0.0),
            DVec4::new(0.0, spacing_mm[1], 0.0, 0.0),
            DVec4::new(0.0, 0.0, spacing_mm[2], 0.0),
            lo.extend(1.0),
        );
        Grid::new(dims, world_from_voxel)
    }
}

/// "L", "R", "P", "A", "S" or "I": the patient direction an LPS vector points to most.
pub fn direction_letter(d: DVec3) -> &'static str {
    let a = d.abs();
    let (axis, value) = if a.x >= a.y && a.x >= a.z {
        (0, d.x)
    } else if a.y >= a.z {
        (1, d.y)
    } else {
        (2, d.z)
    };
    match (axis, value >= 0.0) {
        (0, true) => "L",
        (0, false) => "R",
        (1, true) => "P",
        (1, false) => "A",
        (_, true) => "S",
        (_, false) => "I",
    }
}

/// `m` (a world_from_world transform: a turn, a mirror, a scaling) applied about `centre`
/// (LPS mm) instead of the origin.
pub fn about_point(centre: DVec3, m: DMat4) -> DMat4 {
    DMat4::from_translation(centre) * m * DMat4::from_translation(-centre)
}

/// The voxel index (i, j, k) of position `idx` in memory order (i fastest) in a grid of `dims`.
pub fn ijk_of(dims: [usize; 3], idx: usize) -> [usize; 3] {
    [
        idx % dims[0],
        (idx / dims[0]) % dims[1],
        idx / (dims[0] * dims[1]),
    ]
}

/// The up to six face neighbours of voxel `idx` (memory order, i fastest) in a grid of `dims`.
pub fn face_neighbours(dims: [usize; 3], idx: usize) -> impl Iterator<Item = usize> {
    let [nx, ny, nz] = dims;
    let [i, j, k] = ijk_of(dims, idx);
    let plane = nx * ny;
    [
        (i > 0).then(|| idx - 1),
        (i + 1 < nx).then(|| idx + 1),
        (j > 0).then(|| idx - nx),
        (j + 1 < ny).then(|| idx + nx),
        (k > 0).then(|| idx - plane),
        (k + 1 < nz).then(|| idx + plane),
    ]
    .into_iter()
    .flatten()
}

/// Voxel sizes a reader accepts, in mm per axis: finer than 10 µm or coarser than 10 cm is a
/// broken header, not a scan.
pub const SPACING_RANGE_MM: (f64, f64) = (0.01, 100.0);
/// How far from the world origin a scan's first voxel may lie (100 m): beyond is a broken
/// header.
pub const MAX_ORIGIN_MM: f64 = 1e5;

/// Why `world_from_voxel` cannot place a scan in a patient, or `None` when it can: an entry
/// that is not finite, a voxel size outside [`SPACING_RANGE_MM`], axes so nearly parallel that
/// the transform is singular, or an origin beyond [`MAX_ORIGIN_MM`].
pub fn geometry_problem(world_from_voxel: &DMat4) -> Option<String> {
    if !world_from_voxel
        .to_cols_array()
        .iter()
        .all(|x| x.is_finite())
    {
        return Some("the voxel-to-world transform is not finite".into());
    }
    let axes = [
        world_from_voxel.x_axis.truncate(),
        world_from_voxel.y_axis.truncate(),
        world_from_voxel.z_axis.truncate(),
    ];
    let (lo, hi) = SPACING_RANGE_MM;
    for (a, axis) in ["i", "j", "k"].iter().zip(axes) {
        let l = axis.length();
        if !(lo..=hi).contains(&l) {
            return Some(format!(
                "voxel size along {a} is {l:e} mm, outside the {lo}–{hi} mm this reader accepts"
            ));
        }
    }
    let volume_of_box = axes.iter().map(|a| a.length()).product::<f64>();
    if world_from_voxel.determinant().abs() < 1e-3 * volume_of_box {
        return Some("the voxel-to-world transform is singular (its axes are parallel)".into());
    }
    let origin = world_from_voxel.w_axis.truncate();
    if origin.abs().max_element() > MAX_ORIGIN_MM {
        return Some(format!(
            "origin ({:e}, {:e}, {:e}) mm is more than {MAX_ORIGIN_MM} mm from the world origin",
            origin.x, origin.y, origin.z
        ));
    }
    None
}

/// `lps_from_ras`: the NIfTI border conversion (x and y flip, z stays). Its own inverse.
pub fn lps_from_ras() -> DMat4 {
    DMat4::from_diagonal(DVec4::new(-1.0, -1.0, 1.0, 1.0))
}

/// Interpolation used when sampling between voxel centres.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Trilinear,
}

/// A 3D scalar volume on a world grid.
#[derive(Clone, Debug)]
pub struct Volume {
    pub grid: Grid,
    pub voxels: Voxels,
    /// Which phase of a time series (cine MR, a 4D NIfTI) this volume is; a single 3D scan is
    /// phase 0 of 1.
    pub phase: Phase,
    /// The DICOM series it was read from (`None` for NIfTI and volumes made in code).
    pub series: Option<SeriesIds>,
    /// Non-fatal problems found while reading (inconsistent headers, resampled slices, …).
    pub warnings: Vec<String>,
}

/// Where a volume read from DICOM comes from: what names it wherever the files are copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesIds {
    pub study_uid: String,
    pub series_uid: String,
    /// DICOM Modality (CT, MR, …) as stored.
    pub modality: String,
}

/// One phase of `count` (0-based `index`, shown 1-based to users), in acquisition (trigger)
/// order: for cardiac cine the first is conventionally end-diastole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Phase {
    index: usize,
    count: usize,
    /// Time from one phase to the next as acquired (µs; DICOM TriggerTime steps, a NIfTI
    /// time step with a time unit), where the file says.
    #[serde(skip)]
    interval_us: Option<u32>,
}

impl Phase {
    pub const SINGLE: Phase = Phase {
        index: 0,
        count: 1,
        interval_us: None,
    };

    /// Phase `index` of `count`, or `None` when `index` is not below `count`.
    pub fn new(index: usize, count: usize) -> Option<Phase> {
        (index < count).then_some(Phase {
            index,
            count,
            interval_us: None,
        })
    }

    /// The same phase with the acquisition's time between phases; an interval outside
    /// 1 ms–10 s (or not finite) is no frame rate and is left unknown.
    pub fn with_interval_ms(self, ms: f64) -> Phase {
        let ok = ms.is_finite() && (1.0..=10_000.0).contains(&ms);
        Phase {
            interval_us: ok.then(|| (ms * 1e3).round() as u32),
            ..self
        }
    }

    /// The acquisition's time between phases (ms), where the file says.
    pub fn interval_ms(self) -> Option<f64> {
        self.interval_us.map(|us| f64::from(us) / 1e3)
    }

    pub fn index(self) -> usize {
        self.index
    }

    pub fn count(self) -> usize {
        self.count
    }
}

impl Volume {
    /// Panics only on a programming error (voxel count not matching the grid); file readers
    /// check sizes before they get here.
    pub fn new(grid: Grid, voxels: Voxels) -> Self {
        assert_eq!(
            grid.voxel_count(),
            voxels.len(),
            "voxel count must match dims"
        );
        Volume {
            grid,
            voxels,
            phase: Phase::SINGLE,
            series: None,
            warnings: Vec::new(),
        }
    }

    pub fn dims(&self) -> [usize; 3] {
        self.grid.dims
    }

    pub fn spacing_mm(&self) -> [f64; 3] {
        self.grid.spacing_mm()
    }

    pub fn world_from_voxel(&self) -> DMat4 {
        self.grid.world_from_voxel
    }

    pub fn voxel_from_world(&self) -> DMat4 {
        self.grid.voxel_from_world()
    }

    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.grid.dims[0] * (j + self.grid.dims[1] * k)
    }

    /// Value at an integer voxel index.
    #[inline]
    pub fn at(&self, i: usize, j: usize, k: usize) -> f32 {
        self.voxels.get(self.index(i, j, k))
    }

    /// (min, max) of all voxel values.
    pub fn intensity_range(&self) -> (f32, f32) {
        match &self.voxels {
            Voxels::U8(v) => min_max(v, |&x| f32::from(x)),
            Voxels::I16(v) => min_max(v, |&x| f32::from(x)),
            Voxels::U16(v) => min_max(v, |&x| f32::from(x)),
            Voxels::F32(v) => min_max(v, |&x| x),
        }
    }

    /// Intensity percentiles (each `p` in 0..=100), from a histogram over all voxels: exact for
    /// integer data, within 1/16384 of the range for `f32`.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<f32> {
        let (lo, hi) = self.intensity_range();
        let n = self.voxels.len();
        if n == 0 || hi <= lo {
            return ps.iter().map(|_| lo).collect();
        }
        let integral = !matches!(self.voxels, Voxels::F32(_));
        let bins = if integral {
            (hi - lo) as usize + 1
        } else {
            16384
        };
        let scale = if integral {
            1.0
        } else {
            (bins as f64 - 1.0) / f64::from(hi - lo)
        };
        // One tight loop per stored type (the bin of an integer is its offset from `lo`), a
        // histogram per block of voxels on every core, then summed.
        fn histogram<T: Copy + Sync>(
            v: &[T],
            bins: usize,
            bin: impl Fn(T) -> usize + Sync,
        ) -> Vec<u64> {
            v.par_chunks(1 << 20)
                .map(|block| {
                    let mut hist = vec![0u64; bins];
                    for &x in block {
                        hist[bin(x).min(bins - 1)] += 1;
                    }
                    hist
                })
                .reduce(
                    || vec![0u64; bins],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                        a
                    },
                )
        }
        let low = lo as i32;
        let hist = match &self.voxels {
            Voxels::U8(v) => histogram(v, bins, |x| (i32::from(x) - low) as usize),
            Voxels::I16(v) => histogram(v, bins, |x| (i32::from(x) - low) as usize),
            Voxels::U16(v) => histogram(v, bins, |x| (i32::from(x) - low) as usize),
            Voxels::F32(v) => histogram(v, bins, |x| (f64::from(x - lo) * scale) as usize),
        };
        ps.iter()
            .map(|&p| {
                let rank = (p.clamp(0.0, 100.0) / 100.0 * (n as f64 - 1.0)).round() as u64;
                let mut seen = 0u64;
                for (b, &count) in hist.iter().enumerate() {
                    seen += count;
                    if seen > rank {
                        return lo + (b as f64 / scale) as f32;
                    }
                }
                hi
            })
            .collect()
    }

    /// Sample at a world point (LPS mm). Outside the grid the value is `None`.
    pub fn sample_world(&self, pos_in_world: DVec3, interp: Interpolation) -> Option<f32> {
        let ijk = self.voxel_from_world().transform_point3(pos_in_world);
        self.sample_index(ijk, interp)
    }

    /// Sample at a continuous voxel index. Points within half a voxel outside the centres clamp
    /// to the border voxel (so the whole voxel extent samples); beyond that, `None`.
    pub fn sample_index(&self, ijk: DVec3, interp: Interpolation) -> Option<f32> {
        let d = self.grid.dims;
        let mut c = [0.0f64; 3];
        for a in 0..3 {
            let x = ijk[a];
            let max = d[a] as f64 - 1.0;
            if !(x >= -0.5 && x <= max + 0.5) {
                return None;
            }
            c[a] = x.clamp(0.0, max);
        }
        match interp {
            Interpolation::Nearest => Some(self.at(
                c[0].round() as usize,
                c[1].round() as usize,
                c[2].round() as usize,
            )),
            Interpolation::Trilinear => {
                let i0 = [c[0] as usize, c[1] as usize, c[2] as usize];
                let i1 = [
                    (i0[0] + 1).min(d[0] - 1),
                    (i0[1] + 1).min(d[1] - 1),
                    (i0[2] + 1).min(d[2] - 1),
                ];
                let f = [
                    (c[0] - i0[0] as f64) as f32,
                    (c[1] - i0[1] as f64) as f32,
                    (c[2] - i0[2] as f64) as f32,
                ];
                let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
                let plane = |k: usize| {
                    let y0 = lerp(self.at(i0[0], i0[1], k), self.at(i1[0], i0[1], k), f[0]);
                    let y1 = lerp(self.at(i0[0], i1[1], k), self.at(i1[0], i1[1], k), f[0]);
                    lerp(y0, y1, f[1])
                };
                Some(lerp(plane(i0[2]), plane(i1[2]), f[2]))
            }
        }
    }

    /// Resample onto another grid (any spacing and orientation). Points outside this volume get
    /// `fill`. The result is `f32` for trilinear sampling and keeps the type for nearest.
    pub fn resample(&self, target: &Grid, interp: Interpolation, fill: f32) -> Volume {
        // target voxel → source voxel, computed once; then stepping is pure addition.
        let src_from_target = self.voxel_from_world() * target.world_from_voxel;
        let step_i = src_from_target.x_axis.truncate();
        let step_j = src_from_target.y_axis.truncate();
        let step_k = src_from_target.z_axis.truncate();
        let origin = src_from_target.w_axis.truncate();
        let [nx, ny, nz] = target.dims;
        let mut out = Vec::with_capacity(target.voxel_count());
        for k in 0..nz {
            for j in 0..ny {
                let row = origin + step_j * j as f64 + step_k * k as f64;
                for i in 0..nx {
                    let p = row + step_i * i as f64;
                    out.push(self.sample_index(p, interp).unwrap_or(fill));
                }
            }
        }
        let voxels = match (interp, &self.voxels) {
            (Interpolation::Nearest, Voxels::F32(_)) | (Interpolation::Trilinear, _) => {
                Voxels::F32(out)
            }
            (Interpolation::Nearest, _) => Voxels::from_f32_compact(out),
        };
        Volume::new(*target, voxels)
    }
}

/// (min, max) of `values` as `f32`, by blocks on every core.
fn min_max<T: Sync>(values: &[T], as_f32: impl Fn(&T) -> f32 + Sync) -> (f32, f32) {
    let none = || (f32::INFINITY, f32::NEG_INFINITY);
    values
        .par_chunks(1 << 20)
        .map(|block| {
            block.iter().fold(none(), |(lo, hi), x| {
                let v = as_f32(x);
                (lo.min(v), hi.max(v))
            })
        })
        .reduce(none, |a, b| (a.0.min(b.0), a.1.max(b.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: [usize; 3], world_from_voxel: DMat4) -> Volume {
        let n = dims.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|f| {
                let i = f % dims[0];
                let j = (f / dims[0]) % dims[1];
                let k = f / (dims[0] * dims[1]);
                (i + 10 * j + 100 * k) as f32
            })
            .collect();
        Volume::new(Grid::new(dims, world_from_voxel), Voxels::F32(vals))
    }

    #[test]
    fn trilinear_is_exact_on_a_linear_field_and_nearest_snaps() {
        let m = DMat4::from_scale_rotation_translation(
            DVec3::new(2.0, 3.0, 5.0),
            glam::DQuat::from_rotation_z(0.3),
            DVec3::new(-10.0, 4.0, 7.0),
        );
        let v = ramp([6, 5, 4], m);
        let ijk = DVec3::new(2.25, 1.5, 2.75);
        let world = v.grid.world_from_index(ijk);
        let got = v.sample_world(world, Interpolation::Trilinear).unwrap();
        assert!((got - (2.25 + 15.0 + 275.0)).abs() < 1e-3, "{got}");
        let near = v.sample_world(world, Interpolation::Nearest).unwrap();
        assert_eq!(near, (2 + 20 + 300) as f32);
        assert!(v
            .sample_world(
                v.grid.world_from_index(DVec3::new(-0.6, 0.0, 0.0)),
                Interpolation::Nearest
            )
            .is_none());
    }

    #[test]
    fn orientation_codes_name_where_axes_point() {
        let lps = Grid::new([2, 2, 2], DMat4::IDENTITY);
        assert_eq!(lps.orientation_code(), "LPS");
        let ras = Grid::new([2, 2, 2], lps_from_ras());
        assert_eq!(ras.orientation_code(), "RAS");
        let permuted = Grid::new(
            [2, 2, 2],
            DMat4::from_cols(DVec4::Z, -DVec4::X, DVec4::Y, DVec4::W),
        );
        assert_eq!(permuted.orientation_code(), "SRP");
    }

    #[test]
    fn resample_to_canonical_keeps_world_values() {
        // A flipped, permuted grid resampled to canonical LPS gives the same value at the
        // same world point.
        let m = DMat4::from_cols(
            DVec4::new(0.0, -2.0, 0.0, 0.0),
            DVec4::new(0.0, 0.0, 3.0, 0.0),
            DVec4::new(-1.5, 0.0, 0.0, 0.0),
            DVec4::new(20.0, 30.0, -40.0, 1.0),
        );
        let v = ramp([7, 6, 8], m);
        let target = v.grid.canonical_lps([1.0, 1.0, 1.0]);
        let r = v.resample(&target, Interpolation::Trilinear, -1.0);
        for ijk in [DVec3::new(3.0, 2.0, 4.0), DVec3::new(1.5, 4.5, 6.25)] {
            let w = v.grid.world_from_index(ijk);
            let a = v.sample_world(w, Interpolation::Trilinear).unwrap();
            let b = r.sample_world(w, Interpolation::Trilinear).unwrap();
            assert!((a - b).abs() < 1e-2, "{a} vs {b} at {w}");
        }
        assert_eq!(target.orientation_code(), "LPS");
    }

    #[test]
    fn percentiles_are_exact_for_integers() {
        let vals: Vec<i16> = (0..101).map(|x| x - 50).collect();
        let v = Volume::new(Grid::new([101, 1, 1], DMat4::IDENTITY), Voxels::I16(vals));
        assert_eq!(
            v.percentiles(&[0.0, 50.0, 99.0, 100.0]),
            vec![-50.0, 0.0, 49.0, 50.0]
        );
        assert_eq!(v.intensity_range(), (-50.0, 50.0));
        // Every stored type bins the same values alike (f32 within 1/16384 of the range).
        let grid = Grid::new([101, 1, 1], DMat4::IDENTITY);
        let ps = [0.5, 25.0, 99.5];
        let want: Vec<f32> = vec![11.0, 35.0, 110.0];
        for voxels in [
            Voxels::U8((10..111).collect()),
            Voxels::U16((10..111).collect()),
            Voxels::F32((10..111).map(|x| x as f32).collect()),
        ] {
            let got = Volume::new(grid, voxels).percentiles(&ps);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 100.0 / 16384.0 + 1e-4,
                    "{got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn compact_storage_picks_the_smallest_exact_type() {
        assert!(matches!(
            Voxels::from_f32_compact(vec![0.0, 255.0]),
            Voxels::U8(_)
        ));
        assert!(matches!(
            Voxels::from_f32_compact(vec![-1024.0, 3000.0]),
            Voxels::I16(_)
        ));
        assert!(matches!(
            Voxels::from_f32_compact(vec![0.0, 60000.0]),
            Voxels::U16(_)
        ));
        assert!(matches!(
            Voxels::from_f32_compact(vec![0.5]),
            Voxels::F32(_)
        ));
    }
}
