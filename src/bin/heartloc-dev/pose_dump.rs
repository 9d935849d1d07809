//! What the heatmap's coarse stage says in each of the 48 cube poses, and both methods in its
//! best three poses and the stored one, on scans turned and mirrored as `heartloc eval
//! --perturb` turns them: JSON lines for choosing the pose search's limits (`ml::pose`) and the
//! reliability limits (`ml::reliability`) by simulation.
//!
//! Run: `cargo run --release --bin heartloc-dev -- pose-dump MANIFEST OUT.jsonl [--train]
//! [--every N]`
//! (needs `../shared/data`; the output is cut from it: never commit it).

use std::io::Write as _;
use std::path::Path;

use glam::DMat3;
use heartloc::io;
use heartloc::ml::data::{heart_mask, is_validation, read_manifest};
use heartloc::ml::model::{load_models, Model, Timing};
use heartloc::ml::perturb::{Perturbation, Scene};
use heartloc::ml::pose::cube_poses;
use heartloc::ml::preprocess::{Method, Normalizer};

pub fn run(manifest: &Path, out: &Path, validation: bool, every: usize) -> anyhow::Result<()> {
    let models = load_models(&[Method::Segmentation, Method::Heatmap], None)?;
    let mut file = std::fs::File::create(out)?;
    let poses = cube_poses(true);
    let perturbations = [
        Perturbation::None,
        Perturbation::Rotate { degrees: 45.0 },
        Perturbation::Rotate { degrees: 90.0 },
        Perturbation::Mirror,
    ];
    let rows = read_manifest(manifest)?;
    let in_split = rows
        .iter()
        .enumerate()
        .filter(|(pos, _)| is_validation(*pos, 5) == validation);
    for (_, row) in in_split.step_by(every.max(1)) {
        let (volume, _) = io::open(&row.folder.join("image.nii.gz"), &Default::default())?;
        let (labels, _) = io::open(&row.folder.join("labels.nii.gz"), &Default::default())?;
        let scene = Scene {
            volume,
            truth: Some(heart_mask(&labels, &row.heart_values)),
            center_lps: row.heart_center_lps_mm,
        };
        for p in perturbations {
            let seed = io::fnv1a(format!("{}/{}", row.case, p.name()).as_bytes());
            dump_one(
                &models,
                &poses,
                &row.case,
                &row.modality,
                p,
                &scene.perturbed(p, seed),
                &mut file,
            )?;
        }
        println!("{}", row.case);
    }
    Ok(())
}

/// One perturbed scan: the heatmap's coarse look in every pose, then both methods in its best
/// three poses (and the stored one).
fn dump_one(
    models: &[Model],
    poses: &[DMat3],
    case: &str,
    modality: &str,
    p: Perturbation,
    seen: &Scene,
    file: &mut std::fs::File,
) -> anyhow::Result<()> {
    let truth = seen.center_lps.expect("manifest centre");
    let norm = Normalizer::of(&seen.volume, models[0].recipe.clip_percentiles)
        .map_err(anyhow::Error::msg)?;
    // The heatmap's coarse look in every pose, then both methods in its best three.
    let heat = &models[1];
    let mut looks = Vec::new();
    for (k, &pose) in poses.iter().enumerate() {
        let mut timing = Timing::default();
        let look = heat.coarse_look(&seen.volume, &norm, pose, &mut timing)?;
        let line = serde_json::json!({
            "case": case, "modality": modality,
            "perturbation": p.name(), "pose": k, "det": pose.determinant(),
            "coarse_error_mm": look.center_lps.distance(truth),
            "coarse_score": look.score,
            "coarse_resample_s": timing.resample, "coarse_network_s": timing.network,
        });
        writeln!(file, "{line}")?;
        looks.push((k, look));
    }
    looks.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let identity = looks
        .iter()
        .position(|(k, _)| *k == 0)
        .expect("identity pose");
    let mut ranks: Vec<usize> = vec![0, 1, 2];
    if !ranks.contains(&identity) {
        ranks.push(identity);
    }
    for rank in ranks {
        let (k, look) = looks[rank];
        for model in models {
            let mut timing = Timing::default();
            let own = model.coarse_look(&seen.volume, &norm, look.pose, &mut timing)?;
            let mut line = serde_json::json!({
                "case": case, "modality": modality,
                "perturbation": p.name(), "pose": k, "rank": rank,
                "method": model.recipe.method.name(),
                "heat_score": look.score,
            });
            if let Ok(f) = model.locate_fine_at(
                &seen.volume,
                &norm,
                own.center_lps,
                look.pose,
                Timing::default(),
            ) {
                line["fine_error_mm"] = f.center_lps.distance(truth).into();
                line["fine_confidence"] = f.confidence.into();
                line["fine_lps"] = f.center_lps.to_array().to_vec().into();
                line["volume_ml"] = f.volume_ml.into();
                line["drift_mm"] = f.center_lps.distance(own.center_lps).into();
                line["fine_seconds"] = f.timing.total().into();
            }
            writeln!(file, "{line}")?;
        }
    }
    Ok(())
}
