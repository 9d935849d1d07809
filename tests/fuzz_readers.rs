//! Seeded fuzzing of the DICOM, markups and manifest readers (issue 21), from small committed
//! seeds: the DICOM corpus in `tests/corpus/dicom/` (three transfer syntaxes, and a slope-1 series for
//! the integer decoding path; written by an independent writer, pydicom:
//! `make_dicom_corpus.py`, from a phantom), enhanced multi-frame files (highdicom's legacy
//! conversion, `make_enhanced_corpus.py`), and markups and manifest texts made here. Mutations:
//! byte flips, element lengths overwritten (0xFFFFFFF0, random, off by one), VR bytes replaced,
//! the transfer syntax swapped, NaN/inf/1e308/garbage in numeric strings, truncation, and for
//! the texts duplicated points, huge numbers, stray quotes and newlines.
//!
//! Each case must give a clean result (a volume with finite geometry and every voxel, or
//! points within range) or an error naming the file; a panic fails the test, and so does a
//! case slower than 5 s, and a DICOM campaign whose peak memory grows by 64 MiB (every file is
//! under 1 KiB). `FUZZ_CASES=N` (default 150 per reader, well under a second) and `FUZZ_SEED=S`
//! run other campaigns; the counts are printed:
//! `FUZZ_CASES=50000 FUZZ_SEED=1 cargo test --release --test fuzz_readers -- --nocapture`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use heartloc::io::{self, markups, OpenOptions};
use heartloc::ml::rng::Rng;

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

#[derive(Default, Debug)]
struct Counts {
    cases: usize,
    clean_errors: usize,
    accepted: usize,
    panics: usize,
    slowest_secs: f64,
}

impl Counts {
    /// Run one case: `Ok(())` accepted, `Err(message)` a clean error that must name `file`.
    fn run(&mut self, file: &Path, case: impl FnOnce() -> Result<(), String>) {
        self.cases += 1;
        let t = Instant::now();
        match std::panic::catch_unwind(AssertUnwindSafe(case)) {
            Ok(Ok(())) => self.accepted += 1,
            Ok(Err(e)) => {
                let name = file.file_name().unwrap().to_string_lossy();
                assert!(e.contains(&*name), "error does not name {name}: {e}");
                self.clean_errors += 1;
            }
            Err(_) => self.panics += 1,
        }
        self.slowest_secs = self.slowest_secs.max(t.elapsed().as_secs_f64());
    }

    fn report(&self, what: &str) {
        println!(
            "{what}: {} cases, {} clean errors, {} accepted, {} panics, slowest {:.3} s",
            self.cases, self.clean_errors, self.accepted, self.panics, self.slowest_secs
        );
        assert_eq!(self.panics, 0, "{what}: {self:?}");
        assert!(self.slowest_secs < 5.0, "{what}: {self:?}");
    }
}

/// The process's peak resident memory in KiB (Linux; 0 elsewhere).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `FUZZ_SEED` shifts every reader's seed, for campaigns outside CI.
fn seed(base: u64) -> u64 {
    base + std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1000
}

fn corpus_series() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/dicom");
    let mut out = Vec::new();
    for name in [
        "explicit_le",
        "implicit_le",
        "explicit_be",
        "explicit_le_shift",
    ] {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        out.push((dir, files));
    }
    out
}

#[test]
fn the_dicom_corpus_reads_in_every_transfer_syntax_and_on_both_decoding_paths() {
    for (dir, files) in corpus_series() {
        assert_eq!(files.len(), 3);
        let (v, _) = io::open(&dir, &OpenOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.dims(), [8, 8, 3], "{}", dir.display());
        // Stored i*10 + j*3 + k*50 - 100 (i column, j row, k along +z), then × slope − 1024
        // (slope 1 in the `shift` series, 2 elsewhere).
        let slope = if dir.ends_with("explicit_le_shift") {
            1
        } else {
            2
        };
        let want: Vec<f32> = (0..3)
            .flat_map(|k| {
                (0..8).flat_map(move |j| {
                    (0..8).map(move |i| ((i * 10 + j * 3 + k * 50 - 100) * slope - 1024) as f32)
                })
            })
            .collect();
        assert_eq!(v.voxels.to_f32(), want, "{}", dir.display());
        assert_eq!(v.spacing_mm(), [0.5, 0.75, 2.5], "{}", dir.display());
    }
}

