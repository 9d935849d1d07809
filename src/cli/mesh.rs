//! `heartloc mesh`: one closed surface per structure of a label map, named from its colour
//! table or manifest, in LPS mm with `SPACE=LPS`.

use std::path::{Path, PathBuf};

use heartloc::io::{self, OpenOptions};
use heartloc::mesh::{label_values, structure_file_name, Mesh, MeshFormat};
use heartloc::overlay::LabelTable;

/// Write `<out>/<stem>-<value>-<name>.<format>` for each chosen structure (all when `only`
/// is empty); print each one's volume and area. Returns the files written.
pub fn run(
    labels: &Path,
    out: &Path,
    format: MeshFormat,
    only: &[u32],
) -> anyhow::Result<Vec<PathBuf>> {
    let (volume, _) = io::open(labels, &OpenOptions::default())?;
    let present =
        label_values(&volume).map_err(|e| anyhow::anyhow!("{}: {e}", labels.display()))?;
    let missing: Vec<u32> = only
        .iter()
        .copied()
        .filter(|v| !present.contains(v))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: no voxel has label {missing:?} (present: {present:?})",
            labels.display()
        );
    }
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", out.display()))?;
    let table = LabelTable::find_for(labels);
    let stem = io::nifti::stem(labels);
    let mut written = Vec::new();
    for value in present
        .into_iter()
        .filter(|v| only.is_empty() || only.contains(v))
    {
        let name = table.name(value);
        let path = out.join(structure_file_name(&stem, value, &name, format.extension()));
        let mesh = Mesh::of_label(&volume, value);
        if mesh.triangles.is_empty() {
            println!(
                "{}: {value} {name}: too small for a surface, skipped",
                labels.display()
            );
            continue;
        }
        mesh.write(&path)?;
        println!(
            "{}: {value} {name}: {} ({:.1} ml, {:.1} cm², {} triangles, LPS mm)",
            labels.display(),
            path.display(),
            mesh.volume_mm3() / 1000.0,
            mesh.area_mm2() / 100.0,
            mesh.triangles.len()
        );
        written.push(path);
    }
    Ok(written)
}
