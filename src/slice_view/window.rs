//! Display windows: low/high in stored values, level/width, the right-drag gesture, presets in
//! Hounsfield units, and the intensity facts (range, percentiles, an air/soft-tissue HU
//! calibration for rescaled CT) that turn a preset into a window for one volume.

use glam::DVec2;

use crate::volume::Volume;

/// A display window in stored values: what maps to black (`low`) and to white (`high`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub low: f64,
    pub high: f64,
}

impl Window {
    pub fn new(low: f64, high: f64) -> Self {
        Window { low, high }
    }

    pub fn from_level_width(level: f64, width: f64) -> Self {
        Window::new(level - width / 2.0, level + width / 2.0)
    }

    pub fn level(self) -> f64 {
        (self.low + self.high) / 2.0
    }

    pub fn width(self) -> f64 {
        self.high - self.low
    }

    /// The window after a right-button drag of `delta_px`: up brightens (level falls by half
    /// a percent of the width per pixel), right widens (exponentially, never below 1e-3).
    pub fn dragged(self, delta_px: DVec2) -> Self {
        let span = self.width().abs().max(1e-3);
        let level = self.level() - delta_px.y * span * 0.005;
        let width = (span * (delta_px.x * 0.005).exp()).max(1e-3);
        Window::from_level_width(level, width)
    }
}

/// Window/level presets. CT presets are defined in Hounsfield units and go through a
/// calibration when the data is not HU (see [`Intensity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowPreset {
    Auto,
    Mediastinum,
    Lung,
    Bone,
    Cardiac,
}

/// What kind of scan a volume is, for its window and DVR presets: the DICOM Modality where
/// there is one, else a guess (NIfTI has no such field): values below −500 are HU, so CT; a
/// stack of few (< 32) or thick, anisotropic slices is a cardiac MR; else a scan whose air and
/// soft-tissue peaks calibrate it to HU is a (rescaled) CT, and anything else MR.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Modality {
    Ct,
    Mr,
    Other,
}

impl Modality {
    /// From a DICOM Modality value, or (`None`: a NIfTI file) guessed from the grid and the
    /// intensities; the flag says it was guessed.
    pub fn of(
        dicom_modality: Option<&str>,
        grid: &crate::volume::Grid,
        intensity: &Intensity,
    ) -> (Modality, bool) {
        match dicom_modality.map(str::trim) {
            Some("CT") => return (Modality::Ct, false),
            Some("MR") => return (Modality::Mr, false),
            Some(_) => return (Modality::Other, false),
            None => {}
        }
        let [sx, sy, sz] = grid.spacing_mm();
        let slices = grid.dims[2];
        let thick = sz >= 5.0 && sz > 2.5 * sx.max(sy);
        let guess = if intensity.min < -500.0 {
            Modality::Ct
        } else if slices < 32 || thick {
            Modality::Mr
        } else if intensity.hu_from_value.is_some() {
            Modality::Ct
        } else {
            Modality::Mr
        };
        (guess, true)
    }

    pub fn name(self) -> &'static str {
        match self {
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Other => "other",
        }
    }
}

impl WindowPreset {
    /// Whether the preset is a CT window in HU (never applied to an MR).
    pub fn is_ct(self) -> bool {
        self != WindowPreset::Auto
    }

    pub const ALL: [WindowPreset; 5] = [
        WindowPreset::Auto,
        WindowPreset::Mediastinum,
        WindowPreset::Lung,
        WindowPreset::Bone,
        WindowPreset::Cardiac,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WindowPreset::Auto => "Auto",
            WindowPreset::Mediastinum => "Mediastinum",
            WindowPreset::Lung => "Lung",
            WindowPreset::Bone => "Bone",
            WindowPreset::Cardiac => "Cardiac",
        }
    }

    /// (level, width) in HU; `None` for Auto.
    fn hu(self) -> Option<(f64, f64)> {
        match self {
            WindowPreset::Auto => None,
            WindowPreset::Mediastinum => Some((40.0, 400.0)),
            WindowPreset::Lung => Some((-600.0, 1500.0)),
            WindowPreset::Bone => Some((400.0, 1800.0)),
            WindowPreset::Cardiac => Some((150.0, 600.0)),
        }
    }
}

