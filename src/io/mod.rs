//! Reading and writing volumes: NIfTI-1 files and DICOM series folders.
//!
//! Every error names the file (or folder) and what was wrong with it. Sizes claimed by headers
//! are checked against limits and against the bytes really present before anything is
//! allocated for them.

pub mod demo;
pub mod dicom;
pub mod durable;
pub mod markups;
pub mod nifti;
pub mod table;

use std::path::{Path, PathBuf};

use crate::volume::Volume;

/// At most 2^30 voxels (a 1024×1024×1024 volume, 4 GiB as `f32`): larger headers are refused
/// as absurd rather than trusted.
pub const MAX_VOXELS: u64 = 1 << 30;

/// A problem reading or writing one file or folder. Displays as `what was wrong (path)`.
#[derive(Debug, thiserror::Error)]
#[error("{problem} ({})", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub problem: String,
}

impl FileError {
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        FileError {
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: &Path, context: &str, err: std::io::Error) -> Self {
        FileError::new(path, format!("{context}: {err}"))
    }
}

/// `$XDG_DATA_HOME/heartloc`, else `~/.local/share/heartloc` (else the temporary folder's).
pub fn user_data_folder() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data.join("heartloc")
}

/// 64-bit FNV-1a of `bytes`: short stable names derived from UIDs and paths (not security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Which kind of input a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Nifti,
    DicomDir,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Nifti => "NIfTI-1",
            Format::DicomDir => "DICOM series",
        }
    }
}

/// Options for [`open`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// For a DICOM folder holding several series: the SeriesInstanceUID to load.
    pub series_uid: Option<String>,
    /// For a time series (cine DICOM, 4D NIfTI): which phase to load, 0-based (default: the
    /// first in trigger order).
    pub phase: usize,
}

/// Open a NIfTI file, a DICOM folder (searched recursively) or a DICOM file (its series).
pub fn open(path: &Path, options: &OpenOptions) -> Result<(Volume, Format), FileError> {
    let meta = std::fs::metadata(path).map_err(|e| FileError::io(path, "cannot open", e))?;
    if meta.is_dir() {
        Ok((dicom::open_dir(path, options)?, Format::DicomDir))
    } else if dicom::bounds::check(path)? != dicom::bounds::Probe::NotDicom {
        Ok((dicom::read_series_of_file(path, options)?, Format::DicomDir))
    } else {
        Ok((nifti::read_phase(path, options.phase)?, Format::Nifti))
    }
}
