//! DICOM series from a folder (dicom-rs), and a series writer used by tests and exports.
//!
//! A folder is searched recursively (a CD or study export nests series in subfolders; no
//! DICOMDIR is needed), non-image objects (structure sets, reports, segmentations, …) are
//! skipped with a note, and a `.dcm` file opens the series it belongs to among its siblings.
//! Files are grouped by SeriesInstanceUID and sorted by ImagePositionPatient projected on the
//! slice normal (row × column direction), never by InstanceNumber. Voxel axes: i = column (along
//! the first ImageOrientationPatient vector), j = row, k = slice in increasing position along the
//! normal. DICOM is already LPS, so `world_from_voxel` is built directly:
//! columns `row_dir × column_spacing`, `col_dir × row_spacing`, the mean slice step, and the first
//! slice's position as origin. Rescale slope/intercept are applied per slice.
//!
//! Irregular stacks load with a warning: gantry tilt keeps its exact geometry as a sheared grid;
//! missing slices or non-uniform spacing are resampled (linear between neighbouring slices) onto
//! a uniform grid with the median step.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use glam::{DMat4, DVec3, DVec4};

use super::{LoadError, MAX_VOXELS};
use crate::volume::{Grid, Volume, Voxels};

/// What one file's header says about its place in a series.
#[derive(Clone, Debug)]
struct SliceHeader {
    path: PathBuf,
    series_uid: String,
    study_uid: String,
    /// SeriesDate, else StudyDate (YYYYMMDD as stored).
    date: String,
    description: String,
    modality: String,
    position: Option<DVec3>,
    orientation: Option<[f64; 6]>,
    /// PixelSpacing: (row spacing, column spacing) in mm.
    pixel_spacing: Option<[f64; 2]>,
    rows: u32,
    columns: u32,
    frames: u32,
    slice_thickness: Option<f64>,
    /// Header fields that are present but unusable (not numbers, not finite, out of range, a
    /// colour image): a series holding this slice is refused with the first of them.
    problems: Vec<String>,
}

/// One series found in a folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeriesSummary {
    pub series_uid: String,
    pub study_uid: String,
    pub modality: String,
    pub description: String,
    /// SeriesDate, else StudyDate, as stored (YYYYMMDD).
    pub date: String,
    pub images: usize,
    /// Columns, rows, images.
    pub dims: [usize; 3],
    /// Along a row (between columns) and along a column (between rows), mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// Median distance between neighbouring images along the slice normal, mm.
    pub slice_step_mm: Option<f64>,
    /// The patient direction of columns, rows and the normal, e.g. "LPS" (see
    /// [`Grid::orientation_code`]).
    pub orientation: Option<String>,
    /// The folder holding its first file.
    pub folder: PathBuf,
}

impl SeriesSummary {
    fn of(group: &[SliceHeader]) -> Self {
        let h = &group[0];
        let axes = h.orientation.map(|o| {
            let row = DVec3::new(o[0], o[1], o[2]);
            let col = DVec3::new(o[3], o[4], o[5]);
            (row, col, row.cross(col))
        });
        let slice_step_mm = axes.and_then(|(_, _, normal)| {
            let mut depth: Vec<f64> = group
                .iter()
                .filter_map(|s| s.position.map(|p| p.dot(normal)))
                .collect();
            depth.sort_by(f64::total_cmp);
            let steps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
            (!steps.is_empty()).then(|| median(&steps))
        });
        SeriesSummary {
            series_uid: h.series_uid.clone(),
            study_uid: h.study_uid.clone(),
            modality: h.modality.clone(),
            description: h.description.clone(),
            date: h.date.clone(),
            images: group.len(),
            dims: [h.columns as usize, h.rows as usize, group.len()],
            pixel_spacing_mm: h.pixel_spacing.map(|p| [p[1], p[0]]),
            slice_step_mm,
            orientation: axes.map(|(row, col, normal)| {
                let m = DMat4::from_cols(
                    row.extend(0.0),
                    col.extend(0.0),
                    normal.extend(0.0),
                    DVec4::W,
                );
                Grid::new([1, 1, 1], m).orientation_code()
            }),
            folder: h.path.parent().map(Path::to_path_buf).unwrap_or_default(),
        }
    }
}