/// One mutation of a DICOM file's bytes.
fn mutate_dicom(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let numbers: [&[u8]; 7] = [
        b"NaN", b"inf", b"-inf", b"1e308", b"1e-30", b"abc", b"\\\\\\",
    ];
    for _ in 0..1 + rng.below(3) {
        let n = b.len();
        match rng.below(7) {
            0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                // A 4-byte length somewhere after the preamble.
                let i = 132 + rng.below(n.saturating_sub(136).max(1));
                let v: u32 = match rng.below(3) {
                    0 => 0xFFFF_FFF0,
                    1 => rng.next_u64() as u32,
                    _ => u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]).wrapping_add(1),
                };
                b[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            2 => {
                // A VR: two upper-case letters become two others.
                if let Some(at) = (0..n - 1)
                    .skip(132 + rng.below(n - 133))
                    .find(|&i| b[i].is_ascii_uppercase() && b[i + 1].is_ascii_uppercase())
                {
                    b[at] = b'A' + rng.below(26) as u8;
                    b[at + 1] = b'A' + rng.below(26) as u8;
                }
            }
            3 => {
                // The transfer syntax's last digits.
                if let Some(at) = b.windows(17).position(|w| w == b"1.2.840.10008.1.2") {
                    let end = (at + 20).min(n);
                    for c in &mut b[at + 17..end] {
                        *c = b"0123456789.\0"[rng.below(12)];
                    }
                }
            }
            4 => {
                // A numeric string (DS/IS: digits, dots, backslashes) overwritten in place.
                if let Some(at) = (0..n.saturating_sub(8))
                    .skip(132 + rng.below(n - 140))
                    .find(|&i| b[i..i + 3].iter().all(|c| c.is_ascii_digit() || *c == b'.'))
                {
                    let s = numbers[rng.below(numbers.len())];
                    let end = (at + s.len()).min(n);
                    b[at..end].copy_from_slice(&s[..end - at]);
                }
            }
            5 => b.truncate(rng.below(n)),
            _ => {
                let i = rng.below(n);
                let extra: Vec<u8> = (0..1 + rng.below(16))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                b.splice(i..i, extra);
            }
        }
        if b.len() < 140 {
            break;
        }
    }
    b
}

/// The fuzzer's DICOM seeds: the classic corpus series, and the enhanced multi-frame files of
/// `tests/corpus/enhanced/` (pydicom + highdicom) each alone.
fn fuzz_seeds() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let mut seeds = corpus_series();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/enhanced");
    for case in ["ct_axial", "mr_oblique"] {
        for name in ["enhanced.dcm", "two_stacks.dcm"] {
            seeds.push((root.join(case), vec![root.join(case).join(name)]));
        }
    }
    seeds
}

#[test]
fn mutated_dicom_series_never_panic_and_name_the_file() {
    let series = fuzz_seeds();
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed(21));
    let mut counts = Counts::default();
    let peak_before = peak_rss_kib();
    for c in 0..cases() {
        let (_, files) = &series[c % series.len()];
        let dir = tmp.path().join(format!("case{c}"));
        std::fs::create_dir(&dir).unwrap();
        let victim = rng.below(files.len());
        let mut bad = PathBuf::new();
        for (i, f) in files.iter().enumerate() {
            let target = dir.join(f.file_name().unwrap());
            let bytes = std::fs::read(f).unwrap();
            if i == victim {
                std::fs::write(&target, mutate_dicom(&mut rng, &bytes)).unwrap();
                bad = target;
            } else {
                std::fs::write(&target, bytes).unwrap();
            }
        }
        counts.run(&bad, || match io::open(&dir, &OpenOptions::default()) {
            Ok((v, _)) => {
                assert!(heartloc::volume::geometry_problem(&v.world_from_voxel()).is_none());
                assert_eq!(v.voxels.len(), v.dims().iter().product::<usize>());
                assert!((0..v.voxels.len()).all(|i| v.voxels.get(i).is_finite()));
                Ok(())
            }
            // Folder-level errors (no DICOM left, mixed series) name the folder, inside which
            // the file lies; file-level ones name the file.
            Err(e) => {
                let msg = e.to_string();
                if msg.contains(&*bad.display().to_string()) {
                    Err(msg)
                } else {
                    assert!(msg.contains(&*dir.display().to_string()), "{msg}");
                    Err(format!("{msg} {}", bad.display()))
                }
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
    counts.report("DICOM");
    let grown = peak_rss_kib() - peak_before;
    println!("peak RSS of this test process grew by {grown} KiB");
    // Each file is under 1 KiB: no lying length may cost more than a few MiB.
    assert!(grown < 64 * 1024, "peak memory grew by {grown} KiB");
}

const MARKUPS: &str = r#"{"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
"markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "coordinateUnits": "mm",
"controlPoints": [
 {"id": "1", "label": "aortic-valve", "position": [12.5, -30.25, 40.0], "positionStatus": "defined"},
 {"id": "2", "label": "heart-center", "position": "", "positionStatus": "undefined"},
 {"id": "3", "label": "apex", "position": [1.0, 2.0, 3.0], "positionStatus": "missing"}]},
 {"type": "Line", "controlPoints": [{"position": [0, 0, 0]}, {"position": [1, 1, 1]}]}]}"#;

