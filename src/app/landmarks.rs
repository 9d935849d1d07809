//! Landmarks in the app: where a volume's landmarks are read from and saved to, the state of
//! placing and dragging, the landmark panel (which returns commands), the edits those commands
//! make, the markers drawn on the slices and in 3D, and the autosave after every change.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32, Stroke, Vec2};
use glam::DVec3;

use super::command::Command;
use super::panes::{SliceFrame, VolumeFrame};
use crate::annotation::{Annotation, LandmarkSet, Status};
use crate::io::markups;
use crate::slice_view::Nearness;
use crate::volume::Volume;
use crate::worklist::Worklist;

/// Where the landmarks of the open volume come from and are saved to.
#[derive(Clone, Debug, PartialEq)]
pub enum LandmarkTarget {
    /// Not saved (the demo).
    None,
    /// A markups file (`view --landmarks`, or `<image>.mrk.json` beside an opened file).
    File(PathBuf),
    /// Case `i` of the open worklist.
    Case(usize),
}

/// Where the landmarks of a volume still loading will go.
#[derive(Clone, Debug, PartialEq)]
pub enum PendingLandmarks {
    Known(LandmarkTarget),
    /// Not beside the source (a DICOM export, a folder that cannot be written): the per-user
    /// landmarks folder, keyed by the series' UIDs once the volume has loaded
    /// ([`crate::worklist::series_landmarks_path`]).
    PerUser,
}

impl PendingLandmarks {
    /// Where an opened file's landmarks go: beside a NIfTI file in a folder that can be
    /// written; otherwise (a DICOM folder or file, a read-only folder) the per-user folder,
    /// never the source folder.
    pub fn for_path(path: &Path) -> Self {
        let dicom = path.is_dir()
            || crate::io::dicom::bounds::check(path)
                .is_ok_and(|p| p != crate::io::dicom::bounds::Probe::NotDicom);
        let folder = path.parent().filter(|d| !d.as_os_str().is_empty());
        let writable = crate::worklist::folder_is_writable(folder.unwrap_or(Path::new(".")));
        if dicom || !writable {
            PendingLandmarks::PerUser
        } else {
            PendingLandmarks::Known(LandmarkTarget::File(landmarks_beside(path)))
        }
    }

    /// The target once the volume is loaded.
    pub fn resolve(self, volume: &Volume, source: Option<&Path>) -> LandmarkTarget {
        match self {
            PendingLandmarks::Known(t) => t,
            PendingLandmarks::PerUser => LandmarkTarget::File(per_user_landmarks(volume, source)),
        }
    }
}

/// The per-user landmarks file of a loaded volume: by its DICOM study and series UIDs, or for
/// a NIfTI file (in a folder that cannot be written) by its name and a hash of its full path.
fn per_user_landmarks(volume: &Volume, source: Option<&Path>) -> PathBuf {
    match &volume.series {
        Some(ids) => crate::worklist::series_landmarks_path(&ids.study_uid, &ids.series_uid),
        None => {
            let path = source.unwrap_or(Path::new("volume"));
            let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let hash = crate::io::fnv1a(full.to_string_lossy().as_bytes());
            let name = landmarks_beside(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "volume.mrk.json".into());
            crate::worklist::user_landmarks_folder()
                .join("files")
                .join(format!("{hash:016x}-{name}"))
        }
    }
}

/// `<image>.mrk.json` beside an image file (or inside a DICOM folder, for `--landmarks`
/// defaults chosen by the user).
pub fn landmarks_beside(image: &Path) -> PathBuf {
    if image.is_dir() {
        return image.join(crate::worklist::LANDMARKS_FILE);
    }
    image.with_file_name(format!("{}.mrk.json", crate::io::nifti::stem(image)))
}

/// What a left click or drag did to the landmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pointer {
    /// A grabbed landmark moved.
    Dragged,
    /// The armed slot was placed.
    Placed,
    /// Armed, waiting for a click (a drag does nothing).
    Waiting,
    /// Nothing of the landmarks: the crosshair moves.
    Free,
}

/// An edit or mode change of the landmarks, made by a key or the panel.
#[derive(Clone, Debug, PartialEq)]
pub enum LandmarkEdit {
    /// Make a slot the active one.
    Select(String),
    /// Make slot `n` (0-based) active and arm it for placing.
    Arm(usize),
    ToggleArmed,
    Skip,
    Delete,
    SetNote(String),
    /// Put the active slot at this LPS point (typed coordinates).
    SetPosition(DVec3),
    AddSlot(String),
    Undo,
    Redo,
    /// Cancel a drag (back to where it started) or placing.
    Cancel,
    ToggleShown,
    /// Lock the active slot, or unlock it.
    ToggleLock,
}

