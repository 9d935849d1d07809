//! Layers only look down: the volume core, file I/O, view math, annotation model and worklist
//! import no GUI, GPU or ML crate.

use std::path::Path;

#[test]
fn lower_layers_import_no_gui_gpu_or_ml_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lower = [
        "volume.rs",
        "info.rs",
        "io/mod.rs",
        "io/nifti.rs",
        "io/durable.rs",
        "io/table.rs",
        "io/markups.rs",
        "io/dicom/mod.rs",
        "io/dicom/bounds.rs",
        "io/dicom/header.rs",
        "io/dicom/pixels.rs",
        "io/dicom/write.rs",
        "annotation.rs",
        "worklist.rs",
        "slice_view.rs",
        "overlay.rs",
    ];
    check(
        &root,
        &lower,
        &["egui", "eframe", "wgpu", "candle", "rfd", "crate::app"],
    );
    // The models and the worker that owns them know nothing of the GUI or the GPU.
    let ml = [
        "worker.rs",
        "ml/model.rs",
        "ml/net.rs",
        "ml/train.rs",
        "ml/eval.rs",
        "ml/data.rs",
        "ml/preprocess.rs",
        "ml/conv3d.rs",
        "ml/heatmap.rs",
        "ml/cycle.rs",
    ];
    check(
        &root,
        &ml,
        &[
            "egui",
            "eframe",
            "wgpu",
            "rfd",
            "crate::app",
            "crate::render",
        ],
    );
}

fn check(root: &Path, files: &[&str], forbidden: &[&str]) {
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("use ") || l.contains("::"))
        {
            for f in forbidden {
                assert!(
                    !line.contains(&format!("{f}::")) && !line.contains(&format!("use {f}")),
                    "{file} reaches up into {f}: {line}"
                );
            }
        }
    }
}
