//! Stand-in landmarks derived from expert label maps, as if an annotator had placed them: the
//! learning curves of `heartloc learning-curve` need landmarks no public dataset has, so these
//! stand in for human annotations (issue 23). Each is a worklist output folder of
//! `.mrk.json` files (one per case, named as `heartloc worklist --out` names them), so
//! `heartloc train --worklist MANIFEST --landmarks-in OUT --landmark NAME` learns from them as
//! it would from an annotator's.
//!
//! - `carina`: SegTHOR trachea (label 3): the centroid of the lowest axial slice where the
//!   trachea is still one piece, just above where it splits into the main bronchi.
//! - `aortic-root`: SegTHOR aorta (label 4): below the arch the aorta is two pieces; the anterior
//!   one (ascending) is followed down slice by slice to where it ends, at the root; the centroid
//!   of that last slice.
//! - `lv-apex`: ACDC LV (labels 2, 3): the centroid of the LV on its apical end slice (the end
//!   slice of the smaller LV area); ACDC's 5–10 mm slices quantise it along the long axis.
//!
//! Run: `cargo run --release --bin heartloc-dev -- stand-ins MANIFEST OUT --landmark carina`
//! (needs `../shared/data`; the output is cut from it: never commit it).

use std::path::Path;

use anyhow::Context as _;
use glam::DVec3;
use heartloc::annotation::Annotation;
use heartloc::io;
use heartloc::ml::data::read_manifest;
use heartloc::volume::Volume;
use heartloc::worklist::Worklist;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StandIn {
    Carina,
    AorticRoot,
    LvApex,
}

impl StandIn {
    /// The manifest modality whose label values it reads.
    fn modality(self) -> &'static str {
        match self {
            StandIn::Carina | StandIn::AorticRoot => "CT",
            StandIn::LvApex => "MR",
        }
    }

    fn name(self) -> &'static str {
        match self {
            StandIn::Carina => "carina",
            StandIn::AorticRoot => "aortic-root",
            StandIn::LvApex => "lv-apex",
        }
    }
}

pub fn run(manifest: &Path, out: &Path, which: StandIn) -> anyhow::Result<()> {
    let mut list = Worklist::open(manifest, Some(out))?;
    let modality: std::collections::HashMap<String, String> = read_manifest(manifest)?
        .into_iter()
        .map(|r| (r.case, r.modality))
        .collect();
    let (mut written, mut skipped) = (0, 0);
    for i in 0..list.cases.len() {
        let case = list.cases[i].clone();
        if modality.get(&case.name).map(String::as_str) != Some(which.modality()) {
            continue;
        }
        let Some(dir) = case.image.parent() else {
            continue;
        };
        let labels_path = dir.join("labels.nii.gz");
        if !labels_path.is_file() {
            skipped += 1;
            continue;
        }
        let (labels, _) = io::open(&labels_path, &Default::default())?;
        let point = match which {
            StandIn::Carina => carina(&labels),
            StandIn::AorticRoot => aortic_root(&labels),
            StandIn::LvApex => lv_apex(&labels),
        };
        let Some(p) = point else {
            eprintln!("{}: no {} in its labels", case.name, which.name());
            skipped += 1;
            continue;
        };
        let mut a = Annotation::new(list.load_landmarks(i)?);
        a.place_with_note(which.name(), p, "stand-in derived from the expert labels");
        list.save_landmarks(i, &a.set)
            .with_context(|| format!("saving {}", case.name))?;
        written += 1;
    }
    println!(
        "{written} cases with a `{}` stand-in in {} ({skipped} without)",
        which.name(),
        out.display()
    );
    Ok(())
}

