//! 3D Slicer markups JSON (`.mrk.json`, schema v1.0.3, `"type": "Fiducial"`).
//!
//! Read: `coordinateSystem` LPS or RAS (RAS is converted to LPS here), every fiducial markup in
//! the file, unknown fields ignored. Write: one Fiducial markup in LPS mm, written to a temporary
//! file, flushed to disk and renamed over the target, so a crash at any moment leaves either
//! the previous or the new complete file.

use std::path::Path;

use serde_json::{json, Value};

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

/// Read every control point of every Fiducial markup in a file.
pub fn read(path: &Path) -> Result<Vec<ControlPoint>, FileError> {
    let err = |m: String| FileError::new(path, m);
    let text =
        std::fs::read_to_string(path).map_err(|e| FileError::io(path, "cannot read markups", e))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let markups = doc
        .get("markups")
        .and_then(Value::as_array)
        .ok_or_else(|| err("not a Slicer markups file: no \"markups\" list".into()))?;
    let mut points = Vec::new();
    for (m, markup) in markups.iter().enumerate() {
        let kind = markup.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "Fiducial" {
            continue; // lines, curves, planes: not landmarks
        }
        let system = markup
            .get("coordinateSystem")
            .and_then(Value::as_str)
            .unwrap_or("LPS");
        let flip = match system {
            "LPS" => 1.0,
            "RAS" => -1.0,
            other => {
                return Err(err(format!(
                    "markup {m}: unknown coordinateSystem {other:?}"
                )))
            }
        };
        let units = markup
            .get("coordinateUnits")
            .and_then(Value::as_str)
            .unwrap_or("mm");
        if units != "mm" {
            return Err(err(format!(
                "markup {m}: coordinateUnits {units:?}, expected \"mm\""
            )));
        }
        let Some(cps) = markup.get("controlPoints").and_then(Value::as_array) else {
            continue;
        };
        for (i, cp) in cps.iter().enumerate() {
            points.push(
                control_point(cp, flip).map_err(|e| err(format!("markup {m} point {i}: {e}")))?,
            );
        }
    }
    Ok(points)
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
    })
}

/// The JSON text of a markups file holding `points` (LPS mm).
pub fn to_json(points: &[ControlPoint]) -> String {
    let cps: Vec<Value> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "id": (i + 1).to_string(),
                "label": p.label,
                "description": p.description,
                "position": p.position_lps.map_or(json!([]), |x| json!(x)),
                "positionStatus": p.status.as_str(),
            })
        })
        .collect();
    let doc = json!({
        "@schema": SCHEMA,
        "markups": [{
            "type": "Fiducial",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "controlPoints": cps,
        }]
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Write `points` atomically (temporary file, fsync, rename).
pub fn write(path: &Path, points: &[ControlPoint]) -> Result<(), FileError> {
    super::durable::write_atomic(path, to_json(points).as_bytes())
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
}