/// Landmarks of the open volume and the state of editing them.
pub struct LandmarksState {
    /// The landmarks, with undo/redo.
    pub annotation: Annotation,
    /// The slot that keys, Delete and placing act on.
    pub active_slot: String,
    /// The next left click in a slice places the active slot.
    pub armed: bool,
    pub shown: bool,
    pub target: LandmarkTarget,
    /// Landmark being dragged and the set before the drag (for one undo step or Escape).
    drag: Option<(String, LandmarkSet)>,
    saved_revision: u64,
    /// Why the last edit did nothing (a locked landmark), for the status bar.
    pub notice: Option<String>,
}

impl Default for LandmarksState {
    fn default() -> Self {
        LandmarksState {
            annotation: Annotation::default(),
            active_slot: crate::annotation::DEFAULT_SLOTS[0].to_string(),
            armed: false,
            shown: true,
            target: LandmarkTarget::None,
            drag: None,
            saved_revision: 0,
            notice: None,
        }
    }
}

impl LandmarksState {
    /// Start over with the landmarks of a newly shown volume (`Err`: they could not be read,
    /// so nothing will be saved over them).
    pub fn reset(
        &mut self,
        loaded: Result<(LandmarkSet, LandmarkTarget), String>,
    ) -> Option<String> {
        let message = match loaded {
            Ok((set, target)) => {
                self.annotation = Annotation::new(set);
                self.target = target;
                None
            }
            Err(e) => {
                self.annotation = Annotation::default();
                self.target = LandmarkTarget::None;
                Some(format!("landmarks not loaded, not saving: {e}"))
            }
        };
        self.saved_revision = self.annotation.revision;
        self.drag = None;
        self.armed = false;
        message
    }

    pub fn apply(&mut self, edit: LandmarkEdit) {
        let slot = self.active_slot.clone();
        match edit {
            LandmarkEdit::Select(name) => self.active_slot = name,
            LandmarkEdit::Arm(n) => {
                if let Some(l) = self.annotation.set.landmarks.get(n) {
                    self.active_slot = l.name.clone();
                    self.armed = true;
                }
            }
            LandmarkEdit::ToggleArmed => self.armed = !self.armed,
            // The annotation refuses these for a locked slot; here the user is told why.
            LandmarkEdit::Skip | LandmarkEdit::Delete | LandmarkEdit::SetPosition(_)
                if self.refused(&slot) => {}
            LandmarkEdit::Skip => self.annotation.skip(&slot),
            LandmarkEdit::Delete => self.annotation.delete(&slot),
            LandmarkEdit::SetNote(note) => self.annotation.set_note(&slot, &note),
            LandmarkEdit::SetPosition(p) => self.annotation.place(&slot, p),
            LandmarkEdit::ToggleLock => {
                let locked = self.annotation.set.is_locked(&slot);
                self.annotation.set_locked(&slot, !locked);
            }
            LandmarkEdit::AddSlot(name) => {
                self.annotation.add_slot(&name);
                self.active_slot = name;
            }
            LandmarkEdit::Undo => self.annotation.undo(),
            LandmarkEdit::Redo => self.annotation.redo(),
            LandmarkEdit::Cancel => {
                if let Some((_, before)) = self.drag.take() {
                    self.annotation.finish_drag(before, true);
                }
                self.armed = false;
            }
            LandmarkEdit::ToggleShown => self.shown = !self.shown,
        }
    }

    /// True (and a notice set) when `slot` is locked: the edit asked for is not made.
    fn refused(&mut self, slot: &str) -> bool {
        let locked = self.annotation.set.is_locked(slot);
        if locked {
            self.notice = Some(format!("{slot} is locked: unlock it to change it"));
        }
        locked
    }

    /// Put the active slot at `at` (an ordinary, undoable edit).
    pub fn place_active(&mut self, at: DVec3) {
        let slot = self.active_slot.clone();
        if !self.refused(&slot) {
            self.annotation.place(&slot, at);
        }
        self.armed = false;
    }

    /// A left press at `frame` point `pos`: grab the defined landmark drawn within 8 points.
    pub fn press(&mut self, frame: &SliceFrame, pos: egui::Pos2) {
        let on_slice = self
            .annotation
            .set
            .defined()
            .filter(|(_, p)| frame.nearness(*p) == Nearness::On)
            .map(|(name, p)| (name, super::panes::to_d(frame.screen(p).to_vec2())));
        let hit = crate::slice_view::hit_test(on_slice, super::panes::to_d(pos.to_vec2()), 8.0);
        if let Some(name) = hit.map(str::to_string) {
            if !self.refused(&name) {
                self.drag = Some((name.clone(), self.annotation.set.clone()));
            }
            self.active_slot = name;
        }
    }

