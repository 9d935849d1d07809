//! Hostile files (issue 21): lying DICOM lengths, non-finite or absurd geometry, corrupt gzip,
//! bad rescale, palette colour, wrong pixel-data length, out-of-range markups. Each gives a
//! clear error naming the file and the field, in bounded memory (the CLI's peak RSS is read),
//! never a panic or a "success" with garbage.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use glam::{DMat4, DVec3};
use heartloc::io::{self, dicom, markups, nifti, OpenOptions};
use heartloc::volume::{Grid, Volume, Voxels};

fn volume(dims: [usize; 3]) -> Volume {
    let n = dims.iter().product::<usize>();
    let vals: Vec<i16> = (0..n).map(|x| (x % 997) as i16 - 300).collect();
    Volume::new(
        Grid::new(
            dims,
            DMat4::from_scale_rotation_translation(
                DVec3::new(0.8, 0.8, 2.0),
                glam::DQuat::IDENTITY,
                DVec3::new(-100.0, -120.0, 40.0),
            ),
        ),
        Voxels::I16(vals),
    )
}

/// A fresh series folder of `slices` slices of 64×64 (8 KiB of pixels each).
fn series(root: &Path, name: &str, slices: usize) -> (PathBuf, Vec<PathBuf>) {
    let dir = root.join(name);
    let files = dicom::write_series(&dir, &volume([64, 64, slices]), &Default::default()).unwrap();
    (dir, files)
}

/// `heartloc info` on `path`: it must fail, name `file` and `want`, not panic, and stay under
/// 300 MiB of peak memory and 20 s.
fn cli_refuses(path: &Path, file: &Path, want: &str) {
    let start = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .arg("info")
        .arg(path)
        .env("HEARTLOC_PEAK_RSS", "1")
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{} loaded: {err}", path.display());
    assert!(!err.contains("panicked"), "{err}");
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "error does not name {name}: {err}");
    assert!(err.contains(want), "error lacks {want:?}: {err}");
    let kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .expect("peak RSS printed");
    assert!(kib < 300 * 1024, "{want}: peak {kib} KiB");
    assert!(secs < 20.0, "{want}: took {secs:.1} s");
}

fn find(bytes: &[u8], what: &[u8]) -> usize {
    bytes
        .windows(what.len())
        .position(|w| w == what)
        .unwrap_or_else(|| panic!("{what:?} not in file"))
}

#[test]
fn lying_dicom_lengths_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    // (0008,0008) ImageType does not exist in our writer; (0008,0016) SOPClassUID does: make
    // it claim 0xFFFFFFF0 bytes as OB, the way a fuzzer's mutation did.
    let (dir, files) = series(tmp.path(), "length", 4);
    let mut b = std::fs::read(&files[1]).unwrap();
    let at = find(&b, &[0x08, 0x00, 0x16, 0x00, b'U', b'I']);
    b.splice(at + 4..at + 8, [b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]);
    std::fs::write(&files[1], &b).unwrap();
    cli_refuses(&dir, &files[1], "claims 4294967280 bytes");
    // The same file given alone as the folder's only slice.
    let alone = tmp.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&files[1], alone.join("x.dcm")).unwrap();
    cli_refuses(&alone, &alone.join("x.dcm"), "claims");

    // A flipped VR byte: "DS" becomes "QS" (no such VR: read as UN, 4-byte length).
    let (dir, files) = series(tmp.path(), "vr", 3);
    let mut b = std::fs::read(&files[0]).unwrap();
    let at = find(&b, &[0x20, 0x00, 0x32, 0x00, b'D', b'S']);
    b[at + 4] = b'Q';
    std::fs::write(&files[0], &b).unwrap();
    cli_refuses(&dir, &files[0], "corrupt DICOM");

    // Big endian claimed over little-endian data (same length UID, so only the meaning lies).
    let (dir, files) = series(tmp.path(), "endian", 3);
    let mut b = std::fs::read(&files[2]).unwrap();
    let at = find(&b, b"1.2.840.10008.1.2.1\0");
    b[at + 18] = b'2';
    std::fs::write(&files[2], &b).unwrap();
    cli_refuses(&dir, &files[2], "corrupt DICOM");

    // Truncated inside the pixel data.
    let (dir, files) = series(tmp.path(), "cut", 3);
    let b = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &b[..b.len() - 100]).unwrap();
    cli_refuses(&dir, &files[0], "PixelData");
}

/// Rewrite one element of a DICOM file.
fn set(path: &Path, tag: dicom_core::Tag, vr: VR, value: PrimitiveValue) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(DataElement::new(tag, vr, value));
    obj.write_to_file(path).unwrap();
}

fn text(s: &str) -> PrimitiveValue {
    PrimitiveValue::from(s.to_string())
}

