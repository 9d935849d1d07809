//! `heartloc eval`: per-case lines (each case also seen as every perturbation asked for), the
//! durable log, then the summaries over every logged case.

use std::path::{Path, PathBuf};

use heartloc::io;
use heartloc::ml::eval::{self, CaseResult, Split};
use heartloc::ml::model::Model;
use heartloc::ml::perturb::Perturbation;

pub struct Request {
    pub models: Vec<Model>,
    pub split: Split,
    /// `Perturbation::None` first.
    pub perturbations: Vec<Perturbation>,
    /// Short-axis MR put into its body pose first (`ml::repose`).
    pub body_pose: bool,
    pub jsonl_out: Option<PathBuf>,
    pub resume: bool,
    pub shard: io::durable::Shard,
}

/// Evaluate the manifest's cases; print each case's lines as it finishes, then the summary
/// per perturbation, modality and method, the robustness table and the reliability flag's.
pub fn run(manifests: &[PathBuf], req: &Request) -> anyhow::Result<()> {
    let mut log = req
        .jsonl_out
        .as_deref()
        .map(|p| io::durable::JsonLines::open(p, "case", req.resume))
        .transpose()?;
    let mut results = Vec::new();
    // The cases done before this run (the log itself is written to as cases finish).
    let done = log.as_ref().map(|l| l.done().clone()).unwrap_or_default();
    eval::evaluate(
        manifests,
        &req.models,
        req.split,
        req.body_pose,
        &req.perturbations,
        |n, case| req.shard.takes(n) && !done.contains(case),
        |rs| {
            for r in rs {
                println!("{}", eval::case_line(r));
            }
            if let (Some(log), Some(first)) = (log.as_mut(), rs.first()) {
                let line = serde_json::json!({ "case": first.case, "results": rs });
                log.append(&first.case, &line)?;
            }
            results.extend_from_slice(rs);
            Ok(())
        },
    )?;
    if let Some(path) = &req.jsonl_out {
        // The summary covers every case in the file, earlier runs' included.
        results = read_eval_lines(path)?;
    }
    println!("\n{}", eval::summary(&results));
    if req.perturbations.len() > 1 {
        println!("{}", eval::robustness(&results));
    }
    println!("{}", eval::flag_summary(&results));
    Ok(())
}

/// Every case result in an `eval --jsonl-out` file.
fn read_eval_lines(path: &Path) -> anyhow::Result<Vec<CaseResult>> {
    #[derive(serde::Deserialize)]
    struct Line {
        results: Vec<CaseResult>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l: Line = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        out.extend(l.results);
    }
    Ok(out)
}
