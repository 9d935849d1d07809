//! 3D Slicer markups JSON (`.mrk.json`, schema v1.0.3).
//!
//! Read ([`read_file`]): every control point of every point list (`"type": "Fiducial"`),
//! `coordinateSystem` LPS or RAS (RAS converted to LPS here), unplaced points (`"position": ""`,
//! as Slicer writes them) kept with their status; markups of other types (Line, Angle, Curve,
//! Plane, ROI) are kept in the document and named in [`Markups::notes`].
//!
//! Write: into the document that was read, so a file that came from Slicer keeps everything
//! heartloc does not model (other markups, display, measurements, the lists' locks, ids,
//! orientations): points are matched by label and only their label, description, position,
//! status and lock change;
//! new points get the next id after `lastUsedControlPointNumber`, which is kept up to date.
//! A new file is a point list in LPS mm as Slicer 5 writes one. Every write is durable
//! (temporary file, fsync, rename): a crash leaves the previous or the new complete file.

use std::path::Path;

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::FileError;
use crate::volume::MAX_ORIGIN_MM;

const SCHEMA: &str = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#";

/// One control point as stored, position in LPS mm.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlPoint {
    pub label: String,
    pub description: String,
    /// `None` when the point has no position (status undefined or skipped).
    pub position_lps: Option<[f64; 3]>,
    pub status: PositionStatus,
    /// Slicer's per-point `locked`: not to be moved.
    pub locked: bool,
}

/// Slicer's `positionStatus` of a control point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionStatus {
    Defined,
    /// Shown while placing; Slicer keeps its position.
    Preview,
    /// Not placed yet.
    Undefined,
    /// Skipped by the user (Slicer 5's "Skip"), no position.
    Missing,
}

impl PositionStatus {
    pub const ALL: [PositionStatus; 4] = [
        PositionStatus::Defined,
        PositionStatus::Preview,
        PositionStatus::Undefined,
        PositionStatus::Missing,
    ];

    /// The word in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PositionStatus::Defined => "defined",
            PositionStatus::Preview => "preview",
            PositionStatus::Undefined => "undefined",
            PositionStatus::Missing => "missing",
        }
    }

    /// Whether the point has a position (defined or preview).
    pub fn has_position(self) -> bool {
        matches!(self, PositionStatus::Defined | PositionStatus::Preview)
    }
}

/// A markups file: its JSON document, and the control points of its point lists.
#[derive(Clone, Debug, PartialEq)]
pub struct Markups {
    /// The document as read (for a new file, an empty list of markups).
    doc: Value,
    /// Every control point of every point list, in file order, LPS mm.
    pub points: Vec<ControlPoint>,
    /// What was read but is not a point (other markup types), one line each.
    pub notes: Vec<String>,
}

impl Default for Markups {
    fn default() -> Self {
        Markups {
            doc: json!({ "@schema": SCHEMA, "markups": [] }),
            points: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Read every control point of every point list in a file.
pub fn read(path: &Path) -> Result<Vec<ControlPoint>, FileError> {
    read_file(path).map(|m| m.points)
}

/// Read a markups file, keeping its whole document for writing back.
pub fn read_file(path: &Path) -> Result<Markups, FileError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| FileError::io(path, "cannot read markups", e))?;
    parse(&text).map_err(|e| FileError::new(path, e))
}

/// `x` and `y` factor of a markup's coordinate system relative to LPS.
fn flip_of(markup: &Value) -> Result<f64, String> {
    match markup
        .get("coordinateSystem")
        .and_then(Value::as_str)
        .unwrap_or("LPS")
    {
        "LPS" => Ok(1.0),
        "RAS" => Ok(-1.0),
        other => Err(format!("unknown coordinateSystem {other:?}")),
    }
}

fn is_point_list(markup: &Value) -> bool {
    markup.get("type").and_then(Value::as_str) == Some("Fiducial")
}

/// A markups document from its text.
pub fn parse(text: &str) -> Result<Markups, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let markups = doc
        .get("markups")
        .and_then(Value::as_array)
        .ok_or("not a Slicer markups file: no \"markups\" list")?;
    let (mut points, mut notes) = (Vec::new(), Vec::new());
    for (m, markup) in markups.iter().enumerate() {
        if !is_point_list(markup) {
            let kind = markup.get("type").and_then(Value::as_str).unwrap_or("?");
            let name = markup.get("name").and_then(Value::as_str).unwrap_or("");
            notes.push(format!(
                "markup {m} ({kind}{}) is not a point list: kept in the file, not read",
                if name.is_empty() {
                    String::new()
                } else {
                    format!(" \"{name}\"")
                }
            ));
            continue;
        }
        let flip = flip_of(markup).map_err(|e| format!("markup {m}: {e}"))?;
        let units = markup
            .get("coordinateUnits")
            .and_then(Value::as_str)
            .unwrap_or("mm");
        if units != "mm" {
            return Err(format!(
                "markup {m}: coordinateUnits {units:?}, expected \"mm\""
            ));
        }
        let Some(cps) = markup.get("controlPoints").and_then(Value::as_array) else {
            continue;
        };
        for (i, cp) in cps.iter().enumerate() {
            points.push(control_point(cp, flip).map_err(|e| format!("markup {m} point {i}: {e}"))?);
        }
    }
    Ok(Markups { doc, points, notes })
}

