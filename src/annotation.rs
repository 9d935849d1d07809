//! Landmarks of one case: named slots (`aortic-valve`, `heart-center`, plus user-defined), each
//! undefined, defined at a position in LPS mm, or skipped, with an optional note; and an edit
//! history for undo/redo. No GUI imports: the app calls these methods, and every edit goes
//! through [`Annotation::edit`] so it can be undone.

use glam::DVec3;

use crate::io::markups::{ControlPoint, PositionStatus};

/// The slots every case starts with.
pub const DEFAULT_SLOTS: [&str; 2] = ["aortic-valve", "heart-center"];

/// A slot's state: only a defined landmark has a position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    Undefined,
    /// Placed at this LPS point (mm).
    Defined(DVec3),
    Skipped,
}

impl Status {
    /// The status of a markups control point (Slicer's preview counts as defined, missing as
    /// skipped).
    pub fn of_point(p: &ControlPoint) -> Status {
        match (p.status, p.position_lps) {
            (PositionStatus::Defined | PositionStatus::Preview, Some(x)) => {
                Status::Defined(DVec3::from_array(x))
            }
            (PositionStatus::Missing, _) => Status::Skipped,
            _ => Status::Undefined,
        }
    }
}

/// "undefined", "defined", "skipped": the one wording of the panel, the CSV export and the
/// reports (markups files use Slicer's words, see [`PositionStatus`]).
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Undefined => "undefined",
            Status::Defined(_) => "defined",
            Status::Skipped => "skipped",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Landmark {
    pub name: String,
    pub status: Status,
    pub note: String,
    /// Locked (Slicer's per-point `locked`): it is not placed, moved, skipped or cleared until
    /// unlocked; its note stays editable.
    pub locked: bool,
}

/// The slot a control point belongs to: its label, `unnamed` when it has none.
fn slot_name(p: &ControlPoint) -> &str {
    match p.label.trim() {
        "" => "unnamed",
        l => l,
    }
}

impl Landmark {
    fn empty(name: &str) -> Self {
        Landmark {
            name: name.to_string(),
            status: Status::Undefined,
            note: String::new(),
            locked: false,
        }
    }

    /// Where it was placed, if it is defined.
    pub fn position_lps(&self) -> Option<DVec3> {
        match self.status {
            Status::Defined(p) => Some(p),
            _ => None,
        }
    }
}

/// All landmarks of one case.
#[derive(Clone, Debug, PartialEq)]
pub struct LandmarkSet {
    pub landmarks: Vec<Landmark>,
}

impl Default for LandmarkSet {
    fn default() -> Self {
        LandmarkSet {
            landmarks: DEFAULT_SLOTS.iter().map(|n| Landmark::empty(n)).collect(),
        }
    }
}

impl LandmarkSet {
    pub fn get(&self, name: &str) -> Option<&Landmark> {
        self.landmarks.iter().find(|l| l.name == name)
    }

