//! A worklist of cases to annotate: from a folder (case subfolders or NIfTI files) or a manifest
//! CSV (a `case` column of paths relative to the CSV). Landmarks are saved per case as Slicer
//! markups, next to each case or in a chosen output folder; the worklist's own state (current
//! case, skipped cases) is saved beside them so a restart resumes where it was. Every write is
//! atomic (see [`crate::io::durable::write_atomic`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use glam::DVec3;

use crate::annotation::{LandmarkSet, Status};
use crate::io::markups::ControlPoint;
use crate::io::{markups, FileError};

/// Name of the file a case's landmarks are saved to when kept next to the case.
pub const LANDMARKS_FILE: &str = "landmarks.mrk.json";

/// The per-user folder for landmarks of scans whose own folder is not the place for them (a
/// DICOM export, a folder that cannot be written): `$HEARTLOC_LANDMARKS_DIR`, else
/// `$XDG_DATA_HOME/heartloc/landmarks`, else `~/.local/share/heartloc/landmarks`.
pub fn user_landmarks_folder() -> PathBuf {
    if let Some(d) = std::env::var_os("HEARTLOC_LANDMARKS_DIR") {
        return PathBuf::from(d);
    }
    crate::io::user_data_folder().join("landmarks")
}

/// The label names the user saved once, for label maps that come without names of their own
/// (a Slicer colour table): `$HEARTLOC_LABEL_NAMES`, else `<user data>/label-names.ctbl`.
pub fn user_label_names_path() -> PathBuf {
    match std::env::var_os("HEARTLOC_LABEL_NAMES") {
        Some(p) => PathBuf::from(p),
        None => crate::io::user_data_folder().join("label-names.ctbl"),
    }
}

/// `<user folder>/<StudyInstanceUID>/<SeriesInstanceUID>.mrk.json`: the same for the same
/// series wherever its files are copied.
pub fn series_landmarks_path(study_uid: &str, series_uid: &str) -> PathBuf {
    let safe = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if s.is_empty() {
            "unknown".into()
        } else {
            s
        }
    };
    user_landmarks_folder()
        .join(safe(study_uid))
        .join(format!("{}.mrk.json", safe(series_uid)))
}

/// Whether a new file may be created in `dir`: not where the folder's own mode allows no
/// writing at all (a read-only archive or data share, even to a root user the system would let
/// through), else tried, then removed.
pub fn folder_is_writable(dir: &Path) -> bool {
    let read_only = std::fs::metadata(dir).map_or(true, |m| m.permissions().readonly());
    if read_only {
        return false;
    }
    let probe = dir.join(format!(".heartloc-write-test-{}", std::process::id()));
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    if ok {
        let _ = std::fs::remove_file(&probe);
    }
    ok
}
const STATE_FILE: &str = "heartloc-worklist.json";

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    /// A NIfTI file or a DICOM folder.
    pub image: PathBuf,
    /// Where this case's landmarks are saved.
    pub landmarks: PathBuf,
    /// The other markups files in the case folder (e.g. `heart.mrk.json`; Slicer saves one file
    /// per markup), whose points together seed the landmarks until the case has its own file.
    /// Never written.
    pub seeds: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseStatus {
    ToDo,
    Done,
    Skipped,
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaseStatus::ToDo => "to do",
            CaseStatus::Done => "done",
            CaseStatus::Skipped => "skipped",
        })
    }
}

/// One row of the worklist table.
#[derive(Clone, Debug)]
pub struct CaseSummary {
    pub status: CaseStatus,
    pub defined: usize,
}

/// What a CSV export wrote and what it could not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Export {
    pub rows: usize,
    /// Cases not (fully) exported as landmarks: unreadable files, repeated labels.
    pub problems: Vec<String>,
    /// What the files hold besides points (other markup types), kept and not exported.
    pub notes: Vec<String>,
}

pub struct Worklist {
    pub cases: Vec<Case>,
    pub current: usize,
    skipped: BTreeSet<String>,
    state_path: PathBuf,
    summaries: Vec<CaseSummary>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    current_case: Option<String>,
    skipped: Vec<String>,
}

