//! `heartloc-dev`: developer tools that are not part of the product (their outputs are cut from
//! the shared data and never committed).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use heartloc::ml::preprocess::Method;

mod crop_dependence;
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
    }
}
