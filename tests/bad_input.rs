//! Bad files give a clear error naming the file and the problem: never a panic, never an
//! allocation sized by a lying header.

use std::io::Write;
use std::path::Path;

use glam::{DMat4, DQuat, DVec3};
use heartloc::io::{self, dicom, nifti, OpenOptions};
use heartloc::volume::{Grid, Volume, Voxels};

fn small_volume() -> Volume {
    let vals: Vec<i16> = (0..4 * 3 * 5).map(|x| x as i16 * 3 - 20).collect();
    Volume::new(
        Grid::new([4, 3, 5], DMat4::from_scale(DVec3::new(1.0, 2.0, 3.0))),
        Voxels::I16(vals),
    )
}

/// The error for `path`, checked to name the file and to contain `want`.
fn expect_error(path: &Path, want: &str) -> String {
    let e = match io::open(path, &OpenOptions::default()) {
        Ok(_) => panic!("{} loaded but should fail with {want:?}", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&path.display().to_string()),
        "error does not name the file: {e}"
    );
    assert!(e.contains(want), "error {e:?} lacks {want:?}");
    e
}

fn written(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    nifti::write(&path, &small_volume()).unwrap();
    std::fs::read(path).unwrap()
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn truncated_and_corrupt_files() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = written(tmp.path(), "ok.nii");
    let zipped = written(tmp.path(), "ok.nii.gz");
    expect_error(
        &put(tmp.path(), "short.nii", &raw[..raw.len() - 10]),
        "truncated",
    );
    expect_error(&put(tmp.path(), "header.nii", &raw[..100]), "header");
    expect_error(&put(tmp.path(), "empty.nii", &[]), "header");
    expect_error(
        &put(tmp.path(), "cut.nii.gz", &zipped[..zipped.len() / 2]),
        "gzip",
    );
    let mut flipped = zipped.clone();
    for b in flipped.iter_mut().skip(20).take(40) {
        *b ^= 0x5a;
    }
    expect_error(&put(tmp.path(), "corrupt.nii.gz", &flipped), "gzip");
    // A complete gzip stream whose content is short of what the header needs.
    expect_error(
        &put(tmp.path(), "shortdata.nii.gz", &gz(&raw[..raw.len() - 7])),
        "truncated",
    );
}

#[test]
fn wrong_files_and_lying_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = written(tmp.path(), "ok.nii");
    expect_error(
        &put(
            tmp.path(),
            "text.nii",
            b"hello, this is not an image at all".repeat(20).as_slice(),
        ),
        "not a NIfTI-1 file",
    );
    let mut magic = raw.clone();
    magic[344..348].copy_from_slice(b"xyz\0");
    expect_error(&put(tmp.path(), "magic.nii", &magic), "magic");

    // 2^31 voxels claimed in a tiny file: refused before any allocation.
    let mut absurd = raw.clone();
    for (a, d) in [2048i16, 1024, 1024].iter().enumerate() {
        absurd[42 + 2 * a..44 + 2 * a].copy_from_slice(&d.to_le_bytes());
    }
    expect_error(&put(tmp.path(), "absurd.nii", &absurd), "voxels");
    expect_error(&put(tmp.path(), "absurd.nii.gz", &gz(&absurd)), "voxels");

    // Plausible dims that the file does not hold.
    let mut big = raw.clone();
    big[42..44].copy_from_slice(&400i16.to_le_bytes());
    expect_error(&put(tmp.path(), "big.nii", &big), "truncated");
    let e = expect_error(&put(tmp.path(), "big.nii.gz", &gz(&big)), "");
    assert!(e.contains("truncated") || e.contains("cannot hold"), "{e}");

    let mut complex = raw.clone();
    complex[70..72].copy_from_slice(&32i16.to_le_bytes());
    expect_error(
        &put(tmp.path(), "complex.nii", &complex),
        "unsupported datatype",
    );
    let mut rgb = raw.clone();
    rgb[70..72].copy_from_slice(&128i16.to_le_bytes());
    expect_error(&put(tmp.path(), "rgb.nii", &rgb), "RGB");
}

#[test]
fn nan_and_inf_voxels_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vals = vec![1.0f32; 60];
    vals[17] = f32::NAN;
    vals[40] = f32::INFINITY;
    let v = Volume::new(Grid::new([4, 3, 5], DMat4::IDENTITY), Voxels::F32(vals));
    let path = tmp.path().join("nan.nii.gz");
    nifti::write(&path, &v).unwrap();
    let e = expect_error(&path, "NaN or infinite");
    assert!(e.contains("2 voxels") && e.contains("(1, 1, 1)"), "{e}");
}

#[test]
fn a_missing_path_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    expect_error(&tmp.path().join("nope.nii.gz"), "cannot open");
}

#[test]
fn empty_foreign_and_nested_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    expect_error(&empty, "folder is empty");
    let junk = tmp.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("a.txt"), "not dicom").unwrap();
    expect_error(&junk, "no DICOM files");
    let nested = tmp.path().join("nested");
    std::fs::create_dir_all(nested.join("series1")).unwrap();
    expect_error(&nested, "subfolder");
}

