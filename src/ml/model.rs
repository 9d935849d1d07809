//! A trained model (recipe + coarse and fine U-Nets) and inference: the coarse stage finds
//! where the heart is in the whole scan, the fine stage looks again in a crop there.
//! Segmentation keeps the largest connected component of the fine mask and reports its centre
//! of mass, box, extent and volume; heatmap reads the fine heatmap's peak.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use glam::{DMat3, DVec3};

use super::heatmap::decode_peak;
use super::net::UNet3d;
use super::pose::{posed, search_pose, Look, Step};
use super::preprocess::{network_grid, scan_center, Method, Normalizer, Recipe};
use super::reliability::{assess, cut_faces, own_doubts, Doubt, Face};
use crate::volume::{face_neighbours, Grid, Interpolation, Volume, Voxels};

/// The weights shipped in `weights/`, embedded in the binary so it works from any folder.
const SHIPPED: [(Method, &str, &[u8]); 2] = [
    (
        Method::Segmentation,
        include_str!("../../weights/segmentation.recipe.json"),
        include_bytes!("../../weights/segmentation.safetensors"),
    ),
    (
        Method::Heatmap,
        include_str!("../../weights/heatmap.recipe.json"),
        include_bytes!("../../weights/heatmap.safetensors"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {problem}")]
    Weights { path: PathBuf, problem: String },
    #[error("network: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cancelled")]
    Cancelled,
}

impl From<ModelError> for String {
    fn from(e: ModelError) -> String {
        e.to_string()
    }
}

pub struct Model {
    pub recipe: Recipe,
    pub coarse: UNet3d,
    pub fine: UNet3d,
}

/// Seconds spent per step of inference.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Timing {
    pub resample: f64,
    pub normalise: f64,
    pub network: f64,
    pub post: f64,
    /// The pose search, when one ran (shared by the methods, each charged it).
    pub search: f64,
}

impl Timing {
    pub fn total(&self) -> f64 {
        self.resample + self.normalise + self.network + self.post + self.search
    }
}

/// What one method found.
#[derive(Clone, Debug)]
pub struct Finding {
    pub method: Method,
    pub center_lps: DVec3,
    /// Segmentation: mean probability inside the kept component; heatmap: peak height.
    pub confidence: f64,
    /// Segmentation only: box of the kept component's voxel centres (LPS mm).
    pub bbox_lps: Option<(DVec3, DVec3)>,
    /// Segmentation only (ml).
    pub volume_ml: Option<f64>,
    /// The fine grid and the network's output on it: probabilities (segmentation, zero outside
    /// the kept component) or heat.
    pub grid: Grid,
    pub map: Vec<f32>,
    /// The recipe's mask threshold on `map` (segmentation).
    pub threshold: f64,
    pub timing: Timing,
    /// Where the coarse stage put the heart: the fine stage's crop centre (LPS mm).
    pub coarse_center_lps: DVec3,
    /// The networks' grid directions in the world (`pose`): identity unless a pose search
    /// found the scan turned or mirrored; and the heatmap coarse stage's peak there.
    pub pose: DMat3,
    pub coarse_score: f64,
    /// Segmentation: the scan's faces the heart is cut by (its volume and extent are then
    /// lower bounds). Empty for the heatmap.
    pub truncated: Vec<Face>,
    /// Why this result may be wrong; none: reliable (see `reliability`).
    pub doubts: Vec<Doubt>,
    /// The landmark a landmark model found (`None`: the heart).
    pub landmark: Option<String>,
}

impl Finding {
    pub fn reliable(&self) -> bool {
        self.doubts.is_empty()
    }

    pub fn extent_mm(&self) -> Option<DVec3> {
        self.bbox_lps.map(|(lo, hi)| hi - lo)
    }

    /// The segmentation on another grid (e.g. the image's), as a 0/1 `u8` volume.
    pub fn mask_on(&self, target: &Grid, threshold: f64) -> Volume {
        let probs = Volume::new(self.grid, Voxels::F32(self.map.clone()));
        let on = probs.resample(target, Interpolation::Trilinear, 0.0);
        let m = (0..on.voxels.len())
            .map(|i| u8::from(f64::from(on.voxels.get(i)) >= threshold))
            .collect();
        Volume::new(*target, Voxels::U8(m))
    }
}

impl Finding {
    /// What was found besides the centre, in words: "confidence 0.91, extent 120×98×95 mm,
    /// 640 ml, 1.23 s" (extent and volume for the segmentation only). The CLI's text output and
    /// the app's results panel both say it this way.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("confidence {:.2}", self.confidence)];
        if let (Some(e), Some(ml)) = (self.extent_mm(), self.volume_ml) {
            parts.push(format!(
                "extent {:.0}×{:.0}×{:.0} mm, {ml:.0} ml",
                e.x, e.y, e.z
            ));
        }
        parts.push(format!("{:.2} s", self.timing.total()));
        parts.join(", ")
    }

    /// What the reader must know before trusting this result, one sentence each: where the
    /// heart leaves the scan, and every doubt (see `reliability`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.pose != DMat3::IDENTITY {
            out.push(format!(
                "the scan looks turned or mirrored (check its orientation): found viewing it {}",
                super::pose::describe(self.pose)
            ));
        }
        if !self.truncated.is_empty() {
            let faces: Vec<&str> = self.truncated.iter().map(|f| f.name()).collect();
            out.push(format!(
                "the heart reaches the scan's {} edge: volume and extent are lower bounds",
                faces.join(" and ")
            ));
        }
        if !self.doubts.is_empty() {
            let why: Vec<String> = self.doubts.iter().map(|d| d.to_string()).collect();
            out.push(format!("MAY BE WRONG: {}", why.join("; ")));
        }
        out
    }

    /// The `locate --json` form of one result.
    pub fn to_json(&self) -> serde_json::Value {
        let r = |v: DVec3| v.to_array().map(|x| (x * 100.0).round() / 100.0);
        let mut o = match &self.landmark {
            Some(name) => serde_json::json!({
                "method": self.method.name(),
                "landmark": name,
                "position_lps_mm": r(self.center_lps),
            }),
            None => serde_json::json!({
                "method": self.method.name(),
                "heart_center_lps_mm": r(self.center_lps),
            }),
        };
        if let (Some((lo, hi)), Some(ml)) = (self.bbox_lps, self.volume_ml) {
            o["heart_bbox_lps_min_mm"] = serde_json::json!(r(lo));
            o["heart_bbox_lps_max_mm"] = serde_json::json!(r(hi));
            o["heart_extent_mm"] = serde_json::json!(r(hi - lo));
            o["heart_volume_ml"] = serde_json::json!((ml * 10.0).round() / 10.0);
        }
        o["confidence"] = serde_json::json!((self.confidence * 1000.0).round() / 1000.0);
        o["seconds"] = serde_json::json!((self.timing.total() * 1000.0).round() / 1000.0);
        o["timing"] = serde_json::json!(self.timing);
        o["pose"] = serde_json::json!(super::pose::describe(self.pose));
        o["reliable"] = serde_json::json!(self.reliable());
        o["doubts"] = serde_json::json!(self
            .doubts
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>());
        if self.method == Method::Segmentation {
            o["truncated"] =
                serde_json::json!(self.truncated.iter().map(|f| f.name()).collect::<Vec<_>>());
        }
        o
    }
}

