//! Benchmark: open a 512×512×300 int16 `.nii.gz` with heartloc, and the same file with nibabel
//! and SimpleITK (when importable by `python3`) side by side. Prints medians and ratios.
//! Then the same volume as a classic DICOM series (300 files): whole processes side by side,
//! `heartloc info` against a SimpleITK (GDCM) series read, with heartloc's peak memory.
//!
//! Run: `cargo bench --bench load` (optional references: `pip install nibabel SimpleITK`);
//! `cargo bench --bench load -- dicom` for the DICOM part only, `-- markups` for a 100k-point
//! Slicer markups file.
//! The file is a synthetic CT-like phantom with noise, so it compresses like real CT does.

use std::process::Command;
use std::time::Instant;

use glam::{DMat4, DVec3};
use heartloc::io::nifti;
use heartloc::stats::median;
use heartloc::volume::{Grid, Volume, Voxels};

const RUNS: usize = 5;

fn phantom() -> Volume {
    let (nx, ny, nz) = (512usize, 512usize, 300usize);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 41) as i16 - 20
    };
    let mut vals = Vec::with_capacity(nx * ny * nz);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let x = (i as f64 - 256.0) / 220.0;
                let y = (j as f64 - 256.0) / 160.0;
                let r = x * x + y * y;
                let lung = ((x.abs() - 0.45).powi(2) / 0.09 + y * y / 0.5) < 1.0;
                let base: i16 = if r > 1.0 {
                    -1000
                } else if lung {
                    -850
                } else if (x * x + (y - 0.75).powi(2)) < 0.01 {
                    700 // spine
                } else {
                    40 + (k % 7) as i16
                };
                vals.push(base + noise());
            }
        }
    }
    let m = DMat4::from_scale(DVec3::new(0.8, 0.8, 1.0));
    Volume::new(Grid::new([nx, ny, nz], m), Voxels::I16(vals))
}

fn python_median(code: &str, path: &str) -> Result<f64, String> {
    let script = format!(
        "import time, sys\n{code}\nts=[]\nfor _ in range({RUNS}):\n    t=time.perf_counter(); load(sys.argv[1]); ts.append(time.perf_counter()-t)\nts.sort(); print(ts[len(ts)//2])"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}

/// Median wall time of a whole process over `RUNS` runs, and the last run's stderr.
fn process_median(cmd: &mut Command) -> Result<(f64, String), String> {
    let mut times = Vec::new();
    let mut err = String::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = cmd.output().map_err(|e| format!("not runnable: {e}"))?;
        times.push(t.elapsed().as_secs_f64());
        err = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() {
            return Err(err.lines().last().unwrap_or("failed").to_string());
        }
    }
    Ok((median(&times), err))
}

fn dicom_series(dir: &std::path::Path) {
    let series = dir.join("series");
    println!("writing the phantom as a 300-file DICOM series …");
    heartloc::io::dicom::write_series(&series, &phantom(), &Default::default())
        .expect("write series");
    let mut ours = Command::new(env!("CARGO_BIN_EXE_heartloc"));
    ours.args(["info", "--json"])
        .arg(&series)
        .env("HEARTLOC_PEAK_RSS", "1");
    let script = "import sys, SimpleITK as sitk\nr = sitk.ImageSeriesReader()\n\
                  r.SetFileNames(r.GetGDCMSeriesFileNames(sys.argv[1]))\n\
                  a = sitk.GetArrayViewFromImage(r.Execute())\nprint(a.shape)";
    let mut sitk = Command::new("python3");
    sitk.args(["-c", script]).arg(&series);
    // Alternate, so both see the same page cache and machine load.
    let ours_t = process_median(&mut ours);
    let sitk_t = process_median(&mut sitk);
    match ours_t {
        Ok((t, err)) => {
            let peak = err
                .lines()
                .find_map(|l| l.strip_prefix("peak RSS: "))
                .unwrap_or("?")
                .to_string();
            println!(
                "heartloc   open DICOM series (whole process, `info`): {t:7.3} s, peak RSS {peak} \
                 for 150 MiB of voxels"
            );
            match sitk_t {
                Ok((s, _)) => println!(
                    "SimpleITK  open DICOM series (whole process):         {s:7.3} s   ratio \
                     heartloc/SimpleITK = {:.2}",
                    t / s
                ),
                Err(e) => println!("SimpleITK  not measured ({e}); pip install SimpleITK"),
            }
        }
        Err(e) => println!("heartloc failed on the series: {e}"),
    }
}

/// A 100 000-point markups file: read, turned into landmarks, one point moved and saved back
/// into the same document, against Python's `json.load` of the same file.
fn markups(dir: &std::path::Path) {
    use heartloc::io::markups::{self, ControlPoint, PositionStatus};
    let path = dir.join("many.mrk.json");
    let points: Vec<ControlPoint> = (0..100_000)
        .map(|i| ControlPoint {
            label: format!("p-{i}"),
            description: String::new(),
            position_lps: Some([i as f64 * 0.1, -(i as f64) * 0.2, 3.5]),
            status: PositionStatus::Defined,
            locked: false,
        })
        .collect();
    markups::write(&path, &points).expect("write markups");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let read = markups::read_file(&path).expect("read");
        let set = heartloc::annotation::LandmarkSet::from_markups(&read.points).expect("labels");
        let mut pts = set.to_points();
        pts[0].position_lps = Some([1.0, 2.0, 3.0]);
        markups::write_into(&path, &read, &pts).expect("save");
        times.push(t.elapsed().as_secs_f64());
    }
    let ours = median(&times);
    println!(
        "heartloc   100k-point markups: read + landmarks + save {ours:7.3} s (median of {RUNS})"
    );
    let code = "import json\ndef load(p): return json.load(open(p))";
    match python_median(code, &path.to_string_lossy()) {
        Ok(t) => println!(
            "python     100k-point markups: json.load only          {t:7.3} s   ratio heartloc/json = {:.2}",
            ours / t
        ),
        Err(e) => println!("python json not measured ({e})"),
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::args().any(|a| a == "markups") {
        markups(dir.path());
        return;
    }
    if std::env::args().any(|a| a == "dicom") {
        dicom_series(dir.path());
        return;
    }
    let path = dir.path().join("ct_512x512x300.nii.gz");
    println!("writing a 512×512×300 int16 phantom …");
    nifti::write(&path, &phantom()).expect("write phantom");
    let mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("file: {mb:.1} MB gzip (157.3 MB of voxels)");

    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let v = nifti::read(&path).expect("read");
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(v.dims(), [512, 512, 300]);
    }
    let ours = median(&times);
    println!("heartloc   open .nii.gz: {:7.3} s (median of {RUNS})", ours);

    let p = path.to_string_lossy();
    let refs = [
        (
            "nibabel",
            "import nibabel as nib, numpy as np\ndef load(p): return np.asanyarray(nib.load(p).dataobj)",
        ),
        (
            "SimpleITK",
            "import SimpleITK as sitk\ndef load(p): return sitk.GetArrayViewFromImage(sitk.ReadImage(p))",
        ),
    ];
    for (name, code) in refs {
        match python_median(code, &p) {
            Ok(t) => println!(
                "{name:<10} open .nii.gz: {t:7.3} s   ratio heartloc/{name} = {:.2}",
                ours / t
            ),
            Err(e) => println!("{name:<10} not measured ({e}); pip install {name}"),
        }
    }
    dicom_series(dir.path());
    markups(dir.path());
}