/// The image series under `dir` (searched recursively), largest first, and notes on the
/// non-image objects (structure sets, reports, segmentations…) left out. Non-DICOM files are
/// ignored.
pub fn list_series(dir: &Path) -> Result<(Vec<SeriesSummary>, Vec<String>), LoadError> {
    let scan = scan(dir)?;
    Ok((
        scan.groups.iter().map(|g| SeriesSummary::of(g)).collect(),
        scan.skipped,
    ))
}

/// Modalities of DICOM objects that are not images to view: skipped, with a note.
const NOT_IMAGES: &[&str] = &[
    "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SR", "SEG", "PR", "KO", "REG", "DOC", "RWV",
    "PLAN", "FID",
];

/// Folders deeper than this under the one opened are not searched (an export is 2–4 deep).
const MAX_DEPTH: usize = 12;
/// More files than this under one folder is not an export but a whole archive.
const MAX_FILES: usize = 200_000;

/// What a folder holds: its image series (largest first) and notes on what was skipped.
struct Scan {
    groups: Vec<Vec<SliceHeader>>,
    skipped: Vec<String>,
}

/// Every file under `dir`, sorted, and how many folders were searched.
fn files_under(dir: &Path) -> Result<(Vec<PathBuf>, usize), LoadError> {
    let mut files = Vec::new();
    let mut folders = 0;
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = todo.pop() {
        folders += 1;
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| LoadError::io(&folder, "cannot list folder", e))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < MAX_DEPTH {
                todo.push((path, depth + 1));
            } else if kind.is_file() {
                files.push(path);
                if files.len() > MAX_FILES {
                    return Err(LoadError::new(
                        dir,
                        format!(
                            "more than {MAX_FILES} files under this folder: open the folder of \
                             one study or series"
                        ),
                    ));
                }
            }
        }
    }
    files.sort();
    Ok((files, folders))
}

/// Read headers of every DICOM file under `dir` (recursively), grouped by series.
fn scan(dir: &Path) -> Result<Scan, LoadError> {
    let (paths, folders) = files_under(dir)?;
    if paths.is_empty() {
        return Err(LoadError::new(
            dir,
            if folders == 1 {
                "folder is empty: no DICOM files to load".to_string()
            } else {
                format!(
                    "no files in this folder or its {} subfolder(s)",
                    folders - 1
                )
            },
        ));
    }
    group(dir, &paths)
}

