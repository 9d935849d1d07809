//! A landmark model on the held-out cases of one fold (as `heartloc learning-curve` folds
//! them), case by case, with the fine stage run once or again re-centred on its own answer:
//! for choosing the landmark recipe's inference by measurement.
//!
//! Run: `cargo run --release --bin heartloc-dev -- landmark-eval --weights DIR --worklist CSV
//! --landmarks-in OUT --landmark NAME --fold K --folds N` (needs `../shared/data`).

use std::path::Path;

use glam::DMat3;
use heartloc::ml::model::Model;
use heartloc::ml::preprocess::{Method, Normalizer};
use heartloc::worklist::Worklist;

pub struct Args<'a> {
    pub weights: &'a Path,
    pub worklist: &'a Path,
    pub landmarks_in: &'a Path,
    pub landmark: &'a str,
    pub fold: usize,
    pub folds: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model = Model::load(a.weights, Method::Heatmap)?;
    let list = Worklist::open(a.worklist, Some(a.landmarks_in))?;
    let (cases, _) = list.landmark_cases(a.landmark);
    let (mut once, mut twice) = (Vec::new(), Vec::new());
    for (pos, (name, image, truth)) in cases.iter().enumerate() {
        if pos % a.folds.max(2) != a.fold {
            continue;
        }
        let (volume, _) = heartloc::io::open(image, &Default::default())?;
        let norm =
            Normalizer::of(&volume, model.recipe.clip_percentiles).map_err(anyhow::Error::msg)?;
        let first = model.locate(&volume, Some(norm))?;
        let again = model.locate_fine_at(
            &volume,
            &norm,
            first.center_lps,
            DMat3::IDENTITY,
            Default::default(),
        )?;
        let (e1, e2) = (
            first.center_lps.distance(*truth),
            again.center_lps.distance(*truth),
        );
        println!(
            "{name:28} once {e1:6.1} mm  re-centred {e2:6.1} mm  crop centre {:6.1} mm from it  \
             confidence {:.2}",
            first.coarse_center_lps.distance(*truth),
            first.confidence
        );
        once.push(e1);
        twice.push(e2);
    }
    let m = heartloc::stats::median;
    println!(
        "median once {:.1} mm, re-centred {:.1} mm over {} cases",
        m(&once),
        m(&twice),
        once.len()
    );
    Ok(())
}
