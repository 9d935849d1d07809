//! Closed triangle surfaces from volumes, for 3D printing, teaching and 3D Slicer.
//!
//! The surface is the level set of the volume's values, linear inside each tetrahedron of the
//! Freudenthal split of every voxel cube (six tetrahedra along the cube's main diagonal, the
//! same split in every cube, so neighbouring cubes agree on their shared faces). Vertices are
//! keyed by the lattice edge they lie on, so the result is one connected indexed mesh in which
//! every edge belongs to exactly two triangles (points outside the grid count as 0, which
//! closes the surface at the border). Light Taubin smoothing then removes the voxel steps while
//! keeping the enclosed volume. Files are written in LPS millimetres and say so (`SPACE=LPS`),
//! which is how 3D Slicer (4.11 and later) writes and reads model files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use glam::{DMat4, DVec3};

use crate::io::{durable, FileError};
use crate::volume::{Grid, Interpolation, Volume, Voxels};

/// A triangle mesh in LPS mm; triangles wind counter-clockwise seen from outside.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub vertices: Vec<DVec3>,
    pub triangles: Vec<[u32; 3]>,
}

/// The model file formats written, chosen by the file name's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshFormat {
    /// Binary STL, `SPACE=LPS` in its 80-byte header.
    Stl,
    /// Binary little-endian PLY, `comment SPACE=LPS`.
    Ply,
    /// Wavefront OBJ, `# SPACE=LPS`.
    Obj,
}

impl MeshFormat {
    pub fn extension(self) -> &'static str {
        match self {
            MeshFormat::Stl => "stl",
            MeshFormat::Ply => "ply",
            MeshFormat::Obj => "obj",
        }
    }

    pub fn of_path(path: &Path) -> Result<MeshFormat, FileError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("stl") => Ok(MeshFormat::Stl),
            Some("ply") => Ok(MeshFormat::Ply),
            Some("obj") => Ok(MeshFormat::Obj),
            _ => Err(FileError::new(
                path,
                "a 3D model file name ends in .stl, .ply or .obj",
            )),
        }
    }
}

/// Cube corners as (di, dj, dk) bits: corner c has di = c & 1, dj = (c >> 1) & 1, dk = c >> 2.
const fn corner(c: usize) -> [i64; 3] {
    [(c & 1) as i64, ((c >> 1) & 1) as i64, (c >> 2) as i64]
}

/// The six tetrahedra of the Freudenthal split: each walks from corner 0 to corner 7 adding
/// one axis at a time, in one of the six orders.
const TETRAHEDRA: [[usize; 4]; 6] = [
    [0, 1, 3, 7],
    [0, 1, 5, 7],
    [0, 2, 3, 7],
    [0, 2, 6, 7],
    [0, 4, 5, 7],
    [0, 4, 6, 7],
];

/// Smoothing steps (each one a shrinking and an inflating pass).
pub const SMOOTHING_STEPS: usize = 10;

impl Mesh {
    /// The surface where the volume's values cross `level`, in LPS mm (values outside the grid
    /// and non-finite values count as 0, so a level at or below 0, or not finite, gives an empty
    /// mesh). Only the block of cubes around the values at or above `level` is visited.
    pub fn isosurface(volume: &Volume, level: f32) -> Mesh {
        if !(level > 0.0 && level.is_finite()) {
            return Mesh::default();
        }
        let dims = volume.dims();
        let Some((lo, hi)) = block_where(volume, |v| v >= level) else {
            return Mesh::default();
        };
        let value = |p: [i64; 3]| -> f32 {
            if (0..3).any(|a| p[a] < 0 || p[a] >= dims[a] as i64) {
                return 0.0;
            }
            let v = volume.at(p[0] as usize, p[1] as usize, p[2] as usize);
            if v.is_finite() {
                v
            } else {
                0.0
            }
        };
        let mut builder = Builder {
            dims,
            world_from_voxel: volume.world_from_voxel(),
            level,
            vertex_of_edge: HashMap::new(),
            mesh: Mesh::default(),
        };
        for k in lo[2] - 1..=hi[2] {
            for j in lo[1] - 1..=hi[1] {
                for i in lo[0] - 1..=hi[0] {
                    let points = std::array::from_fn::<_, 8, _>(|c| {
                        let d = corner(c);
                        [i + d[0], j + d[1], k + d[2]]
                    });
                    let values = points.map(value);
                    let inside = values.iter().filter(|&&v| v >= level).count();
                    if inside == 0 || inside == 8 {
                        continue;
                    }
                    for tet in TETRAHEDRA {
                        builder.tetrahedron(tet.map(|c| (points[c], values[c])));
                    }
                }
            }
        }
        builder.mesh
    }

