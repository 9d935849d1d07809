//! What one DICOM file's header says about its place in a series: read up to the pixel data,
//! after its element lengths were checked (see [`super::bounds`]); values that are present but
//! unusable are kept as problems, so that only the series holding the file is refused.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use glam::DVec3;

use crate::io::LoadError;

/// What one file's header says about its place in a series.
#[derive(Clone, Debug)]
pub(super) struct SliceHeader {
    pub path: PathBuf,
    pub series_uid: String,
    pub study_uid: String,
    /// SeriesDate, else StudyDate (YYYYMMDD as stored).
    pub date: String,
    pub description: String,
    pub modality: String,
    pub position: Option<DVec3>,
    pub orientation: Option<[f64; 6]>,
    /// PixelSpacing: (row spacing, column spacing) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub slice_thickness: Option<f64>,
    /// What orders the images of one position in a cine: TriggerTime (ms),
    /// TemporalPositionIdentifier, InstanceNumber.
    pub trigger_time: Option<f64>,
    pub temporal_position: Option<i64>,
    pub instance_number: Option<i64>,
    /// Header fields that are present but unusable (not numbers, not finite, out of range, a
    /// colour image): a series holding this slice is refused with the first of them.
    pub problems: Vec<String>,
}

/// The header of a DICOM file (pixel data not read), or `None` when it is not DICOM (no DICM
/// marker). A DICOM file whose element lengths do not fit in it (see [`super::bounds`]), or
/// that dicom-rs cannot parse, is an error.
pub(super) fn read_header(path: &Path) -> Result<Option<SliceHeader>, LoadError> {
    if super::bounds::check(path)? == super::bounds::Probe::NotDicom {
        return Ok(None);
    }
    // A file with the DICM marker whose lengths fit but that dicom-rs cannot parse is an
    // error, not a file to skip: skipping one slice would leave a gap in its series.
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| LoadError::new(path, format!("cannot read DICOM: {e}")))?;
    let mut problems = Vec::new();
    let text = |tag| {
        obj.get(tag)
            .and_then(|e| e.value().to_str().ok())
            .map(|s| s.trim().to_string())
    };
    // Present but not numbers, or not finite, is a problem, never a silent default.
    let mut floats = |tag, name: &str, n: usize| -> Option<Vec<f64>> {
        let e = obj.get(tag)?;
        if e.value().to_str().is_ok_and(|s| s.trim().is_empty()) {
            return None;
        }
        match e.value().to_multi_float64() {
            Ok(v) if v.len() == n && v.iter().all(|x| x.is_finite()) => Some(v),
            Ok(v) if v.len() != n => {
                problems.push(format!("{name} has {} values, expected {n}", v.len()));
                None
            }
            _ => {
                problems.push(format!(
                    "{name} is not {n} finite number(s): {:?}",
                    e.value().to_str().unwrap_or_default()
                ));
                None
            }
        }
    };
    let position = floats(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3)
        .map(|v| DVec3::new(v[0], v[1], v[2]));
    let orientation: Option<[f64; 6]> = floats(
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    )
    .and_then(|v| v.try_into().ok());
    let pixel_spacing: Option<[f64; 2]> =
        floats(tags::PIXEL_SPACING, "PixelSpacing", 2).and_then(|v| v.try_into().ok());
    let slice_thickness = floats(tags::SLICE_THICKNESS, "SliceThickness", 1).map(|v| v[0]);
    let slope = floats(tags::RESCALE_SLOPE, "RescaleSlope", 1);
    // Read only to refuse a non-numeric one: dicom-pixeldata applies it.
    floats(tags::RESCALE_INTERCEPT, "RescaleIntercept", 1);
    let photometric = text(tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    problems.extend(range_problems(
        position,
        pixel_spacing,
        slice_thickness,
        slope.map(|v| v[0]),
        &photometric,
    ));
    let uint = |tag| obj.get(tag).and_then(|e| e.value().to_int::<u32>().ok());
    let int = |tag| obj.get(tag).and_then(|e| e.value().to_int::<i64>().ok());
    Ok(Some(SliceHeader {
        path: path.to_path_buf(),
        series_uid: text(tags::SERIES_INSTANCE_UID).unwrap_or_else(|| "(no series UID)".into()),
        study_uid: text(tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        date: text(tags::SERIES_DATE)
            .filter(|d| !d.is_empty())
            .or_else(|| text(tags::STUDY_DATE))
            .unwrap_or_default(),
        description: text(tags::SERIES_DESCRIPTION).unwrap_or_default(),
        modality: text(tags::MODALITY).unwrap_or_default(),
        position,
        orientation,
        pixel_spacing,
        rows: uint(tags::ROWS).unwrap_or(0),
        columns: uint(tags::COLUMNS).unwrap_or(0),
        frames: uint(tags::NUMBER_OF_FRAMES).unwrap_or(1),
        slice_thickness,
        trigger_time: obj
            .get(tags::TRIGGER_TIME)
            .and_then(|e| e.value().to_float64().ok())
            .filter(|t| t.is_finite()),
        temporal_position: int(tags::TEMPORAL_POSITION_IDENTIFIER),
        instance_number: int(tags::INSTANCE_NUMBER),
        problems,
    }))
}

/// What is wrong with header values that did parse as finite numbers: out of range, a zero
/// slope, a colour image.
fn range_problems(
    position: Option<DVec3>,
    pixel_spacing: Option<[f64; 2]>,
    slice_thickness: Option<f64>,
    slope: Option<f64>,
    photometric: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if slope == Some(0.0) {
        problems.push("RescaleSlope is 0".into());
    }
    let (lo, hi) = crate::volume::SPACING_RANGE_MM;
    if let Some(p) = pixel_spacing.filter(|p| p.iter().any(|s| !(lo..=hi).contains(s))) {
        problems.push(format!(
            "PixelSpacing {p:?} mm is outside the {lo}–{hi} mm this reader accepts"
        ));
    }
    if let Some(t) = slice_thickness.filter(|t| !(0.0..=hi).contains(t)) {
        problems.push(format!(
            "SliceThickness {t} mm is outside the 0–{hi} mm this reader accepts"
        ));
    }
    if let Some(p) = position.filter(|p| p.abs().max_element() > crate::volume::MAX_ORIGIN_MM) {
        problems.push(format!(
            "ImagePositionPatient {p:?} mm is more than {} mm from the origin",
            crate::volume::MAX_ORIGIN_MM
        ));
    }
    if !photometric.is_empty() && !photometric.starts_with("MONOCHROME") {
        problems.push(format!(
            "PhotometricInterpretation is {photometric}: only greyscale (MONOCHROME1/2) images \
             are supported"
        ));
    }
    problems
}
