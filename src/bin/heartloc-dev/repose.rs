//! `heartloc-dev repose`: a manifest's short-axis MR cases put into their body pose
//! (`ml::repose`) and resampled onto an axis-aligned LPS grid, to look at.

use std::path::Path;

use anyhow::Context as _;
use heartloc::io;
use heartloc::ml::{data, repose};
use heartloc::volume::{Interpolation, Volume};

pub fn run(manifest: &Path, out: &Path, every: usize) -> anyhow::Result<()> {
    let rows = data::read_manifest(manifest)?;
    for row in rows
        .iter()
        .filter(|r| r.ventricles.is_some())
        .step_by(every.max(1))
    {
        let (image, _) = io::open(&row.folder.join("image.nii.gz"), &Default::default())?;
        let (labels, _) = io::open(&row.folder.join("labels.nii.gz"), &Default::default())?;
        let centre = row.heart_center_lps_mm.context("no heart centre")?;
        let v = row.ventricles.as_ref().context("no ventricles")?;
        let m = repose::body_from_stored(&labels, v, centre).context("no ventricles labelled")?;
        let posed = |vol: &Volume, interp| {
            let mut moved = vol.clone();
            moved.grid.world_from_voxel = m * moved.grid.world_from_voxel;
            moved.resample(&moved.grid.canonical_lps([1.5; 3]), interp, 0.0)
        };
        let dir = out.join(&row.patient);
        std::fs::create_dir_all(&dir)?;
        io::nifti::write(
            &dir.join("image.nii.gz"),
            &posed(&image, Interpolation::Trilinear),
        )?;
        io::nifti::write(
            &dir.join("labels.nii.gz"),
            &posed(&labels, Interpolation::Nearest),
        )?;
        println!(
            "{} -> {} (mirrored: {})",
            row.case,
            dir.display(),
            glam::DMat3::from_mat4(m).determinant() < 0.0
        );
    }
    Ok(())
}
