//! File → Export 3D model: the segmented heart, and each structure of an open label map, as
//! closed surfaces in LPS mm (`SPACE=LPS`, as 3D Slicer reads them) where the user chose.

use std::path::Path;

use super::HeartlocApp;
use crate::io::nifti;
use crate::mesh::{write_structures, Mesh, MeshFormat};
use crate::ml::preprocess::Method;

impl HeartlocApp {
    /// Whether there is anything to export: a segmentation or a label map.
    pub fn can_export_model(&self) -> bool {
        let has_heart = self
            .models
            .predictions
            .as_ref()
            .is_some_and(|p| p.get(Method::Segmentation).is_some());
        has_heart || self.models.labels.is_some()
    }

    /// Ask where, then write the segmented heart there and each label map structure beside it
    /// (`<name>-<value>-<structure>.<ext>`); the status line says what was written.
    pub(super) fn export_model(&mut self) {
        let Some(doc) = &self.doc else { return };
        let stem = nifti::stem(Path::new(&doc.name));
        let Some(path) = self.dialog.save_file(&format!("{stem}-heart.stl"), "stl") else {
            return;
        };
        self.message = Some(match self.write_models(&path) {
            Ok(written) if written.is_empty() => {
                "nothing to export: run the models or open a label map".into()
            }
            Ok(written) => format!("saved 3D models (LPS mm): {}", written.join("; ")),
            Err(e) => e.to_string(),
        });
    }

    fn write_models(&self, path: &Path) -> Result<Vec<String>, crate::io::FileError> {
        let format = MeshFormat::of_path(path)?;
        let mut written = Vec::new();
        let heart = self
            .models
            .predictions
            .as_ref()
            .and_then(|p| p.get(Method::Segmentation));
        if let Some(f) = heart {
            let mesh = Mesh::of_probabilities(&f.grid, &f.map, f.threshold as f32);
            mesh.write(path)?;
            written.push(describe(path, "heart (segmentation)", &mesh));
        }
        if let Some(l) = &self.models.labels {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let stem = stem.trim_end_matches("-heart");
            let dir = path.parent().unwrap_or(Path::new("."));
            let name_of = |v| l.table.name(v);
            for s in write_structures(&l.volume, &l.present, name_of, dir, stem, format)? {
                if let Some((out, mesh)) = s.written {
                    written.push(describe(&out, &s.name, &mesh));
                }
            }
        }
        Ok(written)
    }
}

fn describe(path: &Path, what: &str, mesh: &Mesh) -> String {
    format!("{what} ({}) in {}", mesh.describe(), path.display())
}