impl Markups {
    /// The document with `points` written in: a point whose label is already in the file is
    /// updated in place (label, description, position, status; everything else kept), the
    /// others are appended to the first point list (one is made when there is none).
    pub fn with_points(&self, points: &[ControlPoint]) -> Value {
        let mut doc = self.doc.clone();
        let mut todo: Vec<Option<&ControlPoint>> = points.iter().map(Some).collect();
        let by_label: HashMap<&str, usize> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.label.as_str(), i))
            .collect();
        let Some(markups) = doc.get_mut("markups").and_then(Value::as_array_mut) else {
            return doc;
        };
        for markup in markups.iter_mut().filter(|m| is_point_list(m)) {
            let flip = flip_of(markup).unwrap_or(1.0);
            let cps = markup
                .get_mut("controlPoints")
                .and_then(Value::as_array_mut);
            for cp in cps.into_iter().flatten() {
                let label = cp.get("label").and_then(Value::as_str).unwrap_or("");
                if let Some(p) = by_label.get(label).and_then(|&i| todo[i].take()) {
                    // Unchanged points keep their text as it was.
                    if control_point(cp, flip).as_ref() != Ok(p) {
                        set_point(cp, p, flip);
                    }
                }
            }
        }
        let rest: Vec<&ControlPoint> = todo.into_iter().flatten().collect();
        if !rest.is_empty() {
            if !markups.iter().any(is_point_list) {
                markups.push(new_point_list());
            }
            if let Some(markup) = markups.iter_mut().find(|m| is_point_list(m)) {
                append_points(markup, &rest);
            }
        }
        doc
    }
}

/// A point list as Slicer 5 writes one, without points.
fn new_point_list() -> Value {
    json!({
        "type": "Fiducial",
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": false,
        "fixedNumberOfControlPoints": false,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 0,
        "controlPoints": [],
        "measurements": [],
    })
}

/// Append `points` with fresh ids after the list's `lastUsedControlPointNumber` (and after every
/// numeric id already there), and keep that number up to date.
fn append_points(markup: &mut Value, points: &[&ControlPoint]) {
    let flip = flip_of(markup).unwrap_or(1.0);
    let Some(obj) = markup.as_object_mut() else {
        return;
    };
    let cps = obj.entry("controlPoints").or_insert_with(|| json!([]));
    if !cps.is_array() {
        *cps = json!([]);
    }
    let highest_id = cps
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|cp| cp.get("id")?.as_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut last = highest_id.max(
        obj.get("lastUsedControlPointNumber")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    );
    let mut added = Vec::with_capacity(points.len());
    for p in points {
        last += 1;
        let mut cp = json!({
            "id": last.to_string(),
            "label": "",
            "description": "",
            "associatedNodeID": "",
            "position": "",
            "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
            "selected": true,
            "locked": false,
            "visibility": true,
            "positionStatus": "undefined",
        });
        set_point(&mut cp, p, flip);
        added.push(cp);
    }
    if let Some(list) = obj.get_mut("controlPoints").and_then(Value::as_array_mut) {
        list.extend(added);
    }
    obj.insert("lastUsedControlPointNumber".into(), json!(last));
}