/// Read the headers of `paths` and group the image files by series, largest first.
fn group(dir: &Path, paths: &[PathBuf]) -> Result<Scan, LoadError> {
    let mut headers = Vec::new();
    for path in paths {
        if let Some(h) = read_header(path)? {
            headers.push(h);
        }
    }
    if headers.is_empty() {
        return Err(LoadError::new(
            dir,
            format!(
                "no DICOM files among the {} files in this folder",
                paths.len()
            ),
        ));
    }
    let mut skipped: Vec<(String, usize)> = Vec::new();
    let mut groups: Vec<Vec<SliceHeader>> = Vec::new();
    for h in headers {
        let modality = h.modality.to_ascii_uppercase();
        if NOT_IMAGES.contains(&modality.as_str()) || h.rows == 0 || h.columns == 0 {
            let what = if modality.is_empty() {
                "object without rows and columns".to_string()
            } else {
                modality
            };
            match skipped.iter_mut().find(|(m, _)| *m == what) {
                Some((_, n)) => *n += 1,
                None => skipped.push((what, 1)),
            }
            continue;
        }
        match groups.iter_mut().find(|g| g[0].series_uid == h.series_uid) {
            Some(g) => g.push(h),
            None => groups.push(vec![h]),
        }
    }
    if groups.is_empty() {
        return Err(LoadError::new(
            dir,
            format!(
                "no image series here, only {}",
                skipped
                    .iter()
                    .map(|(m, n)| format!("{n} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    groups.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then(a[0].series_uid.cmp(&b[0].series_uid))
    });
    Ok(Scan {
        groups,
        skipped: skipped
            .into_iter()
            .map(|(m, n)| format!("skipped {n} non-image DICOM object(s): {m}"))
            .collect(),
    })
}

/// The header of a DICOM file (pixel data not read), or `None` when it is not DICOM (or not
/// readable by dicom-rs: DICOMDIR and other non-image objects). A file whose element lengths
/// do not fit in it is an error (see [`super::dicom_bounds`]).
fn read_header(path: &Path) -> Result<Option<SliceHeader>, LoadError> {
    if super::dicom_bounds::check(path)? == super::dicom_bounds::Probe::NotDicom {
        return Ok(None);
    }
    let Ok(obj) = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
    else {
        return Ok(None);
    };
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

/// Load the image series under `dir` (searched recursively): the only one, or the one named by
/// `series_uid`.
pub fn read_series_dir(dir: &Path, series_uid: Option<&str>) -> Result<Volume, LoadError> {
    choose(dir, scan(dir)?, series_uid)
}

/// Load the series of one DICOM file: its series among the files beside it (or the one named
/// by `series_uid`).
pub fn read_series_of_file(file: &Path, series_uid: Option<&str>) -> Result<Volume, LoadError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LoadError::io(dir, "cannot list folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    siblings.sort();
    let scan = group(dir, &siblings)?;
    let uid = match series_uid {
        Some(uid) => uid.to_string(),
        None => scan
            .groups
            .iter()
            .find(|g| g.iter().any(|h| h.path.file_name() == file.file_name()))
            .map(|g| g[0].series_uid.clone())
            .ok_or_else(|| LoadError::new(file, "not an image of a series heartloc can read"))?,
    };
    choose(dir, scan, Some(&uid))
}

/// The series named by `series_uid`, or the only one, loaded with the scan's notes as warnings.
fn choose(dir: &Path, scan: Scan, series_uid: Option<&str>) -> Result<Volume, LoadError> {
    let Scan { groups, skipped } = scan;
    let group = match series_uid {
        Some(uid) => groups
            .into_iter()
            .find(|g| g[0].series_uid == uid)
            .ok_or_else(|| {
                LoadError::new(dir, format!("no series with UID {uid} in this folder"))
            })?,
        None if groups.len() > 1 => {
            let list: Vec<String> = groups
                .iter()
                .map(|g| {
                    format!(
                        "{} ({} {} slices{})",
                        g[0].series_uid,
                        g[0].modality,
                        g.len(),
                        if g[0].description.is_empty() {
                            String::new()
                        } else {
                            format!(", \"{}\"", g[0].description)
                        }
                    )
                })
                .collect();
            return Err(LoadError::new(
                dir,
                format!(
                    "folder holds {} series; choose one with --series <UID>: {}",
                    list.len(),
                    list.join("; ")
                ),
            ));
        }
        None => groups.into_iter().next().unwrap_or_default(),
    };
    let mut vol = read_series(dir, group)?;
    vol.warnings.extend(skipped);
    Ok(vol)
}

fn read_series(dir: &Path, mut slices: Vec<SliceHeader>) -> Result<Volume, LoadError> {
    let err = |msg: String| LoadError::new(dir, msg);
    let first = slices
        .first()
        .cloned()
        .ok_or_else(|| err("series has no slices".into()))?;
    let missing = |s: &SliceHeader, what: &str| {
        LoadError::new(
            &s.path,
            format!("slice has no {what}; cannot place it in 3D"),
        )
    };
    let orientation = first
        .orientation
        .ok_or_else(|| missing(&first, "ImageOrientationPatient"))?;
    let spacing = first
        .pixel_spacing
        .ok_or_else(|| missing(&first, "PixelSpacing"))?;
    let (rows, cols) = (first.rows, first.columns);
    if rows == 0 || cols == 0 {
        return Err(missing(&first, "Rows/Columns"));
    }
    for s in &slices {
        if let Some(p) = s.problems.first() {
            return Err(LoadError::new(&s.path, p.clone()));
        }
        if s.frames > 1 {
            return Err(LoadError::new(
                &s.path,
                format!("multi-frame images ({} frames) are not supported", s.frames),
            ));
        }
        if s.position.is_none() {
            return Err(missing(s, "ImagePositionPatient"));
        }
        let same_orientation = s.orientation.is_some_and(|o| {
            o.iter()
                .zip(orientation.iter())
                .all(|(a, b)| (a - b).abs() < 1e-4)
        });
        if !same_orientation || s.rows != rows || s.columns != cols {
            return Err(LoadError::new(
                &s.path,
                "slice differs in orientation or size from the rest of its series (a mixed \
                 series); not loaded",
            ));
        }
    }
    let row_dir = DVec3::new(orientation[0], orientation[1], orientation[2]).normalize_or_zero();
    let col_dir = DVec3::new(orientation[3], orientation[4], orientation[5]).normalize_or_zero();
    let normal = row_dir.cross(col_dir);
    if normal.length() < 0.9 || spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(err(format!(
            "invalid ImageOrientationPatient {orientation:?} or PixelSpacing {spacing:?}"
        )));
    }
    let n = slices.len();
    let total = rows as u64 * cols as u64 * n as u64;
    if total > MAX_VOXELS {
        return Err(err(format!(
            "series of {n} slices of {cols}×{rows} is {total} voxels, more than the {MAX_VOXELS} \
             this reader accepts"
        )));
    }

    let pos = |s: &SliceHeader| s.position.unwrap_or_default();
    slices.sort_by(|a, b| pos(a).dot(normal).total_cmp(&pos(b).dot(normal)));
    let depth: Vec<f64> = slices.iter().map(|s| pos(s).dot(normal)).collect();
    let mut warnings = Vec::new();
    let steps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(i) = steps.iter().position(|&d| d.abs() < 1e-3) {
        return Err(err(format!(
            "two slices at the same position ({} and {}): a multi-phase or duplicated series \
             is not supported",
            slices[i].path.display(),
            slices[i + 1].path.display()
        )));
    }
    let (lo, hi) = crate::volume::SPACING_RANGE_MM;
    let step = if steps.is_empty() {
        first
            .slice_thickness
            .filter(|t| (lo..=hi).contains(t))
            .unwrap_or(1.0)
    } else {
        median(&steps)
    };
    let uniform = steps
        .iter()
        .all(|d| (d - step).abs() <= (0.01 * step).max(0.01));
    let extent = depth.last().unwrap_or(&0.0) - depth[0];
    let nk = if uniform {
        n
    } else {
        let gaps = steps.iter().filter(|d| **d > 1.5 * step).count();
        warnings.push(if gaps > 0 {
            format!(
                "missing slices: {gaps} gap(s) wider than the {step:.3} mm step; resampled to a \
                 uniform grid"
            )
        } else {
            format!(
                "non-uniform slice spacing ({:.3}..{:.3} mm); resampled to {step:.3} mm",
                steps.iter().cloned().fold(f64::INFINITY, f64::min),
                steps.iter().cloned().fold(0.0, f64::max)
            )
        });
        (extent / step).round() as usize + 1
    };
    // Slice step vector: along the normal unless the positions drift sideways (gantry tilt).
    let p0 = pos(&slices[0]);
    let k_step = if n > 1 {
        (pos(&slices[n - 1]) - p0) / (nk as f64 - 1.0)
    } else {
        normal * step
    };
    let tilt_deg = k_step
        .normalize()
        .dot(normal)
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees();
    if tilt_deg > 0.05 {
        warnings.push(format!(
            "gantry tilt of {tilt_deg:.2}°: kept exact as a sheared voxel grid"
        ));
    }

    let plane = rows as usize * cols as usize;
    let mut stack: Vec<Vec<f32>> = Vec::with_capacity(n);
    for s in &slices {
        stack.push(decode_slice(s, plane)?);
    }
    let values: Vec<f32> = if uniform {
        stack.concat()
    } else {
        let mut out = Vec::with_capacity(plane * nk);
        let mut lo = 0;
        for k in 0..nk {
            let d = depth[0] + k as f64 * (extent / (nk as f64 - 1.0));
            while lo + 2 < n && depth[lo + 1] <= d {
                lo += 1;
            }
            let t = (((d - depth[lo]) / (depth[lo + 1] - depth[lo])) as f32).clamp(0.0, 1.0);
            let (a, b) = (&stack[lo], &stack[lo + 1]);
            out.extend(a.iter().zip(b.iter()).map(|(x, y)| x + (y - x) * t));
        }
        out
    };
    drop(stack);

    let world_from_voxel = DMat4::from_cols(
        (row_dir * spacing[1]).extend(0.0),
        (col_dir * spacing[0]).extend(0.0),
        k_step.extend(0.0),
        p0.extend(1.0),
    );
    if let Some(p) = crate::volume::geometry_problem(&world_from_voxel) {
        return Err(err(format!(
            "{p} (from ImagePositionPatient, ImageOrientationPatient and PixelSpacing)"
        )));
    }
    let mut vol = Volume::new(
        Grid::new([cols as usize, rows as usize, nk], world_from_voxel),
        Voxels::from_f32_compact(values),
    );
    vol.warnings = warnings;
    Ok(vol)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Pixel values of one slice with the modality LUT (rescale) applied.
fn decode_slice(s: &SliceHeader, plane: usize) -> Result<Vec<f32>, LoadError> {
    let bad = |what: String| LoadError::new(&s.path, what);
    let obj =
        dicom_object::open_file(&s.path).map_err(|e| bad(format!("cannot read DICOM: {e}")))?;
    check_pixel_length(&obj, plane).map_err(bad)?;
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| bad(format!("cannot decode pixel data: {e}")))?;
    if decoded.samples_per_pixel() != 1 {
        return Err(bad(format!(
            "{} samples per pixel: only greyscale images are supported",
            decoded.samples_per_pixel()
        )));
    }
    let values: Vec<f32> = decoded
        .to_vec()
        .map_err(|e| bad(format!("cannot convert pixel data: {e}")))?;
    if values.len() != plane {
        return Err(bad(format!(
            "pixel data holds {} values, Rows×Columns says {plane}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("pixel {i} is NaN or infinite after rescale")));
    }
    Ok(values)
}

/// BitsAllocated and BitsStored must make sense, and native (uncompressed) pixel data must hold
/// exactly Rows × Columns × SamplesPerPixel × BitsAllocated/8 × NumberOfFrames bytes (one pad
/// byte allowed): anything else means the header lies about the image, and decoding would read
/// the wrong pixels.
fn check_pixel_length(obj: &dicom_object::DefaultDicomObject, plane: usize) -> Result<(), String> {
    use dicom_core::value::Value;
    let Ok(e) = obj.element(tags::PIXEL_DATA) else {
        return Err("file has no PixelData".into());
    };
    let int = |tag, default: u64| {
        obj.get(tag)
            .and_then(|e| e.value().to_int::<u64>().ok())
            .unwrap_or(default)
    };
    let bits = int(tags::BITS_ALLOCATED, 16);
    if !matches!(bits, 8 | 16 | 32 | 64) {
        return Err(format!("BitsAllocated is {bits}: expected 8, 16, 32 or 64"));
    }
    // dicom-pixeldata sizes its rescale table by BitsStored (and panics on 0 or over 32).
    let stored = int(tags::BITS_STORED, bits);
    if stored == 0 || stored > bits.min(32) {
        return Err(format!(
            "BitsStored is {stored}: expected 1..{} (BitsAllocated {bits})",
            bits.min(32)
        ));
    }
    let Value::Primitive(p) = e.value() else {
        return Ok(()); // encapsulated: the codec knows its own size
    };
    let want = plane as u64
        * int(tags::SAMPLES_PER_PIXEL, 1)
        * int(tags::NUMBER_OF_FRAMES, 1).max(1)
        * (bits / 8);
    let have = p.calculate_byte_len() as u64;
    if have != want && have != want + 1 {
        return Err(format!(
            "PixelData holds {have} bytes, but Rows×Columns×SamplesPerPixel×BitsAllocated/8×\
             NumberOfFrames says {want}"
        ));
    }
    Ok(())
}

/// Options for [`write_series`].
#[derive(Clone, Debug)]
pub struct WriteSeriesOptions {
    pub series_uid: String,
    pub modality: String,
    pub description: String,
}

impl Default for WriteSeriesOptions {
    fn default() -> Self {
        WriteSeriesOptions {
            series_uid: "2.25.1".into(),
            modality: "CT".into(),
            description: "heartloc export".into(),
        }
    }
}

/// Write a volume as a DICOM series (one file per k slice, explicit VR little endian, 16-bit
/// signed pixels with rescale slope/intercept chosen to hold the value range). Returns the file
/// paths, in slice order.
pub fn write_series(
    dir: &Path,
    volume: &Volume,
    options: &WriteSeriesOptions,
) -> Result<Vec<PathBuf>, LoadError> {
    std::fs::create_dir_all(dir).map_err(|e| LoadError::io(dir, "cannot create folder", e))?;
    let [nx, ny, nz] = volume.dims();
    let m = volume.world_from_voxel();
    let spacing = volume.spacing_mm();
    let row_dir = m.x_axis.truncate() / spacing[0];
    let col_dir = m.y_axis.truncate() / spacing[1];
    let (lo, hi) = volume.intensity_range();
    let integral_i16 = !matches!(volume.voxels, Voxels::F32(_) | Voxels::U16(_))
        || (lo >= -32768.0
            && hi <= 32767.0
            && (0..volume.voxels.len()).all(|i| volume.voxels.get(i).fract() == 0.0));
    let (slope, intercept) = if integral_i16 {
        (1.0f64, 0.0f64)
    } else {
        let slope = f64::from(hi - lo).max(1e-12) / 65535.0;
        (slope, f64::from(lo) + 32768.0 * slope)
    };
    let ds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join("\\")
    };
    // Names differ between series so that several can share a folder.
    let series_salt = options
        .series_uid
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let mut paths = Vec::with_capacity(nz);
    for k in 0..nz {
        let origin = m.transform_point3(DVec3::new(0.0, 0.0, k as f64));
        let mut pixels = Vec::with_capacity(nx * ny * 2);
        for idx in k * nx * ny..(k + 1) * nx * ny {
            let v = f64::from(volume.voxels.get(idx));
            let stored = ((v - intercept) / slope).round().clamp(-32768.0, 32767.0) as i16;
            pixels.extend_from_slice(&stored.to_le_bytes());
        }
        let sop_uid = format!("{}.{}", options.series_uid, k + 1);
        let el = |tag, vr, value: PrimitiveValue| DataElement::new(tag, vr, value);
        let s = |x: &str| PrimitiveValue::from(x.to_string());
        let obj = InMemDicomObject::from_element_iter([
            el(tags::SOP_CLASS_UID, VR::UI, s("1.2.840.10008.5.1.4.1.1.2")),
            el(tags::SOP_INSTANCE_UID, VR::UI, s(&sop_uid)),
            el(tags::MODALITY, VR::CS, s(&options.modality)),
            el(tags::SERIES_DESCRIPTION, VR::LO, s(&options.description)),
            el(tags::PATIENT_NAME, VR::PN, s("Anonymous")),
            el(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                s(&format!("{}.0", options.series_uid)),
            ),
            el(tags::SERIES_INSTANCE_UID, VR::UI, s(&options.series_uid)),
            // Reversed on purpose: readers must sort by position, not by this.
            el(tags::INSTANCE_NUMBER, VR::IS, s(&(nz - k).to_string())),
            el(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                s(&ds(&origin.to_array())),
            ),
            el(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                s(&ds(&[
                    row_dir.x, row_dir.y, row_dir.z, col_dir.x, col_dir.y, col_dir.z,
                ])),
            ),
            el(
                tags::SLICE_THICKNESS,
                VR::DS,
                s(&format!("{:.6}", spacing[2])),
            ),
            el(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
            el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
            el(tags::ROWS, VR::US, PrimitiveValue::from(ny as u16)),
            el(tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16)),
            el(
                tags::PIXEL_SPACING,
                VR::DS,
                s(&ds(&[spacing[1], spacing[0]])),
            ),
            el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
            el(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
            el(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
            el(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(1u16),
            ),
            el(
                tags::RESCALE_INTERCEPT,
                VR::DS,
                s(&format!("{intercept:.9}")),
            ),
            el(tags::RESCALE_SLOPE, VR::DS, s(&format!("{slope:.9}"))),
            el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
        ]);
        let file = obj
            .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
            .map_err(|e| LoadError::new(dir, format!("cannot build DICOM meta: {e}")))?;
        // Scrambled (but unique: an odd multiplier is a bijection) names, like archives write.
        let name = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ series_salt;
        let path = dir.join(format!("{name:016x}.dcm"));
        file.write_to_file(&path)
            .map_err(|e| LoadError::new(&path, format!("cannot write DICOM: {e}")))?;
        paths.push(path);
    }
    Ok(paths)
}
