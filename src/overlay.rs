//! Overlays over the slice panes, computed on the CPU for one slice view: a label map (names
//! and colours), the segmentation mask (fill or outline) and the heatmap (colour map). Each is
//! sampled at the world point under each overlay pixel, so any grid lines up with any image.
//! No GUI imports: the app turns the RGBA raster into a texture.

use std::path::Path;

use glam::{DVec2, DVec3};

use crate::slice_view::SliceView;
use crate::volume::{Interpolation, Volume};

/// Slots of the 3D view's structure texture: 0 is nothing, slot `s` in 1..[`MASK_SLOT`] the
/// `s`-th structure of the label map, [`MASK_SLOT`] the segmentation where no structure is.
pub const MASK_SLOT: u8 = 15;

/// The structure slot of every texel of a `dims` texture whose texel centres lie at
/// `world_from_texel` (LPS mm): the label map's value there (nearest) when it is one of
/// `values` (the first 14 shown), else the segmentation mask's (probabilities at or above its
/// threshold, trilinear), else 0. Slices are filled on every core.
pub fn structure_texels(
    dims: [u32; 3],
    world_from_texel: glam::DMat4,
    labels: Option<(&Volume, &[u32])>,
    mask: Option<(&Volume, f32)>,
) -> Vec<u8> {
    use rayon::prelude::*;
    let [nx, ny, nz] = dims.map(|n| n as usize);
    let mut out = vec![0u8; nx * ny * nz];
    out.par_chunks_mut((nx * ny).max(1))
        .enumerate()
        .for_each(|(k, slice)| {
            for (idx, slot) in slice.iter_mut().enumerate() {
                let (i, j) = (idx % nx, idx / nx);
                let p = world_from_texel.transform_point3(DVec3::new(i as f64, j as f64, k as f64));
                let label = labels.and_then(|(v, values)| {
                    let value = v.sample_world(p, Interpolation::Nearest)? as u32;
                    let s = values.iter().position(|&x| x == value)?;
                    (s + 1 < MASK_SLOT as usize).then_some(s as u8 + 1)
                });
                let masked = || {
                    mask.is_some_and(|(m, threshold)| {
                        m.sample_world(p, Interpolation::Trilinear)
                            .is_some_and(|x| x >= threshold)
                    })
                };
                *slot = label.unwrap_or(if masked() { MASK_SLOT } else { 0 });
            }
        });
    out
}

/// How a layer is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Paint {
    /// Each non-zero label value in its table colour.
    Labels,
    /// Values at or above `threshold` in one colour.
    Mask { threshold: f32, color: [u8; 3] },
    /// Values 0..1 through a black-red-yellow-white colour map, transparent at 0.
    Heat,
}

/// One overlay layer: what to sample and how to paint it.
pub struct Layer<'a> {
    pub volume: &'a Volume,
    pub paint: Paint,
    pub opacity: f32,
    /// Only the boundary between regions (labels, mask).
    pub outline: bool,
    /// Label value → colour (for [`Paint::Labels`]).
    pub table: Option<&'a LabelTable>,
}

/// An RGBA image, row by row, `size[0]` wide.
pub struct Raster {
    pub size: [usize; 2],
    pub rgba: Vec<[u8; 4]>,
}

impl Raster {
    /// The smallest block holding every pixel that is not fully transparent, with a margin of
    /// one pixel (so a bilinear sampler fades its border as over the whole raster), as
    /// `[min, max)` pixel corners, and its pixels; `None` when nothing shows. Drawing only
    /// that block matters on CPU renderers, where blending costs per covered pixel.
    pub fn visible_block(&self) -> Option<([usize; 2], [usize; 2], Raster)> {
        let [w, h] = self.size;
        let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
        for (p, px) in self.rgba.iter().enumerate() {
            if px[3] > 0 {
                let (x, y) = (p % w, p / w);
                lo = [lo[0].min(x), lo[1].min(y)];
                hi = [hi[0].max(x + 1), hi[1].max(y + 1)];
            }
        }
        if lo[0] == usize::MAX {
            return None;
        }
        let lo = lo.map(|v| v.saturating_sub(1));
        let hi = [(hi[0] + 1).min(w), (hi[1] + 1).min(h)];
        let rgba = (lo[1]..hi[1])
            .flat_map(|y| self.rgba[y * w + lo[0]..y * w + hi[0]].iter().copied())
            .collect();
        let size = [hi[0] - lo[0], hi[1] - lo[1]];
        Some((lo, hi, Raster { size, rgba }))
    }
}