impl Model {
    /// Load `<dir>/<method>.safetensors` with its `<method>.recipe.json`.
    pub fn load(dir: &Path, method: Method) -> Result<Self, ModelError> {
        let recipe_path = dir.join(format!("{}.recipe.json", method.name()));
        let weights_path = dir.join(format!("{}.safetensors", method.name()));
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| ModelError::Weights {
                path: p.to_path_buf(),
                problem: format!("cannot read: {e}"),
            })
        };
        let recipe = read(&recipe_path)?;
        let weights = read(&weights_path)?;
        Self::from_bytes(&recipe, &weights).map_err(|e| ModelError::Weights {
            path: weights_path,
            problem: e.to_string(),
        })
    }

    /// The model shipped with this build.
    pub fn shipped(method: Method) -> Result<Self, ModelError> {
        let (_, recipe, weights) = SHIPPED
            .iter()
            .find(|(m, _, _)| *m == method)
            .expect("both methods are shipped");
        Self::from_bytes(recipe.as_bytes(), weights).map_err(|e| ModelError::Weights {
            path: PathBuf::from(format!("weights/{}.safetensors (embedded)", method.name())),
            problem: e.to_string(),
        })
    }

    pub fn from_bytes(recipe_json: &[u8], weights: &[u8]) -> Result<Self, ModelError> {
        let recipe: Recipe = serde_json::from_slice(recipe_json)
            .map_err(|e| ModelError::Input(format!("recipe: {e}")))?;
        let dev = Device::Cpu;
        let mut all = candle_core::safetensors::load_buffer(weights, &dev)?;
        let mut part = |prefix: &str| -> Result<UNet3d, ModelError> {
            let keys: Vec<String> = all
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            let sub: std::collections::HashMap<String, Tensor> = keys
                .into_iter()
                .filter_map(|k| all.remove(&k).map(|t| (k[prefix.len()..].to_string(), t)))
                .collect();
            Ok(UNet3d::from_tensors(&recipe.channels, sub)?)
        };
        let coarse = part("coarse.")?;
        let fine = part("fine.")?;
        Ok(Model {
            recipe,
            coarse,
            fine,
        })
    }

    /// Save as `<dir>/<method>.safetensors` + `<method>.recipe.json`.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let name = self.recipe.method.name();
        let mut all = self.coarse.named_tensors("coarse.");
        all.extend(self.fine.named_tensors("fine."));
        let weights = dir.join(format!("{name}.safetensors"));
        crate::io::durable::replace_with(&weights, |tmp| {
            candle_core::safetensors::save(&all, tmp).map_err(std::io::Error::other)
        })
        .map_err(|e| ModelError::Weights {
            path: weights.clone(),
            problem: e.to_string(),
        })?;
        let json = serde_json::to_string_pretty(&self.recipe).expect("a recipe serialises");
        crate::io::durable::write_atomic(&dir.join(format!("{name}.recipe.json")), json.as_bytes())
            .map_err(|e| ModelError::Weights {
                path: dir.to_path_buf(),
                problem: e.to_string(),
            })
    }

    /// Run one network on values of a grid: sigmoid of the logits.
    fn infer(&self, net: &UNet3d, values: Vec<f32>, grid: &Grid) -> Result<Vec<f32>, ModelError> {
        let [nx, ny, nz] = grid.dims;
        let x = Tensor::from_vec(values, (1, 1, nz, ny, nx), &Device::Cpu)?;
        let y = candle_nn::ops::sigmoid(&net.forward(&x)?)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Resample `volume` onto `stage`'s grid centred at `at.0` and turned by `at.1` (a pose),
    /// normalise and run `net`.
    fn stage_output(
        &self,
        (stage, net): (&super::preprocess::Stage, &UNet3d),
        volume: &Volume,
        norm: &Normalizer,
        at: (DVec3, DMat3),
        timing: &mut Timing,
    ) -> Result<(Grid, Vec<f32>), ModelError> {
        let t = Instant::now();
        let grid = posed(network_grid(stage, at.0), at.0, at.1);
        let values = norm.sample(volume, &grid);
        timing.resample += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let out = self.infer(net, values, &grid)?;
        timing.network += t.elapsed().as_secs_f64();
        Ok((grid, out))
    }

    /// Find the heart in `volume`. `norm`: the volume's intensity normalisation, computed once
    /// and shared by both methods (`None`: computed here).
    pub fn locate(&self, volume: &Volume, norm: Option<Normalizer>) -> Result<Finding, ModelError> {
        let r = &self.recipe;
        let mut timing = Timing::default();
        let t = Instant::now();
        let norm = match norm {
            Some(n) => n,
            None => Normalizer::of(volume, r.clip_percentiles).map_err(ModelError::Input)?,
        };
        timing.normalise += t.elapsed().as_secs_f64();
        let look = self.coarse_look(volume, &norm, DMat3::IDENTITY, &mut timing)?;
        self.locate_posed(volume, &norm, look, timing)
    }

    /// The fine stage after a coarse look: the crop at the look's centre, in its pose.
    pub fn locate_posed(
        &self,
        volume: &Volume,
        norm: &Normalizer,
        look: Look,
        timing: Timing,
    ) -> Result<Finding, ModelError> {
        let offset = look.pose * DVec3::from_array(self.recipe.coarse_offset_lps_mm);
        let centre = look.center_lps + offset;
        let mut f = self.locate_fine_at(volume, norm, centre, look.pose, timing)?;
        f.coarse_score = look.score;
        Ok(f)
    }

    /// The coarse stage on the whole scan, its grid turned by `pose` about the scan's centre:
    /// where it puts the heart and how sure it is.
    pub fn coarse_look(
        &self,
        volume: &Volume,
        norm: &Normalizer,
        pose: DMat3,
        timing: &mut Timing,
    ) -> Result<Look, ModelError> {
        let r = &self.recipe;
        let (cgrid, cmap) = self.stage_output(
            (&r.coarse, &self.coarse),
            volume,
            norm,
            (scan_center(volume), pose),
            timing,
        )?;
        let t = Instant::now();
        let look = match r.method {
            Method::Segmentation => largest_component(&cgrid, &cmap, r.threshold)
                .map(|c| (c.center_lps, c.mean_probability))
                .or_else(|| decode_peak(&cgrid, &cmap).map(|p| (p.center_lps, 0.0))),
            Method::Heatmap => {
                decode_peak(&cgrid, &cmap).map(|p| (p.center_lps, f64::from(p.confidence)))
            }
        }
        .map(|(center_lps, score)| Look {
            pose,
            center_lps,
            score,
        })
        .ok_or_else(|| ModelError::Input("the coarse stage's output is not finite".into()))?;
        timing.post += t.elapsed().as_secs_f64();
        Ok(look)
    }

    /// The fine stage alone, on a crop centred at `centre` (LPS mm): what `locate` does after
    /// its coarse stage (also used to measure how much the answer follows the crop). `timing`:
    /// the seconds spent so far, added to.
    pub fn locate_fine_at(
        &self,
        volume: &Volume,
        norm: &Normalizer,
        centre: DVec3,
        pose: DMat3,
        mut timing: Timing,
    ) -> Result<Finding, ModelError> {
        let r = &self.recipe;
        let (grid, mut map) = self.stage_output(
            (&r.fine, &self.fine),
            volume,
            norm,
            (centre, pose),
            &mut timing,
        )?;
        let t = Instant::now();
        let mut finding = match r.method {
            Method::Segmentation => {
                let Some(c) = largest_component(&grid, &map, r.threshold) else {
                    return Err(ModelError::Input(format!(
                        "no heart found: no voxel above {} in the crop at {:.0?} mm",
                        r.threshold,
                        centre.to_array()
                    )));
                };
                for (v, keep) in map.iter_mut().zip(&c.members) {
                    if !keep {
                        *v = 0.0;
                    }
                }
                let truncated =
                    cut_faces(&volume.grid, &grid, &map, r.threshold, r.fine.spacing_mm);
                Finding {
                    method: r.method,
                    center_lps: c.center_lps,
                    confidence: c.mean_probability,
                    bbox_lps: Some((c.lo, c.hi)),
                    volume_ml: Some(c.voxels as f64 * r.fine.spacing_mm.powi(3) / 1000.0),
                    grid,
                    map,
                    threshold: r.threshold,
                    timing,
                    coarse_center_lps: centre,
                    pose,
                    coarse_score: f64::NAN,
                    truncated,
                    doubts: Vec::new(),
                    landmark: None,
                }
            }
            Method::Heatmap => {
                let peak = decode_peak(&grid, &map)
                    .ok_or_else(|| ModelError::Input("the heatmap is not finite".into()))?;
                Finding {
                    method: r.method,
                    center_lps: peak.center_lps,
                    confidence: f64::from(peak.confidence),
                    bbox_lps: None,
                    volume_ml: None,
                    grid,
                    map,
                    threshold: r.threshold,
                    timing,
                    coarse_center_lps: centre,
                    pose,
                    coarse_score: f64::NAN,
                    truncated: Vec::new(),
                    doubts: Vec::new(),
                    landmark: r.landmark.clone(),
                }
            }
        };
        finding.doubts = own_doubts(&finding);
        finding.timing.post += t.elapsed().as_secs_f64();
        Ok(finding)
    }
}

