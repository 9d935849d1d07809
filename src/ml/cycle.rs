//! A whole heartbeat: the answers of every phase of a cine summarised per method — the centre's
//! path and how far it wanders, and for the segmentation the heart's volume per phase and its
//! largest and smallest (whole-heart volumes, not a ventricle's: the change is not a clinical
//! ejection fraction, and is labelled so).

use glam::DVec3;
use serde_json::{json, Value};

/// One phase's answers: its 1-based number and the `Finding::to_json` objects of each method.
pub struct PhaseAnswers {
    pub phase: usize,
    pub results: Vec<Value>,
}

/// The cycle summary of every method present in `phases` (in phase order).
pub fn summary(phases: &[PhaseAnswers]) -> Value {
    let mut methods: Vec<String> = Vec::new();
    for r in phases.iter().flat_map(|p| &p.results) {
        if let Some(m) = r["method"].as_str() {
            if !methods.iter().any(|x| x == m) {
                methods.push(m.to_string());
            }
        }
    }
    let per_method: Vec<Value> = methods.iter().map(|m| method_summary(m, phases)).collect();
    json!({ "phases": phases.len(), "methods": per_method })
}

fn method_summary(method: &str, phases: &[PhaseAnswers]) -> Value {
    let mine: Vec<(usize, &Value)> = phases
        .iter()
        .filter_map(|p| {
            p.results
                .iter()
                .find(|r| r["method"] == method)
                .map(|r| (p.phase, r))
        })
        .collect();
    let centre = |r: &Value| -> Option<DVec3> {
        let a = r["heart_center_lps_mm"].as_array()?;
        Some(DVec3::new(
            a.first()?.as_f64()?,
            a.get(1)?.as_f64()?,
            a.get(2)?.as_f64()?,
        ))
    };
    let centres: Vec<(usize, DVec3)> = mine
        .iter()
        .filter_map(|(p, r)| centre(r).map(|c| (*p, c)))
        .collect();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let mean = centres.iter().map(|(_, c)| *c).sum::<DVec3>() / centres.len().max(1) as f64;
    let spread = centres
        .iter()
        .map(|(_, c)| c.distance(mean))
        .fold(0.0, f64::max);
    // Neighbouring phases, the last beside the first: a cine is a loop.
    let steps: Vec<f64> = (0..centres.len())
        .filter(|_| centres.len() > 1)
        .map(|i| centres[i].1.distance(centres[(i + 1) % centres.len()].1))
        .collect();
    let mut out = json!({
        "method": method,
        "centre_path_lps_mm": centres
            .iter()
            .map(|(p, c)| json!({ "phase": p, "centre": c.to_array().map(round) }))
            .collect::<Vec<_>>(),
        "mean_centre_lps_mm": mean.to_array().map(round),
        "spread_mm": round(spread),
        "largest_step_between_neighbouring_phases_mm": round(steps.iter().copied().fold(0.0, f64::max)),
    });
    let volumes: Vec<(usize, f64)> = mine
        .iter()
        .filter_map(|(p, r)| r["heart_volume_ml"].as_f64().map(|v| (*p, v)))
        .collect();
    if let (Some(big), Some(small)) = (
        volumes.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)),
        volumes.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)),
    ) {
        out["heart_volume_ml_by_phase"] = json!(volumes
            .iter()
            .map(|(p, v)| json!({ "phase": p, "ml": v }))
            .collect::<Vec<_>>());
        out["largest_volume"] = json!({ "phase": big.0, "ml": big.1 });
        out["smallest_volume"] = json!({ "phase": small.0, "ml": small.1 });
        out["whole_heart_volume_change_fraction"] = json!(if big.1 > 0.0 {
            round((big.1 - small.1) / big.1)
        } else {
            0.0
        });
        out["note"] = json!(
            "whole-heart volumes from the segmentation: the change between the largest \
             phase (taken as end-diastole) and the smallest (as end-systole) estimates how \
             much the heart shrinks; it is not a left-ventricular ejection fraction"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(method: &str, c: [f64; 3], ml: Option<f64>) -> Value {
        let mut v = json!({ "method": method, "heart_center_lps_mm": c });
        if let Some(ml) = ml {
            v["heart_volume_ml"] = json!(ml);
        }
        v
    }

    #[test]
    fn the_summary_follows_the_centre_and_the_volume_round_the_loop() {
        let phases: Vec<PhaseAnswers> = [(0.0, 800.0), (3.0, 650.0), (4.0, 600.0), (1.0, 760.0)]
            .iter()
            .enumerate()
            .map(|(i, &(x, ml))| PhaseAnswers {
                phase: i + 1,
                results: vec![
                    answer("segmentation", [x, 0.0, 0.0], Some(ml)),
                    answer("heatmap", [x, 1.0, 0.0], None),
                ],
            })
            .collect();
        let s = summary(&phases);
        assert_eq!(s["phases"], 4);
        let seg = &s["methods"][0];
        assert_eq!(seg["method"], "segmentation");
        assert_eq!(seg["mean_centre_lps_mm"], json!([2.0, 0.0, 0.0]));
        assert_eq!(seg["spread_mm"], 2.0);
        // Steps 3, 1, 3 and, closing the loop, 1: the largest is 3.
        assert_eq!(seg["largest_step_between_neighbouring_phases_mm"], 3.0);
        assert_eq!(seg["largest_volume"], json!({ "phase": 1, "ml": 800.0 }));
        assert_eq!(seg["smallest_volume"], json!({ "phase": 3, "ml": 600.0 }));
        assert_eq!(seg["whole_heart_volume_change_fraction"], 0.25);
        let heat = &s["methods"][1];
        assert_eq!(heat["method"], "heatmap");
        assert!(heat.get("largest_volume").is_none());
        assert_eq!(
            heat["centre_path_lps_mm"][2]["centre"],
            json!([4.0, 1.0, 0.0])
        );
    }
}
