//! Evaluation of shipped or trained models on a manifest: per-case errors against the expert
//! labels and a summary per modality and method.

use std::fmt::Write as _;

use glam::DVec3;

use super::data::{heart_mask, is_validation, read_manifest};
use super::model::{dice, locate_all, Model};
use super::preprocess::Method;
use crate::io::{self, FileError};
use crate::stats::percentile;

/// Which manifest cases to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    All,
    /// Every `every`-th case, as held out by `train --val-every`.
    Validation(usize),
    Training(usize),
}

impl Split {
    fn includes(self, position: usize) -> bool {
        match self {
            Split::All => true,
            Split::Validation(n) => is_validation(position, n),
            Split::Training(n) => !is_validation(position, n),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub modality: String,
    pub method: Method,
    /// `None` when the model found nothing (counted as a failure).
    pub center_error_mm: Option<f64>,
    /// |predicted − expert| extent per axis (segmentation).
    pub extent_error_mm: Option<[f64; 3]>,
    pub dice: Option<f64>,
    pub confidence: Option<f64>,
    /// Inference time, file loading excluded.
    pub seconds: f64,
    pub error: Option<String>,
}

/// Evaluate `models` on the manifest's cases in `split` for which `wanted(position among the
/// split's cases, case)` holds (a shard, cases not done yet). `done` is told each case's results
/// (one per model) as they come; an error it returns stops the run.
pub fn evaluate(
    manifest: &std::path::Path,
    models: &[Model],
    split: Split,
    wanted: impl Fn(usize, &str) -> bool,
    mut done: impl FnMut(&[CaseResult]) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let rows = read_manifest(manifest)?;
    let in_split = rows
        .iter()
        .enumerate()
        .filter(|(pos, _)| split.includes(*pos))
        .map(|(_, row)| row);
    for (n, row) in in_split.enumerate() {
        if !wanted(n, &row.case) {
            continue;
        }
        let mut out = Vec::new();
        let image_path = row.folder.join("image.nii.gz");
        let (volume, _) = io::open(&image_path, &Default::default())?;
        let labels_path = row.folder.join("labels.nii.gz");
        let truth = if labels_path.exists() && !row.heart_values.is_empty() {
            let (labels, _) = io::open(&labels_path, &Default::default())?;
            Some(heart_mask(&labels, &row.heart_values))
        } else {
            None
        };
        let found_all = locate_all(models, &volume, |_| true)
            .map_err(|e| FileError::new(&image_path, e.to_string()))?;
        for (model, found) in models.iter().zip(found_all) {
            let method = model.recipe.method;
            let seconds = found.as_ref().map_or(0.0, |f| f.timing.total());
            let mut r = CaseResult {
                case: row.case.clone(),
                modality: row.modality.clone(),
                method,
                center_error_mm: None,
                extent_error_mm: None,
                dice: None,
                confidence: None,
                seconds,
                error: None,
            };
            match found {
                Ok(f) => {
                    r.confidence = Some(f.confidence);
                    r.center_error_mm = row.heart_center_lps_mm.map(|c| f.center_lps.distance(c));
                    if let (Some(ext), Some(want)) = (f.extent_mm(), row.heart_extent_mm) {
                        let d: DVec3 = (ext - want).abs();
                        r.extent_error_mm = Some(d.to_array());
                    }
                    if let (Method::Segmentation, Some(truth)) = (method, &truth) {
                        let pred = f.mask_on(&volume.grid, model.recipe.threshold);
                        r.dice = Some(dice(
                            (0..pred.voxels.len()).map(|i| pred.voxels.get(i) > 0.5),
                            (0..truth.voxels.len()).map(|i| truth.voxels.get(i) > 0.5),
                        ));
                    }
                }
                Err(e) => r.error = Some(e.to_string()),
            }
            out.push(r);
        }
        done(&out)?;
    }
    Ok(())
}

/// One line per case.
pub fn case_line(r: &CaseResult) -> String {
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    format!(
        "{:<26} {:<3} {:<12} centre {:>7} mm  extent {:>6} mm  Dice {:>5}  conf {:>5}  {:.2} s{}",
        r.case,
        r.modality,
        r.method.name(),
        f(r.center_error_mm, 1),
        f(
            r.extent_error_mm
                .map(|e| e.iter().copied().fold(0.0, f64::max)),
            1
        ),
        f(r.dice, 3),
        f(r.confidence, 2),
        r.seconds,
        r.error
            .as_ref()
            .map(|e| format!("  FAILED: {e}"))
            .unwrap_or_default()
    )
}

/// Summary per modality and method: centre error (median, mean, p90, max), extent error
/// (median over cases and axes), Dice (mean, min), success within 10 and 20 mm, seconds.
pub fn summary(results: &[CaseResult]) -> String {
    let mut groups: Vec<(String, Method)> = results
        .iter()
        .map(|r| (r.modality.clone(), r.method))
        .collect();
    groups.sort_by(|a, b| (&a.0, a.1.name()).cmp(&(&b.0, b.1.name())));
    groups.dedup();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<4} {:<12} {:>5} {:>7} {:>7} {:>7} {:>7} {:>10} {:>9} {:>9} {:>7} {:>7} {:>8}",
        "mod",
        "method",
        "cases",
        "median",
        "mean",
        "p90",
        "max",
        "extent-med",
        "Dice-mean",
        "Dice-min",
        "<=10mm",
        "<=20mm",
        "s/case"
    );
    for (modality, method) in groups {
        let rs: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.modality == modality && r.method == method)
            .collect();
        let n = rs.len();
        // A case where nothing was found counts as an infinite error.
        let errs: Vec<f64> = rs
            .iter()
            .map(|r| r.center_error_mm.unwrap_or(f64::INFINITY))
            .collect();
        let ext: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.extent_error_mm)
            .flatten()
            .collect();
        let dices: Vec<f64> = rs.iter().filter_map(|r| r.dice).collect();
        let within = |mm: f64| errs.iter().filter(|&&e| e <= mm).count() as f64 / n as f64;
        let fmt = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.2}")
            }
        };
        let _ = writeln!(
            s,
            "{:<4} {:<12} {:>5} {:>7} {:>7} {:>7} {:>7} {:>10} {:>9} {:>9} {:>6.0}% {:>6.0}% {:>8.3}",
            modality,
            method.name(),
            n,
            fmt(percentile(&errs, 50.0)),
            fmt(errs.iter().sum::<f64>() / n as f64),
            fmt(percentile(&errs, 90.0)),
            fmt(errs.iter().copied().fold(f64::NAN, f64::max)),
            fmt(percentile(&ext, 50.0)),
            fmt(if dices.is_empty() {
                f64::NAN
            } else {
                dices.iter().sum::<f64>() / dices.len() as f64
            }),
            fmt(dices.iter().copied().fold(f64::NAN, f64::min)),
            100.0 * within(10.0),
            100.0 * within(20.0),
            rs.iter().map(|r| r.seconds).sum::<f64>() / n as f64,
        );
    }
    s
}