fn write_series(dir: &Path, vol: &Volume, uid: &str) -> Vec<std::path::PathBuf> {
    let opts = dicom::WriteSeriesOptions {
        series_uid: uid.into(),
        ..Default::default()
    };
    dicom::write_series(dir, vol, &opts).unwrap()
}

#[test]
fn mixed_series_are_listed_and_chosen_by_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = small_volume();
    write_series(tmp.path(), &vol, "2.25.111");
    let mut other = small_volume();
    other.grid.world_from_voxel = DMat4::from_translation(DVec3::new(0.0, 0.0, 500.0));
    write_series(tmp.path(), &other, "2.25.222");
    let e = expect_error(tmp.path(), "2 series");
    assert!(e.contains("2.25.111") && e.contains("2.25.222"), "{e}");
    let (listed, _) = dicom::list_series(tmp.path()).unwrap();
    assert_eq!(listed.len(), 2);
    let opts = OpenOptions {
        series_uid: Some("2.25.222".into()),
        ..Default::default()
    };
    let (chosen, _) = io::open(tmp.path(), &opts).unwrap();
    assert_eq!(chosen.world_from_voxel(), other.world_from_voxel());
}

#[test]
fn dicom_series_sorts_by_position_and_handles_gaps_and_tilt() {
    let tmp = tempfile::tempdir().unwrap();
    // An oblique grid: sorting must use the slice normal, not InstanceNumber or names.
    let mut m = DMat4::from_scale_rotation_translation(
        DVec3::new(0.7, 0.9, 2.5),
        DQuat::from_euler(glam::EulerRot::XYZ, 0.3, 0.1, -0.5),
        DVec3::new(-30.0, 12.0, 80.0),
    );
    let n = 12;
    let vals: Vec<i16> = (0..6 * 5 * n).map(|x| (x as i16) % 250).collect();
    let vol = Volume::new(Grid::new([6, 5, n], m), Voxels::I16(vals.clone()));
    let dir = tmp.path().join("oblique");
    let paths = write_series(&dir, &vol, "2.25.5");
    let back = dicom::read_series_dir(&dir, None).unwrap();
    assert_eq!(back.voxels.to_f32(), vol.voxels.to_f32());
    let diff = (back.world_from_voxel() - m).abs().to_cols_array();
    assert!(diff.iter().all(|x| *x < 1e-4), "{diff:?}");
    assert!(back.warnings.is_empty());

    // Remove one slice: a gap, warned about and resampled onto the uniform grid.
    std::fs::remove_file(&paths[5]).unwrap();
    let gap = dicom::read_series_dir(&dir, None).unwrap();
    assert!(
        gap.warnings.iter().any(|w| w.contains("missing slices")),
        "{:?}",
        gap.warnings
    );
    assert_eq!(gap.dims(), [6, 5, n]);
    let here = DVec3::new(2.0, 3.0, 5.0);
    let expect = (vol.at(2, 3, 4) + vol.at(2, 3, 6)) / 2.0;
    assert!(
        (gap.sample_index(here, heartloc::volume::Interpolation::Nearest)
            .unwrap()
            - expect)
            .abs()
            < 0.51
    );

    // Gantry tilt: the slice step leaves the normal; the grid keeps it exactly, with a warning.
    m.z_axis += m.y_axis.normalize() * 0.4;
    let tilted = Volume::new(Grid::new([6, 5, n], m), Voxels::I16(vals));
    let tdir = tmp.path().join("tilt");
    write_series(&tdir, &tilted, "2.25.6");
    let t = dicom::read_series_dir(&tdir, None).unwrap();
    assert!(
        t.warnings.iter().any(|w| w.contains("gantry tilt")),
        "{:?}",
        t.warnings
    );
    let diff = (t.world_from_voxel() - m).abs().to_cols_array();
    assert!(diff.iter().all(|x| *x < 1e-4), "{diff:?}");
}

#[test]
fn duplicate_positions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = write_series(tmp.path(), &small_volume(), "2.25.7");
    // A second copy of one slice under a new name: same series, same position.
    std::fs::copy(&paths[2], tmp.path().join("copy.dcm")).unwrap();
    expect_error(tmp.path(), "same position");
}

#[test]
fn cli_reports_errors_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = put(tmp.path(), "bad.nii.gz", b"\x1f\x8bnot really gzip");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .args(["info", "--json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.nii.gz") && err.contains("error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A command-line run piped into a reader that stops early (`heartloc info … | head -1`)
/// ends quietly with status 141, as a tool killed by SIGPIPE does, instead of a panic.
#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    use std::io::Read;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/chest-ct.nii.gz");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heartloc"))
        .arg("info")
        .args(std::iter::repeat_n(demo, 400))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's reader is gone (dropped above); the run must notice on its next print.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
