//! Versions of the landmark models a user has trained: `<root>/<landmark>/v<N>/` each holds a
//! model (`heatmap.safetensors`, its recipe naming the landmark, `heatmap.training.json` with
//! the cases it saw and its held-out figures), and `<root>/<landmark>/active` names the one the
//! app suggests with. A run trains into a staging folder beside them and becomes a version only
//! when it finishes, so a cancelled or failed run leaves the versions, and the active one, as
//! they were. The root is `$HEARTLOC_MODELS_DIR`, else `<user data>/models`.

use std::path::{Path, PathBuf};

use super::train::TrainLog;
use crate::io::FileError;

/// The per-user models folder: `$HEARTLOC_MODELS_DIR`, else `<user data>/heartloc/models`.
pub fn user_models_folder() -> PathBuf {
    match std::env::var_os("HEARTLOC_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => crate::io::user_data_folder().join("models"),
    }
}

/// One trained version of a landmark model and what its log says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub landmark: String,
    pub number: u32,
    pub dir: PathBuf,
    pub train_cases: usize,
    pub held_out: usize,
    /// The last epoch's held-out median and maximum error (mm).
    pub median_mm: f64,
    pub max_mm: f64,
    pub minutes: f64,
}

impl Version {
    /// "v3: 24 cases, held out (6) median 4.1 mm, max 9.0".
    pub fn summary(&self) -> String {
        format!(
            "v{}: {} cases, held out ({}) median {:.1} mm, max {:.1}",
            self.number, self.train_cases, self.held_out, self.median_mm, self.max_mm
        )
    }

    /// The name a suggestion's note gives it: "carina model v3".
    pub fn label(&self) -> String {
        format!("{} model v{}", self.landmark, self.number)
    }
}

/// The landmark models folder.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