    /// A left click or drag at world point `world`: moves a grabbed landmark, or places the
    /// armed slot on a click.
    pub fn pointer(&mut self, world: DVec3, click: bool) -> Pointer {
        if let Some((name, _)) = &self.drag {
            let name = name.clone();
            self.annotation.drag_to(&name, world);
            Pointer::Dragged
        } else if self.armed && click {
            let slot = self.active_slot.clone();
            if self.refused(&slot) {
                // Nothing placed, so the views stay where they are.
                self.armed = false;
                return Pointer::Waiting;
            }
            self.place_active(world);
            Pointer::Placed
        } else if self.armed {
            Pointer::Waiting
        } else {
            Pointer::Free
        }
    }

    /// Move the active landmark by `by` (mm), an undoable edit; its new place, if it is
    /// defined.
    pub fn nudge_active(&mut self, by: DVec3) -> Option<DVec3> {
        let at = self.annotation.set.get(&self.active_slot)?.position_lps()? + by;
        let slot = self.active_slot.clone();
        if self.refused(&slot) {
            return None;
        }
        self.annotation.place(&slot, at);
        Some(at)
    }

    /// Put an accepted prediction into `slot` (made active) with a note on where it came from.
    pub fn accept(&mut self, slot: &str, at: DVec3, note: &str) {
        if !self.refused(slot) {
            self.annotation.place_with_note(slot, at, note);
        }
        self.active_slot = slot.to_string();
        self.armed = false;
    }

    /// The left button was released: a drag becomes one undo step.
    pub fn release(&mut self) {
        if let Some((_, before)) = self.drag.take() {
            self.annotation.finish_drag(before, false);
        }
    }

    /// Save after every change (durably, keeping what else the file holds, see
    /// [`markups::save`]). An error says what was not saved.
    pub fn autosave(&mut self, worklist: Option<&mut Worklist>) -> Result<(), String> {
        if self.annotation.revision == self.saved_revision || self.drag.is_some() {
            return Ok(());
        }
        let result = match &self.target {
            LandmarkTarget::None => Ok(()),
            LandmarkTarget::File(p) => {
                // The per-user folder is made on the first save, never just by opening a scan.
                let user = crate::worklist::user_landmarks_folder();
                match p.parent().filter(|_| p.starts_with(&user)) {
                    Some(dir) => std::fs::create_dir_all(dir)
                        .map_err(|e| crate::io::FileError::io(dir, "cannot create folder", e)),
                    None => Ok(()),
                }
                .and_then(|()| markups::save(p, &self.annotation.set.to_points()))
            }
            LandmarkTarget::Case(i) => match worklist {
                Some(w) => w.save_landmarks(*i, &self.annotation.set),
                None => Ok(()),
            },
        };
        match result {
            Ok(()) => {
                self.saved_revision = self.annotation.revision;
                Ok(())
            }
            Err(e) => Err(format!("NOT SAVED: {e}")),
        }
    }
}

/// The colour of a landmark slot, everywhere it appears.
pub fn slot_color(name: &str) -> Color32 {
    match name {
        "aortic-valve" => Color32::from_rgb(255, 80, 80),
        "heart-center" => Color32::from_rgb(255, 90, 255),
        _ => Color32::from_rgb(80, 230, 230),
    }
}

