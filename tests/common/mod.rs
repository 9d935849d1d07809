//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glam::DVec3;
use heartloc::mesh::Mesh;

pub mod cine;
#[cfg(feature = "gui")]
pub mod gui;

/// `../shared/data` beside the repository, or `None` with a printed reason (tests then skip).
pub fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.join("manifest.csv").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIP: {} is absent (the shared heart data lives outside the repository)",
            dir.display()
        );
        None
    }
}

/// A path under `../shared/data` (`rel` may climb to `../demo/…`), or `None` with a printed
/// reason when the data or that path is absent (tests then skip).
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let path = shared_data()?.join(rel);
    if path.exists() {
        Some(path)
    } else {
        println!("SKIP: {} is absent", path.display());
        None
    }
}

/// `heartloc ARGS… INPUT` must succeed; its standard output parsed as one JSON value.
pub fn cli_json(args: &[&str], input: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "heartloc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON value")
}

/// One manifest row, the fields tests use.
#[derive(Debug, Clone)]
pub struct Case {
    pub case: String,
    pub modality: String,
    pub shape: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub heart_values: Vec<u32>,
    pub heart_center_lps_mm: [f64; 3],
    pub heart_bbox_lps_min_mm: [f64; 3],
    pub heart_bbox_lps_max_mm: [f64; 3],
}

fn three<T: std::str::FromStr>(s: &str, sep: char) -> [T; 3]
where
    T::Err: std::fmt::Debug,
{
    let v: Vec<T> = s
        .split(sep)
        .map(|x| x.trim().parse().expect("number"))
        .collect();
    match <[T; 3]>::try_from(v) {
        Ok(a) => a,
        Err(_) => panic!("expected three values in {s:?}"),
    }
}

pub fn manifest(data: &std::path::Path) -> Vec<Case> {
    let text = std::fs::read_to_string(data.join("manifest.csv")).expect("manifest");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Case {
                case: f[col("case")].to_string(),
                modality: f[col("modality")].to_string(),
                shape: three(f[col("shape")], 'x'),
                spacing_mm: three(f[col("spacing_mm")], 'x'),
                heart_values: f[col("heart_values")]
                    .split_whitespace()
                    .map(|v| v.parse().expect("label"))
                    .collect(),
                heart_center_lps_mm: three(f[col("heart_center_lps_mm")], ' '),
                heart_bbox_lps_min_mm: three(f[col("heart_bbox_lps_min_mm")], ' '),
                heart_bbox_lps_max_mm: three(f[col("heart_bbox_lps_max_mm")], ' '),
            }
        })
        .collect()
}

/// The same scan stored with i reversed and j/k swapped, the affine adjusted to match: the
/// same world, another orientation (a "flipped and permuted" re-save).
pub fn flipped_and_permuted(vol: &heartloc::volume::Volume) -> heartloc::volume::Volume {
    use glam::{DMat4, DVec4};
    use heartloc::volume::{Grid, Volume, Voxels};
    let [nx, ny, nz] = vol.dims();
    let mut vals = Vec::with_capacity(vol.voxels.len());
    for j in 0..ny {
        for k in 0..nz {
            for i in 0..nx {
                vals.push(vol.at(nx - 1 - i, j, k));
            }
        }
    }
    // new (a, b, c) = old (nx-1-a, c, b)
    let old_from_new = DMat4::from_cols(
        -DVec4::X,
        DVec4::Z,
        DVec4::Y,
        DVec4::new(nx as f64 - 1.0, 0.0, 0.0, 1.0),
    );
    Volume::new(
        Grid::new([nx, nz, ny], vol.world_from_voxel() * old_from_new),
        Voxels::F32(vals),
    )
}

/// Triangles (three LPS points each) from a binary STL, after checking its header and length.
pub fn read_stl(path: &Path) -> Vec<[DVec3; 3]> {
    let b = std::fs::read(path).unwrap();
    let header = String::from_utf8_lossy(&b[..80]).to_string();
    assert!(header.contains("SPACE=LPS"), "{header}");
    let n = u32::from_le_bytes(b[80..84].try_into().unwrap()) as usize;
    assert_eq!(b.len(), 84 + 50 * n, "STL length");
    let f = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as f64;
    (0..n)
        .map(|t| {
            let base = 84 + 50 * t + 12;
            std::array::from_fn(|v| {
                let o = base + 12 * v;
                DVec3::new(f(o), f(o + 4), f(o + 8))
            })
        })
        .collect()
}

/// The same surface as an indexed mesh, vertices welded where their coordinates are equal.
pub fn welded(triangles: &[[DVec3; 3]]) -> Mesh {
    let mut index: HashMap<[u64; 3], u32> = HashMap::new();
    let mut mesh = Mesh::default();
    for t in triangles {
        let ids = t.map(|p| {
            let key = p.to_array().map(f64::to_bits);
            *index.entry(key).or_insert_with(|| {
                mesh.vertices.push(p);
                mesh.vertices.len() as u32 - 1
            })
        });
        mesh.triangles.push(ids);
    }
    mesh
}

/// An indexed mesh from a PLY (binary little endian, as written) or OBJ file.
pub fn read_indexed(path: &Path) -> Mesh {
    let b = std::fs::read(path).unwrap();
    let mut mesh = Mesh::default();
    if path.extension().unwrap() == "obj" {
        let text = String::from_utf8(b).unwrap();
        assert!(text.starts_with("# SPACE=LPS"), "{}", &text[..40]);
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.first() {
                Some(&"v") => mesh.vertices.push(DVec3::new(
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )),
                Some(&"f") => mesh
                    .triangles
                    .push([1, 2, 3].map(|i| f[i].parse::<u32>().unwrap() - 1)),
                _ => {}
            }
        }
        return mesh;
    }
    let end = b.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    let header = String::from_utf8_lossy(&b[..end]).to_string();
    assert!(header.contains("comment SPACE=LPS"), "{header}");
    let count = |name: &str| -> usize {
        let line = header.lines().find(|l| l.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (nv, nf) = (count("element vertex"), count("element face"));
    let f = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as f64;
    for v in 0..nv {
        let o = end + 12 * v;
        mesh.vertices.push(DVec3::new(f(o), f(o + 4), f(o + 8)));
    }
    let faces = end + 12 * nv;
    assert_eq!(b.len(), faces + 13 * nf, "PLY length");
    for t in 0..nf {
        let o = faces + 13 * t;
        assert_eq!(b[o], 3);
        mesh.triangles.push(std::array::from_fn(|i| {
            let p = o + 1 + 4 * i;
            u32::from_le_bytes(b[p..p + 4].try_into().unwrap())
        }));
    }
    mesh
}
