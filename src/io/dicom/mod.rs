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
//!
//! Time series load one phase at a time: a classic cine (the same number of images at every
//! position) is ordered by TriggerTime, else TemporalPositionIdentifier, else InstanceNumber.
//! An enhanced multi-frame file gives one slice per frame, from its functional groups (see
//! [`header`]); several stacks in it are several series.

pub mod bounds;
mod header;
mod pixels;
mod write;

use std::path::{Path, PathBuf};

use glam::{DMat4, DVec3, DVec4};

use super::{FileError, OpenOptions, MAX_VOXELS};
use crate::stats::median;
use crate::volume::{Grid, Phase, SeriesIds, Volume, Voxels};
use header::{read_header, SliceHeader};
use pixels::{decode_slices, decode_stack};
pub use write::{write_series, WriteSeriesOptions};

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
pub fn list_series(dir: &Path) -> Result<(Vec<SeriesSummary>, Vec<String>), FileError> {
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
fn files_under(dir: &Path) -> Result<(Vec<PathBuf>, usize), FileError> {
    let mut files = Vec::new();
    let mut folders = 0;
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = todo.pop() {
        folders += 1;
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| FileError::io(&folder, "cannot list folder", e))?;
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
                    return Err(FileError::new(
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
fn scan(dir: &Path) -> Result<Scan, FileError> {
    let (paths, folders) = files_under(dir)?;
    if paths.is_empty() {
        return Err(FileError::new(
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
fn group(dir: &Path, paths: &[PathBuf]) -> Result<Scan, FileError> {
    let mut headers = Vec::new();
    for path in paths {
        headers.extend(read_header(path)?);
    }
    if headers.is_empty() {
        return Err(FileError::new(
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
        return Err(FileError::new(
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

/// Load the image series under `dir` (searched recursively): the only one, or the one named by
/// `series_uid`.
pub fn read_series_dir(dir: &Path, series_uid: Option<&str>) -> Result<Volume, FileError> {
    let options = OpenOptions {
        series_uid: series_uid.map(str::to_string),
        ..Default::default()
    };
    open_dir(dir, &options)
}

/// [`read_series_dir`] with every option (series, phase).
pub fn open_dir(dir: &Path, options: &OpenOptions) -> Result<Volume, FileError> {
    choose(
        dir,
        scan(dir)?,
        options.series_uid.as_deref(),
        options.phase,
    )
}

/// Load the series of one DICOM file: its series among the files beside it (or the one named
/// by `options.series_uid`).
pub fn read_series_of_file(file: &Path, options: &OpenOptions) -> Result<Volume, FileError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FileError::io(dir, "cannot list folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    siblings.sort();
    let Scan { groups, skipped } = group(dir, &siblings)?;
    // The series holding this file: one, or several stacks of one enhanced file.
    let (mine, _): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| {
        g.iter().any(|h| h.path.file_name() == file.file_name())
            || options.series_uid.as_deref() == Some(g[0].series_uid.as_str())
    });
    if mine.is_empty() {
        return Err(FileError::new(
            file,
            "not an image of a series heartloc can read",
        ));
    }
    let scan = Scan {
        groups: mine,
        skipped,
    };
    choose(file, scan, options.series_uid.as_deref(), options.phase)
}

/// The series named by `series_uid`, or the only one, loaded (phase `phase` of a cine) with
/// the scan's notes as warnings.
fn choose(
    dir: &Path,
    scan: Scan,
    series_uid: Option<&str>,
    phase: usize,
) -> Result<Volume, FileError> {
    let Scan { groups, skipped } = scan;
    let group = match series_uid {
        Some(uid) => groups
            .into_iter()
            .find(|g| g[0].series_uid == uid)
            .ok_or_else(|| {
                FileError::new(dir, format!("no series with UID {uid} in this folder"))
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
            return Err(FileError::new(
                dir,
                format!(
                    "{} series here; choose one with --series <UID>: {}",
                    list.len(),
                    list.join("; ")
                ),
            ));
        }
        None => groups.into_iter().next().unwrap_or_default(),
    };
    let mut vol = read_series(dir, group, phase)?;
    vol.warnings.extend(skipped);
    Ok(vol)
}

/// The images of one phase of a stack already sorted along the normal (`depth` each), and the
/// phase. A stack with one image per position is phase 0 of 1; a cine has the same number of
/// images at every position, ordered by TriggerTime, else TemporalPositionIdentifier, else
/// InstanceNumber (the first of these that every image has).
fn pick_phase(
    dir: &Path,
    slices: Vec<SliceHeader>,
    depth: &[f64],
    phase: usize,
) -> Result<(Vec<SliceHeader>, Phase), FileError> {
    let mut positions: Vec<Vec<SliceHeader>> = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (s, &d) in slices.into_iter().zip(depth) {
        if d - last < 1e-3 {
            if let Some(p) = positions.last_mut() {
                p.push(s);
                continue;
            }
        }
        last = d;
        positions.push(vec![s]);
    }
    let counts: Vec<usize> = positions.iter().map(Vec::len).collect();
    let phases = counts[0];
    if let Some(i) = counts.iter().position(|&c| c != phases) {
        let (a, b) = (&positions[0][0], &positions[i][0]);
        return Err(FileError::new(
            dir,
            format!(
                "two slices at the same position, but not as a cine: {} image(s) at the position \
                 of {} and {} at that of {} (a duplicated or incomplete series)",
                counts[0],
                a.path.display(),
                counts[i],
                b.path.display()
            ),
        ));
    }
    let chosen = Phase::new(phase, phases).ok_or_else(|| {
        FileError::new(
            dir,
            format!("phase {} asked for, but the series has {phases}", phase + 1),
        )
    })?;
    if phases == 1 {
        return Ok((positions.into_iter().flatten().collect(), chosen));
    }
    let all = |f: &dyn Fn(&SliceHeader) -> bool| positions.iter().flatten().all(f);
    let by_trigger = all(&|s| s.trigger_time.is_some());
    let key: fn(&SliceHeader) -> f64 = if by_trigger {
        |s| s.trigger_time.unwrap_or_default()
    } else if all(&|s| s.temporal_position.is_some()) {
        |s| s.temporal_position.unwrap_or_default() as f64
    } else {
        |s| s.instance_number.unwrap_or_default() as f64
    };
    let mut steps = Vec::new();
    let picked = positions
        .into_iter()
        .map(|mut images| {
            images.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.path.cmp(&b.path)));
            if by_trigger {
                steps.extend(images.windows(2).map(|w| key(&w[1]) - key(&w[0])));
            }
            images.swap_remove(phase)
        })
        .collect();
    // The acquisition's frame interval: the median TriggerTime step between phases.
    let chosen = if steps.is_empty() {
        chosen
    } else {
        chosen.with_interval_ms(median(&steps))
    };
    Ok((picked, chosen))
}

/// The in-plane geometry every slice of a series shares.
struct SlicePlane {
    row_dir: DVec3,
    col_dir: DVec3,
    normal: DVec3,
    /// PixelSpacing: between rows, then between columns (mm).
    spacing: [f64; 2],
    rows: u32,
    cols: u32,
}

/// Every slice placeable and alike (orientation, size); a slice's recorded problem refuses the
/// series.
fn check_slices(dir: &Path, slices: &[SliceHeader]) -> Result<SlicePlane, FileError> {
    let first = slices
        .first()
        .ok_or_else(|| FileError::new(dir, "series has no slices"))?;
    let missing = |s: &SliceHeader, what: &str| {
        FileError::new(
            &s.path,
            format!("slice has no {what}; cannot place it in 3D"),
        )
    };
    let orientation = first
        .orientation
        .ok_or_else(|| missing(first, "ImageOrientationPatient"))?;
    let spacing = first
        .pixel_spacing
        .ok_or_else(|| missing(first, "PixelSpacing"))?;
    let (rows, cols) = (first.rows, first.columns);
    if rows == 0 || cols == 0 {
        return Err(missing(first, "Rows/Columns"));
    }
    for s in slices {
        if let Some(p) = s.problems.first() {
            return Err(FileError::new(&s.path, p.clone()));
        }
        if s.frames > 1 && s.frame.is_none() {
            return Err(FileError::new(
                &s.path,
                format!(
                    "multi-frame images ({} frames) without per-frame functional groups \
                     are not supported",
                    s.frames
                ),
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
            return Err(FileError::new(
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
        return Err(FileError::new(
            dir,
            format!("invalid ImageOrientationPatient {orientation:?} or PixelSpacing {spacing:?}"),
        ));
    }
    Ok(SlicePlane {
        row_dir,
        col_dir,
        normal,
        spacing,
        rows,
        cols,
    })
}

/// How the slices' depths become the volume's third axis.
struct Depths {
    /// Each slice's depth along the normal (mm), sorted.
    depth: Vec<f64>,
    /// The nominal step (median of the steps; SliceThickness for one slice).
    step: f64,
    /// Whether every step is the nominal one (else resampled to it).
    uniform: bool,
    /// Voxels along the third axis.
    nk: usize,
    warnings: Vec<String>,
}

fn depths(slices: &[SliceHeader], normal: DVec3) -> Depths {
    let depth: Vec<f64> = slices.iter().map(|s| position(s).dot(normal)).collect();
    let steps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
    let (lo, hi) = crate::volume::SPACING_RANGE_MM;
    let step = if steps.is_empty() {
        slices[0]
            .slice_thickness
            .filter(|t| (lo..=hi).contains(t))
            .unwrap_or(1.0)
    } else {
        median(&steps)
    };
    let uniform = steps
        .iter()
        .all(|d| (d - step).abs() <= (0.01 * step).max(0.01));
    let mut warnings = Vec::new();
    let nk = if uniform {
        slices.len()
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
        let extent = depth.last().unwrap_or(&0.0) - depth[0];
        (extent / step).round() as usize + 1
    };
    Depths {
        depth,
        step,
        uniform,
        nk,
        warnings,
    }
}

fn position(s: &SliceHeader) -> DVec3 {
    s.position.unwrap_or_default()
}

/// The voxels: the slices as they are, or linearly resampled to `d.nk` evenly spaced depths.
fn decode_volume(slices: &[SliceHeader], plane: usize, d: &Depths) -> Result<Voxels, FileError> {
    if d.uniform {
        return decode_stack(slices, plane);
    }
    let stack = decode_slices(slices, plane)?;
    let (n, nk, depth) = (slices.len(), d.nk, &d.depth);
    let extent = depth[n - 1] - depth[0];
    let mut out = Vec::with_capacity(plane * nk);
    let mut lo = 0;
    for k in 0..nk {
        let at = depth[0] + k as f64 * (extent / (nk as f64 - 1.0));
        while lo + 2 < n && depth[lo + 1] <= at {
            lo += 1;
        }
        let t = (((at - depth[lo]) / (depth[lo + 1] - depth[lo])) as f32).clamp(0.0, 1.0);
        let (a, b) = (&stack[lo], &stack[lo + 1]);
        out.extend(a.iter().zip(b.iter()).map(|(x, y)| x + (y - x) * t));
    }
    Ok(Voxels::from_f32_compact(out))
}

/// One series (one phase of a cine) as a volume: checked, sorted along the normal, gaps
/// resampled, gantry tilt kept as shear.
fn read_series(
    dir: &Path,
    mut slices: Vec<SliceHeader>,
    phase: usize,
) -> Result<Volume, FileError> {
    let err = |msg: String| FileError::new(dir, msg);
    let g = check_slices(dir, &slices)?;
    let first = slices[0].clone();
    let normal = g.normal;
    slices.sort_by(|a, b| position(a).dot(normal).total_cmp(&position(b).dot(normal)));
    let depth: Vec<f64> = slices.iter().map(|s| position(s).dot(normal)).collect();
    let (slices, phase) = pick_phase(dir, slices, &depth, phase)?;
    let n = slices.len();
    let total = g.rows as u64 * g.cols as u64 * n as u64;
    if total > MAX_VOXELS {
        return Err(err(format!(
            "series of {n} slices of {}×{} is {total} voxels, more than the {MAX_VOXELS} \
             this reader accepts",
            g.cols, g.rows
        )));
    }
    let mut d = depths(&slices, normal);
    // Slice step vector: along the normal unless the positions drift sideways (gantry tilt).
    let p0 = position(&slices[0]);
    let k_step = if n > 1 {
        (position(&slices[n - 1]) - p0) / (d.nk as f64 - 1.0)
    } else {
        normal * d.step
    };
    let tilt_deg = k_step
        .normalize()
        .dot(normal)
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees();
    if tilt_deg > 0.05 {
        d.warnings.push(format!(
            "gantry tilt of {tilt_deg:.2}°: kept exact as a sheared voxel grid"
        ));
    }
    let voxels = decode_volume(&slices, g.rows as usize * g.cols as usize, &d)?;
    let world_from_voxel = DMat4::from_cols(
        (g.row_dir * g.spacing[1]).extend(0.0),
        (g.col_dir * g.spacing[0]).extend(0.0),
        k_step.extend(0.0),
        p0.extend(1.0),
    );
    if let Some(p) = crate::volume::geometry_problem(&world_from_voxel) {
        return Err(err(format!(
            "{p} (from ImagePositionPatient, ImageOrientationPatient and PixelSpacing)"
        )));
    }
    let dims = [g.cols as usize, g.rows as usize, d.nk];
    let mut vol = Volume::new(Grid::new(dims, world_from_voxel), voxels);
    vol.warnings = d.warnings;
    vol.phase = phase;
    vol.series = Some(SeriesIds {
        study_uid: first.study_uid,
        series_uid: first.series_uid,
        modality: first.modality,
    });
    Ok(vol)
}
