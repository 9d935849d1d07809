//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

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
