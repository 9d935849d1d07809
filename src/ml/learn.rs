//! Learning a new landmark from a handful of annotated cases, in minutes on a laptop CPU: the
//! fast fine-tuning recipe behind `heartloc train --landmark` and the app's Train button.
//!
//! A heart heatmap model (the shipped one unless told otherwise) is the starting point. Its
//! coarse stage is kept frozen: it already finds the heart, so the landmark's crop is centred
//! at the coarse heart answer plus the landmark's mean offset from it over the training cases
//! (`Recipe::coarse_offset_lps_mm`, turned with the pose). Only the fine stage is trained, on
//! crops around the annotated point shifted by up to [`SHIFT_MM`] (the spread of that
//! offset), with a narrower Gaussian ([`SIGMA_MM`]) than the heart's. The last epoch is kept,
//! so the held-out figures are not chosen on. A landmark model looks in the scan's stored pose
//! (`Model::locate`); the heart models' pose search is not used for it yet.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use glam::{DMat3, DVec3};

use super::data::{Augment, Case};
use super::model::Model;
use super::preprocess::{Method, Normalizer};
use super::train::{self, Cases, Progress, TrainError, TrainLog, TrainOptions};
use crate::io;

/// Fewer annotated cases than this cannot be learnt from (one of them is held out).
pub const MIN_CASES: usize = 5;
/// The fine stage's Gaussian width for a landmark (mm).
pub const SIGMA_MM: f64 = 8.0;
/// How far training crops are shifted from the annotated point (mm per axis, up to).
pub const SHIFT_MM: f64 = 30.0;
/// The fine-tuning learning rate.
pub const LEARNING_RATE: f64 = 1e-3;

/// One annotated case: its image (a NIfTI file or DICOM folder) and the landmark's position.
#[derive(Clone, Debug, PartialEq)]
pub struct PointCase {
    pub name: String,
    pub image: PathBuf,
    pub target_lps: DVec3,
}

/// A worklist's annotated case as `Worklist::landmark_cases` lists it: (name, image, position).
impl From<(String, PathBuf, DVec3)> for PointCase {
    fn from((name, image, target_lps): (String, PathBuf, DVec3)) -> Self {
        PointCase {
            name,
            image,
            target_lps,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// The landmark's name (the slot label in the markups files).
    pub landmark: String,
    /// Where the cases came from (a worklist folder or manifest), for the log.
    pub source: String,
    pub train: Vec<PointCase>,
    /// Held out: never trained on, measured at the end (and now and then during the run).
    pub val: Vec<PointCase>,
    /// The heatmap model to start from (`None`: the shipped one).
    pub base: Option<PathBuf>,
    pub out: PathBuf,
    pub seed: u64,
    pub max_minutes: f64,
    /// The fine stage's Gaussian width (mm; [`SIGMA_MM`] unless measuring another).
    pub sigma_mm: f64,
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Split annotated cases: every `every`-th held out (at least one when there are
/// [`MIN_CASES`]), the rest trained on, in their worklist order (no seed needed).
pub fn split(cases: Vec<PointCase>, every: usize) -> (Vec<PointCase>, Vec<PointCase>) {
    let every = every.clamp(2, cases.len().max(2));
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (pos, c) in cases.into_iter().enumerate() {
        if super::data::is_validation(pos, every) {
            val.push(c);
        } else {
            train.push(c);
        }
    }
    (train, val)
}

/// The cases in memory, as training wants them.
fn load(
    cases: &[PointCase],
    clip: [f64; 2],
    done: &mut usize,
    total: usize,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<Case>, TrainError> {
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        progress(Progress::Loading { done: *done, total });
        let (volume, _) = io::open(&c.image, &Default::default())?;
        let norm = Normalizer::of(&volume, clip).map_err(|e| io::FileError::new(&c.image, e))?;
        out.push(Case {
            name: c.name.clone(),
            modality: String::new(),
            volume,
            mask: None,
            target_lps: c.target_lps,
            norm,
            body_from_stored: None,
        });
        *done += 1;
    }
    Ok(out)
}

/// The landmark's mean offset from where `base`'s coarse stage puts the heart.
fn mean_offset(base: &Model, cases: &[Case]) -> Result<DVec3, TrainError> {
    let mut sum = DVec3::ZERO;
    for c in cases {
        let look =
            base.coarse_look(&c.volume, &c.norm, DMat3::IDENTITY, &mut Default::default())?;
        sum += c.target_lps - look.center_lps;
    }
    Ok(sum / cases.len().max(1) as f64)
}

/// Fine-tune a landmark model into `opts.out` (`heatmap.safetensors`, its recipe naming the
/// landmark, and `heatmap.training.json` with the cases it saw and the held-out figures).
pub fn learn(
    opts: &LearnOptions,
    mut progress: impl FnMut(Progress),
) -> Result<TrainLog, TrainError> {
    let started = Instant::now();
    if opts.train.len() + opts.val.len() < MIN_CASES || opts.val.is_empty() {
        return Err(TrainError::Setup(format!(
            "{}: {} cases have a `{}` landmark ({} held out); at least {MIN_CASES}, one of them \
             held out, are needed",
            opts.source,
            opts.train.len() + opts.val.len(),
            opts.landmark,
            opts.val.len()
        )));
    }
    let mut base = match &opts.base {
        Some(dir) => Model::load(dir, Method::Heatmap)?,
        None => Model::shipped(Method::Heatmap)?,
    };
    let clip = base.recipe.clip_percentiles;
    let (mut done, total) = (0, opts.train.len() + opts.val.len());
    let cases = Cases {
        train: load(&opts.train, clip, &mut done, total, &mut progress)?,
        val: load(&opts.val, clip, &mut done, total, &mut progress)?,
    };
    progress(Progress::Loading { done, total });
    let offset = mean_offset(&base, &cases.train)?;
    let r = &mut base.recipe;
    r.landmark = Some(opts.landmark.clone());
    r.target = format!(
        "{}: annotated in {} ({} cases), learnt from {}",
        opts.landmark,
        opts.source,
        cases.train.len(),
        r.target
    );
    r.fine.sigma_mm = opts.sigma_mm;
    r.coarse_offset_lps_mm = offset.to_array();
    let topts = TrainOptions {
        epochs: 10_000,
        seed: opts.seed,
        val_every: 0,
        augment: Augment {
            shift_mm: SHIFT_MM,
            partial_fov: 0.0,
            ..Augment::default()
        },
        learning_rate: LEARNING_RATE,
        max_minutes: Some(opts.max_minutes),
        freeze_coarse: true,
        keep_last: true,
        validate_every_s: 60.0,
        cancel: opts.cancel.clone(),
        ..TrainOptions::new(
            PathBuf::from(&opts.source),
            opts.out.clone(),
            base.recipe.clone(),
        )
    };
    let fine = base.fine.trainable()?;
    let start = (
        Model {
            recipe: base.recipe,
            coarse: base.coarse,
            fine: fine.0,
        },
        fine.1,
    );
    train::run(&topts, &cases, start, started, progress)
}