/// A landmark's name as a folder name (anything but letters, digits, `-`, `_`, `.` becomes `_`).
fn folder_name(landmark: &str) -> String {
    landmark
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    fn landmark_dir(&self, landmark: &str) -> PathBuf {
        self.root.join(folder_name(landmark))
    }

    /// Every landmark with at least one version, by name.
    pub fn landmarks(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                self.versions_in(&e.path())
                    .into_iter()
                    .next()
                    .map(|v| v.landmark)
            })
            .collect();
        out.sort();
        out
    }

    /// A landmark's versions, oldest first (unreadable folders are left out).
    pub fn versions(&self, landmark: &str) -> Vec<Version> {
        self.versions_in(&self.landmark_dir(landmark))
    }

    fn versions_in(&self, dir: &Path) -> Vec<Version> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<Version> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let number = name.strip_prefix('v')?.parse().ok()?;
                read_version(&e.path(), number)
            })
            .collect();
        out.sort_by_key(|v| v.number);
        out
    }

    /// The version the app suggests with: the one `active` names, else none.
    pub fn active(&self, landmark: &str) -> Option<Version> {
        let number = self.active_number(landmark)?;
        self.versions(landmark)
            .into_iter()
            .find(|v| v.number == number)
    }

    /// The number `active` names (whether or not that version can be read).
    pub fn active_number(&self, landmark: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.landmark_dir(landmark).join("active")).ok()?;
        text.trim().strip_prefix('v')?.parse().ok()
    }

    /// Make version `number` the active one (rolling back is choosing an older one).
    pub fn set_active(&self, landmark: &str, number: u32) -> Result<(), FileError> {
        let dir = self.landmark_dir(landmark);
        if !self.versions(landmark).iter().any(|v| v.number == number) {
            return Err(FileError::new(&dir, format!("no version v{number}")));
        }
        crate::io::durable::write_atomic(&dir.join("active"), format!("v{number}\n").as_bytes())
    }

    /// A fresh staging folder for a run of `landmark` (not a version until [`Store::commit`]).
    pub fn stage(&self, landmark: &str) -> Result<PathBuf, FileError> {
        let dir = self.landmark_dir(landmark);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staged = dir.join(format!(".training-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&staged)
            .map_err(|e| FileError::io(&staged, "cannot create the training folder", e))?;
        Ok(staged)
    }

    /// A finished run becomes the next version, and the active one.
    pub fn commit(&self, landmark: &str, staged: &Path) -> Result<Version, FileError> {
        let dir = self.landmark_dir(landmark);
        let number = self.versions(landmark).last().map_or(1, |v| v.number + 1);
        let target = dir.join(format!("v{number}"));
        std::fs::rename(staged, &target)
            .map_err(|e| FileError::io(&target, "cannot make the trained model a version", e))?;
        crate::io::durable::sync_parent(&target);
        self.set_active(landmark, number)?;
        read_version(&target, number)
            .ok_or_else(|| FileError::new(&target, "the trained model's log cannot be read"))
    }

    /// Throw a staged run away (cancelled or failed).
    pub fn discard(&self, staged: &Path) {
        let _ = std::fs::remove_dir_all(staged);
    }
}

fn read_version(dir: &Path, number: u32) -> Option<Version> {
    let text = std::fs::read_to_string(dir.join("heatmap.training.json")).ok()?;
    let log: serde_json::Value = serde_json::from_str(&text).ok()?;
    let landmark = log["landmark"].as_str()?.to_string();
    let last = log["epochs"].as_array()?.last()?;
    let count = |k: &str| log[k].as_array().map_or(0, Vec::len);
    Some(Version {
        landmark,
        number,
        dir: dir.to_path_buf(),
        train_cases: count("train_cases"),
        held_out: count("val_cases"),
        median_mm: last["val_center_error_mm_median"]
            .as_f64()
            .unwrap_or(f64::NAN),
        max_mm: last["val_center_error_mm_max"].as_f64().unwrap_or(f64::NAN),
        minutes: log["minutes"].as_f64().unwrap_or(f64::NAN),
    })
}

/// What a finished log says, in the words of [`Version::summary`] (before it is a version).
pub fn log_summary(log: &TrainLog) -> String {
    let last = log.epochs.last();
    format!(
        "{} cases, held out ({}) median {:.1} mm, max {:.1}",
        log.train_cases.len(),
        log.val_cases.len(),
        last.map_or(f64::NAN, |e| e.val_center_error_mm_median),
        last.map_or(f64::NAN, |e| e.val_center_error_mm_max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished run's folder as `learn` leaves it: a log with the landmark and one epoch.
    fn fake_run(store: &Store, landmark: &str, median: f64) -> PathBuf {
        let staged = store.stage(landmark).unwrap();
        let log = serde_json::json!({
            "landmark": landmark,
            "train_cases": ["a", "b", "c", "d"],
            "val_cases": ["e"],
            "epochs": [{"val_center_error_mm_median": median, "val_center_error_mm_max": 9.0}],
            "minutes": 1.5,
        });
        std::fs::write(staged.join("heatmap.training.json"), log.to_string()).unwrap();
        staged
    }

    #[test]
    fn runs_become_numbered_versions_the_newest_active_and_rolling_back_works() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().to_path_buf());
        assert!(store.landmarks().is_empty());
        let v1 = store
            .commit("aortic valve", &fake_run(&store, "aortic valve", 6.0))
            .unwrap();
        assert_eq!((v1.number, v1.train_cases, v1.held_out), (1, 4, 1));
        assert!(v1.dir.ends_with("aortic_valve/v1"), "{}", v1.dir.display());
        let v2 = store
            .commit("aortic valve", &fake_run(&store, "aortic valve", 4.0))
            .unwrap();
        assert_eq!(v2.number, 2);
        assert_eq!(store.active("aortic valve"), Some(v2.clone()));
        assert_eq!(
            v2.summary(),
            "v2: 4 cases, held out (1) median 4.0 mm, max 9.0"
        );
        store.set_active("aortic valve", 1).unwrap();
        assert_eq!(store.active("aortic valve"), Some(v1));
        assert!(store.set_active("aortic valve", 7).is_err());
        // A discarded run leaves no version and no folder.
        let staged = fake_run(&store, "aortic valve", 1.0);
        store.discard(&staged);
        assert!(!staged.exists());
        assert_eq!(store.versions("aortic valve").len(), 2);
        assert_eq!(store.landmarks(), vec!["aortic valve".to_string()]);
    }
}