impl Worklist {
    /// Open a folder or manifest CSV; `out` is where landmarks go (`None`: next to each case).
    pub fn open(source: &Path, out: Option<&Path>) -> Result<Self, FileError> {
        let found = if source.is_dir() {
            cases_in_folder(source)?
        } else {
            cases_in_csv(source)?
        };
        if found.is_empty() {
            return Err(FileError::new(
                source,
                "no cases found (no NIfTI files or case folders)",
            ));
        }
        let root = if source.is_dir() {
            source.to_path_buf()
        } else {
            source.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        if let Some(out) = out {
            std::fs::create_dir_all(out)
                .map_err(|e| FileError::io(out, "cannot create output folder", e))?;
        }
        let cases: Vec<Case> = found
            .into_iter()
            .map(|(name, image, case_dir)| {
                let landmarks = match out {
                    Some(out) => out.join(format!("{}.mrk.json", name.replace(['/', '\\'], "__"))),
                    None => match &case_dir {
                        Some(dir) => dir.join(LANDMARKS_FILE),
                        None => image
                            .with_file_name(format!("{}.mrk.json", crate::io::nifti::stem(&image))),
                    },
                };
                let seeds = case_dir
                    .as_deref()
                    .map_or(Vec::new(), |d| other_markups(d, &landmarks));
                Case {
                    name,
                    image,
                    landmarks,
                    seeds,
                }
            })
            .collect();
        let state_path = out.map_or(root.join(STATE_FILE), |o| o.join(STATE_FILE));
        let state: State = std::fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let current = state
            .current_case
            .and_then(|c| cases.iter().position(|k| k.name == c))
            .unwrap_or(0);
        let mut list = Worklist {
            summaries: Vec::new(),
            cases,
            current,
            skipped: state.skipped.into_iter().collect(),
            state_path,
        };
        list.summaries = (0..list.cases.len()).map(|i| list.summarise(i)).collect();
        Ok(list)
    }

    fn summarise(&self, i: usize) -> CaseSummary {
        let set = self.load_landmarks(i).unwrap_or_default();
        let own = self.cases[i].landmarks.is_file();
        CaseSummary {
            // Derived from the landmarks first: a skipped case whose landmarks were placed
            // after all is done.
            status: if own && set.is_complete() {
                CaseStatus::Done
            } else if self.skipped.contains(&self.cases[i].name) {
                CaseStatus::Skipped
            } else {
                CaseStatus::ToDo
            },
            defined: set
                .landmarks
                .iter()
                .filter(|l| l.position_lps().is_some())
                .count(),
        }
    }

    pub fn summary(&self, i: usize) -> &CaseSummary {
        &self.summaries[i]
    }

    /// (to do, done, skipped)
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.summaries.iter().filter(|x| x.status == s).count();
        (
            n(CaseStatus::ToDo),
            n(CaseStatus::Done),
            n(CaseStatus::Skipped),
        )
    }

    /// The control points of a case: of its own file, else of all its seed files (none: empty),
    /// with notes on what the files hold besides points.
    pub fn case_points(&self, i: usize) -> Result<(Vec<ControlPoint>, Vec<String>), FileError> {
        let case = &self.cases[i];
        let files = if case.landmarks.is_file() {
            std::slice::from_ref(&case.landmarks)
        } else {
            &case.seeds[..]
        };
        let (mut points, mut notes) = (Vec::new(), Vec::new());
        for f in files {
            let m = markups::read_file(f)?;
            points.extend(m.points);
            notes.extend(m.notes.into_iter().map(|n| format!("{}: {n}", f.display())));
        }
        Ok((points, notes))
    }

    /// The case's saved landmarks, else its seed files', else empty default slots. A label on
    /// several points is refused (see [`LandmarkSet::from_markups`]).
    pub fn load_landmarks(&self, i: usize) -> Result<LandmarkSet, FileError> {
        let (points, _) = self.case_points(i)?;
        LandmarkSet::from_markups(&points).map_err(|e| {
            let case = &self.cases[i];
            let at = if case.landmarks.is_file() || case.seeds.is_empty() {
                case.landmarks.clone()
            } else {
                case.seeds[0]
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf()
            };
            FileError::new(at, e)
        })
    }

