//! DICOM as exported (issue 18, readers and CLI): a study folder with series nested in
//! subfolders and non-image objects beside them, a `.dcm` file given directly, and the series
//! listing; then the real demo study from `../shared/demo` the same way.

mod common;

use std::path::Path;

use glam::{DMat4, DQuat, DVec3};
use heartloc::io::{self, dicom, OpenOptions};
use heartloc::volume::{Grid, Volume, Voxels};

fn volume(dims: [usize; 3], world_from_voxel: DMat4) -> Volume {
    let n = dims.iter().product::<usize>();
    Volume::new(
        Grid::new(dims, world_from_voxel),
        Voxels::I16((0..n).map(|x| (x % 701) as i16 - 200).collect()),
    )
}

fn write(dir: &Path, vol: &Volume, uid: &str, modality: &str) -> Vec<std::path::PathBuf> {
    let opts = dicom::WriteSeriesOptions {
        series_uid: uid.into(),
        modality: modality.into(),
        description: format!("{modality} {uid}"),
    };
    dicom::write_series(dir, vol, &opts).unwrap()
}

#[test]
fn a_nested_study_folder_lists_and_opens_its_series_and_skips_non_images() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("PATIENT 1").join("study");
    let axial = volume([16, 12, 6], DMat4::from_scale(DVec3::new(0.8, 0.8, 2.5)));
    let oblique_m = DMat4::from_scale_rotation_translation(
        DVec3::new(1.5, 1.5, 8.0),
        DQuat::from_euler(glam::EulerRot::XYZ, 0.4, -0.3, 0.2),
        DVec3::new(20.0, -40.0, 60.0),
    );
    let oblique = volume([10, 8, 4], oblique_m);
    write(&study.join("1-CT axial"), &axial, "2.25.101", "CT");
    let mr_files = write(
        &study.join("deeper").join("2-MR sax"),
        &oblique,
        "2.25.102",
        "MR",
    );
    write(
        &study.join("3-RT"),
        &volume([4, 4, 1], DMat4::IDENTITY),
        "2.25.103",
        "RTSTRUCT",
    );
    std::fs::write(study.join("README.txt"), "not DICOM").unwrap();

    let (listed, skipped) = dicom::list_series(tmp.path()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("RTSTRUCT"), "{skipped:?}");
    let ct = listed.iter().find(|s| s.modality == "CT").unwrap();
    assert_eq!(ct.dims, [16, 12, 6]);
    assert_eq!(ct.pixel_spacing_mm, Some([0.8, 0.8]));
    assert!((ct.slice_step_mm.unwrap() - 2.5).abs() < 1e-6);
    assert_eq!(ct.orientation.as_deref(), Some("LPS"));
    assert!(ct.folder.ends_with("1-CT axial"));
    let mr = listed.iter().find(|s| s.modality == "MR").unwrap();
    assert_eq!(mr.dims, [10, 8, 4]);
    assert_eq!(
        mr.orientation.as_deref(),
        Some(Grid::new([1, 1, 1], oblique_m).orientation_code().as_str())
    );

    // The top folder holds two image series: the error names both; --series opens one.
    let e = io::open(tmp.path(), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2 series") && e.contains("2.25.101") && e.contains("2.25.102"),
        "{e}"
    );
    let opts = OpenOptions {
        series_uid: Some("2.25.102".into()),
        ..Default::default()
    };
    let (mr_vol, _) = io::open(tmp.path(), &opts).unwrap();
    assert_eq!(mr_vol.voxels.to_f32(), oblique.voxels.to_f32());
    let d = (mr_vol.world_from_voxel() - oblique_m)
        .abs()
        .to_cols_array();
    assert!(d.iter().all(|x| *x < 1e-4), "{d:?}");
    assert!(mr_vol.warnings.iter().any(|w| w.contains("RTSTRUCT")));

    // A .dcm file opens its own series, whatever else is in the study.
    let (from_file, _) = io::open(&mr_files[2], &OpenOptions::default()).unwrap();
    assert_eq!(from_file.voxels.to_f32(), oblique.voxels.to_f32());
    assert_eq!(from_file.world_from_voxel(), mr_vol.world_from_voxel());

    // The CLI lists both and names the skipped object.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .args(["series", "--json"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RTSTRUCT"));

    // A folder of only non-images says so.
    let e = io::open(&study.join("3-RT"), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no image series") && e.contains("RTSTRUCT"),
        "{e}"
    );
}

