//! What one DICOM file's header says about its place in a series (or, for an enhanced
//! multi-frame file, each frame's): read up to the pixel data,
//! after its element lengths were checked (see [`super::bounds`]); values that are present but
//! unusable are kept as problems, so that only the series holding the file is refused.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use glam::DVec3;

use crate::io::FileError;

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
    /// NumberOfFrames of the file.
    pub frames: u32,
    /// Which frame of an enhanced multi-frame file this slice is (`None`: a classic image).
    pub frame: Option<u32>,
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

/// The headers of a DICOM file (pixel data not read): one for a classic image, one per frame
/// for an enhanced multi-frame image (geometry from its per-frame, then shared functional
/// groups); none when it is not DICOM (no DICM marker). A DICOM file whose element lengths do
/// not fit in it (see [`super::bounds`]), or that dicom-rs cannot parse, is an error.
pub(super) fn read_header(path: &Path) -> Result<Vec<SliceHeader>, FileError> {
    if super::bounds::check(path)? == super::bounds::Probe::NotDicom {
        return Ok(Vec::new());
    }
    // A file with the DICM marker whose lengths fit but that dicom-rs cannot parse is an
    // error, not a file to skip: skipping one slice would leave a gap in its series.
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| FileError::new(path, format!("cannot read DICOM: {e}")))?;
    let top: &InMemDicomObject = &obj;
    let first_item = |o: &InMemDicomObject, tag| {
        o.get(tag)
            .and_then(|e| e.items())
            .and_then(|items| items.first().cloned())
    };
    let per_frame = top
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items());
    let Some(per_frame) = per_frame.filter(|items| !items.is_empty()) else {
        return Ok(vec![slice_header(path, &[top], top, None)]);
    };
    // Each functional group is a sequence of one item holding the attributes themselves.
    let groups = |item: &InMemDicomObject| -> Vec<InMemDicomObject> {
        item.iter()
            .filter_map(|e| e.items().and_then(|items| items.first().cloned()))
            .collect()
    };
    let shared = first_item(top, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .map(|item| groups(&item))
        .unwrap_or_default();
    let frames: Vec<Vec<InMemDicomObject>> = per_frame.iter().map(groups).collect();
    let stack_of = |g: &[InMemDicomObject]| {
        g.iter()
            .find_map(|o| o.get(tags::STACK_ID))
            .and_then(|e| e.value().to_str().ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut stacks: Vec<String> = frames.iter().map(|g| stack_of(g)).collect();
    stacks.sort();
    stacks.dedup();
    Ok(frames
        .iter()
        .enumerate()
        .map(|(f, own)| {
            let sources: Vec<&InMemDicomObject> =
                own.iter().chain(shared.iter()).chain([top]).collect();
            let mut h = slice_header(path, &sources, top, Some(f as u32));
            if stacks.len() > 1 {
                // Several stacks (e.g. two orientations) in one file: each its own series.
                h.series_uid = format!("{}#stack{}", h.series_uid, stack_of(own));
            }
            h
        })
        .collect())
}

/// One slice's header: every field from the first of `sources` that has it (a classic image:
/// the file itself; a frame: its own functional groups, the shared ones, then the file).
fn slice_header(
    path: &Path,
    sources: &[&InMemDicomObject],
    top: &InMemDicomObject,
    frame: Option<u32>,
) -> SliceHeader {
    let find = |tag| sources.iter().find_map(|o| o.get(tag));
    let mut problems = Vec::new();
    let text = |tag| {
        top.get(tag)
            .and_then(|e| e.value().to_str().ok())
            .map(|s| s.trim().to_string())
    };
    let mut floats = |tag, name: &str, n: usize| numbers(find(tag), name, n, &mut problems);
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
    let uint = |tag| find(tag).and_then(|e| e.value().to_int::<u32>().ok());
    let int = |tag| find(tag).and_then(|e| e.value().to_int::<i64>().ok());
    let float = |tag| {
        find(tag)
            .and_then(|e| e.value().to_float64().ok())
            .filter(|t: &f64| t.is_finite())
    };
    SliceHeader {
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
        frame,
        slice_thickness,
        trigger_time: float(tags::TRIGGER_TIME)
            .or_else(|| float(tags::NOMINAL_CARDIAC_TRIGGER_DELAY_TIME)),
        temporal_position: int(tags::TEMPORAL_POSITION_IDENTIFIER)
            .or_else(|| int(tags::TEMPORAL_POSITION_INDEX)),
        instance_number: int(tags::INSTANCE_NUMBER),
        problems,
    }
}

/// `n` finite numbers from `element` (`None` when it is absent or empty); present but not
/// numbers, the wrong count, or not finite is a problem, never a silent default.
fn numbers(
    element: Option<&dicom_object::mem::InMemElement>,
    name: &str,
    n: usize,
    problems: &mut Vec<String>,
) -> Option<Vec<f64>> {
    let e = element?;
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