    pub fn is_locked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|l| l.locked)
    }

    /// The slot's status set to `status`, unless the slot is locked.
    fn set_status(&mut self, name: &str, status: Status) {
        let l = self.slot(name);
        if !l.locked {
            l.status = status;
        }
    }

    fn slot(&mut self, name: &str) -> &mut Landmark {
        if let Some(i) = self.landmarks.iter().position(|l| l.name == name) {
            &mut self.landmarks[i]
        } else {
            self.landmarks.push(Landmark::empty(name));
            let last = self.landmarks.len() - 1;
            &mut self.landmarks[last]
        }
    }

    /// Defined landmarks.
    pub fn defined(&self) -> impl Iterator<Item = (&str, DVec3)> {
        self.landmarks
            .iter()
            .filter_map(|l| l.position_lps().map(|p| (l.name.as_str(), p)))
    }

    /// Every default slot is defined or skipped.
    pub fn is_complete(&self) -> bool {
        DEFAULT_SLOTS
            .iter()
            .all(|n| self.get(n).is_some_and(|l| l.status != Status::Undefined))
    }

    /// From markups control points (labels become slot names; default slots always exist).
    /// A label given twice keeps its last point: use [`LandmarkSet::from_markups`] for files.
    pub fn from_points(points: &[ControlPoint]) -> Self {
        let mut set = LandmarkSet::default();
        let mut index: std::collections::HashMap<String, usize> = set
            .landmarks
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.clone(), i))
            .collect();
        for p in points {
            let name = slot_name(p);
            let i = *index.entry(name.to_string()).or_insert_with(|| {
                set.landmarks.push(Landmark::empty(name));
                set.landmarks.len() - 1
            });
            let slot = &mut set.landmarks[i];
            slot.note = p.description.clone();
            slot.locked = p.locked;
            match Status::of_point(p) {
                Status::Undefined => {}
                status => slot.status = status,
            }
        }
        set
    }

    /// From a file's control points, refusing a label given to several points (heartloc keeps
    /// one landmark per label and never merges them silently).
    pub fn from_markups(points: &[ControlPoint]) -> Result<Self, String> {
        let mut seen = std::collections::HashMap::new();
        for p in points {
            *seen.entry(slot_name(p)).or_insert(0usize) += 1;
        }
        let mut dups: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(l, n)| format!("\"{l}\" ({n} points)"))
            .collect();
        if dups.is_empty() {
            return Ok(Self::from_points(points));
        }
        dups.sort();
        Err(format!(
            "labels on more than one point: {}; heartloc keeps one landmark per label, so rename \
             them (e.g. in Slicer) before annotating here",
            dups.join(", ")
        ))
    }

    /// A landmarks file: its set (labels checked, see [`LandmarkSet::from_markups`]) and notes on
    /// what it holds besides points.
    pub fn read(path: &std::path::Path) -> Result<(Self, Vec<String>), crate::io::FileError> {
        let m = crate::io::markups::read_file(path)?;
        let set = Self::from_markups(&m.points).map_err(|e| crate::io::FileError::new(path, e))?;
        Ok((set, m.notes))
    }

    /// As markups control points (undefined slots are kept, so the slot list round-trips).
    pub fn to_points(&self) -> Vec<ControlPoint> {
        self.landmarks
            .iter()
            .map(|l| ControlPoint {
                label: l.name.clone(),
                description: l.note.clone(),
                position_lps: l.position_lps().map(|p| p.to_array()),
                status: match l.status {
                    Status::Defined(_) => PositionStatus::Defined,
                    Status::Undefined => PositionStatus::Undefined,
                    Status::Skipped => PositionStatus::Missing,
                },
                locked: l.locked,
            })
            .collect()
    }
}

/// A landmark set with its undo/redo history. Sets are tiny, so history keeps snapshots.
#[derive(Clone, Debug, Default)]
pub struct Annotation {
    pub set: LandmarkSet,
    undo: Vec<LandmarkSet>,
    redo: Vec<LandmarkSet>,
    /// Bumped on every change (edits, undo, redo); the app saves when it moves.
    pub revision: u64,
}

impl Annotation {
    pub fn new(set: LandmarkSet) -> Self {
        Annotation {
            set,
            ..Default::default()
        }
    }

    /// Apply an edit; it is undoable when it changed anything.
    pub fn edit(&mut self, f: impl FnOnce(&mut LandmarkSet)) {
        let before = self.set.clone();
        f(&mut self.set);
        if self.set != before {
            self.undo.push(before);
            self.redo.clear();
            self.revision += 1;
        }
    }

    /// Placing, moving, skipping and clearing leave a locked slot as it is.
    pub fn place(&mut self, name: &str, position_lps: DVec3) {
        self.edit(|s| s.set_status(name, Status::Defined(position_lps)));
    }

    /// Place with a note saying where the point came from (an accepted prediction).
    pub fn place_with_note(&mut self, name: &str, position_lps: DVec3, note: &str) {
        if self.set.is_locked(name) {
            return;
        }
        self.edit(|s| {
            let l = s.slot(name);
            l.status = Status::Defined(position_lps);
            l.note = note.to_string();
        });
    }

    /// Back to undefined (the Delete key).
    pub fn delete(&mut self, name: &str) {
        if self.set.get(name).is_some() {
            self.edit(|s| s.set_status(name, Status::Undefined));
        }
    }

    pub fn skip(&mut self, name: &str) {
        self.edit(|s| s.set_status(name, Status::Skipped));
    }

    /// Lock or unlock a slot (an undoable edit).
    pub fn set_locked(&mut self, name: &str, locked: bool) {
        self.edit(|s| s.slot(name).locked = locked);
    }

    pub fn add_slot(&mut self, name: &str) {
        let name = name.trim();
        if !name.is_empty() {
            self.edit(|s| {
                s.slot(name);
            });
        }
    }