#[test]
fn the_real_demo_study_opens_from_its_top_folder_and_from_one_file() {
    let Some(study) = common::shared_path("../demo/Pancreas-CT-CB_001") else {
        return;
    };
    let (listed, skipped) = dicom::list_series(&study).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        skipped.iter().any(|s| s.contains("RTSTRUCT")),
        "{skipped:?}"
    );
    let series = &listed[0];
    assert_eq!(series.modality, "CT");
    let (top, _) = io::open(&study, &OpenOptions::default()).unwrap();
    let (direct, _) = io::open(&series.folder, &OpenOptions::default()).unwrap();
    assert_eq!(top.dims(), direct.dims());
    assert_eq!(top.dims()[2], series.images);
    assert_eq!(top.world_from_voxel(), direct.world_from_voxel());
    let mut files: Vec<_> = std::fs::read_dir(&series.folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (one, _) = io::open(&files[0], &OpenOptions::default()).unwrap();
    assert_eq!(one.world_from_voxel(), direct.world_from_voxel());
    assert_eq!(one.voxels.to_f32(), direct.voxels.to_f32());
    // The real series compressed to JPEG-LS and JPEG 2000 by independent tools reads the same.
    let tmp = tempfile::tempdir().unwrap();
    for (name, tool, args) in [
        ("jls", "dcmcjpls", &[][..]),
        ("j2k", "gdcmconv", &["--j2k"][..]),
    ] {
        let dir = tmp.path().join(name);
        if !convert_all(tool, args, &series.folder, &dir) {
            continue;
        }
        match io::open(&dir, &OpenOptions::default()) {
            Ok((v, _)) => {
                assert_eq!(v.world_from_voxel(), direct.world_from_voxel(), "{name}");
                assert_eq!(v.voxels.to_f32(), direct.voxels.to_f32(), "{name}");
            }
            // gdcmconv rewrites this scan's de-identification sequence as UN of undefined
            // length (CP-246), which dicom-rs cannot read: it must say so, naming the field.
            Err(e) => {
                let e = e.to_string();
                assert!(
                    name == "j2k" && e.contains("CP-246") && e.contains("(0012,0064)"),
                    "{name}: {e}"
                );
            }
        }
    }
}

/// Set RescaleIntercept (and PhotometricInterpretation) on every file of a series.
fn set_all(files: &[std::path::PathBuf], intercept: &str, photometric: &str) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    for f in files {
        let mut obj = dicom_object::open_file(f).unwrap();
        obj.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            PrimitiveValue::from(intercept.to_string()),
        ));
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(photometric.to_string()),
        ));
        obj.write_to_file(f).unwrap();
    }
}

#[test]
fn slices_decode_to_the_same_values_on_the_integer_and_the_float_path() {
    let tmp = tempfile::tempdir().unwrap();
    let m = DMat4::from_scale(DVec3::new(0.7, 0.7, 3.0));
    let wide = volume([24, 20, 5], m); // -200..500
    let n = 24 * 20 * 5;
    let small = Volume::new(
        Grid::new([24, 20, 5], m),
        Voxels::I16((0..n).map(|x| (x % 90) as i16).collect()),
    );
    for (name, vol, intercept, photometric, want_type) in [
        // A whole shift that fits: decoded straight into i16.
        ("shift", &wide, "-1024", "MONOCHROME2", "int16"),
        // Every shifted value in 0..255: stored as u8, as before.
        ("bytes", &small, "100", "MONOCHROME2", "uint8"),
        // A shift beyond i16: the float path, values exact.
        ("beyond", &wide, "-32600", "MONOCHROME2", "float32"),
        // A fractional intercept: the float path.
        ("fraction", &wide, "0.5", "MONOCHROME2", "float32"),
    ] {
        let dir = tmp.path().join(name);
        let files = write(&dir, vol, "2.25.77", "CT");
        set_all(&files, intercept, photometric);
        let (back, _) = io::open(&dir, &OpenOptions::default()).unwrap();
        let shift: f32 = intercept.parse().unwrap();
        let want: Vec<f32> = vol.voxels.to_f32().iter().map(|v| v + shift).collect();
        assert_eq!(back.voxels.type_name(), want_type, "{name}");
        assert_eq!(back.voxels.to_f32(), want, "{name}");
    }
}

#[test]
fn twelve_bit_signed_slices_read_as_dicom_pixeldata_reads_them() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_pixeldata::PixelDecoder;
    let tmp = tempfile::tempdir().unwrap();
    let n = 16 * 12 * 3;
    let vol = Volume::new(
        Grid::new([16, 12, 3], DMat4::from_scale(DVec3::new(0.5, 0.5, 2.0))),
        Voxels::I16((0..n).map(|x| ((x * 37) % 4096) as i16 - 2048).collect()),
    );
    let dir = tmp.path().join("12bit");
    let files = write(&dir, &vol, "2.25.88", "CT");
    for f in &files {
        let mut obj = dicom_object::open_file(f).unwrap();
        for (tag, v) in [(tags::BITS_STORED, 12u16), (tags::HIGH_BIT, 11)] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        obj.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            PrimitiveValue::from("-1024".to_string()),
        ));
        obj.write_to_file(f).unwrap();
    }
    let (back, _) = io::open(&dir, &OpenOptions::default()).unwrap();
    assert_eq!(back.voxels.type_name(), "int16");
    // The same values as dicom-pixeldata's own conversion of each file, in slice order (the
    // writer names files in slice order k = 0, 1, 2).
    let plane = 16 * 12;
    for (k, f) in files.iter().enumerate() {
        let obj = dicom_object::open_file(f).unwrap();
        let want: Vec<f32> = obj.decode_pixel_data().unwrap().to_vec().unwrap();
        let got: Vec<f32> = (k * plane..(k + 1) * plane)
            .map(|i| back.voxels.get(i))
            .collect();
        assert_eq!(got, want, "slice {k}");
    }
    let want: Vec<f32> = vol.voxels.to_f32().iter().map(|v| v - 1024.0).collect();
    assert_eq!(back.voxels.to_f32(), want);
}

