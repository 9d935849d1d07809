//! `heartloc train`: a method's model from a manifest, or a landmark learnt from a
//! worklist's annotations (`ml::learn`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use heartloc::ml::data::Augment;
use heartloc::ml::learn::{self, LearnOptions, PointCase};
use heartloc::ml::preprocess::{Method, Recipe};
use heartloc::ml::train::TrainOptions;
use heartloc::worklist::Worklist;

use crate::MethodArg;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Manifest CSV: `case` folders (image.nii.gz, labels.nii.gz), `modality`,
    /// `heart_values`, `heart_center_lps_mm`. Repeat it to add another phase's frames of the
    /// same patients (the end-diastolic manifest first: the split is by patient, numbered as
    /// they first appear). With `--landmark`: a worklist source too.
    #[arg(long)]
    manifest: Vec<PathBuf>,
    /// With `--landmark`: the worklist (a folder of scans or a manifest CSV) whose cases'
    /// landmarks to learn from.
    #[arg(long)]
    worklist: Option<PathBuf>,
    /// With `--worklist`: the folder its landmarks were saved in (`heartloc worklist --out`);
    /// default: next to each case.
    #[arg(long)]
    landmarks_in: Option<PathBuf>,
    #[arg(long, value_enum)]
    method: MethodArg,
    /// Folder for `<method>.safetensors`, `<method>.recipe.json`, `<method>.training.json`.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hold out every Nth manifest case for validation (0: none).
    #[arg(long, default_value_t = 5)]
    val_every: usize,
    #[arg(long, default_value_t = 2e-3)]
    learning_rate: f64,
    /// Learn this landmark of the worklist's cases (e.g. aortic-valve) by fine-tuning a heart
    /// heatmap (`--init-from`, else the shipped one) for `--max-minutes` (default 10); cases
    /// without it are skipped, every `--val-every`-th of the rest held out.
    #[arg(long)]
    landmark: Option<String>,
    /// Heatmap only: weight of the loss on the decoded centre beside the cross-entropy.
    #[arg(long, default_value_t = 0.2)]
    centre_weight: f64,
    /// Samples per optimiser step, computed on that many threads and their gradients
    /// averaged (run with RAYON_NUM_THREADS=1 so each sample keeps one core).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Stop after the epoch that passes this many minutes (the best epoch is kept).
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Use only the first N manifest rows.
    #[arg(long)]
    limit_cases: Option<usize>,
    /// Keep the last epoch, not the one best on the held-out cases, so that their figures
    /// chose nothing.
    #[arg(long)]
    keep_last: bool,
    /// Also hold out these patients (comma-separated, e.g. patient005,patient030), all their
    /// frames.
    #[arg(long, value_delimiter = ',')]
    hold_out: Vec<String>,
    /// Validate at most this often (seconds; 0: every epoch); the last epoch always is.
    #[arg(long, default_value_t = 0.0)]
    validate_every_s: f64,
    /// Start from trained weights: a folder (its model of the same method) or a
    /// `<method>.safetensors` file (that method's networks, e.g. segmentation to warm-start
    /// a heatmap; the channels must match).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Switch all augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// Random rotation up to ± this many degrees.
    #[arg(long, default_value_t = 25.0)]
    rotate_deg: f64,
    /// Random scaling up to ± this fraction.
    #[arg(long, default_value_t = 0.15)]
    scale: f64,
    /// Random grid shift up to ± this many mm per axis.
    #[arg(long, default_value_t = 20.0)]
    shift_mm: f64,
    /// Probability of a field of view cut through or near the heart.
    #[arg(long, default_value_t = 0.2)]
    partial_fov: f64,
    /// Probability of thick-slice resampling.
    #[arg(long, default_value_t = 0.25)]
    resolution: f64,
    /// No gamma/contrast/noise/blur.
    #[arg(long)]
    no_intensity: bool,
    /// Probability of a uniformly random turn (any axis and angle) instead of one up to
    /// --rotate-deg.
    #[arg(long, default_value_t = 0.0)]
    any_pose: f64,
    /// Probability of a left-right mirror image.
    #[arg(long, default_value_t = 0.0)]
    mirror: f64,
    /// Probability of seeing short-axis MR (ventricles named in the manifest's `labels`) in
    /// the body pose its labels give (`ml::repose`) rather than as stored.
    #[arg(long, default_value_t = 0.0)]
    body_pose: f64,
}