    /// Every case where `landmark` is placed: (name, image, position LPS mm); and a line for
    /// each case whose landmarks cannot be read. Cases without it are simply not listed.
    pub fn landmark_cases(&self, landmark: &str) -> (Vec<(String, PathBuf, DVec3)>, Vec<String>) {
        let (mut found, mut problems) = (Vec::new(), Vec::new());
        for (i, case) in self.cases.iter().enumerate() {
            match self.load_landmarks(i) {
                Ok(set) => {
                    if let Some(p) = set.get(landmark).and_then(|l| l.position_lps()) {
                        found.push((case.name.clone(), case.image.clone(), p));
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        (found, problems)
    }

    /// Save a case's landmarks (durably, keeping what else its file holds) and refresh its row.
    pub fn save_landmarks(&mut self, i: usize, set: &LandmarkSet) -> Result<(), FileError> {
        markups::save(&self.cases[i].landmarks, &set.to_points())?;
        self.summaries[i] = self.summarise(i);
        Ok(())
    }

    /// Move to another case and remember it for the next start.
    pub fn go_to(&mut self, i: usize) -> Result<(), FileError> {
        self.current = i.min(self.cases.len() - 1);
        self.save_state()
    }

    pub fn set_skipped(&mut self, i: usize, skipped: bool) -> Result<(), FileError> {
        let name = self.cases[i].name.clone();
        if skipped {
            self.skipped.insert(name);
        } else {
            self.skipped.remove(&name);
        }
        self.summaries[i] = self.summarise(i);
        self.save_state()
    }

    fn save_state(&self) -> Result<(), FileError> {
        let state = State {
            current_case: Some(self.cases[self.current].name.clone()),
            skipped: self.skipped.iter().cloned().collect(),
        };
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        crate::io::durable::write_atomic(&self.state_path, text.as_bytes())
    }

    /// Every landmark of every case as CSV: case, landmark, x, y, z (LPS mm), status, note (an
    /// accepted suggestion's names the model version that made it). A case
    /// whose files cannot be read, or whose labels repeat (then every point is written as it
    /// is), is named in the report's problems; it never stops the others.
    pub fn export_csv(&self, path: &Path) -> Result<Export, FileError> {
        let mut rows = Vec::new();
        let (mut problems, mut notes) = (Vec::new(), Vec::new());
        for (i, case) in self.cases.iter().enumerate() {
            let (points, notes_of) = match self.case_points(i) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("case {}: {e}", case.name));
                    continue;
                }
            };
            let case_notes = notes_of
                .into_iter()
                .map(|n| format!("case {}: {n}", case.name));
            notes.extend(case_notes);
            let landmarks: Vec<(String, Status, String)> = match LandmarkSet::from_markups(&points)
            {
                Ok(set) => set
                    .landmarks
                    .into_iter()
                    .map(|l| (l.name, l.status, l.note))
                    .collect(),
                Err(e) => {
                    problems.push(format!("case {}: {e}; every point exported", case.name));
                    let row = |p: &ControlPoint| {
                        (p.label.clone(), Status::of_point(p), p.description.clone())
                    };
                    points.iter().map(row).collect()
                }
            };
            for (name, status, note) in landmarks {
                let xyz = match status {
                    Status::Defined(p) => [p.x, p.y, p.z].map(|v| format!("{v:.3}")),
                    _ => [String::new(), String::new(), String::new()],
                };
                let [x, y, z] = xyz;
                rows.push([case.name.clone(), name, x, y, z, status.to_string(), note]);
            }
        }
        let header = [
            "case", "landmark", "x_lps_mm", "y_lps_mm", "z_lps_mm", "status", "note",
        ];
        let text = crate::io::table::to_csv(&header, &rows)
            .map_err(|e| FileError::new(path, format!("cannot encode CSV: {e}")))?;
        crate::io::durable::write_atomic(path, text.as_bytes())?;
        Ok(Export {
            rows: rows.len(),
            problems,
            notes,
        })
    }
}

fn is_nifti(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// The image of a case folder: `image.nii(.gz)`, else its only NIfTI file, else the folder
/// itself when it holds DICOM files.
fn case_image(dir: &Path) -> Option<PathBuf> {
    for name in ["image.nii.gz", "image.nii"] {
        if dir.join(name).is_file() {
            return Some(dir.join(name));
        }
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let niftis: Vec<&PathBuf> = entries.iter().filter(|p| is_nifti(p)).collect();
    if niftis.len() == 1 {
        return Some(niftis[0].clone());
    }
    entries
        .iter()
        .any(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm")))
        .then(|| dir.to_path_buf())
}

/// Every `*.mrk.json` in a case folder but its own landmarks file, by name.
fn other_markups(dir: &Path, own: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".mrk.json") && p != own)
        .collect();
    found.sort();
    found
}

/// (name, image, case folder when the case is a folder) for each case.
type Found = Vec<(String, PathBuf, Option<PathBuf>)>;

fn cases_in_folder(dir: &Path) -> Result<Found, FileError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FileError::io(dir, "cannot list folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if p.is_dir() {
            if let Some(image) = case_image(&p) {
                cases.push((name, image, Some(p)));
            }
        } else if is_nifti(&p) && !name.contains("label") {
            cases.push((crate::io::nifti::stem(&p), p, None));
        }
    }
    Ok(cases)
}

