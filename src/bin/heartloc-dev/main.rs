//! `heartloc-dev`: developer tools that are not part of the product (their outputs are cut from
//! the shared data and never committed).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use heartloc::ml::preprocess::Method;

mod crop_dependence;
mod landmark_eval;
mod pose_dump;
mod repose;
mod stand_ins;
mod training_cache;

#[derive(Parser)]
#[command(name = "heartloc-dev", about = "heartloc developer tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A compact, normalised copy of a manifest's cases for training on another machine.
    TrainingCache {
        manifest: PathBuf,
        out: PathBuf,
        /// Grid spacing (mm).
        #[arg(default_value_t = 3.0)]
        spacing_mm: f64,
    },
    /// How far a model's fine-stage answer follows its crop centre on the held-out cases.
    CropDependence {
        /// Weights folder (default: the shipped models).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long, default_value = "heatmap")]
        method: Method,
    },
    /// The heatmap's coarse stage in each of the 48 cube poses on turned scans, both methods in
    /// the best three, as JSON lines.
    PoseDump {
        manifest: PathBuf,
        out: PathBuf,
        /// The training cases instead of the held-out ones.
        #[arg(long)]
        train: bool,
        /// Every N-th case of the split.
        #[arg(long, default_value_t = 1)]
        every: usize,
    },
    /// A landmark model on one fold's held-out cases, case by case, its fine stage run once
    /// and re-centred on its answer.
    LandmarkEval {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        worklist: PathBuf,
        #[arg(long)]
        landmarks_in: PathBuf,
        #[arg(long)]
        landmark: String,
        #[arg(long)]
        fold: usize,
        #[arg(long, default_value_t = 5)]
        folds: usize,
    },
    /// Short-axis MR cases of a manifest in their body pose, on an axis-aligned LPS grid.
    Repose {
        manifest: PathBuf,
        out: PathBuf,
        /// Every N-th short-axis case.
        #[arg(long, default_value_t = 1)]
        every: usize,
    },
    /// Stand-in landmarks derived from the expert labels, as a worklist output folder of
    /// markups files (for the learning curves of a landmark model).
    StandIns {
        manifest: PathBuf,
        out: PathBuf,
        #[arg(long, value_enum)]
        landmark: stand_ins::StandIn,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::TrainingCache {
            manifest,
            out,
            spacing_mm,
        } => training_cache::run(&manifest, &out, spacing_mm),
        Command::CropDependence { weights, method } => {
            crop_dependence::run(weights.as_deref(), method)
        }
        Command::PoseDump {
            manifest,
            out,
            train,
            every,
        } => pose_dump::run(&manifest, &out, !train, every),
        Command::LandmarkEval {
            weights,
            worklist,
            landmarks_in,
            landmark,
            fold,
            folds,
        } => landmark_eval::run(landmark_eval::Args {
            weights: &weights,
            worklist: &worklist,
            landmarks_in: &landmarks_in,
            landmark: &landmark,
            fold,
            folds,
        }),
        Command::Repose {
            manifest,
            out,
            every,
        } => repose::run(&manifest, &out, every),
        Command::StandIns {
            manifest,
            out,
            landmark,
        } => stand_ins::run(&manifest, &out, landmark),
    }
}