/// The models of `methods`: from `dir` (`<method>.safetensors` + recipe) or the shipped ones.
pub fn load_models(methods: &[Method], dir: Option<&Path>) -> Result<Vec<Model>, ModelError> {
    methods
        .iter()
        .map(|&m| match dir {
            Some(d) => Model::load(d, m),
            None => Model::shipped(m),
        })
        .collect()
}

/// Run each model on `volume`, sharing one intensity normalisation (each method is charged it,
/// as if it ran alone); where the answers look doubtful, search the scan's pose
/// (`pose::search_pose`) and keep what it finds if that is more believable. `proceed(step)`
/// is asked before each step; when it says no the run stops with [`ModelError::Cancelled`].
/// A failing method does not stop the others.
pub fn locate_all(
    models: &[Model],
    volume: &Volume,
    mut proceed: impl FnMut(Step) -> bool,
) -> Result<Vec<Result<Finding, ModelError>>, ModelError> {
    let Some(first) = models.first() else {
        return Ok(Vec::new());
    };
    let clip = first.recipe.clip_percentiles;
    let t = Instant::now();
    let norm = Normalizer::of(volume, clip).map_err(ModelError::Input)?;
    let norm_seconds = t.elapsed().as_secs_f64();
    let mut out = Vec::with_capacity(models.len());
    for (i, model) in models.iter().enumerate() {
        if !proceed(Step::Method(i)) {
            return Err(ModelError::Cancelled);
        }
        let shared = (model.recipe.clip_percentiles == clip).then_some(norm);
        out.push(model.locate(volume, shared).map(|mut f| {
            if shared.is_some() {
                f.timing.normalise += norm_seconds;
            }
            f
        }));
    }
    assess(&mut out);
    if models.iter().all(|m| m.recipe.clip_percentiles == clip) {
        search_pose(models, volume, &norm, &mut out, &mut proceed)?;
        assess(&mut out);
    }
    Ok(out)
}