/// Write heartloc's fields of `p` into a control point (coordinates in the markup's system).
fn set_point(cp: &mut Value, p: &ControlPoint, flip: f64) {
    let Some(o) = cp.as_object_mut() else { return };
    let set = |o: &mut Map<String, Value>, k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    set(o, "label", json!(p.label));
    set(o, "description", json!(p.description));
    let position = p
        .position_lps
        .filter(|_| p.status.has_position())
        .map_or(json!(""), |[x, y, z]| json!([x * flip, y * flip, z]));
    set(o, "position", position);
    set(o, "positionStatus", json!(p.status.as_str()));
    set(o, "locked", json!(p.locked));
}

/// One control point of a markup whose coordinates are multiplied by `flip` in x and y (-1
/// for RAS files).
fn control_point(cp: &Value, flip: f64) -> Result<ControlPoint, String> {
    let word = cp
        .get("positionStatus")
        .and_then(Value::as_str)
        .unwrap_or("defined");
    let status = PositionStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == word)
        .ok_or_else(|| {
            format!("positionStatus {word:?} is not defined, preview, undefined or missing")
        })?;
    let position = match cp.get("position") {
        Some(Value::Array(a)) if a.len() == 3 => {
            let v: Option<Vec<f64>> = a.iter().map(Value::as_f64).collect();
            match v {
                Some(v) if v.iter().all(|x| x.abs() <= MAX_ORIGIN_MM) => {
                    Some([v[0] * flip, v[1] * flip, v[2]])
                }
                _ => {
                    return Err(format!(
                        "position {} is not three finite numbers within ±{MAX_ORIGIN_MM} mm",
                        Value::Array(a.clone())
                    ))
                }
            }
        }
        // Slicer writes `""` for a point not placed yet.
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(_) => return Err("position must be [x, y, z]".into()),
    };
    if status == PositionStatus::Defined && position.is_none() {
        return Err("defined but has no position".into());
    }
    let text = |key: &str| {
        cp.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(ControlPoint {
        label: text("label"),
        description: text("description"),
        position_lps: position.filter(|_| status.has_position()),
        status,
        locked: cp.get("locked").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The JSON text of a new markups file holding `points` (LPS mm).
pub fn to_json(points: &[ControlPoint]) -> String {
    serde_json::to_string_pretty(&Markups::default().with_points(points)).unwrap_or_default()
}

/// Write `points` as a new file (replacing whatever is at `path`), durably.
pub fn write(path: &Path, points: &[ControlPoint]) -> Result<(), FileError> {
    super::durable::write_atomic(path, to_json(points).as_bytes())
}

/// Save `points` at `path`, keeping everything else an existing file there holds (see the
/// module doc). A file that exists but cannot be read is never overwritten.
pub fn save(path: &Path, points: &[ControlPoint]) -> Result<(), FileError> {
    let existing = if path.is_file() {
        read_file(path)?
    } else {
        Markups::default()
    };
    write_into(path, &existing, points)
}

/// Write `points` into `markups` (what was read from `path`, or a new document) and save it
/// at `path`, durably; everything else the document holds is kept.
pub fn write_into(
    path: &Path,
    markups: &Markups,
    points: &[ControlPoint],
) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(&markups.with_points(points)).unwrap_or_default();
    super::durable::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, p: Option<[f64; 3]>, status: PositionStatus) -> ControlPoint {
        ControlPoint {
            label: label.into(),
            description: String::new(),
            position_lps: p,
            status,
            locked: false,
        }
    }

    #[test]
    fn round_trip_keeps_points_and_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mrk.json");
        let pts = vec![
            point(
                "aortic-valve",
                Some([1.5, -2.25, 30.0]),
                PositionStatus::Defined,
            ),
            point("heart-center", None, PositionStatus::Undefined),
            point("apex", None, PositionStatus::Missing),
        ];
        write(&path, &pts).unwrap();
        assert_eq!(read(&path).unwrap(), pts);
    }

    #[test]
    fn ras_files_are_converted_and_unknown_fields_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ras.mrk.json");
        std::fs::write(
            &path,
            r#"{"@schema": "x", "extra": {"a": 1}, "markups": [
                {"type": "Line", "controlPoints": []},
                {"type": "Fiducial", "coordinateSystem": "RAS", "display": {"color": [1,0,0]},
                 "controlPoints": [
                    {"label": "a", "position": [10.0, 20.0, 30.0], "orientation": [1,0,0,0,1,0,0,0,1]},
                    {"label": "b", "position": [-1.0, 2.0, -3.0], "positionStatus": "defined", "selected": true}
                 ]}]}"#,
        )
        .unwrap();
        let pts = read(&path).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].position_lps, Some([-10.0, -20.0, 30.0]));
        assert_eq!(pts[1].position_lps, Some([1.0, -2.0, -3.0]));
    }

    #[test]
    fn malformed_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("{not json", "not valid JSON"),
            (r#"{"a": 1}"#, "no \"markups\""),
            (
                r#"{"markups": [{"type": "Fiducial", "coordinateSystem": "XYZ"}]}"#,
                "coordinateSystem",
            ),
            (
                r#"{"markups": [{"type": "Fiducial", "controlPoints": [{"position": [1, "a", 3]}]}]}"#,
                "three finite numbers",
            ),
            (
                r#"{"markups": [{"type": "Fiducial", "controlPoints": [{"positionStatus": "defined"}]}]}"#,
                "no position",
            ),
            (
                r#"{"markups": [{"type": "Fiducial", "controlPoints": [{"positionStatus": "gone"}]}]}"#,
                "positionStatus \"gone\"",
            ),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.mrk.json"));
            std::fs::write(&path, text).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains(&format!("bad{i}.mrk.json")),
                "{e}"
            );
        }
    }

    #[test]
    fn edits_keep_the_rest_of_a_slicer_document_and_new_points_get_fresh_ids() {
        let text = r#"{"@schema": "x", "markups": [
            {"type": "Line", "name": "L", "controlPoints": [{"id": "1", "label": "L-1"}]},
            {"type": "Fiducial", "coordinateSystem": "RAS", "lastUsedControlPointNumber": 7,
             "display": {"color": [1, 0, 0]}, "measurements": [{"name": "m"}],
             "controlPoints": [
                {"id": "7", "label": "apex", "position": [10.0, 20.0, 30.0], "locked": true,
                 "orientation": [1, 0, 0, 0, 1, 0, 0, 0, 1], "positionStatus": "defined"}]}]}"#;
        let m = parse(text).unwrap();
        assert_eq!(m.points[0].position_lps, Some([-10.0, -20.0, 30.0]));
        assert_eq!(m.notes.len(), 1, "the Line is named: {:?}", m.notes);
        let mut points = m.points.clone();
        points[0].position_lps = Some([-11.0, -20.0, 30.0]);
        points.push(point("aortic-valve", None, PositionStatus::Undefined));
        let out = m.with_points(&points);
        let before: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            out["markups"][0], before["markups"][0],
            "other markups untouched"
        );
        let (a, b) = (&before["markups"][1], &out["markups"][1]);
        for key in ["display", "measurements", "coordinateSystem"] {
            assert_eq!(a[key], b[key], "{key}");
        }
        let apex = &b["controlPoints"][0];
        assert_eq!(
            apex["position"],
            json!([11.0, 20.0, 30.0]),
            "written back in RAS"
        );
        for key in ["id", "locked", "orientation"] {
            assert_eq!(apex[key], a["controlPoints"][0][key], "{key}");
        }
        let new = &b["controlPoints"][1];
        assert_eq!(
            (new["id"].as_str(), new["position"].as_str()),
            (Some("8"), Some(""))
        );
        assert_eq!(b["lastUsedControlPointNumber"], json!(8));
        // And it reads back as written.
        assert_eq!(parse(&out.to_string()).unwrap().points, points);
    }

    #[test]
    fn a_new_file_is_one_point_list_and_keeps_labels_that_repeat() {
        let pts = vec![
            point("a", Some([1.0, 2.0, 3.0]), PositionStatus::Defined),
            point("a", None, PositionStatus::Missing),
        ];
        let m = parse(&to_json(&pts)).unwrap();
        assert_eq!(m.points, pts);
        let doc: Value = serde_json::from_str(&to_json(&pts)).unwrap();
        assert_eq!(doc["markups"][0]["lastUsedControlPointNumber"], json!(2));
    }
}