    /// The closed surface of the voxels labelled `label`, lightly blurred first (a Gaussian of
    /// 0.75 voxel) so the 0.5 level runs between voxel centres, then smoothed.
    pub fn of_label(labels: &Volume, label: u32) -> Mesh {
        const SIGMA: f64 = 0.75;
        let is_label = |v: f32| v == label as f32;
        let Some((lo, hi)) = block_where(labels, is_label) else {
            return Mesh::default();
        };
        // The label's box with room for the blur, clipped to the grid.
        let margin = (3.0 * SIGMA).ceil() as i64 + 1;
        let dims = labels.dims();
        let lo = lo.map(|x| (x - margin).max(0) as usize);
        let hi = [0, 1, 2].map(|a| (hi[a] + margin).min(dims[a] as i64 - 1) as usize);
        let size = [0, 1, 2].map(|a| hi[a] - lo[a] + 1);
        let mut indicator = Vec::with_capacity(size.iter().product());
        for k in lo[2]..=hi[2] {
            for j in lo[1]..=hi[1] {
                for i in lo[0]..=hi[0] {
                    indicator.push(f32::from(u8::from(is_label(labels.at(i, j, k)))));
                }
            }
        }
        let corner = DVec3::new(lo[0] as f64, lo[1] as f64, lo[2] as f64);
        let grid = Grid::new(
            size,
            labels.world_from_voxel() * DMat4::from_translation(corner),
        );
        let field = Volume::new(grid, Voxels::F32(blur(size, indicator, SIGMA)));
        Mesh::isosurface(&field, 0.5).smoothed(SMOOTHING_STEPS)
    }

    /// The surface where a probability map on `grid` crosses `threshold`, sampled on a grid
    /// twice as fine (trilinear, as the mask written on the image grid is), then smoothed.
    pub fn of_probabilities(grid: &Grid, map: &[f32], threshold: f32) -> Mesh {
        let probs = Volume::new(*grid, Voxels::F32(map.to_vec()));
        let fine = Grid::new(
            grid.dims.map(|n| (2 * n).saturating_sub(1).max(1)),
            grid.world_from_voxel * DMat4::from_scale(DVec3::splat(0.5)),
        );
        let field = probs.resample(&fine, Interpolation::Trilinear, 0.0);
        Mesh::isosurface(&field, threshold).smoothed(SMOOTHING_STEPS)
    }