fn mutate_text(rng: &mut Rng, text: &str, specials: &[&str]) -> String {
    let mut s = text.to_string();
    for _ in 0..1 + rng.below(3) {
        let n = s.len();
        let at = (0..=n)
            .skip(rng.below(n + 1))
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(n);
        match rng.below(5) {
            0 => s.insert_str(at, specials[rng.below(specials.len())]),
            1 => s.truncate(at),
            2 => {
                // A number replaced by a special one.
                if let Some(i) = s[at..].find(|c: char| c.is_ascii_digit()) {
                    let i = at + i;
                    let j = s[i..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .map_or(s.len(), |j| i + j);
                    s.replace_range(i..j, specials[rng.below(specials.len())]);
                }
            }
            3 => {
                // A line duplicated (points, rows).
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let k = rng.below(lines.len());
                    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    v.insert(k, lines[k].to_string());
                    s = v.join("\n");
                }
            }
            _ => {
                let mut b = s.into_bytes();
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(7);
                }
                s = String::from_utf8_lossy(&b).into_owned();
            }
        }
    }
    s
}

#[test]
fn mutated_markups_never_panic_and_stay_in_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed(22));
    let mut counts = Counts::default();
    let specials = [
        "NaN",
        "1e308",
        "-1e308",
        "9007199254740993",
        "\"\"",
        "[]",
        "null",
        ",",
        "{",
        "\"",
    ];
    let base = tmp.path().join("seed.mrk.json");
    std::fs::write(&base, MARKUPS).unwrap();
    assert_eq!(markups::read(&base).unwrap().len(), 3, "the seed reads");
    for c in 0..cases() {
        let p = tmp.path().join(format!("case{c}.mrk.json"));
        std::fs::write(&p, mutate_text(&mut rng, MARKUPS, &specials)).unwrap();
        counts.run(&p, || match markups::read(&p) {
            Ok(points) => {
                for pt in points {
                    if let Some(x) = pt.position_lps {
                        assert!(x.iter().all(|v| v.abs() <= heartloc::volume::MAX_ORIGIN_MM));
                    }
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        });
    }
    counts.report("markups");
}

#[test]
fn mutated_manifests_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed(23));
    let mut counts = Counts::default();
    let seed = "case,modality,heart_values,heart_center_lps_mm,labels\n\
                ct/Patient_01,CT,2,10.5 -20 30,\"1=esophagus 2=heart\"\n\
                mr/patient001,MR,1 2 3,-1 2 -3,\"1=RV, 2=myo\"\n";
    let specials = [
        "\"", "\"\"", ",", "\n", "\r\n", "NaN", "1e308", "-1", "\u{feff}",
    ];
    for c in 0..cases() {
        let p = tmp.path().join(format!("case{c}.csv"));
        std::fs::write(&p, mutate_text(&mut rng, seed, &specials)).unwrap();
        counts.run(&p, || match heartloc::ml::data::read_manifest(&p) {
            Ok(rows) => {
                assert!(rows.iter().all(|r| !r.case.is_empty()));
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        });
    }
    counts.report("manifest");
}
