//! Fuzzing the NIfTI reader with proptest, seeded from the committed corpus in `tests/corpus/`
//! (written by an independent Python writer, `make_corpus.py`). Whatever the bytes, reading
//! returns a volume or an error naming the file: it never panics.

use std::path::{Path, PathBuf};

use glam::{DMat4, DVec4};
use heartloc::io::nifti;
use proptest::prelude::*;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".nii"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_reads_with_the_same_values_and_geometry() {
    let want_values: Vec<f32> = (0..12).map(|v| v as f32 * 5.0 - 20.0).collect();
    let want_affine = DMat4::from_cols(
        DVec4::new(2.0, 0.0, 0.0, 0.0),
        DVec4::new(0.0, 3.0, 0.0, 0.0),
        DVec4::new(0.0, 0.0, 4.0, 0.0),
        DVec4::new(-10.0, -20.0, -30.0, 1.0),
    );
    let files = corpus();
    assert_eq!(files.len(), 4);
    for f in files {
        let v = nifti::read(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.dims(), [3, 2, 2], "{}", f.display());
        assert_eq!(v.voxels.to_f32(), want_values, "{}", f.display());
        let d = (v.world_from_voxel() - want_affine).abs().to_cols_array();
        assert!(
            d.iter().all(|x| *x < 1e-5),
            "{}: {:?}",
            f.display(),
            v.world_from_voxel()
        );
        let is_4d = f.to_string_lossy().contains("4d");
        assert_eq!(
            v.warnings.iter().any(|w| w.contains("4D")),
            is_4d,
            "{:?}",
            v.warnings
        );
    }
}

fn read_bytes(bytes: &[u8], name: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match nifti::read(&path) {
        Ok(v) => {
            assert_eq!(v.voxels.len(), v.dims().iter().product::<usize>());
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error does not name the file: {msg}");
            Err(msg)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_files_never_panic(
        which in 0usize..4,
        edits in prop::collection::vec((0usize..400, any::<u8>()), 1..12),
        cut in prop::option::of(0usize..400),
    ) {
        let files = corpus();
        let mut bytes = std::fs::read(&files[which % files.len()]).unwrap();
        // Mutate the decompressed stream, so edits reach header fields even for .gz seeds.
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        if gz {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
            bytes = out;
        }
        for (at, value) in edits {
            if at < bytes.len() {
                bytes[at] = value;
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c);
        }
        if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            bytes = e.finish().unwrap();
        }
        let _ = read_bytes(&bytes, if gz { "fuzz.nii.gz" } else { "fuzz.nii" });
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        prop_assert!(read_bytes(&bytes, "random.nii").is_err() || bytes.len() >= 352);
    }
}