/// `tool args… IN OUT` for every file of `src` into `dst`; false (with a printed reason) where
/// the tool is not installed (`.ci/run` installs dcmtk and gdcm's tools).
fn convert_all(tool: &str, args: &[&str], src: &Path, dst: &Path) -> bool {
    if std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: {tool} is not installed (apt-get install dcmtk libgdcm-tools)");
        return false;
    }
    std::fs::create_dir_all(dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap().path();
        let out = dst.join(f.file_name().unwrap());
        let status = std::process::Command::new(tool)
            .args(args)
            .arg(&f)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "{tool} {args:?} {}", f.display());
    }
    true
}

#[test]
fn compressed_series_decode_to_the_uncompressed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let (vol, _) = heartloc::phantom::chest_ct([40, 36, 12], 6.0);
    let plain = tmp.path().join("plain");
    write(&plain, &vol, "2.25.55", "CT");
    let (want, _) = io::open(&plain, &OpenOptions::default()).unwrap();
    for (name, tool, args, syntax) in [
        ("j2k", "gdcmconv", &["--j2k"][..], "1.2.840.10008.1.2.4.90"),
        (
            "jpegls_gdcm",
            "gdcmconv",
            &["--jpegls"][..],
            "1.2.840.10008.1.2.4.80",
        ),
        (
            "jpegls_dcmtk",
            "dcmcjpls",
            &[][..],
            "1.2.840.10008.1.2.4.80",
        ),
        ("rle", "dcmcrle", &[][..], "1.2.840.10008.1.2.5"),
        (
            "jpeg_lossless",
            "dcmcjpeg",
            &["+e1"][..],
            "1.2.840.10008.1.2.4.70",
        ),
    ] {
        let dir = tmp.path().join(name);
        if !convert_all(tool, args, &plain, &dir) {
            continue;
        }
        let first = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let meta = dicom_object::open_file(&first).unwrap();
        assert_eq!(
            meta.meta().transfer_syntax().trim_end_matches('\0'),
            syntax,
            "{name}"
        );
        let (got, _) =
            io::open(&dir, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.world_from_voxel(), want.world_from_voxel(), "{name}");
        assert_eq!(got.voxels.to_f32(), want.voxels.to_f32(), "{name}");
    }
}

#[test]
fn enhanced_multi_frame_files_match_the_classic_series_they_were_converted_from() {
    // Written by pydicom and converted by highdicom's legacy conversion
    // (tests/corpus/make_enhanced_corpus.py): an axial CT and a double-oblique MR.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/enhanced");
    for case in ["ct_axial", "mr_oblique"] {
        let (classic, _) = io::open(&root.join(case).join("classic"), &Default::default()).unwrap();
        let file = root.join(case).join("enhanced.dcm");
        let (enhanced, _) = io::open(&file, &Default::default()).unwrap();
        assert_eq!(enhanced.dims(), classic.dims(), "{case}");
        let d = (enhanced.world_from_voxel() - classic.world_from_voxel())
            .abs()
            .to_cols_array();
        assert!(d.iter().all(|x| *x < 1e-5), "{case}: {d:?}");
        assert_eq!(enhanced.voxels.to_f32(), classic.voxels.to_f32(), "{case}");
        assert!(
            enhanced.warnings.is_empty(),
            "{case}: {:?}",
            enhanced.warnings
        );

        // The same frames as two stacks: two series, each refused without --series, each a
        // part of the classic volume when chosen.
        let two = root.join(case).join("two_stacks.dcm");
        let e = io::open(&two, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("2 series") && e.contains("#stack2"), "{e}");
        let (listed, _) = dicom::list_series(&root.join(case)).unwrap();
        let stacks: Vec<_> = listed
            .iter()
            .filter(|s| s.series_uid.contains("#stack"))
            .collect();
        assert_eq!(stacks.len(), 2, "{listed:?}");
        let images: usize = stacks.iter().map(|s| s.images).sum();
        assert_eq!(images, classic.dims()[2]);
        for s in stacks {
            let opts = OpenOptions {
                series_uid: Some(s.series_uid.clone()),
                ..Default::default()
            };
            let (part, _) = io::open(&two, &opts).unwrap();
            assert_eq!(part.dims()[2], s.images);
            // Its first voxel lies on a voxel of the classic grid, with the same value.
            let origin = part.world_from_voxel().w_axis.truncate();
            let ijk = classic.voxel_from_world().transform_point3(origin);
            let k = ijk.z.round();
            assert!((ijk - DVec3::new(0.0, 0.0, k)).length() < 1e-4, "{ijk:?}");
            assert_eq!(part.at(3, 4, 0), classic.at(3, 4, k as usize));
        }
    }
}