    pub fn set_note(&mut self, name: &str, note: &str) {
        self.edit(|s| s.slot(name).note = note.to_string());
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo(&mut self) {
        if let Some(prev) = self.undo.pop() {
            self.redo.push(std::mem::replace(&mut self.set, prev));
            self.revision += 1;
        }
    }

    pub fn redo(&mut self) {
        if let Some(next) = self.redo.pop() {
            self.undo.push(std::mem::replace(&mut self.set, next));
            self.revision += 1;
        }
    }

    /// Replace the position during a drag without recording history; [`Annotation::edit`]
    /// records the whole drag once it ends (see [`Annotation::finish_drag`]).
    pub fn drag_to(&mut self, name: &str, position_lps: DVec3) {
        self.set.set_status(name, Status::Defined(position_lps));
    }

    /// End a drag that started from `before`: one undo step, or a cancel back to `before`.
    pub fn finish_drag(&mut self, before: LandmarkSet, cancel: bool) {
        if cancel {
            self.set = before;
            return;
        }
        if self.set != before {
            self.undo.push(before);
            self.redo.clear();
            self.revision += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_undo_and_redo() {
        let mut a = Annotation::default();
        a.place("aortic-valve", DVec3::new(1.0, 2.0, 3.0));
        a.place("aortic-valve", DVec3::new(4.0, 5.0, 6.0));
        a.skip("heart-center");
        assert!(a.set.is_complete());
        a.undo();
        assert!(!a.set.is_complete());
        a.undo();
        assert_eq!(
            a.set.get("aortic-valve").unwrap().position_lps(),
            Some(DVec3::new(1.0, 2.0, 3.0))
        );
        a.redo();
        assert_eq!(
            a.set.get("aortic-valve").unwrap().position_lps(),
            Some(DVec3::new(4.0, 5.0, 6.0))
        );
        a.delete("aortic-valve");
        assert!(!a.can_redo(), "a new edit clears redo");
        assert_eq!(a.set.get("aortic-valve").unwrap().status, Status::Undefined);
        let rev = a.revision;
        a.delete("aortic-valve");
        assert_eq!(a.revision, rev, "no-op edits are not recorded");
    }

    #[test]
    fn drags_are_one_undo_step_and_escape_cancels() {
        let mut a = Annotation::default();
        a.place("heart-center", DVec3::ZERO);
        let before = a.set.clone();
        for x in 1..5 {
            a.drag_to("heart-center", DVec3::splat(x as f64));
        }
        a.finish_drag(before.clone(), false);
        a.undo();
        assert_eq!(a.set, before);
        a.redo();
        let before = a.set.clone();
        a.drag_to("heart-center", DVec3::splat(9.0));
        a.finish_drag(before.clone(), true);
        assert_eq!(a.set, before);
    }

    #[test]
    fn a_label_on_two_points_is_refused_and_named_never_merged() {
        let point = |status, p| ControlPoint {
            label: "a".into(),
            description: String::new(),
            position_lps: p,
            status,
            locked: false,
        };
        let pts = [
            point(PositionStatus::Defined, Some([1.0, 2.0, 3.0])),
            point(PositionStatus::Missing, None),
        ];
        let e = LandmarkSet::from_markups(&pts).unwrap_err();
        assert!(e.contains("\"a\" (2 points)"), "{e}");
        assert!(LandmarkSet::from_markups(&pts[..1]).is_ok());
    }

    #[test]
    fn markups_round_trip_with_user_slots_and_notes() {
        let mut a = Annotation::default();
        a.place("heart-center", DVec3::new(1.0, 2.0, 3.0));
        a.add_slot("apex");
        a.set_note("apex", "not visible");
        a.skip("aortic-valve");
        a.set_locked("heart-center", true);
        let points = a.set.to_points();
        assert!(points.iter().any(|p| p.label == "heart-center" && p.locked));
        let back = LandmarkSet::from_points(&points);
        assert_eq!(back, a.set);
    }

    #[test]
    fn a_locked_landmark_is_not_placed_moved_skipped_or_cleared_until_unlocked() {
        let mut a = Annotation::default();
        let at = DVec3::new(1.0, 2.0, 3.0);
        a.place("heart-center", at);
        a.set_locked("heart-center", true);
        let locked = a.set.clone();
        let rev = a.revision;
        a.place("heart-center", DVec3::ZERO);
        a.place_with_note("heart-center", DVec3::ZERO, "accepted");
        a.skip("heart-center");
        a.delete("heart-center");
        a.drag_to("heart-center", DVec3::ZERO);
        a.finish_drag(locked.clone(), false);
        assert_eq!(a.set, locked);
        assert_eq!(a.revision, rev, "refused edits are not recorded");
        // Its note stays editable; unlocking is an undoable edit, and then it moves again.
        a.set_note("heart-center", "checked twice");
        a.set_locked("heart-center", false);
        a.place("heart-center", DVec3::ZERO);
        assert_eq!(
            a.set.get("heart-center").unwrap().position_lps(),
            Some(DVec3::ZERO)
        );
        a.undo();
        a.undo();
        assert!(a.set.is_locked("heart-center"));
        assert_eq!(a.set.get("heart-center").unwrap().position_lps(), Some(at));
    }
}
