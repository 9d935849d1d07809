//! How much a model's fine stage leans on where its crop is centred rather than on the image:
//! on each held-out case (every 5th manifest row, as `heartloc train` holds out), the fine
//! network runs on crops centred at the true heart centre moved by −16…+16 mm along each world
//! axis, and the decoded centre's error along that axis is printed. A network that reads the
//! image gives the same answer wherever the crop is (errors flat across a row); one that leans on
//! the crop centre follows the shift (the fitted slope, 0 = ideal, 1 = answers the crop centre).
//!
//! Run: `cargo run --release --bin heartloc-dev -- crop-dependence [--weights DIR] [--method M]`
//! (default: the shipped heatmap model; needs `../shared/data`).

use std::path::Path;

use heartloc::ml::data;
use heartloc::ml::model::{Model, Timing};
use heartloc::ml::preprocess::Method;

const SHIFTS_MM: [f64; 5] = [-16.0, -8.0, 0.0, 8.0, 16.0];

/// Print the table for `method`'s model from `weights` (default: the shipped one).
pub fn run(weights: Option<&Path>, method: Method) -> anyhow::Result<()> {
    let manifest = Path::new("../shared/data/manifest.csv");
    if !manifest.exists() {
        println!("skipped: {} is absent", manifest.display());
        return Ok(());
    }
    let model = match weights {
        Some(d) => Model::load(d, method)?,
        None => Model::shipped(method)?,
    };
    let rows = data::read_manifest(manifest)?;
    println!("error along each axis (mm) at crop shifts {SHIFTS_MM:?} mm; slope per axis");
    let mut slopes = [Vec::new(), Vec::new(), Vec::new()];
    for (pos, row) in rows.iter().enumerate() {
        if !data::is_validation(pos, 5) {
            continue;
        }
        let case = data::load_case(row, &model.recipe)?;
        let mut line = format!("{:24}", case.name);
        for (axis, slope_list) in slopes.iter_mut().enumerate() {
            let mut errors = Vec::new();
            for shift in SHIFTS_MM {
                let mut centre = case.target_lps;
                centre[axis] += shift;
                let found = model
                    .locate_fine_at(
                        &case.volume,
                        &case.norm,
                        centre,
                        glam::DMat3::IDENTITY,
                        Timing::default(),
                    )
                    .ok()
                    .map(|f| f.center_lps);
                let error = found.map_or(f64::NAN, |c| (c - case.target_lps)[axis]);
                errors.push(error);
                line += &format!(" {error:6.1}");
            }
            // Least-squares slope of error against shift (the shifts are centred on 0).
            let slope = SHIFTS_MM
                .iter()
                .zip(&errors)
                .map(|(s, e)| s * e)
                .sum::<f64>()
                / SHIFTS_MM.iter().map(|s| s * s).sum::<f64>();
            slope_list.push(slope);
            line += &format!("  ({slope:4.2}) |");
        }
        println!("{line}");
    }
    for (axis, list) in ["x (L)", "y (P)", "z (S)"].iter().zip(&slopes) {
        let median = heartloc::stats::median(list);
        println!("median slope along {axis}: {median:.2}");
    }
    Ok(())
}