/// Paint `layers` (first at the bottom) on the slice through `crosshair` seen by `view` in a
/// pane of `pane_px`, one raster pixel per `step_px` pane pixels.
pub fn rasterise(
    view: &SliceView,
    crosshair: DVec3,
    pane_px: DVec2,
    step_px: f64,
    layers: &[Layer],
) -> Raster {
    let w = (pane_px.x / step_px).ceil().max(1.0) as usize;
    let h = (pane_px.y / step_px).ceil().max(1.0) as usize;
    let mut rgba = vec![[0u8; 4]; w * h];
    let origin = view.world_from_screen(DVec2::splat(step_px * 0.5), pane_px, crosshair);
    let dx = view.world_from_screen(DVec2::new(step_px * 1.5, step_px * 0.5), pane_px, crosshair)
        - origin;
    let dy = view.world_from_screen(DVec2::new(step_px * 0.5, step_px * 1.5), pane_px, crosshair)
        - origin;
    for layer in layers {
        let voxel_from_world = layer.volume.voxel_from_world();
        let (o, ix, iy) = (
            voxel_from_world.transform_point3(origin),
            voxel_from_world.transform_vector3(dx),
            voxel_from_world.transform_vector3(dy),
        );
        let interp = match layer.paint {
            Paint::Labels => Interpolation::Nearest,
            _ => Interpolation::Trilinear,
        };
        let values: Vec<f32> = (0..w * h)
            .map(|p| {
                let ijk = o + ix * (p % w) as f64 + iy * (p / w) as f64;
                layer.volume.sample_index(ijk, interp).unwrap_or(0.0)
            })
            .collect();
        // Region of each pixel: the label value, mask in/out; the heatmap has none.
        let region = |v: f32| -> u32 {
            match layer.paint {
                Paint::Labels => v.max(0.0).round() as u32,
                Paint::Mask { threshold, .. } => u32::from(v >= threshold),
                Paint::Heat => 0,
            }
        };
        for p in 0..w * h {
            let v = values[p];
            let r = region(v);
            let (color, alpha) = match layer.paint {
                Paint::Heat => (heat_color(v), layer.opacity * v.clamp(0.0, 1.0)),
                _ if r == 0 => continue,
                Paint::Mask { color, .. } => (color, layer.opacity),
                Paint::Labels => (
                    layer.table.map_or(palette(r), |t| t.color(r)),
                    layer.opacity,
                ),
            };
            let alpha = if layer.outline && !matches!(layer.paint, Paint::Heat) {
                let (x, y) = (p % w, p / w);
                let differs = |q: usize| region(values[q]) != r;
                let edge = (x > 0 && differs(p - 1))
                    || (x + 1 < w && differs(p + 1))
                    || (y > 0 && differs(p - w))
                    || (y + 1 < h && differs(p + w));
                if !edge {
                    continue;
                }
                1.0
            } else {
                alpha
            };
            over(&mut rgba[p], color, alpha);
        }
    }
    Raster { size: [w, h], rgba }
}

/// Alpha-blend `color` at `alpha` over a premultiplied-free RGBA pixel.
fn over(px: &mut [u8; 4], color: [u8; 3], alpha: f32) {
    let a = alpha.clamp(0.0, 1.0);
    if a <= 0.0 {
        return;
    }
    let below = f32::from(px[3]) / 255.0;
    let out_a = a + below * (1.0 - a);
    for c in 0..3 {
        let v = (f32::from(color[c]) * a + f32::from(px[c]) * below * (1.0 - a)) / out_a;
        px[c] = v.round().clamp(0.0, 255.0) as u8;
    }
    px[3] = (out_a * 255.0).round() as u8;
}

/// Black → red → yellow → white.
pub fn heat_color(v: f32) -> [u8; 3] {
    let t = v.clamp(0.0, 1.0) * 3.0;
    let c = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    [c(t), c(t - 1.0), c(t - 2.0)]
}

/// Distinct colours for label values without a table entry.
pub fn palette(value: u32) -> [u8; 3] {
    const P: [[u8; 3]; 8] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ];
    P[(value as usize + P.len() - 1) % P.len()]
}

