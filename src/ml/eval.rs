//! Evaluation of shipped or trained models on a manifest: per-case errors against the expert
//! labels and a summary per modality and method.

use std::fmt::Write as _;

use glam::DVec3;

use super::data::{heart_mask, read_manifests, validation_rows, ManifestRow};
use super::model::{dice, locate_all, Model};
use super::perturb::{Perturbation, Scene};
use super::preprocess::Method;
use super::repose;
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
    /// Which of `rows` are in this split (held out by patient: `data::validation_rows`).
    fn includes(self, rows: &[ManifestRow]) -> Vec<bool> {
        match self {
            Split::All => vec![true; rows.len()],
            Split::Validation(n) => validation_rows(rows, n),
            Split::Training(n) => validation_rows(rows, n).iter().map(|v| !v).collect(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub modality: String,
    /// The cardiac phase (`ED`, `ES`) where the case says.
    #[serde(default)]
    pub phase: Option<String>,
    pub method: Method,
    /// How the scan was disturbed (`Perturbation::name`).
    #[serde(default = "unperturbed")]
    pub perturbation: String,
    /// `None` when the model found nothing (counted as a failure).
    pub center_error_mm: Option<f64>,
    /// |predicted − expert| extent per axis (segmentation).
    pub extent_error_mm: Option<[f64; 3]>,
    pub dice: Option<f64>,
    pub confidence: Option<f64>,
    /// Inference time, file loading excluded.
    pub seconds: f64,
    pub error: Option<String>,
    /// The result's own verdict (`None`: nothing found) and its doubts.
    #[serde(default)]
    pub reliable: Option<bool>,
    #[serde(default)]
    pub doubts: Vec<String>,
    /// Faces of the scan the segmented heart touches.
    #[serde(default)]
    pub truncated: Vec<String>,
    /// What the reliability checks look at: the other method's centre (mm away), the fine
    /// answer's distance from the coarse centre, the segmented volume.
    #[serde(default)]
    pub agreement_mm: Option<f64>,
    #[serde(default)]
    pub drift_mm: Option<f64>,
    #[serde(default)]
    pub volume_ml: Option<f64>,
    /// The pose the answer came from (`pose::describe`; "as stored" unless a search turned it).
    #[serde(default)]
    pub pose: Option<String>,
}

fn unperturbed() -> String {
    Perturbation::None.name()
}

impl CaseResult {
    /// What the summaries group by: the modality, and the phase where there is one.
    pub fn group(&self) -> String {
        match &self.phase {
            Some(phase) => format!("{} {phase}", self.modality),
            None => self.modality.clone(),
        }
    }
}

/// Evaluate `models` on the manifests' cases in `split`, each seen as every one of
/// `perturbations` (seeded by case and perturbation), for which `wanted(position among the
/// split's cases, case)` holds (a shard, cases not done yet); with `body_pose`, short-axis MR
/// is first put into the body pose its labels give (`ml::repose`). `done` is told each case's
/// results (one per model) as they come; an error it returns stops the run.
pub fn evaluate(
    manifests: &[std::path::PathBuf],
    models: &[Model],
    split: Split,
    body_pose: bool,
    perturbations: &[Perturbation],
    wanted: impl Fn(usize, &str) -> bool,
    mut done: impl FnMut(&[CaseResult]) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let rows = read_manifests(manifests)?;
    let in_split = rows
        .iter()
        .zip(split.includes(&rows))
        .filter(|(_, included)| *included)
        .map(|(row, _)| row);
    for (n, row) in in_split.enumerate() {
        if !wanted(n, &row.case) {
            continue;
        }
        let image_path = row.folder.join("image.nii.gz");
        let (volume, _) = io::open(&image_path, &Default::default())?;
        let labels_path = row.folder.join("labels.nii.gz");
        let labels = if labels_path.exists() {
            Some(io::open(&labels_path, &Default::default())?.0)
        } else {
            None
        };
        let truth = labels
            .as_ref()
            .filter(|_| !row.heart_values.is_empty())
            .map(|l| heart_mask(l, &row.heart_values));
        let mut scene = Scene {
            volume,
            truth,
            center_lps: row.heart_center_lps_mm,
        };
        if body_pose {
            let turn = row
                .ventricles
                .as_ref()
                .zip(labels.as_ref())
                .zip(scene.center_lps);
            if let Some(m) = turn.and_then(|((v, l), c)| repose::body_from_stored(l, v, c)) {
                scene = scene.moved(m);
            }
        }
        let mut out = Vec::new();
        for &p in perturbations {
            let seed = io::fnv1a(format!("{}/{}", row.case, p.name()).as_bytes());
            let seen = scene.perturbed(p, seed);
            let found_all = locate_all(models, &seen.volume, |_| true)
                .map_err(|e| FileError::new(&image_path, e.to_string()))?;
            let centres: Vec<Option<DVec3>> = found_all
                .iter()
                .map(|f| f.as_ref().ok().map(|f| f.center_lps))
                .collect();
            for (i, (model, found)) in models.iter().zip(found_all).enumerate() {
                let others = centres
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .filter_map(|(_, c)| *c);
                let mut r = case_result(row, model, p, &seen, found);
                if let Some(c) = centres[i] {
                    r.agreement_mm = others.map(|o| o.distance(c)).reduce(f64::max);
                }
                out.push(r);
            }
        }
        done(&out)?;
    }
    Ok(())
}

/// One model's answer on one (perturbed) scan, measured against the scan's truth.
fn case_result(
    row: &super::data::ManifestRow,
    model: &Model,
    p: Perturbation,
    seen: &Scene,
    found: Result<super::model::Finding, super::model::ModelError>,
) -> CaseResult {
    let method = model.recipe.method;
    let mut r = CaseResult {
        case: row.case.clone(),
        modality: row.modality.clone(),
        phase: row.phase.clone(),
        method,
        perturbation: p.name(),
        center_error_mm: None,
        extent_error_mm: None,
        dice: None,
        confidence: None,
        seconds: found.as_ref().map_or(0.0, |f| f.timing.total()),
        error: None,
        reliable: None,
        doubts: Vec::new(),
        truncated: Vec::new(),
        agreement_mm: None,
        drift_mm: None,
        volume_ml: None,
        pose: None,
    };
    let f = match found {
        Ok(f) => f,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.confidence = Some(f.confidence);
    r.reliable = Some(f.reliable());
    r.doubts = f.doubts.iter().map(|d| d.to_string()).collect();
    r.truncated = f.truncated.iter().map(|t| t.name().to_string()).collect();
    r.drift_mm = Some(f.center_lps.distance(f.coarse_center_lps));
    r.volume_ml = f.volume_ml;
    r.pose = Some(super::pose::describe(f.pose));
    r.center_error_mm = seen.center_lps.map(|c| f.center_lps.distance(c));
    let want = match (&seen.truth, p) {
        (Some(t), _) => mask_extent(t),
        (None, Perturbation::None) => row.heart_extent_mm,
        (None, _) => None,
    };
    if let (Some(ext), Some(want)) = (f.extent_mm(), want) {
        r.extent_error_mm = Some((ext - want).abs().to_array());
    }
    if let (Method::Segmentation, Some(truth)) = (method, &seen.truth) {
        let pred = f.mask_on(&seen.volume.grid, model.recipe.threshold);
        r.dice = Some(dice(
            (0..pred.voxels.len()).map(|i| pred.voxels.get(i) > 0.5),
            (0..truth.voxels.len()).map(|i| truth.voxels.get(i) > 0.5),
        ));
    }
    r
}

/// The LPS extent of a mask's voxel centres (`None` when empty).
fn mask_extent(mask: &crate::volume::Volume) -> Option<DVec3> {
    let (mut lo, mut hi) = (DVec3::splat(f64::INFINITY), DVec3::splat(f64::NEG_INFINITY));
    for i in (0..mask.voxels.len()).filter(|&i| mask.voxels.get(i) > 0.5) {
        let p = mask.grid.world_from_flat(i);
        lo = lo.min(p);
        hi = hi.max(p);
    }
    (lo.x <= hi.x).then(|| hi - lo)
}

/// One line per case.
pub fn case_line(r: &CaseResult) -> String {
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    format!(
        "{:<26} {:<10} {:<3} {:<12} centre {:>7} mm  extent {:>6} mm  Dice {:>5}  conf {:>5}  {:.2} s{}{}{}",
        r.case,
        r.perturbation,
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
        if r.truncated.is_empty() {
            String::new()
        } else {
            format!("  cut: {}", r.truncated.join(" "))
        },
        if r.doubts.is_empty() {
            String::new()
        } else {
            format!("  DOUBT: {}", r.doubts.join("; "))
        },
        r.error
            .as_ref()
            .map(|e| format!("  FAILED: {e}"))
            .unwrap_or_default()
    )
}

/// Summary per modality and method: centre error (median, mean, p90, max), extent error
/// (median over cases and axes), Dice (mean, min), success within 10 and 20 mm, seconds.
pub fn summary(results: &[CaseResult]) -> String {
    let order = perturbation_order(results);
    let mut groups: Vec<(usize, String, Method)> = results
        .iter()
        .map(|r| (position(&order, &r.perturbation), r.group(), r.method))
        .collect();
    groups.sort_by(|a, b| (a.0, &a.1, a.2.name()).cmp(&(b.0, &b.1, b.2.name())));
    groups.dedup();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<6} {:<12} {:>5} {:>7} {:>7} {:>7} {:>7} {:>10} {:>9} {:>9} {:>7} {:>7} {:>8}",
        "perturb",
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
    for (p, modality, method) in groups {
        let rs: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.perturbation == order[p] && r.group() == modality && r.method == method)
            .collect();
        let _ = writeln!(
            s,
            "{:<10} {:<6} {:<12} {}",
            order[p],
            modality,
            method.name(),
            summary_row(&rs)
        );
    }
    s
}

/// One summary row's figures (`summary`'s columns after the method).
fn summary_row(rs: &[&CaseResult]) -> String {
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
    format!(
        "{:>5} {:>7} {:>7} {:>7} {:>7} {:>10} {:>9} {:>9} {:>6.0}% {:>6.0}% {:>8.3}",
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
    )
}

/// The perturbations in the order they first appear.
fn perturbation_order(results: &[CaseResult]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for r in results {
        if !order.contains(&r.perturbation) {
            order.push(r.perturbation.clone());
        }
    }
    order
}

fn position(order: &[String], name: &str) -> usize {
    order.iter().position(|o| o == name).unwrap_or(usize::MAX)
}

/// Centre error median / max (mm) per modality and method (rows) and perturbation (columns);
/// a case where nothing was found counts as infinite.
pub fn robustness(results: &[CaseResult]) -> String {
    let order = perturbation_order(results);
    let mut rows: Vec<(String, Method)> = results.iter().map(|r| (r.group(), r.method)).collect();
    rows.sort_by(|a, b| (&a.0, a.1.name()).cmp(&(&b.0, b.1.name())));
    rows.dedup();
    let mut s = String::new();
    let _ = write!(s, "{:<20}", "median / max mm");
    for p in &order {
        let _ = write!(s, " {p:>15}");
    }
    s.push('\n');
    for (modality, method) in rows {
        let _ = write!(s, "{:<20}", format!("{modality} {}", method.name()));
        for p in &order {
            let errs: Vec<f64> = results
                .iter()
                .filter(|r| &r.perturbation == p && r.group() == modality && r.method == method)
                .map(|r| r.center_error_mm.unwrap_or(f64::INFINITY))
                .collect();
            let max = errs.iter().copied().fold(f64::NAN, f64::max);
            let _ = write!(
                s,
                " {:>15}",
                format!("{:.1} / {:.0}", percentile(&errs, 50.0), max)
            );
        }
        s.push('\n');
    }
    s
}

/// How well `"reliable": false` separates failures: of the answers off by more than 20 mm (or
/// not found), how many were flagged; of those within 10 mm, how many were flagged wrongly.
pub fn flag_summary(results: &[CaseResult]) -> String {
    let err = |r: &CaseResult| r.center_error_mm.unwrap_or(f64::INFINITY);
    let flagged = |r: &CaseResult| r.reliable != Some(true);
    let bad: Vec<&CaseResult> = results.iter().filter(|r| err(r) > 20.0).collect();
    let good: Vec<&CaseResult> = results.iter().filter(|r| err(r) <= 10.0).collect();
    let pct = |n: usize, of: usize| {
        if of == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * n as f64 / of as f64)
        }
    };
    let turned = results
        .iter()
        .filter(|r| r.pose.as_deref().is_some_and(|p| p != "as stored"))
        .count();
    let bad_flagged = bad.iter().filter(|r| flagged(r)).count();
    let good_flagged = good.iter().filter(|r| flagged(r)).count();
    format!(
        "flagged unreliable: {bad_flagged} of {} answers off by > 20 mm ({}), {good_flagged} of {} \
         within 10 mm ({}); {turned} of {} answers from a searched pose",
        bad.len(),
        pct(bad_flagged, bad.len()),
        good.len(),
        pct(good_flagged, good.len()),
        results.len()
    )
}