#[test]
fn non_finite_or_absurd_dicom_fields_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, dicom_core::Tag, VR, &str, &str)] = &[
        (
            "ipp_nan",
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            "NaN\\0\\0",
            "ImagePositionPatient",
        ),
        (
            "ipp_inf",
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            "0\\inf\\0",
            "ImagePositionPatient",
        ),
        (
            "ipp_far",
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            "0\\0\\1e300",
            "ImagePositionPatient",
        ),
        (
            "spacing_huge",
            tags::PIXEL_SPACING,
            VR::DS,
            "1e308\\1e308",
            "PixelSpacing",
        ),
        (
            "spacing_tiny",
            tags::PIXEL_SPACING,
            VR::DS,
            "1e-30\\0.5",
            "PixelSpacing",
        ),
        (
            "iop_nan",
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            "1\\0\\0\\0\\NaN\\0",
            "ImageOrientationPatient",
        ),
        (
            "thick",
            tags::SLICE_THICKNESS,
            VR::DS,
            "1e308",
            "SliceThickness",
        ),
        (
            "intercept_nan",
            tags::RESCALE_INTERCEPT,
            VR::DS,
            "NaN",
            "RescaleIntercept",
        ),
        (
            "intercept_junk",
            tags::RESCALE_INTERCEPT,
            VR::DS,
            "abc",
            "RescaleIntercept",
        ),
        (
            "slope_zero",
            tags::RESCALE_SLOPE,
            VR::DS,
            "0",
            "RescaleSlope",
        ),
        (
            "palette",
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "PALETTE COLOR",
            "PALETTE COLOR",
        ),
    ];
    for (name, tag, vr, value, want) in cases {
        // Two slices, the second one bad (the first is fine: the error must name the bad one).
        let (dir, files) = series(tmp.path(), name, 2);
        set(&files[1], *tag, *vr, text(value));
        cli_refuses(&dir, &files[1], want);
    }
    // Rows that disagree with the pixel data, on a single slice.
    let (dir, files) = series(tmp.path(), "rows", 1);
    set(&files[0], tags::ROWS, VR::US, PrimitiveValue::from(32u16));
    cli_refuses(&dir, &files[0], "PixelData holds");
    let (dir, files) = series(tmp.path(), "bits", 1);
    for (tag, bits) in [
        (tags::BITS_ALLOCATED, 8u16),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
    ] {
        set(&files[0], tag, VR::US, PrimitiveValue::from(bits));
    }
    cli_refuses(&dir, &files[0], "PixelData holds");
    // BitsStored beyond BitsAllocated (dicom-pixeldata would size a table by it, or panic).
    for (name, stored) in [("stored_zero", 0u16), ("stored_wide", 24)] {
        let (dir, files) = series(tmp.path(), name, 1);
        set(
            &files[0],
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(stored),
        );
        cli_refuses(&dir, &files[0], "BitsStored");
    }
    // And the good series still loads, its values intact.
    let (dir, _) = series(tmp.path(), "good", 3);
    let (v, _) = io::open(&dir, &OpenOptions::default()).unwrap();
    assert_eq!(v.voxels.to_f32(), volume([64, 64, 3]).voxels.to_f32());
}

/// Patch little-endian f32 fields of a written `.nii` header.
fn nifti_with(dir: &Path, name: &str, patches: &[(usize, f32)]) -> PathBuf {
    let path = dir.join(name);
    nifti::write(&path, &volume([8, 8, 4])).unwrap();
    let mut b = std::fs::read(&path).unwrap();
    for &(offset, v) in patches {
        b[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, &b).unwrap();
    path
}

#[test]
fn absurd_nifti_geometry_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    // pixdim[1] at byte 80, srow_x at 280, srow_x[3] (origin x) at 292, qoffset_x at 268.
    for (name, patches, want) in [
        ("pixdim_huge.nii", vec![(80, 1e30f32)], "voxel size along i"),
        ("pixdim_tiny.nii", vec![(80, 1e-30)], "voxel size along i"),
        ("srow_huge.nii", vec![(280, 3.4e38)], "voxel size along i"),
        ("origin_far.nii", vec![(292, 1e30), (268, 1e30)], "origin"),
    ] {
        let p = nifti_with(tmp.path(), name, &patches);
        cli_refuses(&p, &p, want);
        let e = nifti::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("sform") && e.contains("pixdim"),
            "names the fields: {e}"
        );
    }
    let fine = nifti_with(tmp.path(), "fine.nii", &[]);
    nifti::read(&fine).unwrap();
}

#[test]
fn a_flipped_byte_in_a_gzip_stream_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.nii.gz");
    nifti::write(&path, &volume([32, 32, 8])).unwrap();
    let good = std::fs::read(&path).unwrap();
    // Flip one byte at many places in the deflate data (past the 10-byte gzip header, before
    // the 8-byte trailer); whatever inflates must fail its CRC-32 or ISIZE.
    let mut checked = 0;
    for i in (20..good.len() - 8).step_by((good.len() / 40).max(1)) {
        let mut b = good.clone();
        b[i] ^= 0x10;
        let p = tmp.path().join(format!("flip{i}.nii.gz"));
        std::fs::write(&p, &b).unwrap();
        let e = nifti::read(&p)
            .expect_err("a corrupt stream must not load")
            .to_string();
        assert!(e.contains(&format!("flip{i}")) && e.contains("gzip"), "{e}");
        checked += 1;
    }
    assert!(checked >= 30);
    // A wrong ISIZE alone.
    let mut b = good.clone();
    let n = b.len();
    b[n - 1] ^= 0x01;
    let p = tmp.path().join("isize.nii.gz");
    std::fs::write(&p, &b).unwrap();
    assert!(nifti::read(&p).is_err());
}

#[test]
fn out_of_range_markups_positions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, pos) in [
        ("huge", "[-1e308, 0, 0]"),
        ("beyond_f64_integers", "[9007199254740993, 0, 0]"),
    ] {
        let p = tmp.path().join(format!("{name}.mrk.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"markups": [{{"type": "Fiducial", "coordinateSystem": "LPS",
                "controlPoints": [{{"label": "a", "position": {pos}, "positionStatus": "defined"}}]}}]}}"#
            ),
        )
        .unwrap();
        let e = markups::read(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("position"), "{e}");
    }
}

#[test]
fn a_manifest_with_quoted_fields_reads_them_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("manifest.csv");
    std::fs::write(
        &p,
        "case,modality,heart_values,note\n\"ct/with, comma\",CT,1,\"two\nlines\"\nmr/b,MR,\"1 2\",x\n",
    )
    .unwrap();
    let rows = heartloc::ml::data::read_manifest(&p).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].case, "ct/with, comma");
    assert_eq!(rows[1].heart_values, [1, 2]);
}
