//! The series browser: a DICOM folder (a study export, a CD) listed series by series in the
//! background, the likeliest preselected (CT or MR with the most images), one opened by a
//! double click or Open; the folder's series stay one click away (File → Series of this
//! folder) while you work.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};

use eframe::egui;

use super::command::Command;
use super::{HeartlocApp, Source};
use crate::io::dicom::{self, SeriesSummary};

/// The series of one folder, and which one is chosen.
pub struct SeriesBrowser {
    pub folder: PathBuf,
    pub series: Vec<SeriesSummary>,
    /// What the scan skipped (non-image objects, unreadable files).
    pub notes: Vec<String>,
    pub selected: usize,
    pub open: bool,
}

/// A folder's series and the notes on what was skipped, or why it could not be listed.
type Listing = Result<(Vec<SeriesSummary>, Vec<String>), String>;

/// A folder being listed on a background thread.
pub struct PendingListing {
    folder: PathBuf,
    rx: Receiver<Listing>,
}

/// The series most likely wanted: CT or MR before anything else, then the most images.
pub fn likeliest(series: &[SeriesSummary]) -> usize {
    let score = |s: &SeriesSummary| (matches!(s.modality.as_str(), "CT" | "MR"), s.images);
    (0..series.len())
        .max_by_key(|&i| score(&series[i]))
        .unwrap_or(0)
}

impl HeartlocApp {
    /// List the series under `folder` in the background; one series opens at once, several
    /// open the browser.
    pub fn browse_folder(&mut self, folder: PathBuf, ctx: &egui::Context) {
        let (tx, rx) = mpsc::sync_channel(1);
        let (dir, ctx2) = (folder.clone(), ctx.clone());
        std::thread::Builder::new()
            .name("heartloc-series".into())
            .spawn(move || {
                let _ = tx.send(dicom::list_series(&dir).map_err(|e| e.to_string()));
                ctx2.request_repaint();
            })
            .ok();
        self.message = Some(format!("looking for series in {}…", folder.display()));
        self.listing = Some(PendingListing { folder, rx });
    }

    /// Take the listing once it is there.
    pub(super) fn poll_listing(&mut self, ctx: &egui::Context) {
        let Some(p) = &self.listing else { return };
        let Ok(answer) = p.rx.try_recv() else { return };
        let Some(p) = self.listing.take() else { return };
        match answer {
            Ok((series, _)) if series.len() == 1 => {
                self.message = None;
                self.open(Source::Path(p.folder), ctx);
            }
            Ok((series, notes)) => {
                self.message = Some(format!(
                    "{} series in {}: choose one",
                    series.len(),
                    p.folder.display()
                ));
                self.series_browser = Some(SeriesBrowser {
                    selected: likeliest(&series),
                    folder: p.folder,
                    series,
                    notes,
                    open: true,
                });
            }
            Err(e) => self.message = Some(e),
        }
    }

    /// Open series `i` of the browser's folder.
    pub(super) fn open_series(&mut self, i: usize, ctx: &egui::Context) {
        let Some(b) = self.series_browser.as_mut() else {
            return;
        };
        let Some(s) = b.series.get(i) else { return };
        b.selected = i;
        b.open = false;
        let source = Source::Part {
            path: b.folder.clone(),
            series_uid: Some(s.series_uid.clone()),
            phase: 0,
        };
        self.open(source, ctx);
    }
}

/// The browser window while it is open: a row per series (modality, description, date,
/// images, size, spacing, orientation); a click selects, a double click or Open opens.
pub fn series_ui(ctx: &egui::Context, browser: Option<&SeriesBrowser>) -> Vec<Command> {
    let mut out = Vec::new();
    let Some(b) = browser.filter(|b| b.open) else {
        return out;
    };
    let mut open = true;
    egui::Window::new("Series")
        .open(&mut open)
        .default_width(620.0)
        .show(ctx, |ui| {
            ui.label(format!("{}", b.folder.display()));
            egui::Grid::new("series").striped(true).show(ui, |ui| {
                for h in [
                    "",
                    "modality",
                    "description",
                    "date",
                    "images",
                    "size",
                    "spacing",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                for (i, s) in b.series.iter().enumerate() {
                    let row = ui.selectable_label(b.selected == i, format!("{}", i + 1));
                    if row.double_clicked() {
                        out.push(Command::OpenSeries(i));
                    } else if row.clicked() {
                        out.push(Command::SelectSeries(i));
                    }
                    ui.label(&s.modality);
                    ui.label(&s.description);
                    ui.label(&s.date);
                    ui.label(s.images.to_string());
                    ui.label(format!("{}×{}×{}", s.dims[0], s.dims[1], s.dims[2]));
                    let spacing = match (s.pixel_spacing_mm, s.slice_step_mm) {
                        (Some([a, b]), Some(c)) => format!("{a:.2}×{b:.2}×{c:.2} mm"),
                        (Some([a, b]), None) => format!("{a:.2}×{b:.2} mm"),
                        _ => "–".into(),
                    };
                    ui.label(spacing);
                    ui.end_row();
                }
            });
            for n in &b.notes {
                ui.small(n);
            }
            if ui.button("Open").clicked() {
                out.push(Command::OpenSeries(b.selected));
            }
        });
    if !open {
        out.push(Command::ShowSeries(false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(modality: &str, images: usize) -> SeriesSummary {
        SeriesSummary {
            series_uid: format!("{modality}{images}"),
            study_uid: "1".into(),
            modality: modality.into(),
            description: String::new(),
            date: String::new(),
            images,
            dims: [512, 512, images],
            pixel_spacing_mm: None,
            slice_step_mm: None,
            orientation: None,
            folder: PathBuf::new(),
        }
    }

    #[test]
    fn the_likeliest_series_is_the_ct_or_mr_with_the_most_images() {
        let list = [
            summary("SR", 900),
            summary("CT", 2),
            summary("CT", 300),
            summary("MR", 40),
        ];
        assert_eq!(likeliest(&list), 2);
        assert_eq!(likeliest(&[summary("OT", 3)]), 0);
    }
}