fn cases_in_csv(csv: &Path) -> Result<Found, FileError> {
    let table = crate::io::table::Table::read(csv)?;
    let root = csv.parent().unwrap_or(Path::new("."));
    let col = Some(table.require("case")?);
    let mut cases = Vec::new();
    for (n, row) in table.rows.iter().enumerate() {
        let name = row.get(col);
        if name.is_empty() {
            return Err(FileError::new(csv, format!("row {} has no case", n + 2)));
        }
        let path = root.join(name);
        let missing = || {
            FileError::new(
                csv,
                format!(
                    "row {}: case {name} has no image at {}",
                    n + 2,
                    path.display()
                ),
            )
        };
        if path.is_dir() {
            let image = case_image(&path).ok_or_else(missing)?;
            cases.push((name.to_string(), image, Some(path)));
        } else if path.is_file() {
            cases.push((name.to_string(), path, None));
        } else {
            return Err(missing());
        }
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DVec3;

    fn touch_case(root: &Path, name: &str) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("image.nii.gz"), b"x").unwrap();
    }

    #[test]
    fn a_folder_whose_mode_forbids_writing_is_never_written_even_by_root() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("archive");
        std::fs::create_dir(&dir).unwrap();
        assert!(folder_is_writable(&dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert!(!folder_is_writable(&dir));
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no probe file left"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn folder_worklist_saves_next_to_cases_resumes_and_exports() {
        let tmp = tempfile::tempdir().unwrap();
        for c in ["b_case", "a_case", "c_case"] {
            touch_case(tmp.path(), c);
        }
        let mut w = Worklist::open(tmp.path(), None).unwrap();
        let names: Vec<&str> = w.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a_case", "b_case", "c_case"]);
        assert_eq!(w.counts(), (3, 0, 0));
        let mut set = LandmarkSet::default();
        let mut a = crate::annotation::Annotation::new(set.clone());
        a.place("aortic-valve", DVec3::new(1.0, 2.0, 3.0));
        a.place("heart-center", DVec3::new(4.0, 5.0, 6.0));
        set = a.set.clone();
        w.save_landmarks(0, &set).unwrap();
        assert!(tmp.path().join("a_case").join(LANDMARKS_FILE).is_file());
        w.set_skipped(2, true).unwrap();
        w.go_to(1).unwrap();
        assert_eq!(w.counts(), (1, 1, 1));
        // A skipped case whose landmarks are then placed counts as done.
        w.set_skipped(0, true).unwrap();
        assert_eq!(w.summary(0).status, CaseStatus::Done);
        w.set_skipped(0, false).unwrap();

        let again = Worklist::open(tmp.path(), None).unwrap();
        assert_eq!(again.current, 1, "resumes at the case it was on");
        assert_eq!(again.counts(), (1, 1, 1));
        assert_eq!(again.load_landmarks(0).unwrap(), set);

        let csv = tmp.path().join("out.csv");
        let export = again.export_csv(&csv).unwrap();
        assert_eq!(export.rows, 6);
        assert!(export.problems.is_empty(), "{:?}", export.problems);
        let text = std::fs::read_to_string(csv).unwrap();
        assert!(
            text.contains("a_case,aortic-valve,1.000,2.000,3.000,defined"),
            "{text}"
        );
        assert!(text.contains("b_case,heart-center,,,,undefined"), "{text}");
    }

    #[test]
    fn csv_worklist_with_output_folder_leaves_cases_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        touch_case(tmp.path(), "sets/one");
        std::fs::write(tmp.path().join("list.csv"), "case,modality\nsets/one,CT\n").unwrap();
        let out = tmp.path().join("out");
        let mut w = Worklist::open(&tmp.path().join("list.csv"), Some(&out)).unwrap();
        assert_eq!(w.cases[0].landmarks, out.join("sets__one.mrk.json"));
        w.save_landmarks(0, &LandmarkSet::default()).unwrap();
        assert!(out.join("sets__one.mrk.json").is_file());
        assert!(!tmp.path().join("sets/one").join(LANDMARKS_FILE).exists());
        std::fs::write(tmp.path().join("bad.csv"), "case\nnope\n").unwrap();
        let e = Worklist::open(&tmp.path().join("bad.csv"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nope") && e.contains("bad.csv"), "{e}");
    }
}
