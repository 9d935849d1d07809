//! `heartloc mesh`: one closed surface per structure of a label map, named from its colour
//! table or manifest, in LPS mm with `SPACE=LPS`.

use std::path::{Path, PathBuf};

use heartloc::io::{self, OpenOptions};
use heartloc::mesh::{label_values, write_structures, MeshFormat};
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
    let chosen: Vec<u32> = present
        .into_iter()
        .filter(|v| only.is_empty() || only.contains(v))
        .collect();
    let stem = io::nifti::stem(labels);
    let structures = write_structures(&volume, &chosen, |v| table.name(v), out, &stem, format)?;
    let mut written = Vec::new();
    for s in structures {
        let (value, name) = (s.value, &s.name);
        match s.written {
            None => println!(
                "{}: {value} {name}: too small for a surface, skipped",
                labels.display()
            ),
            Some((path, mesh)) => {
                let what = mesh.describe();
                println!(
                    "{}: {value} {name}: {} ({what})",
                    labels.display(),
                    path.display()
                );
                written.push(path);
            }
        }
    }
    Ok(written)
}