/// One axial slice's pieces of a label set: 8-connected components of (i, j) pixels.
fn pieces(labels: &Volume, k: usize, values: &[u32], min_area: usize) -> Vec<Vec<[usize; 2]>> {
    let [nx, ny, _] = labels.dims();
    let inside = |i: usize, j: usize| {
        let v = labels.voxels.get(i + nx * (j + ny * k)).round();
        v > 0.0 && values.contains(&(v as u32))
    };
    let mut seen = vec![false; nx * ny];
    let mut out = Vec::new();
    for start in 0..nx * ny {
        if seen[start] || !inside(start % nx, start / nx) {
            continue;
        }
        seen[start] = true;
        let (mut stack, mut piece) = (vec![start], Vec::new());
        while let Some(p) = stack.pop() {
            let (i, j) = (p % nx, p / nx);
            piece.push([i, j]);
            for dj in -1i64..=1 {
                for di in -1i64..=1 {
                    let (a, b) = (i as i64 + di, j as i64 + dj);
                    if a < 0 || b < 0 || a >= nx as i64 || b >= ny as i64 {
                        continue;
                    }
                    let q = a as usize + nx * b as usize;
                    if !seen[q] && inside(a as usize, b as usize) {
                        seen[q] = true;
                        stack.push(q);
                    }
                }
            }
        }
        if piece.len() >= min_area {
            out.push(piece);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out
}

fn centroid(labels: &Volume, k: usize, piece: &[[usize; 2]]) -> DVec3 {
    let sum = piece.iter().fold(DVec3::ZERO, |s, &[i, j]| {
        s + DVec3::new(i as f64, j as f64, k as f64)
    });
    labels.grid.world_from_index(sum / piece.len() as f64)
}

/// Slice indices from the head down (the k axis must run along S, as in axial CT).
fn head_to_feet(labels: &Volume) -> Option<Vec<usize>> {
    let nz = labels.dims()[2];
    let z = |k: usize| labels.grid.world_from_index(DVec3::new(0.0, 0.0, k as f64));
    let along = z(nz - 1) - z(0);
    if along.z.abs() < 0.9 * along.length() {
        return None;
    }
    let mut ks: Vec<usize> = (0..nz).collect();
    if along.z > 0.0 {
        ks.reverse();
    }
    Some(ks)
}

fn carina(labels: &Volume) -> Option<DVec3> {
    let mut last_whole = None;
    for k in head_to_feet(labels)? {
        let p = pieces(labels, k, &[3], 3);
        match p.len() {
            0 if last_whole.is_some() => break,
            0 => {}
            1 => last_whole = Some(centroid(labels, k, &p[0])),
            _ if last_whole.is_some() => break,
            _ => {}
        }
    }
    last_whole
}

fn aortic_root(labels: &Volume) -> Option<DVec3> {
    let mut tracked: Option<(usize, Vec<[usize; 2]>)> = None;
    for k in head_to_feet(labels)? {
        let p = pieces(labels, k, &[4], 10);
        match tracked.take() {
            None if p.len() >= 2 => {
                // Below the arch: the more anterior piece (smaller LPS y) is the ascending aorta.
                let anterior = p.into_iter().take(2).min_by(|a, b| {
                    centroid(labels, k, a)
                        .y
                        .total_cmp(&centroid(labels, k, b).y)
                })?;
                tracked = Some((k, anterior));
            }
            None => {}
            Some((prev_k, prev)) => {
                let prev_set: std::collections::HashSet<[usize; 2]> =
                    prev.iter().copied().collect();
                let next = p
                    .into_iter()
                    .map(|q| (q.iter().filter(|x| prev_set.contains(*x)).count(), q))
                    .filter(|(overlap, _)| *overlap > 0)
                    .max_by_key(|(overlap, _)| *overlap);
                match next {
                    Some((_, q)) => tracked = Some((k, q)),
                    None => return Some(centroid(labels, prev_k, &prev)),
                }
            }
        }
    }
    None
}

fn lv_apex(labels: &Volume) -> Option<DVec3> {
    let nz = labels.dims()[2];
    let area = |k: usize| {
        pieces(labels, k, &[2, 3], 1)
            .iter()
            .map(Vec::len)
            .sum::<usize>()
    };
    let with_lv: Vec<usize> = (0..nz).filter(|&k| area(k) > 0).collect();
    let (&first, &last) = (with_lv.first()?, with_lv.last()?);
    let ends = |ks: &[usize]| ks.iter().map(|&k| area(k)).sum::<usize>();
    let n = with_lv.len().min(2);
    let apex = if ends(&with_lv[..n]) <= ends(&with_lv[with_lv.len() - n..]) {
        first
    } else {
        last
    };
    let all: Vec<[usize; 2]> = pieces(labels, apex, &[2, 3], 1).concat();
    Some(centroid(labels, apex, &all))
}