    /// Taubin's λ|μ smoothing (uniform weights, λ = 0.5, μ = −0.53): each step shrinks, then
    /// inflates, so the steps of the voxel lattice go while the enclosed volume stays.
    pub fn smoothed(mut self, steps: usize) -> Mesh {
        let mut neighbours: Vec<Vec<u32>> = vec![Vec::new(); self.vertices.len()];
        for t in &self.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                for (x, y) in [(a, b), (b, a)] {
                    let list = &mut neighbours[x as usize];
                    if !list.contains(&y) {
                        list.push(y);
                    }
                }
            }
        }
        for _ in 0..steps {
            for factor in [0.5, -0.53] {
                let moved: Vec<DVec3> = self
                    .vertices
                    .iter()
                    .zip(&neighbours)
                    .map(|(&p, around)| {
                        if around.is_empty() {
                            return p;
                        }
                        let mean = around
                            .iter()
                            .map(|&n| self.vertices[n as usize])
                            .sum::<DVec3>()
                            / around.len() as f64;
                        p + (mean - p) * factor
                    })
                    .collect();
                self.vertices = moved;
            }
        }
        self
    }

    fn corners(&self, t: &[u32; 3]) -> [DVec3; 3] {
        t.map(|v| self.vertices[v as usize])
    }

    /// Enclosed volume (mm³), by the divergence theorem; positive for outward-facing triangles.
    pub fn volume_mm3(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = self.corners(t);
                a.dot(b.cross(c)) / 6.0
            })
            .sum()
    }

    /// Surface area (mm²).
    pub fn area_mm2(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = self.corners(t);
                (b - a).cross(c - a).length() / 2.0
            })
            .sum()
    }

    /// Centre of the enclosed volume (LPS mm); `None` for an empty or flat mesh.
    pub fn centroid(&self) -> Option<DVec3> {
        let (mut sum, mut volume) = (DVec3::ZERO, 0.0);
        for t in &self.triangles {
            let [a, b, c] = self.corners(t);
            let v = a.dot(b.cross(c)) / 6.0;
            sum += (a + b + c) / 4.0 * v;
            volume += v;
        }
        (volume.abs() > 1e-9).then(|| sum / volume)
    }

    /// Volume, area and size in words: "436.0 ml, 325.0 cm², 65796 triangles, LPS mm" (the CLI
    /// and the app say it this way).
    pub fn describe(&self) -> String {
        format!(
            "{:.1} ml, {:.1} cm², {} triangles, LPS mm",
            self.volume_mm3() / 1000.0,
            self.area_mm2() / 100.0,
            self.triangles.len()
        )
    }

    /// Directed edges that do not have exactly one twin running the other way: 0 for a closed,
    /// consistently wound surface.
    pub fn open_edges(&self) -> usize {
        let mut count: HashMap<(u32, u32), i32> = HashMap::new();
        for t in &self.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                *count.entry((a, b)).or_default() += 1;
            }
        }
        count
            .iter()
            .filter(|(&(a, b), &n)| n != 1 || count.get(&(b, a)) != Some(&1))
            .count()
    }

    /// Write the mesh (format from the extension) durably: the old file stays whole until the
    /// new one is complete.
    pub fn write(&self, path: &Path) -> Result<(), FileError> {
        let format = MeshFormat::of_path(path)?;
        if self.triangles.is_empty() {
            return Err(FileError::new(
                path,
                "the surface is empty: nothing to write",
            ));
        }
        let bytes = match format {
            MeshFormat::Stl => self.stl(),
            MeshFormat::Ply => self.ply(),
            MeshFormat::Obj => self.obj(),
        };
        durable::write_atomic(path, &bytes)
    }

    fn stl(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(84 + 50 * self.triangles.len());
        let mut header = [b' '; 80];
        let text = b"heartloc surface in LPS millimetres SPACE=LPS";
        header[..text.len()].copy_from_slice(text);
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.triangles.len() as u32).to_le_bytes());
        for t in &self.triangles {
            let [a, b, c] = self.corners(t);
            let normal = (b - a).cross(c - a).normalize_or_zero();
            for p in [normal, a, b, c] {
                for x in p.to_array() {
                    out.extend_from_slice(&(x as f32).to_le_bytes());
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    fn ply(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = write!(
            out,
            "ply\nformat binary_little_endian 1.0\ncomment SPACE=LPS\ncomment written by \
             heartloc, millimetres\nelement vertex {}\nproperty float x\nproperty float y\n\
             property float z\nelement face {}\nproperty list uchar int vertex_indices\n\
             end_header\n",
            self.vertices.len(),
            self.triangles.len()
        );
        for p in &self.vertices {
            for x in p.to_array() {
                out.extend_from_slice(&(x as f32).to_le_bytes());
            }
        }
        for t in &self.triangles {
            out.push(3);
            for v in t {
                out.extend_from_slice(&(*v as i32).to_le_bytes());
            }
        }
        out
    }

    fn obj(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = writeln!(out, "# SPACE=LPS\n# written by heartloc, millimetres");
        for p in &self.vertices {
            let _ = writeln!(out, "v {:.4} {:.4} {:.4}", p.x, p.y, p.z);
        }
        for t in &self.triangles {
            let _ = writeln!(out, "f {} {} {}", t[0] + 1, t[1] + 1, t[2] + 1);
        }
        out
    }
}

/// The structures of a label map: its distinct non-zero values, lowest first. A volume with a
/// fractional or negative value, with more than 500 distinct values, or whose non-zero voxels
/// mostly differ from their neighbour along i (under 85% agree: an 8-bit image, most likely;
/// label maps of real anatomy agree over 90%), is not a label map.
pub fn label_values(labels: &Volume) -> Result<Vec<u32>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let (mut nonzero, mut agree) = (0usize, 0usize);
    let nx = labels.dims()[0];
    for i in 0..labels.voxels.len() {
        let v = labels.voxels.get(i);
        if v == 0.0 {
            continue;
        }
        if !(v.fract() == 0.0 && v > 0.0 && v < 1e6) {
            return Err(format!("not a label map: voxel {i} holds {v}"));
        }
        seen.insert(v as u32);
        if seen.len() > 500 {
            return Err("not a label map: over 500 distinct values".into());
        }
        if (i + 1) % nx != 0 {
            nonzero += 1;
            agree += usize::from(labels.voxels.get(i + 1) == v);
        }
    }
    let agreement = agree as f64 / nonzero.max(1) as f64;
    if nonzero > 0 && agreement < 0.85 {
        return Err(format!(
            "not a label map: only {:.0}% of its non-zero voxels have the value of their \
             neighbour (an image?)",
            agreement * 100.0
        ));
    }
    Ok(seen.into_iter().collect())
}

/// One structure of a label map, as [`write_structures`] left it: its value, its name, and
/// the file written with its surface (`None`: too small to enclose anything, nothing written).
pub struct Structure {
    pub value: u32,
    pub name: String,
    pub written: Option<(PathBuf, Mesh)>,
}

/// The surface of each of `values` in `labels`, written to
/// `<dir>/<stem>-<value>-<name>.<format>` (the name's characters other than ASCII letters,
/// digits and `-` as `_`); structures too small for a surface are listed, not written. The
/// one routine behind `heartloc mesh` and the app's export.
pub fn write_structures(
    labels: &Volume,
    values: &[u32],
    name_of: impl Fn(u32) -> String,
    dir: &Path,
    stem: &str,
    format: MeshFormat,
) -> Result<Vec<Structure>, FileError> {
    let mut out = Vec::new();
    for &value in values {
        let name = name_of(value);
        let mesh = Mesh::of_label(labels, value);
        let written = if mesh.triangles.is_empty() {
            None
        } else {
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = dir.join(format!("{stem}-{value}-{safe}.{}", format.extension()));
            mesh.write(&path)?;
            Some((path, mesh))
        };
        out.push(Structure {
            value,
            name,
            written,
        });
    }
    Ok(out)
}

/// Builds the surface one tetrahedron at a time, sharing the vertex of each lattice edge.
struct Builder {
    dims: [usize; 3],
    world_from_voxel: DMat4,
    level: f32,
    vertex_of_edge: HashMap<(u64, u64), u32>,
    mesh: Mesh,
}

impl Builder {
    /// A lattice point's key (the grid padded by one on every side).
    fn key(&self, p: [i64; 3]) -> u64 {
        let [nx, ny, _] = self.dims.map(|n| n as u64 + 2);
        let [i, j, k] = p.map(|x| (x + 1) as u64);
        i + nx * (j + ny * k)
    }

    fn world(&self, p: [i64; 3]) -> DVec3 {
        self.world_from_voxel
            .transform_point3(DVec3::new(p[0] as f64, p[1] as f64, p[2] as f64))
    }

    /// The vertex where the level crosses the edge from `a` (inside) to `b` (outside).
    fn vertex(&mut self, a: ([i64; 3], f32), b: ([i64; 3], f32)) -> u32 {
        let (ka, kb) = (self.key(a.0), self.key(b.0));
        let edge = (ka.min(kb), ka.max(kb));
        if let Some(&v) = self.vertex_of_edge.get(&edge) {
            return v;
        }
        let t = f64::from((a.1 - self.level) / (a.1 - b.1)).clamp(0.0, 1.0);
        let p = self.world(a.0).lerp(self.world(b.0), t);
        let v = self.mesh.vertices.len() as u32;
        self.mesh.vertices.push(p);
        self.vertex_of_edge.insert(edge, v);
        v
    }

    fn tetrahedron(&mut self, corners: [([i64; 3], f32); 4]) {
        let (inside, outside): (Vec<_>, Vec<_>) =
            corners.into_iter().partition(|c| c.1 >= self.level);
        let centre = |cs: &[([i64; 3], f32)]| {
            cs.iter().map(|c| self.world(c.0)).sum::<DVec3>() / cs.len() as f64
        };
        let outward = centre(&outside) - centre(&inside);
        match (inside.len(), outside.len()) {
            (1, 3) => {
                let v = [0, 1, 2].map(|o| self.vertex(inside[0], outside[o]));
                self.triangle(v, outward);
            }
            (3, 1) => {
                let v = [0, 1, 2].map(|i| self.vertex(inside[i], outside[0]));
                self.triangle(v, outward);
            }
            (2, 2) => {
                let q = [
                    self.vertex(inside[0], outside[0]),
                    self.vertex(inside[0], outside[1]),
                    self.vertex(inside[1], outside[1]),
                    self.vertex(inside[1], outside[0]),
                ];
                self.triangle([q[0], q[1], q[2]], outward);
                self.triangle([q[0], q[2], q[3]], outward);
            }
            _ => {}
        }
    }

    /// Add a triangle wound so that its normal points along `outward`.
    fn triangle(&mut self, v: [u32; 3], outward: DVec3) {
        let [a, b, c] = v.map(|i| self.mesh.vertices[i as usize]);
        let normal = (b - a).cross(c - a);
        self.mesh.triangles.push(if normal.dot(outward) >= 0.0 {
            v
        } else {
            [v[0], v[2], v[1]]
        });
    }
}

/// The voxel box (inclusive) of the values for which `keep` holds.
fn block_where(volume: &Volume, keep: impl Fn(f32) -> bool) -> Option<([i64; 3], [i64; 3])> {
    let dims = volume.dims();
    let (mut lo, mut hi) = ([i64::MAX; 3], [i64::MIN; 3]);
    for idx in 0..volume.voxels.len() {
        if keep(volume.voxels.get(idx)) {
            let ijk = crate::volume::ijk_of(dims, idx);
            for a in 0..3 {
                lo[a] = lo[a].min(ijk[a] as i64);
                hi[a] = hi[a].max(ijk[a] as i64);
            }
        }
    }
    (lo[0] <= hi[0]).then_some((lo, hi))
}

/// A separable Gaussian blur of `sigma` voxels along each axis (zero beyond the border).
fn blur(dims: [usize; 3], mut values: Vec<f32>, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    for axis in 0..3 {
        let (n, stride) = (dims[axis] as i64, strides[axis]);
        let mut out = vec![0.0f32; values.len()];
        for (idx, o) in out.iter_mut().enumerate() {
            let pos = ((idx / stride) % dims[axis]) as i64;
            let mut sum = 0.0;
            for (w, d) in weights.iter().zip(-radius..=radius) {
                let q = pos + d;
                if (0..n).contains(&q) {
                    sum += w * values[(idx as i64 + d * stride as i64) as usize];
                }
            }
            *o = sum;
        }
        values = out;
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DQuat;

    /// A ball of `radius` mm at `centre` as a 0/1 label volume on `grid`.
    fn ball(grid: Grid, centre: DVec3, radius: f64) -> Volume {
        let m = (0..grid.voxel_count())
            .map(|i| u8::from(grid.world_from_flat(i).distance(centre) <= radius))
            .collect();
        Volume::new(grid, Voxels::U8(m))
    }

    #[test]
    fn a_ball_gives_a_closed_outward_surface_of_its_volume_on_any_grid() {
        let centre = DVec3::new(-5.0, 30.0, 320.0);
        for (rotation, mirrored) in [
            (DQuat::IDENTITY, false),
            (DQuat::from_euler(glam::EulerRot::XYZ, 0.3, -0.5, 0.8), true),
        ] {
            let flip = if mirrored { -1.0 } else { 1.0 };
            let axes = DMat4::from_quat(rotation) * DMat4::from_scale(DVec3::new(flip, 1.2, 2.0));
            let origin = centre - axes.transform_vector3(DVec3::new(20.0, 17.0, 10.0));
            let m = DMat4::from_translation(origin) * axes;
            let labels = ball(Grid::new([40, 34, 20], m), centre, 12.0);
            let mesh = Mesh::of_label(&labels, 1);
            assert_eq!(mesh.open_edges(), 0, "mirrored {mirrored}");
            let exact = 4.0 / 3.0 * std::f64::consts::PI * 12f64.powi(3);
            let ratio = mesh.volume_mm3() / exact;
            assert!((0.93..1.07).contains(&ratio), "volume ratio {ratio}");
            let c = mesh.centroid().unwrap();
            assert!(c.distance(centre) < 0.5, "centroid {c} vs {centre}");
            let area_ratio = mesh.area_mm2() / (4.0 * std::f64::consts::PI * 144.0);
            assert!((0.9..1.15).contains(&area_ratio), "area ratio {area_ratio}");
        }
    }

    #[test]
    fn a_label_touching_the_border_is_closed_there_and_empty_labels_give_nothing() {
        let grid = Grid::new([6, 6, 6], DMat4::IDENTITY);
        let labels = Volume::new(grid, Voxels::U8(vec![2; 216]));
        let mesh = Mesh::isosurface(&Volume::new(grid, Voxels::F32(vec![1.0; 216])), 0.5);
        assert_eq!(mesh.open_edges(), 0);
        // Faces half a voxel beyond the outer centres (a 6 mm cube), its edges chamfered.
        let v = mesh.volume_mm3();
        assert!((190.0..=216.0).contains(&v), "{v}");
        assert!(Mesh::of_label(&labels, 1).triangles.is_empty());
        // A level the border's zeros cannot close around gives nothing, never a panic.
        let ones = Volume::new(grid, Voxels::F32(vec![1.0; 216]));
        for level in [0.0, -1.0, f32::NAN] {
            assert!(Mesh::isosurface(&ones, level).triangles.is_empty());
        }
    }

    #[test]
    fn smoothing_keeps_the_volume_and_the_surface_closed() {
        let grid = Grid::new([30, 30, 30], DMat4::IDENTITY);
        let labels = ball(grid, DVec3::splat(14.5), 9.0);
        let field: Vec<f32> = (0..grid.voxel_count())
            .map(|i| f32::from(labels.voxels.get(i) as u8))
            .collect();
        let raw = Mesh::isosurface(&Volume::new(grid, Voxels::F32(field)), 0.5);
        let smooth = raw.clone().smoothed(SMOOTHING_STEPS);
        assert_eq!(smooth.open_edges(), 0);
        let change = smooth.volume_mm3() / raw.volume_mm3();
        assert!((0.97..1.03).contains(&change), "volume change {change}");
        assert!(
            smooth.area_mm2() < raw.area_mm2(),
            "smoothing removes steps"
        );
    }

    #[test]
    fn label_values_are_the_structures_and_images_are_refused() {
        let grid = Grid::new([2, 2, 1], DMat4::IDENTITY);
        let labels = Volume::new(grid, Voxels::U8(vec![4, 4, 2, 2]));
        assert_eq!(label_values(&labels), Ok(vec![2, 4]));
        let image = Volume::new(grid, Voxels::F32(vec![0.0, 1.5, 2.0, 4.0]));
        let err = label_values(&image).unwrap_err();
        assert!(err.contains("voxel 1 holds 1.5"), "{err}");
        let noisy = Volume::new(grid, Voxels::U8(vec![3, 4, 2, 7]));
        let err = label_values(&noisy).unwrap_err();
        assert!(err.contains("0% of its non-zero voxels"), "{err}");
    }

    #[test]
    fn files_say_lps_and_hold_the_triangles() {
        let grid = Grid::new([8, 8, 8], DMat4::IDENTITY);
        let mesh = Mesh::of_label(&ball(grid, DVec3::splat(3.5), 2.5), 1);
        let dir = std::env::temp_dir().join(format!("heartloc-mesh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["m.stl", "m.ply", "m.obj"] {
            let path = dir.join(name);
            mesh.write(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let head = String::from_utf8_lossy(&bytes[..80.min(bytes.len())]).to_string();
            assert!(head.contains("SPACE=LPS"), "{name}: {head}");
        }
        let stl = std::fs::read(dir.join("m.stl")).unwrap();
        let n = u32::from_le_bytes(stl[80..84].try_into().unwrap()) as usize;
        assert_eq!((n, stl.len()), (mesh.triangles.len(), 84 + 50 * n));
        let err = mesh.write(&dir.join("m.vtk")).unwrap_err().to_string();
        assert!(err.contains("m.vtk") && err.contains(".stl"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
