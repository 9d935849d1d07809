//! Training: both stages of one method's cascade together, on augmented samples of the
//! manifest's training cases, validated every epoch on the held-out cases with the real
//! inference path; the best epoch is kept. Deterministic for a seed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::data::{self, Augment, Case};
use super::heatmap::decode_peak;
use super::model::{self, Model, ModelError};
use super::net::{balanced_bce_with_logits, bce_with_logits, centre_loss, soft_dice_loss, UNet3d};
use super::preprocess::{scan_center, Method, Recipe, Stage};
use super::rng::Rng;
use crate::stats::median;
use crate::volume::Interpolation;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Manifests whose rows are the cases, in order (the split numbers patients as they first
    /// appear: `data::validation_rows`).
    pub manifests: Vec<PathBuf>,
    pub out: PathBuf,
    pub recipe: Recipe,
    pub epochs: usize,
    pub seed: u64,
    /// Every `val_every`-th patient is held out for validation, with all its frames.
    pub val_every: usize,
    /// These patients are held out too (`ManifestRow::patient`).
    pub hold_out: Vec<String>,
    pub augment: Augment,
    pub learning_rate: f64,
    /// Heatmap only: weight of the centre loss (`net::centre_loss`) beside the cross-entropy.
    pub centre_weight: f64,
    /// Stop after the epoch that passes this many minutes.
    pub max_minutes: Option<f64>,
    /// Use only the first N manifest rows (quick runs and tests).
    pub limit_cases: Option<usize>,
    /// Start from this folder's model of the same method instead of random weights.
    pub init_from: Option<PathBuf>,
    /// Samples per optimiser step, each on its own thread (data parallel: their gradients are
    /// averaged). 1 keeps the whole step on one thread and the seed's exact sample stream.
    pub batch: usize,
    /// Keep the starting coarse network as it is and train the fine one alone (a landmark
    /// learnt from a heart model: `ml::learn`).
    pub freeze_coarse: bool,
    /// Keep the last epoch rather than the best on the held-out cases, so their figures stay
    /// an honest estimate (nothing was chosen on them).
    pub keep_last: bool,
    /// Validate at most this often (seconds; 0: every epoch); the last epoch always is.
    pub validate_every_s: f64,
    /// Set from another thread to stop before the next step ([`TrainError::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl TrainOptions {
    /// The command line's defaults for a manifest's cases, written into `out`.
    pub fn new(manifest: PathBuf, out: PathBuf, recipe: Recipe) -> Self {
        TrainOptions {
            manifests: vec![manifest],
            out,
            recipe,
            epochs: 30,
            seed: 1,
            val_every: 5,
            hold_out: Vec::new(),
            augment: Augment::default(),
            learning_rate: 2e-3,
            centre_weight: 0.2,
            max_minutes: None,
            limit_cases: None,
            init_from: None,
            batch: 1,
            freeze_coarse: false,
            keep_last: false,
            validate_every_s: 0.0,
            cancel: None,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_center_error_mm_median: f64,
    pub val_center_error_mm_mean: f64,
    pub val_center_error_mm_p90: f64,
    pub val_center_error_mm_max: f64,
    /// Segmentation: mean Dice on the fine grid.
    pub val_dice_fine_grid: Option<f64>,
    pub seconds: f64,
    pub kept: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainLog {
    pub method: Method,
    pub manifest: String,
    pub seed: u64,
    pub epochs_planned: usize,
    pub learning_rate: f64,
    pub augment: Augment,
    pub landmark: Option<String>,
    pub centre_weight: f64,
    pub batch: usize,
    pub train_cases: Vec<String>,
    pub val_cases: Vec<String>,
    pub epochs: Vec<EpochReport>,
    pub best_epoch: Option<usize>,
    pub minutes: f64,
}

/// Where training is, for a progress display.
pub enum Progress<'a> {
    Loading {
        done: usize,
        total: usize,
    },
    Step {
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        loss: f64,
        elapsed: f64,
    },
    Epoch(&'a EpochReport),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] crate::io::FileError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("network: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Setup(String),
    #[error("cancelled")]
    Cancelled,
}

fn tensor(values: Vec<f32>, dims: [usize; 3]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, (1, 1, dims[2], dims[1], dims[0]), &Device::Cpu)
}

/// Segmentation: cross-entropy + soft Dice (overlap, whatever the heart's share of the grid).
/// Heatmap: cross-entropy against the Gaussian alone (balanced towards the peak), which is
/// smallest where the output *is* the Gaussian; a Dice term would flatten the peak into a
/// plateau and blur its position.
fn stage_loss(
    net: &UNet3d,
    s: data::Sample,
    method: Method,
    stage: &Stage,
    centre_weight: f64,
) -> candle_core::Result<Tensor> {
    // Heatmap with a centre loss: where the target's own peak decodes to (voxel index), when
    // it is on the grid.
    let target_ijk = (method == Method::Heatmap && centre_weight > 0.0)
        .then(|| decode_peak(&s.grid, &s.target))
        .flatten()
        .filter(|p| p.confidence >= 0.5)
        .map(|p| s.grid.voxel_from_world().transform_point3(p.center_lps));
    let dims = s.grid.dims;
    let x = tensor(s.input, dims)?;
    let t = tensor(s.target, dims)?;
    let y = net.forward(&x)?;
    match method {
        Method::Segmentation => bce_with_logits(&y, &t)? + soft_dice_loss(&y, &t)?,
        Method::Heatmap => {
            let bce = balanced_bce_with_logits(&y, &t)?;
            match target_ijk {
                Some(ijk) => {
                    let sigma_vox = stage.sigma_mm / stage.spacing_mm;
                    bce + (centre_loss(&y, ijk.to_array(), sigma_vox)? * centre_weight)?
                }
                None => Ok(bce),
            }
        }
    }
}

/// Both stages' loss on one augmented sample of `case`, times `scale`, and its gradients.
/// Returns the unscaled loss.
fn sample_step(
    model: &Model,
    case: &Case,
    opts: &TrainOptions,
    scale: f64,
    rng: &mut Rng,
) -> candle_core::Result<(f64, GradStore)> {
    let recipe = &opts.recipe;
    let method = recipe.method;
    let coarse_sample = (!opts.freeze_coarse).then(|| {
        data::sample(
            case,
            method,
            &recipe.coarse,
            scan_center(&case.volume),
            &opts.augment,
            rng,
        )
    });
    let fine_sample = data::sample(
        case,
        method,
        &recipe.fine,
        case.target_lps,
        &opts.augment,
        rng,
    );
    let w = opts.centre_weight;
    let fine = stage_loss(&model.fine, fine_sample, method, &recipe.fine, w)?;
    let loss = match coarse_sample {
        Some(c) => (stage_loss(&model.coarse, c, method, &recipe.coarse, w)? + fine)?,
        None => fine,
    };
    let value = f64::from(loss.to_scalar::<f32>()?);
    Ok((value, (loss * scale)?.backward()?))
}

/// The error charged for a validation case where nothing was found.
const MISS_MM: f64 = 300.0;

/// Validation figures of the current networks on `cases`, through `Model::locate`.
fn validate(model: &Model, cases: &[Case]) -> Result<(Vec<f64>, Option<f64>), TrainError> {
    let mut errors = Vec::new();
    let mut dice = Vec::new();
    for case in cases {
        // A case where nothing is found counts as a miss (a 300 mm error, Dice 0).
        let found = match model.locate(&case.volume, Some(case.norm)) {
            Ok(f) => f,
            Err(ModelError::Input(_)) => {
                errors.push(MISS_MM);
                if model.recipe.method == Method::Segmentation {
                    dice.push(0.0);
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        errors.push(found.center_lps.distance(case.target_lps));
        if model.recipe.method == Method::Segmentation {
            let mask = case.mask.as_ref().expect("segmentation cases carry a mask");
            let truth = mask.resample(&found.grid, Interpolation::Trilinear, 0.0);
            dice.push(model::dice(
                found
                    .map
                    .iter()
                    .map(|&p| f64::from(p) > model.recipe.threshold),
                (0..truth.voxels.len()).map(|i| truth.voxels.get(i) >= 0.5),
            ));
        }
    }
    let mean_dice = (!dice.is_empty()).then(|| dice.iter().sum::<f64>() / dice.len() as f64);
    Ok((errors, mean_dice))
}

/// Train one method; the best epoch's model is written into `opts.out` as it improves, with
/// a `<method>.training.json` log.
pub fn train(
    opts: &TrainOptions,
    mut progress: impl FnMut(Progress),
) -> Result<TrainLog, TrainError> {
    let started = Instant::now();
    let cases = load_cases(opts, &mut progress)?;
    let start = starting_model(opts)?;
    run(opts, &cases, start, started, progress)
}

/// Train `start` (a model and the variables the optimiser moves) on `cases`: the loop both
/// [`train`] and `ml::learn` use. `started`: when the run began (loading counts against
/// `max_minutes`).
pub fn run(
    opts: &TrainOptions,
    cases: &Cases,
    (model, vars): (Model, Vec<candle_core::Var>),
    started: Instant,
    mut progress: impl FnMut(Progress),
) -> Result<TrainLog, TrainError> {
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| TrainError::Setup(format!("{}: cannot create: {e}", opts.out.display())))?;
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let epoch_cases = balanced_epoch(&cases.train);
    let mut rng = Rng::new(opts.seed);
    let mut log = TrainLog::start(opts, cases);
    let mut best = f64::INFINITY;
    let mut schedule = Schedule::new(cases.val.len());
    for epoch in 1..=opts.epochs {
        let epoch_start = Instant::now();
        opt.set_learning_rate(learning_rate_at(opts, epoch, started));
        let mut order = epoch_cases.clone();
        rng.shuffle(&mut order);
        let run = EpochRun {
            model: &model,
            cases: &cases.train,
            opts,
            epoch,
            started,
        };
        let loss_sum = run.steps(&order, &mut opt, &mut rng, &mut progress)?;
        let last = schedule.is_last(opts, epoch, started, epoch_start);
        let (errors, dice) = schedule.measure(&model, &cases.val, last, opts)?;
        // NaN where nothing was measured this epoch.
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        // Lower is better: mean centre error, plus Dice loss in points for segmentation.
        let score = if errors.is_empty() {
            -(epoch as f64)
        } else {
            mean + dice.map_or(0.0, |d| 100.0 * (1.0 - d))
        };
        let kept = if opts.keep_last { last } else { score < best };
        if kept {
            best = score;
            model.save(&opts.out)?;
            log.best_epoch = Some(epoch);
        }
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / order.len().max(1) as f64,
            val_center_error_mm_median: median(&errors),
            val_center_error_mm_mean: mean,
            val_center_error_mm_p90: crate::stats::percentile(&errors, 90.0),
            val_center_error_mm_max: errors.iter().copied().fold(f64::NAN, f64::max),
            val_dice_fine_grid: dice,
            seconds: epoch_start.elapsed().as_secs_f64(),
            kept,
        };
        progress(Progress::Epoch(&report));
        log.epochs.push(report);
        log.minutes = started.elapsed().as_secs_f64() / 60.0;
        write_log(&opts.out, &log)?;
        // Keeping the best, the run stops after the epoch that passes the time limit.
        if last || (!opts.keep_last && opts.max_minutes.is_some_and(|m| log.minutes >= m)) {
            break;
        }
    }
    Ok(log)
}

/// When the held-out cases are measured: every epoch, or at most every `validate_every_s`,
/// and always on the last epoch.
struct Schedule {
    validated: Instant,
    /// Seconds one validation takes (a guess until one ran), so the time limit holds it.
    seconds: f64,
}

impl Schedule {
    fn new(val_cases: usize) -> Self {
        Schedule {
            validated: Instant::now(),
            seconds: 1.5 * val_cases as f64,
        }
    }

    /// The last epoch: planned, or (keeping the last) the next one and its validation would end
    /// past the time limit, so the kept epoch is measured within it.
    fn is_last(
        &self,
        opts: &TrainOptions,
        epoch: usize,
        started: Instant,
        epoch_start: Instant,
    ) -> bool {
        let epoch_seconds = epoch_start.elapsed().as_secs_f64();
        epoch == opts.epochs
            || (opts.keep_last
                && opts.max_minutes.is_some_and(|m| {
                    started.elapsed().as_secs_f64() + epoch_seconds + 2.0 * self.seconds >= m * 60.0
                }))
    }

    /// The held-out errors (and Dice) when they are due; nothing otherwise.
    fn measure(
        &mut self,
        model: &Model,
        val: &[Case],
        last: bool,
        opts: &TrainOptions,
    ) -> Result<(Vec<f64>, Option<f64>), TrainError> {
        let due = last || self.validated.elapsed().as_secs_f64() >= opts.validate_every_s;
        if val.is_empty() || !due {
            return Ok((Vec::new(), None));
        }
        let t = Instant::now();
        let v = validate(model, val)?;
        self.seconds = t.elapsed().as_secs_f64();
        self.validated = Instant::now();
        Ok(v)
    }
}

impl TrainLog {
    /// The log of a run about to start: its settings and cases, no epochs yet.
    fn start(opts: &TrainOptions, cases: &Cases) -> Self {
        TrainLog {
            method: opts.recipe.method,
            manifest: opts
                .manifests
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            seed: opts.seed,
            epochs_planned: opts.epochs,
            learning_rate: opts.learning_rate,
            augment: opts.augment.clone(),
            landmark: opts.recipe.landmark.clone(),
            centre_weight: opts.centre_weight,
            batch: opts.batch.max(1),
            train_cases: cases.train.iter().map(|c| c.name.clone()).collect(),
            val_cases: cases.val.iter().map(|c| c.name.clone()).collect(),
            epochs: Vec::new(),
            best_epoch: None,
            minutes: 0.0,
        }
    }
}

/// Cases split for training and validation.
pub struct Cases {
    pub train: Vec<Case>,
    pub val: Vec<Case>,
}

fn load_cases(
    opts: &TrainOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<Cases, TrainError> {
    let mut rows = data::read_manifests(&opts.manifests)?;
    if let Some(n) = opts.limit_cases {
        rows.truncate(n);
    }
    let held_out = data::validation_rows(&rows, opts.val_every);
    if let Some(p) = opts
        .hold_out
        .iter()
        .find(|p| !rows.iter().any(|r| &r.patient == *p))
    {
        return Err(TrainError::Setup(format!(
            "--hold-out {p}: no case of that patient in the manifests"
        )));
    }
    let mut cases = Cases {
        train: Vec::new(),
        val: Vec::new(),
    };
    let total = rows.len();
    for (pos, row) in rows.iter().enumerate() {
        progress(Progress::Loading { done: pos, total });
        let case = data::load_case(row, &opts.recipe)?;
        if held_out[pos] || opts.hold_out.contains(&row.patient) {
            cases.val.push(case);
        } else {
            cases.train.push(case);
        }
    }
    progress(Progress::Loading { done: total, total });
    if cases.train.is_empty() {
        return Err(TrainError::Setup(format!(
            "{}: no training cases",
            opts.manifests
                .first()
                .map_or_else(Default::default, |m| m.display().to_string())
        )));
    }
    Ok(cases)
}

/// The networks to start from (seeded, or `--init-from` weights) and their variables.
fn starting_model(opts: &TrainOptions) -> Result<(Model, Vec<candle_core::Var>), TrainError> {
    let recipe = &opts.recipe;
    let ((coarse, mut vars), (fine, fine_vars)) = match &opts.init_from {
        Some(path) => {
            let start = match path.file_name().and_then(|n| n.to_str()) {
                Some(name) if name.ends_with(".safetensors") => {
                    let method = name
                        .trim_end_matches(".safetensors")
                        .parse::<Method>()
                        .map_err(|e| TrainError::Setup(format!("{}: {e}", path.display())))?;
                    Model::load(path.parent().unwrap_or(Path::new(".")), method)?
                }
                _ => Model::load(path, recipe.method)?,
            };
            if start.recipe.channels != recipe.channels {
                return Err(TrainError::Setup(format!(
                    "{}: its network has channels {:?}, this run {:?}",
                    path.display(),
                    start.recipe.channels,
                    recipe.channels
                )));
            }
            let coarse = if opts.freeze_coarse {
                (start.coarse, Vec::new())
            } else {
                start.coarse.trainable()?
            };
            (coarse, start.fine.trainable()?)
        }
        None => (
            UNet3d::init(&recipe.channels, opts.seed, &Device::Cpu)?,
            UNet3d::init(&recipe.channels, opts.seed.wrapping_add(1), &Device::Cpu)?,
        ),
    };
    vars.extend(fine_vars);
    let model = Model {
        recipe: recipe.clone(),
        coarse,
        fine,
    };
    Ok((model, vars))
}

/// One epoch's case indices: each modality contributes equally, the rarer one repeated.
fn balanced_epoch(cases: &[Case]) -> Vec<usize> {
    let mut by_modality: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, c) in cases.iter().enumerate() {
        by_modality.entry(c.modality.as_str()).or_default().push(i);
    }
    let largest = by_modality.values().map(Vec::len).max().unwrap_or(0);
    let mut epoch_cases = Vec::new();
    for list in by_modality.values() {
        for r in 0..largest.div_ceil(list.len()) {
            let take = list.len().min(largest - r * list.len());
            epoch_cases.extend_from_slice(&list[..take]);
        }
    }
    epoch_cases
}

/// Cosine decay to a tenth of the rate, over the epochs or the time limit, whichever runs out
/// first.
fn learning_rate_at(opts: &TrainOptions, epoch: usize, started: Instant) -> f64 {
    let by_epoch = (epoch - 1) as f64 / opts.epochs.max(1) as f64;
    let by_time = opts.max_minutes.map_or(0.0, |m| {
        started.elapsed().as_secs_f64() / 60.0 / m.max(1e-9)
    });
    let t = by_epoch.max(by_time).min(1.0);
    opts.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// What the optimiser steps of one epoch share.
struct EpochRun<'a> {
    model: &'a Model,
    cases: &'a [Case],
    opts: &'a TrainOptions,
    epoch: usize,
    started: Instant,
}

impl EpochRun<'_> {
    /// One optimiser step per `--batch` cases of `order`; returns the summed loss.
    fn steps(
        &self,
        order: &[usize],
        opt: &mut AdamW,
        rng: &mut Rng,
        progress: &mut impl FnMut(Progress),
    ) -> Result<f64, TrainError> {
        let (mut loss_sum, mut done) = (0.0, 0);
        for chunk in order.chunks(self.opts.batch.max(1)) {
            if self.opts.cancelled() {
                return Err(TrainError::Cancelled);
            }
            let (loss, grads) = self.batch_gradients(chunk, rng)?;
            loss_sum += loss;
            opt.step(&grads)?;
            done += chunk.len();
            progress(Progress::Step {
                epoch: self.epoch,
                epochs: self.opts.epochs,
                step: done,
                steps: order.len(),
                loss: loss_sum / done as f64,
                elapsed: self.started.elapsed().as_secs_f64(),
            });
        }
        Ok(loss_sum)
    }

    /// The summed loss and averaged gradients of `chunk`: one thread per sample, each with
    /// its own generator drawn from the run's.
    fn batch_gradients(
        &self,
        chunk: &[usize],
        rng: &mut Rng,
    ) -> Result<(f64, GradStore), TrainError> {
        if let [ci] = chunk {
            return Ok(sample_step(
                self.model,
                &self.cases[*ci],
                self.opts,
                1.0,
                rng,
            )?);
        }
        let seeds: Vec<u64> = chunk.iter().map(|_| rng.next_u64()).collect();
        let scale = 1.0 / chunk.len() as f64;
        let results: Vec<candle_core::Result<(f64, GradStore)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .zip(&seeds)
                .map(|(&ci, &seed)| {
                    let (model, case, opts) = (self.model, &self.cases[ci], self.opts);
                    scope.spawn(move || sample_step(model, case, opts, scale, &mut Rng::new(seed)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a training thread panicked"))
                .collect()
        });
        let (mut loss_sum, mut total) = (0.0, None::<GradStore>);
        for r in results {
            let (loss, grads) = r?;
            loss_sum += loss;
            match &mut total {
                None => total = Some(grads),
                Some(t) => t.extend(grads)?,
            }
        }
        Ok((loss_sum, total.expect("a chunk holds at least one case")))
    }
}

fn write_log(out: &Path, log: &TrainLog) -> Result<(), TrainError> {
    let path = out.join(format!("{}.training.json", log.method.name()));
    let json = serde_json::to_string_pretty(log).expect("the log serialises");
    crate::io::durable::write_atomic(&path, json.as_bytes())?;
    Ok(())
}