/// Names and colours of a label map's values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelTable {
    pub entries: Vec<(u32, String, [u8; 3])>,
}

impl LabelTable {
    pub fn color(&self, value: u32) -> [u8; 3] {
        self.entries
            .iter()
            .find(|e| e.0 == value)
            .map_or(palette(value), |e| e.2)
    }

    pub fn name(&self, value: u32) -> String {
        self.entries
            .iter()
            .find(|e| e.0 == value)
            .map_or(format!("label {value}"), |e| e.1.clone())
    }

    /// `1=esophagus 2=heart …` (the manifest's `labels` column), with anatomical colours for
    /// names it knows.
    pub fn from_pairs(text: &str) -> Self {
        let entries = text
            .split_whitespace()
            .filter_map(|pair| {
                let (v, name) = pair.split_once('=')?;
                let v: u32 = v.parse().ok()?;
                let name = name.replace('_', " ");
                let color = anatomy_color(&name).unwrap_or(palette(v));
                Some((v, name, color))
            })
            .collect();
        LabelTable { entries }
    }

    /// A colour table: an ITK-SNAP label description file (`index r g b alpha visible mesh
    /// "name"` per line) when its lines quote their names, else a 3D Slicer colour table.
    /// Value 0 (ITK-SNAP's "Clear Label") is background and left out.
    pub fn from_table_text(text: &str) -> Self {
        let itk_snap = text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains('"'));
        if !itk_snap {
            return Self::from_slicer_table(text);
        }
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let (numbers, rest) = l.split_once('"')?;
                let name = rest.rsplit_once('"').map_or(rest, |(n, _)| n).trim();
                let f: Vec<&str> = numbers.split_whitespace().collect();
                let v: u32 = f.first()?.parse().ok()?;
                let rgb: Vec<u8> = f.get(1..4)?.iter().filter_map(|x| x.parse().ok()).collect();
                (v > 0 && rgb.len() == 3).then(|| (v, name.to_string(), [rgb[0], rgb[1], rgb[2]]))
            })
            .collect();
        LabelTable { entries }
    }

    /// The table as a 3D Slicer colour table (spaces in names written as `_`, as Slicer does).
    pub fn to_slicer_table(&self) -> String {
        let mut out = String::from("# Color table file written by heartloc\n");
        for (v, name, [r, g, b]) in &self.entries {
            out.push_str(&format!("{v} {} {r} {g} {b} 255\n", name.replace(' ', "_")));
        }
        out
    }

    /// Name `value` (keeping its colour, or giving it the default one).
    pub fn rename(&mut self, value: u32, name: &str) {
        let color = self.color(value);
        self.entries.retain(|e| e.0 != value);
        self.entries.push((value, name.trim().to_string(), color));
        self.entries.sort_by_key(|e| e.0);
    }

    /// A 3D Slicer colour table (`value name r g b a` per line, `#` comments).
    pub fn from_slicer_table(text: &str) -> Self {
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let v: u32 = f.first()?.parse().ok()?;
                let rgb: Vec<u8> = f.get(2..5)?.iter().filter_map(|x| x.parse().ok()).collect();
                (rgb.len() == 3).then(|| (v, f[1].replace('_', " "), [rgb[0], rgb[1], rgb[2]]))
            })
            .collect();
        LabelTable { entries }
    }

    /// The table for a label file: a Slicer colour table or ITK-SNAP label description beside
    /// it (`<stem>.ctbl`, `<stem>.txt` or `<stem>.label.txt`), else the `labels` column of a
    /// `manifest.csv` one or two folders up whose `case` is the file's folder, else empty
    /// (values are shown as `label N`).
    pub fn find_for(labels: &Path) -> Self {
        let stem = crate::io::nifti::stem(labels);
        let dir = labels.parent().unwrap_or(Path::new("."));
        for side in ["ctbl", "txt", "label.txt"].map(|ext| format!("{stem}.{ext}")) {
            if let Ok(text) = std::fs::read_to_string(dir.join(side)) {
                let t = Self::from_table_text(&text);
                if !t.entries.is_empty() {
                    return t;
                }
            }
        }
        let mut up = dir.to_path_buf();
        for _ in 0..2 {
            let Some(parent) = up.parent().map(Path::to_path_buf) else {
                break;
            };
            if let Ok(text) = std::fs::read_to_string(parent.join("manifest.csv")) {
                let case = dir
                    .strip_prefix(&parent)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                if let Some(t) = labels_column(&text, &case) {
                    return Self::from_pairs(&t);
                }
            }
            up = parent;
        }
        LabelTable::default()
    }
}

