//! The volume on screen: what was opened ([`Source`]), where it came from ([`Origin`]), what was
//! derived from it once (intensity facts, the GPU texture), and the background loader that
//! answers over a channel tagged with a request id, so a stale answer is dropped.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use eframe::egui;
use glam::DVec3;

use crate::io::{self, OpenOptions};
use crate::render::GpuVolume;
use crate::slice_view::{Intensity, Modality};
use crate::volume::Volume;

/// What to open.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The real chest CT built into the binary (no expert label).
    Demo,
    /// The synthetic phantom made in code (its heart centre known).
    Phantom,
    Path(PathBuf),
    /// One series of a DICOM folder (`None`: the folder's only one) and one phase (0-based) of
    /// a time series (cine DICOM, 4D NIfTI).
    Part {
        path: PathBuf,
        series_uid: Option<String>,
        phase: usize,
    },
}

/// Where an open volume came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// The built-in real CT: no expert label exists for it.
    Demo,
    /// The synthetic phantom, whose true heart centre is known (LPS mm).
    Phantom {
        heart_center_lps: DVec3,
    },
    File {
        path: PathBuf,
        format: io::Format,
    },
}

/// The volume on screen and what was derived from it once.
pub struct Document {
    pub name: String,
    pub origin: Origin,
    pub volume: Arc<Volume>,
    pub gpu: Arc<GpuVolume>,
    pub intensity: Intensity,
}

impl Document {
    /// The file or folder it was read from (`None` for the built-in demos).
    pub fn source(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File { path, .. } => Some(path),
            Origin::Demo | Origin::Phantom { .. } => None,
        }
    }

    /// The demo phantom's true heart centre, to show how far the models are from it.
    pub fn truth(&self) -> Option<DVec3> {
        match self.origin {
            Origin::Phantom { heart_center_lps } => Some(heart_center_lps),
            Origin::Demo | Origin::File { .. } => None,
        }
    }

    /// CT, MR or other, and whether that was guessed (NIfTI has no Modality field).
    pub fn modality(&self) -> (Modality, bool) {
        if !matches!(self.origin, Origin::File { .. }) {
            return (Modality::Ct, false); // both built-in scans are CT
        }
        let dicom = self.volume.series.as_ref().map(|s| s.modality.as_str());
        Modality::of(dicom, &self.volume.grid, &self.intensity)
    }

    pub fn format_name(&self) -> &'static str {
        match &self.origin {
            Origin::Demo => "NIfTI-1 (built in)",
            Origin::Phantom { .. } => "phantom",
            Origin::File { format, .. } => format.name(),
        }
    }

    /// The default isosurface level: bone/contrast for CT-like data, else the upper part of
    /// the robust range.
    pub fn default_iso(&self) -> f64 {
        let i = &self.intensity;
        match i.hu_from_value {
            Some((s, o)) if s.abs() > 1e-12 => (200.0 - o) / s,
            _ => i.p1 + (i.p99_5 - i.p1) * 0.6,
        }
    }
}

/// A file or folder (one series and phase of it), its name and origin.
fn open_file(path: PathBuf, options: OpenOptions) -> Result<(Volume, String, Origin), String> {
    let (v, format) = io::open(&path, &options).map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string());
    Ok((v, name, Origin::File { path, format }))
}

fn load(id: u64, source: Source, max_dim: u32) -> Result<Document, String> {
    let (volume, name, origin) = match source {
        Source::Demo => {
            let v = io::demo::chest_ct().map_err(|e| e.to_string())?;
            (v, io::demo::NAME.to_string(), Origin::Demo)
        }
        Source::Phantom => {
            let (v, t) = crate::phantom::chest_ct([176, 144, 128], 2.5);
            let origin = Origin::Phantom {
                heart_center_lps: t.heart_center_lps_mm,
            };
            (v, "Demo phantom (synthetic)".to_string(), origin)
        }
        Source::Path(path) => open_file(path, OpenOptions::default())?,
        Source::Part {
            path,
            series_uid,
            phase,
        } => open_file(path, OpenOptions { series_uid, phase })?,
    };
    let intensity = Intensity::of(&volume);
    let gpu = GpuVolume::new(id, &volume, max_dim);
    Ok(Document {
        name,
        origin,
        volume: Arc::new(volume),
        gpu: Arc::new(gpu),
        intensity,
    })
}

struct Pending {
    id: u64,
    what: String,
    rx: Receiver<Result<Document, String>>,
}

/// Opens files on a background thread, one request at a time: a newer request replaces the
/// older, whose answer is then dropped.
pub struct Loader {
    pending: Option<Pending>,
    next_id: u64,
    max_texture_dim: u32,
}

impl Loader {
    pub fn new(max_texture_dim: u32) -> Self {
        Loader {
            pending: None,
            next_id: 1,
            max_texture_dim,
        }
    }

    /// Start loading `source`; the context is repainted when the answer is there.
    pub fn start(&mut self, source: Source, ctx: &egui::Context) {
        let id = self.next_id;
        self.next_id += 1;
        let what = match &source {
            Source::Demo => "the demo CT".to_string(),
            Source::Phantom => "the synthetic phantom".to_string(),
            Source::Path(p) => p.display().to_string(),
            Source::Part { path, phase, .. } => {
                format!("phase {} of {}", phase + 1, path.display())
            }
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let ctx = ctx.clone();
        let max_dim = self.max_texture_dim;
        std::thread::Builder::new()
            .name("heartloc-open".into())
            .spawn(move || {
                let _ = tx.send(load(id, source, max_dim));
                ctx.request_repaint();
            })
            .ok();
        self.pending = Some(Pending { id, what, rx });
    }

    /// What is loading, if anything.
    pub fn loading(&self) -> Option<&str> {
        self.pending.as_ref().map(|p| p.what.as_str())
    }

    /// The answer of the current request, once it is there.
    pub fn poll(&mut self) -> Option<Result<Document, String>> {
        let p = self.pending.as_ref()?;
        let result = p.rx.try_recv().ok()?;
        let id = p.id;
        self.pending = None;
        match result {
            Ok(doc) if doc.gpu.id != id => None, // stale: a newer request replaced it
            other => Some(other),
        }
    }
}
