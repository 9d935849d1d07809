//! `heartloc info`: what a volume file really says, as text or one JSON object.

use serde::Serialize;

use crate::io::Format;
use crate::volume::Volume;

/// Everything `heartloc info` reports about one input.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub input: String,
    pub format: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    /// Letters each voxel axis (i, j, k) points toward, e.g. "LPS".
    pub orientation: String,
    /// Row-major 4×4, voxel index → LPS mm.
    pub world_from_voxel_lps: [f64; 16],
    pub world_bbox_lps_min_mm: [f64; 3],
    pub world_bbox_lps_max_mm: [f64; 3],
    pub voxel_type: String,
    /// Which phase (1-based) of how many, for cine DICOM and 4D NIfTI (1 of 1 otherwise).
    pub phase: usize,
    pub phases: usize,
    /// Time between phases as acquired (DICOM TriggerTime steps, a NIfTI time step with a
    /// unit); `null` where the file does not say.
    pub phase_interval_ms: Option<f64>,
    pub intensity_min: f32,
    pub intensity_max: f32,
    pub intensity_p1: f32,
    pub intensity_p99: f32,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn new(input: &str, format: Format, vol: &Volume) -> Self {
        let (lo, hi) = vol.grid.world_bbox();
        let (min, max) = vol.intensity_range();
        let p = vol.percentiles(&[1.0, 99.0]);
        Report {
            input: input.to_string(),
            format: format.name().to_string(),
            dims: vol.dims(),
            spacing_mm: vol.spacing_mm().map(round6),
            orientation: vol.grid.orientation_code(),
            world_from_voxel_lps: vol
                .world_from_voxel()
                .transpose()
                .to_cols_array()
                .map(round6),
            world_bbox_lps_min_mm: lo.to_array().map(round6),
            world_bbox_lps_max_mm: hi.to_array().map(round6),
            voxel_type: vol.voxels.type_name().to_string(),
            phase: vol.phase.index() + 1,
            phases: vol.phase.count(),
            phase_interval_ms: vol.phase.interval_ms(),
            intensity_min: min,
            intensity_max: max,
            intensity_p1: p[0],
            intensity_p99: p[1],
            warnings: vol.warnings.clone(),
        }
    }

    /// Human-readable lines.
    pub fn to_text(&self) -> String {
        let m = &self.world_from_voxel_lps;
        let v3 = |v: &[f64]| format!("[{:.2}, {:.2}, {:.2}]", v[0], v[1], v[2]);
        let mut s = format!(
            "{}\n  format        {}\n  dims          {} × {} × {} ({})\n  spacing       {:.4} × {:.4} × {:.4} mm\n  \
             orientation   {} (voxel axes i, j, k point toward these patient directions)\n  \
             world box     {} .. {} mm (LPS, voxel centres)\n  intensity     {} .. {} (p1 {}, p99 {})\n  \
             world_from_voxel (LPS mm)\n",
            self.input,
            self.format,
            self.dims[0],
            self.dims[1],
            self.dims[2],
            self.voxel_type,
            self.spacing_mm[0],
            self.spacing_mm[1],
            self.spacing_mm[2],
            self.orientation,
            v3(&self.world_bbox_lps_min_mm),
            v3(&self.world_bbox_lps_max_mm),
            self.intensity_min,
            self.intensity_max,
            self.intensity_p1,
            self.intensity_p99,
        );
        for r in 0..3 {
            s += &format!(
                "    [{:10.4} {:10.4} {:10.4} {:10.4}]\n",
                m[4 * r],
                m[4 * r + 1],
                m[4 * r + 2],
                m[4 * r + 3]
            );
        }
        if self.phases > 1 {
            s += &format!("  phase         {} of {}", self.phase, self.phases);
            s += &match self.phase_interval_ms {
                Some(ms) => format!(", {ms:.1} ms apart ({:.1} phases/s)\n", 1e3 / ms),
                None => " (the file gives no time between phases)\n".to_string(),
            };
        }
        if self.warnings.is_empty() {
            s += "  warnings      none\n";
        }
        for w in &self.warnings {
            s += &format!("  warning       {w}\n");
        }
        s
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
