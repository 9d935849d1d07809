//! A DICOM series writer (tests, benchmarks, exports): one file per slice, explicit VR little
//! endian.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use glam::DVec3;

use crate::io::FileError;
use crate::volume::{Volume, Voxels};

/// Options for [`write_series`].
#[derive(Clone, Debug)]
pub struct WriteSeriesOptions {
    pub series_uid: String,
    pub modality: String,
    pub description: String,
}

impl Default for WriteSeriesOptions {
    fn default() -> Self {
        WriteSeriesOptions {
            series_uid: "2.25.1".into(),
            modality: "CT".into(),
            description: "heartloc export".into(),
        }
    }
}

/// The rescale that holds the volume's values in signed 16 bits: identity for whole numbers
/// in range, else the range spread over all 65536 stored values.
fn rescale_for(volume: &Volume) -> (f64, f64) {
    let (lo, hi) = volume.intensity_range();
    let integral_i16 = !matches!(volume.voxels, Voxels::F32(_) | Voxels::U16(_))
        || (lo >= -32768.0
            && hi <= 32767.0
            && (0..volume.voxels.len()).all(|i| volume.voxels.get(i).fract() == 0.0));
    if integral_i16 {
        (1.0, 0.0)
    } else {
        let slope = f64::from(hi - lo).max(1e-12) / 65535.0;
        (slope, f64::from(lo) + 32768.0 * slope)
    }
}

/// A decimal string (DS) of several values.
fn ds(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.6}"))
        .collect::<Vec<_>>()
        .join("\\")
}

/// What every slice file of one written series shares.
struct SeriesLayout<'a> {
    options: &'a WriteSeriesOptions,
    dims: [usize; 3],
    spacing: [f64; 3],
    /// ImageOrientationPatient: row then column direction.
    orientation: [f64; 6],
    slope: f64,
    intercept: f64,
}

impl SeriesLayout<'_> {
    /// Slice `k` (0-based) at `origin` with its stored pixels.
    fn slice(&self, k: usize, origin: DVec3, pixels: Vec<u8>) -> InMemDicomObject {
        let o = self.options;
        let [nx, ny, nz] = self.dims;
        let sop_uid = format!("{}.{}", o.series_uid, k + 1);
        let el = |tag, vr, value: PrimitiveValue| DataElement::new(tag, vr, value);
        let s = |x: &str| PrimitiveValue::from(x.to_string());
        let us = |x: u16| PrimitiveValue::from(x);
        InMemDicomObject::from_element_iter([
            el(tags::SOP_CLASS_UID, VR::UI, s("1.2.840.10008.5.1.4.1.1.2")),
            el(tags::SOP_INSTANCE_UID, VR::UI, s(&sop_uid)),
            el(tags::MODALITY, VR::CS, s(&o.modality)),
            el(tags::SERIES_DESCRIPTION, VR::LO, s(&o.description)),
            el(tags::PATIENT_NAME, VR::PN, s("Anonymous")),
            el(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                s(&format!("{}.0", o.series_uid)),
            ),
            el(tags::SERIES_INSTANCE_UID, VR::UI, s(&o.series_uid)),
            // Reversed on purpose: readers must sort by position, not by this.
            el(tags::INSTANCE_NUMBER, VR::IS, s(&(nz - k).to_string())),
            el(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                s(&ds(&origin.to_array())),
            ),
            el(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                s(&ds(&self.orientation)),
            ),
            el(
                tags::SLICE_THICKNESS,
                VR::DS,
                s(&format!("{:.6}", self.spacing[2])),
            ),
            el(tags::SAMPLES_PER_PIXEL, VR::US, us(1)),
            el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
            el(tags::ROWS, VR::US, us(ny as u16)),
            el(tags::COLUMNS, VR::US, us(nx as u16)),
            el(
                tags::PIXEL_SPACING,
                VR::DS,
                s(&ds(&[self.spacing[1], self.spacing[0]])),
            ),
            el(tags::BITS_ALLOCATED, VR::US, us(16)),
            el(tags::BITS_STORED, VR::US, us(16)),
            el(tags::HIGH_BIT, VR::US, us(15)),
            el(tags::PIXEL_REPRESENTATION, VR::US, us(1)),
            el(
                tags::RESCALE_INTERCEPT,
                VR::DS,
                s(&format!("{:.9}", self.intercept)),
            ),
            el(
                tags::RESCALE_SLOPE,
                VR::DS,
                s(&format!("{:.9}", self.slope)),
            ),
            el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
        ])
    }
}

/// Write a volume as a DICOM series (one file per k slice, explicit VR little endian, 16-bit
/// signed pixels with rescale slope/intercept chosen to hold the value range). Returns the file
/// paths, in slice order.
pub fn write_series(
    dir: &Path,
    volume: &Volume,
    options: &WriteSeriesOptions,
) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError::io(dir, "cannot create folder", e))?;
    let [nx, ny, nz] = volume.dims();
    let m = volume.world_from_voxel();
    let spacing = volume.spacing_mm();
    let row_dir = m.x_axis.truncate() / spacing[0];
    let col_dir = m.y_axis.truncate() / spacing[1];
    let (slope, intercept) = rescale_for(volume);
    let layout = SeriesLayout {
        options,
        dims: [nx, ny, nz],
        spacing,
        orientation: [
            row_dir.x, row_dir.y, row_dir.z, col_dir.x, col_dir.y, col_dir.z,
        ],
        slope,
        intercept,
    };
    // Names differ between series so that several can share a folder.
    let series_salt = crate::io::fnv1a(options.series_uid.as_bytes());
    let mut paths = Vec::with_capacity(nz);
    for k in 0..nz {
        let origin = m.transform_point3(DVec3::new(0.0, 0.0, k as f64));
        let mut pixels = Vec::with_capacity(nx * ny * 2);
        for idx in k * nx * ny..(k + 1) * nx * ny {
            let v = f64::from(volume.voxels.get(idx));
            let stored = ((v - intercept) / slope).round().clamp(-32768.0, 32767.0) as i16;
            pixels.extend_from_slice(&stored.to_le_bytes());
        }
        let file = layout
            .slice(k, origin, pixels)
            .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
            .map_err(|e| FileError::new(dir, format!("cannot build DICOM meta: {e}")))?;
        // Scrambled (but unique: an odd multiplier is a bijection) names, like archives write.
        let name = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ series_salt;
        let path = dir.join(format!("{name:016x}.dcm"));
        file.write_to_file(&path)
            .map_err(|e| FileError::new(&path, format!("cannot write DICOM: {e}")))?;
        paths.push(path);
    }
    Ok(paths)
}