/// `heartloc train`: one method's model (or, with `--landmark`, a landmark learnt from a
/// worklist), with progress on stderr.
pub fn train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    let method = Method::from(a.method);
    if a.landmark.is_some() && method != Method::Heatmap {
        anyhow::bail!("--landmark trains a heatmap model; use --method heatmap");
    }
    if let Some(name) = &a.landmark {
        return train_landmark(&a, name);
    }
    if a.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let augment = if a.no_augment {
        Augment::none()
    } else {
        Augment {
            rotate_deg: a.rotate_deg,
            scale: a.scale,
            shift_mm: a.shift_mm,
            partial_fov: a.partial_fov,
            intensity: !a.no_intensity,
            resolution: a.resolution,
            any_pose: a.any_pose,
            mirror: a.mirror,
            body_pose: a.body_pose,
        }
    };
    let Some(first) = a.manifest.first().cloned() else {
        anyhow::bail!("--manifest is needed (or --landmark with --worklist)");
    };
    let opts = TrainOptions {
        epochs: a.epochs,
        seed: a.seed,
        val_every: a.val_every,
        augment,
        learning_rate: a.learning_rate,
        centre_weight: a.centre_weight,
        max_minutes: a.max_minutes,
        limit_cases: a.limit_cases,
        init_from: a.init_from,
        batch: a.batch,
        keep_last: a.keep_last,
        hold_out: a.hold_out,
        validate_every_s: a.validate_every_s,
        manifests: a.manifest,
        ..TrainOptions::new(first, a.out, Recipe::new(method))
    };
    let log = heartloc::ml::train::train(&opts, print_progress)?;
    eprintln!();
    println!(
        "best epoch {:?} of {} in {:.1} min; model in {}",
        log.best_epoch,
        log.epochs.len(),
        log.minutes,
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `heartloc train --landmark NAME --worklist SRC`: the fast fine-tuning of `ml::learn`.
fn train_landmark(a: &TrainArgs, name: &str) -> anyhow::Result<ExitCode> {
    let source = a
        .worklist
        .as_ref()
        .or(a.manifest.first())
        .context("--landmark learns from a worklist: give --worklist (a folder or CSV)")?;
    let cases = point_cases(source, a.landmarks_in.as_deref(), name)?;
    let (train, val) = learn::split(cases, a.val_every);
    eprintln!("{} to train on, {} held out", train.len(), val.len());
    let opts = LearnOptions {
        landmark: name.to_string(),
        source: source.display().to_string(),
        train,
        val,
        base: a.init_from.clone(),
        out: a.out.clone(),
        seed: a.seed,
        max_minutes: a.max_minutes.unwrap_or(10.0),
        sigma_mm: learn::SIGMA_MM,
        cancel: None,
    };
    let log = learn::learn(&opts, print_progress)?;
    eprintln!();
    let last = log.epochs.last().context("no epoch ran")?;
    println!(
        "`{name}` learnt in {:.1} min ({} epochs); held out n={}: median {:.1} mm, max {:.1}; \
         model in {}",
        log.minutes,
        log.epochs.len(),
        log.val_cases.len(),
        last.val_center_error_mm_median,
        last.val_center_error_mm_max,
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The cases of the worklist at `source` (landmarks in `landmarks_in`, else beside each case)
/// where `name` is placed, in worklist order; unreadable ones are named on stderr and left out.
fn point_cases(
    source: &Path,
    landmarks_in: Option<&Path>,
    name: &str,
) -> anyhow::Result<Vec<PointCase>> {
    let list = Worklist::open(source, landmarks_in)?;
    let (cases, problems) = list.landmark_cases(name);
    for p in &problems {
        eprintln!("skipped: {p}");
    }
    eprintln!(
        "{} of {} cases have `{name}`",
        cases.len(),
        list.cases.len()
    );
    Ok(cases.into_iter().map(PointCase::from).collect())
}

#[derive(clap::Args)]
pub struct CurveArgs {
    /// The landmark to learn (a slot label of the worklist's markups files).
    #[arg(long)]
    landmark: String,
    /// The worklist: a folder of scans or a manifest CSV.
    #[arg(long)]
    worklist: PathBuf,
    /// The folder its landmarks were saved in (default: next to each case).
    #[arg(long)]
    landmarks_in: Option<PathBuf>,
    /// Training set sizes to try (`all`: every training case of the fold).
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,all")]
    sizes: Vec<String>,
    /// Folds: case k is held out in fold k mod N; each fold's held-out cases are the same for
    /// every size.
    #[arg(long, default_value_t = 3)]
    folds: usize,
    /// Only these folds (0-based; default: all).
    #[arg(long, value_delimiter = ',')]
    only_folds: Option<Vec<usize>>,
    /// Minutes per training run (as the app's Train).
    #[arg(long, default_value_t = 10.0)]
    max_minutes: f64,
    /// The heatmap to start from (default: the shipped one).
    #[arg(long)]
    init_from: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The fine stage's Gaussian width (mm), to measure another than the recipe's.
    #[arg(long, default_value_t = learn::SIGMA_MM)]
    sigma_mm: f64,
    /// Each run's model and log go in OUT/fold<k>-n<size>/, the table in OUT/learning-curve.json.
    #[arg(long)]
    out: PathBuf,
}

/// `heartloc learning-curve`: held-out error of a landmark learnt from 5, 10, 20 … cases, so a
/// user knows what to expect from the cases annotated so far.
pub fn learning_curve(a: CurveArgs) -> anyhow::Result<ExitCode> {
    let cases = point_cases(&a.worklist, a.landmarks_in.as_deref(), &a.landmark)?;
    let folds = a.folds.max(2);
    let mut rows = Vec::new();
    for fold in 0..folds {
        if a.only_folds.as_ref().is_some_and(|f| !f.contains(&fold)) {
            continue;
        }
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (pos, c) in cases.iter().enumerate() {
            if pos % folds == fold {
                &mut val
            } else {
                &mut train
            }
            .push(c.clone());
        }
        for size in &a.sizes {
            let n = match size.as_str() {
                "all" => train.len(),
                s => s
                    .parse()
                    .with_context(|| format!("--sizes: `{s}` is not a number"))?,
            };
            if n > train.len()
                || rows
                    .iter()
                    .any(|r: &CurveRow| r.fold == fold && r.train == n)
            {
                continue;
            }
            let opts = LearnOptions {
                landmark: a.landmark.clone(),
                source: a.worklist.display().to_string(),
                train: train[..n].to_vec(),
                val: val.clone(),
                base: a.init_from.clone(),
                out: a.out.join(format!("fold{fold}-n{n}")),
                seed: a.seed,
                max_minutes: a.max_minutes,
                sigma_mm: a.sigma_mm,
                cancel: None,
            };
            let log = learn::learn(&opts, print_progress)?;
            eprintln!();
            let last = log.epochs.last().context("no epoch ran")?;
            let row = CurveRow {
                fold,
                train: n,
                held_out: val.len(),
                median_mm: last.val_center_error_mm_median,
                p90_mm: last.val_center_error_mm_p90,
                max_mm: last.val_center_error_mm_max,
                minutes: log.minutes,
            };
            println!(
                "fold {fold}: {n:3} cases -> held out n={}: median {:.1} mm, p90 {:.1}, max {:.1} \
                 ({:.1} min)",
                row.held_out, row.median_mm, row.p90_mm, row.max_mm, row.minutes
            );
            rows.push(row);
            let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
            heartloc::io::durable::write_atomic(
                &a.out.join("learning-curve.json"),
                json.as_bytes(),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One training run of the learning curve.
#[derive(serde::Serialize)]
struct CurveRow {
    fold: usize,
    train: usize,
    held_out: usize,
    median_mm: f64,
    p90_mm: f64,
    max_mm: f64,
    minutes: f64,
}

/// A one-line progress bar on stderr; one line per epoch.
fn print_progress(p: heartloc::ml::train::Progress) {
    use heartloc::ml::train::Progress;
    use std::io::Write;
    match p {
        Progress::Loading { done, total } => {
            eprint!("\rloading cases {done}/{total}");
        }
        Progress::Step {
            epoch,
            epochs,
            step,
            steps,
            loss,
            elapsed,
        } => {
            let width = 30;
            let filled = width * step / steps.max(1);
            eprint!(
                "\repoch {epoch}/{epochs} [{}{}] {step}/{steps} loss {loss:.4} {:.0}s ",
                "#".repeat(filled),
                "-".repeat(width - filled),
                elapsed
            );
        }
        Progress::Epoch(r) => {
            let measured = if r.val_center_error_mm_median.is_nan() {
                "held-out cases not measured this epoch".to_string()
            } else {
                format!(
                    "val centre error median {:.1} mm, mean {:.1}, max {:.1}{}",
                    r.val_center_error_mm_median,
                    r.val_center_error_mm_mean,
                    r.val_center_error_mm_max,
                    r.val_dice_fine_grid
                        .map(|d| format!(", Dice (fine grid) {d:.3}"))
                        .unwrap_or_default()
                )
            };
            eprintln!(
                "\repoch {}: loss {:.4}, {measured}, {:.0} s{}",
                r.epoch,
                r.train_loss,
                r.seconds,
                if r.kept { "  (kept)" } else { "" }
            );
        }
    }
    let _ = std::io::stderr().flush();
}