/// Intensity facts a viewer needs: range, robust percentiles and, for CT-like data, how stored
/// values map to HU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intensity {
    pub min: f64,
    pub max: f64,
    pub p1: f64,
    pub p99_5: f64,
    /// `hu = value * scale + offset`. Identity for HU data; estimated from the air and
    /// soft-tissue histogram peaks for rescaled CT (SegTHOR is 0..255); `None` when no such
    /// peaks exist (MR), where CT presets fall back to percentiles.
    pub hu_from_value: Option<(f64, f64)>,
}

impl Intensity {
    /// The window from `lo_hu` to `hu_hi` HU in stored values, where the HU scale is known.
    pub fn window_hu(&self, lo_hu: f64, hi_hu: f64) -> Option<Window> {
        let (scale, offset) = self.hu_from_value.filter(|(s, _)| *s > 1e-12)?;
        Some(Window::new(
            (lo_hu - offset) / scale,
            (hi_hu - offset) / scale,
        ))
    }

    pub fn of(volume: &Volume) -> Self {
        let (min, max) = volume.intensity_range();
        let p = volume.percentiles(&[1.0, 99.5]);
        let (min, max) = (f64::from(min), f64::from(max));
        let (p1, p99_5) = (f64::from(p[0]), f64::from(p[1]));
        let hu_from_value = if min <= -900.0 && max >= 100.0 {
            Some((1.0, 0.0))
        } else {
            air_tissue_calibration(volume, min, max, p99_5)
        };
        Intensity {
            min,
            max,
            p1,
            p99_5,
            hu_from_value,
        }
    }

    /// The window of a preset, in stored values.
    pub fn window(&self, preset: WindowPreset) -> Window {
        match (preset.hu(), self.hu_from_value) {
            (Some((level, width)), Some((scale, offset))) if scale.abs() > 1e-12 => {
                let hu = Window::from_level_width(level, width);
                let to_value = |hu: f64| (hu - offset) / scale;
                Window::new(to_value(hu.low), to_value(hu.high))
            }
            _ => Window::new(self.p1, self.p99_5.max(self.p1 + 1e-6)),
        }
    }
}

/// For CT stored in arbitrary linear units (SegTHOR was min-max scaled to 0..255 per volume):
/// map the air peak (the strongest low mode) to -1000 HU and the soft-tissue peak (the
/// highest-valued histogram peak holding at least 1% of voxels, below the 99.5th percentile) to
/// +40 HU. `None` when the histogram has no such pair of peaks (MR).
fn air_tissue_calibration(volume: &Volume, min: f64, max: f64, p995: f64) -> Option<(f64, f64)> {
    const BINS: usize = 512;
    if max <= min {
        return None;
    }
    let integral = !matches!(volume.voxels, crate::volume::Voxels::F32(_));
    // One bin per stored value for integer data with a small range, else 512 bins.
    let bins = if integral && max - min < BINS as f64 {
        (max - min) as usize + 1
    } else {
        BINS
    };
    let scale = (bins - 1) as f64 / (max - min);
    let mut hist = vec![0u64; bins];
    for i in 0..volume.voxels.len() {
        let b = ((f64::from(volume.voxels.get(i)) - min) * scale).round() as usize;
        hist[b.min(bins - 1)] += 1;
    }
    let total: u64 = hist.iter().sum();
    let smooth: Vec<u64> = (0..bins)
        .map(|b| hist[b.saturating_sub(1)] + hist[b] + hist[(b + 1).min(bins - 1)])
        .collect();
    let value = |b: usize| min + b as f64 / scale;
    let air = (0..bins / 4).max_by_key(|&b| smooth[b])?;
    let last = (((p995 - min) * scale) as usize).min(bins - 1);
    let is_peak = |b: usize| {
        b > air + 1
            && smooth[b] >= smooth[b - 1]
            && smooth[b] >= smooth[(b + 1).min(bins - 1)]
            && hist[b] * 100 >= total
    };
    let tissue = (air + 2..=last).rev().find(|&b| is_peak(b))?;
    if hist[air] * 20 < total {
        return None;
    }
    let (va, vt) = (value(air), value(tissue));
    let s = 1040.0 / (vt - va);
    Some((s, -1000.0 - va * s))
}
