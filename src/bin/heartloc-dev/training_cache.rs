//! Writes a compact copy of a manifest's cases for training on another machine: each image
//! resampled to a canonical LPS grid (default 3 mm) within 200 × 200 × 300 mm of the scan
//! centre, intensities normalised by the recipe's percentiles of the *original* volume and
//! stored as u8 (the cache manifest's `intensity_range` column says so), the heart mask
//! resampled likewise. Never commit its output: it is cut from the shared data.
//!
//! `cargo run --release --bin heartloc-dev -- training-cache ../shared/data/manifest.csv /tmp/cache`

use std::path::Path;

use glam::{DMat4, DVec3, DVec4};
use heartloc::ml::data::{heart_mask, read_manifest};
use heartloc::ml::preprocess::{scan_center, Method, Normalizer, Recipe};
use heartloc::volume::{Grid, Interpolation, Volume, Voxels};

/// Write the cache of `manifest`'s cases into `out` on a grid of `s` mm.
pub fn run(manifest: &Path, out: &Path, s: f64) -> anyhow::Result<()> {
    let recipe = Recipe::new(Method::Segmentation);
    let mut csv = String::from("case,modality,heart_values,heart_center_lps_mm,intensity_range\n");
    for row in read_manifest(manifest)? {
        let (image, _) = heartloc::io::open(&row.folder.join("image.nii.gz"), &Default::default())?;
        let (labels, _) =
            heartloc::io::open(&row.folder.join("labels.nii.gz"), &Default::default())?;
        let norm = Normalizer::of(&image, recipe.clip_percentiles).map_err(anyhow::Error::msg)?;
        let (lo, hi) = image.grid.world_bbox();
        let c = scan_center(&image);
        let half = DVec3::new(200.0, 200.0, 300.0);
        let (lo, hi) = (lo.max(c - half), hi.min(c + half));
        let dims = [0, 1, 2].map(|a| ((hi[a] - lo[a]) / s).floor() as usize + 1);
        let grid = Grid::new(
            dims,
            DMat4::from_cols(
                DVec4::new(s, 0.0, 0.0, 0.0),
                DVec4::new(0.0, s, 0.0, 0.0),
                DVec4::new(0.0, 0.0, s, 0.0),
                lo.extend(1.0),
            ),
        );
        let values = norm.sample(&image, &grid);
        let img = Volume::new(
            grid,
            Voxels::U8(values.iter().map(|v| (v * 255.0).round() as u8).collect()),
        );
        let mask =
            heart_mask(&labels, &row.heart_values).resample(&grid, Interpolation::Trilinear, 0.0);
        let m = Volume::new(
            grid,
            Voxels::U8(
                (0..mask.voxels.len())
                    .map(|i| u8::from(mask.voxels.get(i) >= 0.5))
                    .collect(),
            ),
        );
        let dir = out.join(&row.case);
        std::fs::create_dir_all(&dir)?;
        heartloc::io::nifti::write(&dir.join("image.nii.gz"), &img)?;
        heartloc::io::nifti::write(&dir.join("labels.nii.gz"), &m)?;
        let centre = row.heart_center_lps_mm.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: case {} has no heart_center_lps_mm",
                manifest.display(),
                row.case
            )
        })?;
        csv += &format!(
            "{},{},1,{} {} {},0 255\n",
            row.case, row.modality, centre.x, centre.y, centre.z
        );
        eprintln!("{} {:?}", row.case, dims);
    }
    std::fs::write(out.join("manifest.csv"), csv)?;
    Ok(())
}