/// The `labels` cell of the row whose `case` is `case`.
fn labels_column(csv: &str, case: &str) -> Option<String> {
    let t = crate::io::table::Table::parse(csv, Path::new("manifest.csv")).ok()?;
    let (ci, li) = (Some(t.column("case")?), Some(t.column("labels")?));
    t.rows
        .iter()
        .find(|r| r.get(ci) == case)
        .map(|r| r.get(li).to_string())
}

/// Conventional colours for the structures of the shared data sets, kept apart where they
/// touch (heart brown-red and aorta bright red; myocardium tan between the red left and the
/// blue right cavities). Names match with `-` and `_` read as spaces.
fn anatomy_color(name: &str) -> Option<[u8; 3]> {
    let n = format!(" {} ", name.to_ascii_lowercase().replace(['-', '_'], " "));
    let has = |w: &str| n.contains(w);
    Some(match () {
        _ if has("myocard") => [214, 150, 84],
        _ if has("left ventric") || has(" lv ") => [230, 70, 70],
        _ if has("right ventric") || has(" rv ") => [80, 120, 230],
        _ if has("heart") => [196, 121, 79],
        _ if has("aort") => [232, 48, 48],
        _ if has("esophag") || has("oesophag") => [211, 171, 143],
        _ if has("trachea") => [182, 228, 255],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice_view::Plane;
    use crate::volume::{Grid, Voxels};
    use glam::DMat4;

    #[test]
    fn itk_snap_label_descriptions_give_names_and_colours() {
        let text = "################################################\n\
                    # ITK-SnAP Label Description File\n\
                    # Columns = Index Red Green Blue Alpha Visibility MeshVisibility \"Label\"\n\
                        0     0    0    0        0  0  0    \"Clear Label\"\n\
                        1   255   60   40        1  1  1    \"Left ventricle\"\n\
                        3    20  200   90      0.5  1  0    \"Right atrium (RA)\"\n";
        let t = LabelTable::from_table_text(text);
        assert_eq!(t.entries.len(), 2, "{:?}", t.entries);
        assert_eq!(
            (t.name(1), t.color(1)),
            ("Left ventricle".into(), [255, 60, 40])
        );
        assert_eq!(t.name(3), "Right atrium (RA)");
        // What is written reads back the same.
        let mut t = t;
        t.rename(5, "left atrium");
        assert_eq!(LabelTable::from_table_text(&t.to_slicer_table()), t);
        // Slicer tables still read as before.
        let slicer = LabelTable::from_table_text("# c\n2 heart 200 100 80 255\n");
        assert_eq!(
            (slicer.name(2), slicer.color(2)),
            ("heart".into(), [200, 100, 80])
        );
    }

    #[test]
    fn structures_that_touch_get_colours_apart() {
        let t = LabelTable::from_pairs(
            "1=esophagus 2=heart 3=trachea 4=aorta 5=left-ventricle-cavity \
             6=left_ventricle_myocardium 7=right-ventricle-cavity",
        );
        let far = |a: u32, b: u32| {
            let (x, y) = (t.color(a), t.color(b));
            (0..3)
                .map(|i| (f64::from(x[i]) - f64::from(y[i])).abs())
                .sum::<f64>()
        };
        assert!(
            far(2, 4) > 80.0,
            "heart {:?} vs aorta {:?}",
            t.color(2),
            t.color(4)
        );
        assert!(far(5, 6) > 80.0 && far(6, 7) > 80.0 && far(5, 7) > 80.0);
        assert_eq!(t.name(6), "left ventricle myocardium");
    }

    fn cube_labels() -> Volume {
        // 20³ at 1 mm, label 2 in the block 5..15, label 1 elsewhere in x < 3.
        let mut v = vec![0u8; 8000];
        for k in 0..20 {
            for j in 0..20 {
                for i in 0..20 {
                    let inside =
                        (5..15).contains(&i) && (5..15).contains(&j) && (5..15).contains(&k);
                    v[i + 20 * (j + 20 * k)] = if inside { 2 } else { u8::from(i < 3) };
                }
            }
        }
        Volume::new(Grid::new([20, 20, 20], DMat4::IDENTITY), Voxels::U8(v))
    }

    fn axial_view() -> SliceView {
        SliceView::new(Plane::Axial, DVec3::new(9.5, 9.5, 9.5), 1.0)
    }

    #[test]
    fn labels_are_painted_where_the_world_points_fall() {
        let vol = cube_labels();
        let table = LabelTable::from_pairs("1=esophagus 2=heart");
        let r = rasterise(
            &axial_view(),
            DVec3::splat(10.0),
            DVec2::new(20.0, 20.0),
            1.0,
            &[Layer {
                volume: &vol,
                paint: Paint::Labels,
                opacity: 1.0,
                outline: false,
                table: Some(&table),
            }],
        );
        assert_eq!(r.size, [20, 20]);
        // The pane's centre is the block: heart colour, opaque.
        let at = |x: usize, y: usize| r.rgba[x + 20 * y];
        assert_eq!(at(10, 10), [196, 121, 79, 255]);
        // Radiological display: patient left (+x) is on the screen's right, so x < 3 (right
        // side of the patient) is on the screen's left.
        assert_eq!(&at(0, 1)[..3], &table.color(1));
        assert_eq!(at(17, 1)[3], 0, "no label there");
    }

    #[test]
    fn outlines_keep_only_region_boundaries() {
        let vol = cube_labels();
        let r = rasterise(
            &axial_view(),
            DVec3::splat(10.0),
            DVec2::new(20.0, 20.0),
            1.0,
            &[Layer {
                volume: &vol,
                paint: Paint::Mask {
                    threshold: 1.5,
                    color: [0, 255, 0],
                },
                opacity: 0.3,
                outline: true,
                table: None,
            }],
        );
        let on: usize = r.rgba.iter().filter(|p| p[3] > 0).count();
        // The 10×10 block's border: 36 pixels.
        assert_eq!(on, 36);
        assert_eq!(r.rgba[10 + 20 * 10][3], 0, "the inside is not filled");
        // Only the block's 10×10 pixels and a transparent margin need drawing, copied as
        // they are.
        let (lo, hi, block) = r.visible_block().unwrap();
        assert_eq!((lo, hi, block.size), ([4, 4], [16, 16], [12, 12]));
        assert_eq!(block.rgba[0], r.rgba[4 + 20 * 4]);
        assert_eq!(block.rgba[1 + 12], r.rgba[5 + 20 * 5]);
        assert_ne!(block.rgba[1 + 12][3], 0);
        assert_eq!(block.rgba[12 * 12 - 1], r.rgba[15 + 20 * 15]);
        let full = Raster {
            size: [2, 2],
            rgba: vec![[1, 2, 3, 4]; 4],
        };
        let (lo, hi, _) = full.visible_block().unwrap();
        assert_eq!(
            (lo, hi),
            ([0, 0], [2, 2]),
            "the margin stays inside the raster"
        );
        let empty = Raster {
            size: [3, 2],
            rgba: vec![[9, 9, 9, 0]; 6],
        };
        assert!(empty.visible_block().is_none());
    }

    #[test]
    fn heat_fades_with_its_value_and_tables_parse() {
        assert_eq!(heat_color(0.0), [0, 0, 0]);
        assert_eq!(heat_color(1.0), [255, 255, 255]);
        let mut px = [0u8; 4];
        over(&mut px, [255, 0, 0], 0.5);
        assert_eq!(px, [255, 0, 0, 128]);
        let t =
            LabelTable::from_slicer_table("# c\n0 Background 0 0 0 0\n3 LV_cavity 10 20 30 255\n");
        assert_eq!(t.name(3), "LV cavity");
        assert_eq!(t.color(3), [10, 20, 30]);
        assert_eq!(t.name(9), "label 9");
        let csv = "case,labels\nct/P1,1=a 2=heart\n";
        assert_eq!(labels_column(csv, "ct/P1").as_deref(), Some("1=a 2=heart"));
        assert_eq!(labels_column(csv, "ct/P2"), None);
    }
}