/// The landmarks panel: undo/redo, one row per slot (a click selects it and goes there),
/// place/skip/delete, the note, a new slot, and where the landmarks are saved.
pub fn panel_ui(ui: &mut egui::Ui, lm: &LandmarksState, where_saved: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let edit = |out: &mut Vec<Command>, e| out.push(Command::Landmark(e));
    ui.horizontal(|ui| {
        ui.label("Landmarks");
        let undo = ui.add_enabled(lm.annotation.can_undo(), egui::Button::new("Undo"));
        if undo.clicked() {
            edit(&mut out, LandmarkEdit::Undo);
        }
        let redo = ui.add_enabled(lm.annotation.can_redo(), egui::Button::new("Redo"));
        if redo.clicked() {
            edit(&mut out, LandmarkEdit::Redo);
        }
    });
    for (n, l) in lm.annotation.set.landmarks.iter().enumerate() {
        let state = match l.status {
            Status::Defined(p) => format!("({:.1}, {:.1}, {:.1})", p.x, p.y, p.z),
            Status::Skipped => l.status.to_string(),
            Status::Undefined => "–".to_string(),
        };
        let lock = if l.locked { "  locked" } else { "" };
        let text = egui::RichText::new(format!("{} {}  {state}{lock}", n + 1, l.name))
            .color(slot_color(&l.name));
        if ui
            .selectable_label(l.name == lm.active_slot, text)
            .clicked()
        {
            edit(&mut out, LandmarkEdit::Select(l.name.clone()));
            if let Some(p) = l.position_lps() {
                out.push(Command::GoTo(p));
            }
        }
    }
    ui.horizontal(|ui| {
        let place = if lm.armed {
            "Click a slice…"
        } else {
            "Place"
        };
        if ui.selectable_label(lm.armed, place).clicked() {
            edit(&mut out, LandmarkEdit::ToggleArmed);
        }
        if ui.button("Skip").clicked() {
            edit(&mut out, LandmarkEdit::Skip);
        }
        if ui.button("Delete").clicked() {
            edit(&mut out, LandmarkEdit::Delete);
        }
        let locked = lm.annotation.set.is_locked(&lm.active_slot);
        if ui.button(if locked { "Unlock" } else { "Lock" }).clicked() {
            edit(&mut out, LandmarkEdit::ToggleLock);
        }
    });
    let active = lm.annotation.set.get(&lm.active_slot);
    if let Some(p) = active.and_then(|l| l.position_lps()) {
        coordinates_ui(ui, p, &mut out);
    }
    let mut note = active.map(|l| l.note.clone()).unwrap_or_default();
    let field = ui.add(egui::TextEdit::singleline(&mut note).hint_text("note"));
    if field.lost_focus() {
        edit(&mut out, LandmarkEdit::SetNote(note));
    }
    new_slot_ui(ui, &mut out);
    ui.small(where_saved);
    out
}

/// The active landmark's LPS coordinates, each a field to type a new value into (no dragging:
/// one typed value is one undo step).
fn coordinates_ui(ui: &mut egui::Ui, p: DVec3, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let mut v = p.to_array();
        let mut changed = false;
        for (value, axis) in v.iter_mut().zip(["L", "P", "S"]) {
            let field = egui::DragValue::new(value)
                .speed(0.0)
                .custom_formatter(|v, _| format!("{v:.2}"))
                .update_while_editing(false)
                .prefix(format!("{axis} "));
            let r = ui.add(field).on_hover_text("LPS mm");
            let name = format!("{axis} (LPS mm)");
            r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &name));
            changed |= r.changed();
        }
        if changed {
            let at = DVec3::from_array(v);
            out.push(Command::Landmark(LandmarkEdit::SetPosition(at)));
        }
    });
}

/// The "new landmark" field and its Add button (the typed name is the field's own state).
fn new_slot_ui(ui: &mut egui::Ui, out: &mut Vec<Command>) {
    let id = egui::Id::unique("heartloc-new-slot-name");
    let mut name: String = ui.data_mut(|d| d.get_temp(id).unwrap_or_default());
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut name)
                .desired_width(110.0)
                .hint_text("new landmark"),
        );
        if ui.button("Add").clicked() && !name.trim().is_empty() {
            out.push(Command::Landmark(LandmarkEdit::AddSlot(
                name.trim().to_string(),
            )));
            name.clear();
        }
    });
    ui.data_mut(|d| d.insert_temp(id, name));
}

/// Landmarks on a slice: a ring with its name on the slice, a faint ring on nearby slices.
pub fn paint_slice(painter: &egui::Painter, frame: &SliceFrame, lm: &LandmarksState) {
    for (name, p) in lm.annotation.set.defined() {
        let at = frame.screen(p);
        let color = slot_color(name);
        let width = if name == lm.active_slot { 2.5 } else { 1.5 };
        match frame.nearness(p) {
            Nearness::On => {
                painter.circle_stroke(at, 7.0, Stroke::new(width, color));
                painter.circle_filled(at, 1.5, color);
                painter.text(
                    at + Vec2::new(9.0, -9.0),
                    egui::Align2::LEFT_BOTTOM,
                    name,
                    egui::FontId::proportional(12.0),
                    color,
                );
            }
            Nearness::Near => {
                painter.circle_stroke(at, 5.0, Stroke::new(1.0, color.gamma_multiply(0.35)));
            }
            Nearness::Away => {}
        }
    }
}

/// Landmarks in the 3D view: a dot each.
pub fn paint_volume(painter: &egui::Painter, frame: &VolumeFrame, lm: &LandmarksState) {
    for (name, p) in lm.annotation.set.defined() {
        if let Some(at) = frame.screen(p) {
            painter.circle_filled(at, 5.0, slot_color(name));
        }
    }
}