/// Dice overlap of two masks given voxel by voxel (1 when both are empty).
pub fn dice(a: impl Iterator<Item = bool>, b: impl Iterator<Item = bool>) -> f64 {
    let (mut both, mut sum) = (0u64, 0u64);
    for (x, y) in a.zip(b) {
        both += u64::from(x && y);
        sum += u64::from(x) + u64::from(y);
    }
    if sum == 0 {
        1.0
    } else {
        2.0 * both as f64 / sum as f64
    }
}

/// The largest 6-connected component above a threshold.
pub struct Component {
    pub members: Vec<bool>,
    pub voxels: usize,
    /// Probability-weighted centre of mass (LPS mm).
    pub center_lps: DVec3,
    pub lo: DVec3,
    pub hi: DVec3,
    pub mean_probability: f64,
}

pub fn largest_component(grid: &Grid, probs: &[f32], threshold: f64) -> Option<Component> {
    let on: Vec<bool> = probs.iter().map(|&p| f64::from(p) > threshold).collect();
    let mut label = vec![0u32; on.len()];
    let mut best: (u32, usize) = (0, 0);
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..on.len() {
        if !on[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(idx) = stack.pop() {
            size += 1;
            for n in face_neighbours(grid.dims, idx) {
                if on[n] && label[n] == 0 {
                    label[n] = next;
                    stack.push(n);
                }
            }
        }
        if size > best.1 {
            best = (next, size);
        }
    }
    if best.1 == 0 {
        return None;
    }
    let members: Vec<bool> = label.iter().map(|&l| l == best.0).collect();
    let (mut sum, mut weight, mut lo, mut hi) = (
        DVec3::ZERO,
        0.0,
        DVec3::splat(f64::INFINITY),
        DVec3::splat(f64::NEG_INFINITY),
    );
    for (idx, _) in members.iter().enumerate().filter(|(_, m)| **m) {
        let p = grid.world_from_flat(idx);
        let w = f64::from(probs[idx]);
        sum += p * w;
        weight += w;
        lo = lo.min(p);
        hi = hi.max(p);
    }
    Some(Component {
        members,
        voxels: best.1,
        center_lps: sum / weight,
        lo,
        hi,
        mean_probability: weight / best.1 as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DMat4;

    #[test]
    fn dice_counts_overlap() {
        let a = [true, true, false, false];
        let b = [true, false, true, false];
        assert!((dice(a.into_iter(), b.into_iter()) - 0.5).abs() < 1e-12);
        assert_eq!(dice([false].into_iter(), [false].into_iter()), 1.0);
    }

    #[test]
    fn flat_positions_map_to_the_same_world_points_as_indices() {
        let grid = Grid::new([3, 4, 5], DMat4::from_scale(DVec3::new(1.0, 2.0, 3.0)));
        let idx = 2 + 3 * (1 + 4 * 4);
        assert_eq!(grid.world_from_flat(idx), DVec3::new(2.0, 2.0, 12.0));
        assert_eq!(crate::volume::ijk_of(grid.dims, idx), [2, 1, 4]);
    }

    #[test]
    fn largest_component_wins_and_is_measured() {
        let grid = Grid::new([10, 10, 10], DMat4::from_scale(DVec3::splat(2.0)));
        let mut p = vec![0.0f32; 1000];
        let at = |i: usize, j: usize, k: usize| i + 10 * (j + 10 * k);
        // A 3×3×3 block at (2..5) and a single voxel far away.
        for k in 2..5 {
            for j in 2..5 {
                for i in 2..5 {
                    p[at(i, j, k)] = 0.9;
                }
            }
        }
        p[at(8, 8, 8)] = 1.0;
        let c = largest_component(&grid, &p, 0.5).unwrap();
        assert_eq!(c.voxels, 27);
        assert!(c.center_lps.distance(DVec3::splat(6.0)) < 1e-9);
        assert_eq!((c.lo, c.hi), (DVec3::splat(4.0), DVec3::splat(8.0)));
        assert!(!c.members[at(8, 8, 8)]);
        assert!((c.mean_probability - 0.9).abs() < 1e-6);
        assert!(largest_component(&grid, &[0.1; 1000], 0.5).is_none());
    }
}
