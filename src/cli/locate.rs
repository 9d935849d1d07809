//! `heartloc locate`: inputs (arguments, a list file, a shard of them), the models on each
//! volume (one phase, or every phase of a cine with `--all-phases`), text or JSON out, a
//! durable JSON-lines log for batch runs, masks, heart surfaces and markups.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use heartloc::io::{self, durable::JsonLines, markups::ControlPoint, OpenOptions};
use heartloc::mesh::Mesh;
use heartloc::ml::cycle::{self, PhaseAnswers};
use heartloc::ml::model::{locate_all, Finding, Model};
use heartloc::ml::preprocess::Method;
use heartloc::volume::Volume;
use serde_json::{json, Value};

/// What `locate` was asked to do, besides its inputs.
pub struct Request {
    pub open: OpenOptions,
    pub all_phases: bool,
    pub json: bool,
    pub mask_out: Option<PathBuf>,
    pub mesh_out: Option<PathBuf>,
    pub mrk_out: Option<PathBuf>,
}

/// The paths of a list file, one per line; blank lines and `#` comments skipped.
pub fn read_list(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the list: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect())
}

/// Where an input's output goes: `path` itself for one input, `path/<stem><suffix>` for many.
fn output_for(path: &Path, input: &Path, many: bool, suffix: &str) -> PathBuf {
    if !many {
        return path.to_path_buf();
    }
    let stem = match crate::io::nifti::stem(input) {
        s if s.is_empty() => "volume".to_string(),
        s => s,
    };
    path.join(format!("{stem}{suffix}"))
}

/// Run the models on every input; one line (or JSON object) per input, appended to `log`.
pub fn run(
    inputs: &[PathBuf],
    models: &[Model],
    req: &Request,
    mut log: Option<JsonLines>,
) -> anyhow::Result<ExitCode> {
    let many = inputs.len() > 1 || log.is_some();
    for dir in [&req.mask_out, &req.mesh_out, &req.mrk_out]
        .into_iter()
        .flatten()
    {
        if many {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", dir.display()))?;
        }
    }
    let mut failed = false;
    for input in inputs {
        let key = input.display().to_string();
        if log.as_ref().is_some_and(|l| l.is_done(&key)) {
            continue;
        }
        let answer = if req.all_phases {
            every_phase(input, models, req)
        } else {
            one_phase(input, models, req, many)
        };
        let line = answer.unwrap_or_else(|e| {
            failed = true;
            eprintln!("error: {e:#}");
            json!({ "input": key, "error": format!("{e:#}") })
        });
        if req.json {
            println!("{line}");
        }
        if let Some(log) = log.as_mut() {
            log.append(&key, &line)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Both methods on one phase of `input`, with the mask and markups written where asked.
fn one_phase(input: &Path, models: &[Model], req: &Request, many: bool) -> anyhow::Result<Value> {
    let (volume, _) = io::open(input, &req.open)?;
    let (results, points) = answers(input, models, &volume, req, |model, found| {
        if found.method != Method::Segmentation {
            return Ok(None);
        }
        if let Some(path) = &req.mask_out {
            let out = output_for(path, input, many, ".heart.nii.gz");
            io::nifti::write(&out, &found.mask_on(&volume.grid, model.recipe.threshold))?;
        }
        let Some(path) = &req.mesh_out else {
            return Ok(None);
        };
        let out = output_for(path, input, many, ".heart.stl");
        let mesh = Mesh::of_probabilities(&found.grid, &found.map, model.recipe.threshold as f32);
        mesh.write(&out)?;
        let summary = json!({
            "path": out.display().to_string(),
            "volume_ml": (mesh.volume_mm3() / 10.0).round() / 100.0,
            "area_cm2": (mesh.area_mm2()).round() / 100.0,
            "triangles": mesh.triangles.len(),
        });
        if !req.json {
            let what = mesh.describe();
            println!(
                "{}: heart surface {} ({what})",
                input.display(),
                out.display()
            );
        }
        Ok(Some(("mesh", summary)))
    })?;
    if let Some(path) = &req.mrk_out {
        heartloc::io::markups::write(&output_for(path, input, many, ".mrk.json"), &points)?;
    }
    Ok(json!({
        "input": input.display().to_string(),
        "phase": volume.phase.index() + 1,
        "phases": volume.phase.count(),
        "results": results
    }))
}

/// Both methods on every phase of `input`, and the cycle's summary.
fn every_phase(input: &Path, models: &[Model], req: &Request) -> anyhow::Result<Value> {
    let mut open = req.open.clone();
    let mut phases = Vec::new();
    let mut count = 1;
    while phases.len() < count {
        open.phase = phases.len();
        let (volume, _) = io::open(input, &open)?;
        count = volume.phase.count();
        let (results, _) = answers(input, models, &volume, req, |_, _| Ok(None))?;
        phases.push(PhaseAnswers {
            phase: volume.phase.index() + 1,
            results,
        });
    }
    let cycle = cycle::summary(&phases);
    let per_phase: Vec<Value> = phases
        .into_iter()
        .map(|p| json!({ "phase": p.phase, "results": p.results }))
        .collect();
    Ok(json!({
        "input": input.display().to_string(),
        "phases": count,
        "per_phase": per_phase,
        "cycle": cycle
    }))
}

/// Every model on `volume`: each answer's JSON (with the phase it came from) and a markups
/// point; a text line per answer unless JSON was asked for. `each` runs on every answer and
/// may add one field to its JSON (the mesh written, say).
fn answers(
    input: &Path,
    models: &[Model],
    volume: &Volume,
    req: &Request,
    mut each: impl FnMut(&Model, &Finding) -> anyhow::Result<Option<(&'static str, Value)>>,
) -> anyhow::Result<(Vec<Value>, Vec<ControlPoint>)> {
    let found_all = locate_all(models, volume, |_| true)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let phase = volume.phase;
    let mut results = Vec::new();
    let mut points = Vec::new();
    for (model, found) in models.iter().zip(found_all) {
        let found = found.map_err(|e| {
            anyhow::anyhow!("{}: {}: {e}", input.display(), model.recipe.method.name())
        })?;
        let extra = each(model, &found)?;
        points.push(ControlPoint {
            label: found
                .landmark
                .clone()
                .unwrap_or_else(|| format!("heart-center-{}", found.method.name())),
            description: std::iter::once(format!(
                "heartloc {} prediction, confidence {:.3}",
                found.method.name(),
                found.confidence
            ))
            .chain(found.warnings())
            .collect::<Vec<_>>()
            .join("; "),
            position_lps: Some(found.center_lps.to_array()),
            status: crate::io::markups::PositionStatus::Defined,
            locked: false,
        });
        if !req.json {
            let c = found.center_lps;
            let of_phase = if phase.count() > 1 {
                format!(" phase {}/{}", phase.index() + 1, phase.count())
            } else {
                String::new()
            };
            let what = match &found.landmark {
                Some(name) => format!("{name} (heatmap)"),
                None => format!("{:<12} centre", found.method.name()),
            };
            println!(
                "{}{of_phase}: {what} ({:.1}, {:.1}, {:.1}) LPS mm, {}",
                input.display(),
                c.x,
                c.y,
                c.z,
                std::iter::once(found.describe())
                    .chain(found.warnings())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let mut r = found.to_json();
        r["phase"] = json!(phase.index() + 1);
        if let Some((key, value)) = extra {
            r[key] = value;
        }
        results.push(r);
    }
    Ok((results, points))
}
