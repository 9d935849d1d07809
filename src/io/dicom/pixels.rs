//! Pixel data of a series' slices, decoded by dicom-pixeldata after its sizes were checked: a
//! classic file per slice, an enhanced multi-frame file once for all its frames.

use std::collections::HashMap;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, ModalityLutOption, PhotometricInterpretation, PixelDecoder,
    PixelRepresentation,
};
use rayon::prelude::*;

use super::header::SliceHeader;
use crate::io::FileError;
use crate::volume::Voxels;

/// A file's decoded pixel data, and whether its samples are little-endian bytes as stored.
struct Pixels<'a> {
    data: DecodedPixelData<'a>,
    little_endian: bool,
}

/// Open `path`, check its pixel data and decode it, then run `f` on it.
fn with_pixels<R>(
    path: &Path,
    plane: usize,
    f: impl FnOnce(&Pixels<'_>) -> Result<R, FileError>,
) -> Result<R, FileError> {
    let bad = |what: String| FileError::new(path, what);
    let obj = dicom_object::open_file(path).map_err(|e| bad(format!("cannot read DICOM: {e}")))?;
    check_pixel_length(&obj, plane).map_err(bad)?;
    let data = obj
        .decode_pixel_data()
        .map_err(|e| bad(format!("cannot decode pixel data: {e}")))?;
    let little_endian = matches!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1"
    );
    f(&Pixels {
        data,
        little_endian,
    })
}

/// `f(pixels, frame, item, slice)` for every slice with its `item` (an output block, say), on
/// every core, the results in slice order. A classic file is opened per slice; an enhanced
/// multi-frame file once, for all its frames (its pixel data borrowed, never copied).
fn map_slices<I: Send, O: Send>(
    slices: &[SliceHeader],
    items: Vec<I>,
    plane: usize,
    f: impl Fn(&Pixels<'_>, u32, I, &SliceHeader) -> Result<O, FileError> + Sync,
) -> Result<Vec<O>, FileError> {
    let mut classic = Vec::new();
    let mut by_file: HashMap<&Path, Vec<(usize, I)>> = HashMap::new();
    for (i, (item, s)) in items.into_iter().zip(slices).enumerate() {
        match s.frame {
            Some(_) => by_file.entry(&s.path).or_default().push((i, item)),
            None => classic.push((i, item)),
        }
    }
    let mut out: Vec<(usize, O)> = classic
        .into_par_iter()
        .map(|(i, item)| {
            let s = &slices[i];
            with_pixels(&s.path, plane, |px| f(px, 0, item, s)).map(|o| (i, o))
        })
        .collect::<Result<_, _>>()?;
    for (path, frames) in by_file {
        let done: Vec<(usize, O)> = with_pixels(path, plane, |px| {
            frames
                .into_par_iter()
                .map(|(i, item)| {
                    let s = &slices[i];
                    f(px, s.frame.unwrap_or(0), item, s).map(|o| (i, o))
                })
                .collect()
        })?;
        out.extend(done);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, o)| o).collect())
}

/// The slices of a uniform stack, decoded on every core straight into the volume's voxels.
/// Where every slice's rescale is a whole shift (slope 1, integral intercept) and the values fit,
/// they go into `i16` directly (the usual CT and MR case: half the memory of `f32` and no
/// second copy); otherwise into `f32`. Either way the result is stored in the smallest type
/// that holds every value, as [`Voxels::from_f32_compact`] chooses it.
pub(super) fn decode_stack(slices: &[SliceHeader], plane: usize) -> Result<Voxels, FileError> {
    let mut ints = vec![0i16; plane * slices.len()];
    let blocks: Vec<&mut [i16]> = ints.chunks_mut(plane).collect();
    let fits = map_slices(slices, blocks, plane, |px, f, out, _| {
        Ok(frame_i16(px, f, plane, out))
    })?;
    if fits.iter().all(|&ok| ok) {
        let (lo, hi) = ints
            .par_iter()
            .fold(
                || (i16::MAX, i16::MIN),
                |(lo, hi), &v| (lo.min(v), hi.max(v)),
            )
            .reduce(|| (i16::MAX, i16::MIN), |a, b| (a.0.min(b.0), a.1.max(b.1)));
        return Ok(if lo >= 0 && hi <= 255 {
            Voxels::U8(ints.par_iter().map(|&v| v as u8).collect())
        } else {
            Voxels::I16(ints)
        });
    }
    drop(ints);
    let mut values = vec![0f32; plane * slices.len()];
    let blocks: Vec<&mut [f32]> = values.chunks_mut(plane).collect();
    map_slices(slices, blocks, plane, |px, f, out, s| {
        out.copy_from_slice(&frame_f32(px, f, plane, &s.path)?);
        Ok(())
    })?;
    Ok(Voxels::from_f32_compact(values))
}

/// Every slice's values as `f32` (for stacks that are resampled onto a uniform grid).
pub(super) fn decode_slices(
    slices: &[SliceHeader],
    plane: usize,
) -> Result<Vec<Vec<f32>>, FileError> {
    let items = vec![(); slices.len()];
    map_slices(slices, items, plane, |px, f, (), s| {
        frame_f32(px, f, plane, &s.path)
    })
}

/// One frame into `out` as `i16` when its rescale is a whole shift and every value fits; false
/// (nothing promised about `out`) where it does not.
fn frame_i16(px: &Pixels<'_>, frame: u32, plane: usize, out: &mut [i16]) -> bool {
    let decoded = &px.data;
    let rescale = decoded
        .rescale()
        .ok()
        .and_then(|r| r.get(frame as usize).or_else(|| r.first()).copied());
    let shift = match rescale {
        None => 0.0,
        Some(r) if r.slope == 1.0 && r.intercept.fract() == 0.0 && r.intercept.abs() < 65536.0 => {
            r.intercept
        }
        Some(_) => return false,
    };
    // MONOCHROME1 is inverted by the f32 path; colour is refused there.
    if decoded.samples_per_pixel() != 1
        || *decoded.photometric_interpretation() != PhotometricInterpretation::Monochrome2
    {
        return false;
    }
    let shift = shift as i32;
    let put = |out: &mut [i16], values: &mut dyn Iterator<Item = i32>| {
        for (o, v) in out.iter_mut().zip(values) {
            match i16::try_from(v.saturating_add(shift)) {
                Ok(x) => *o = x,
                Err(_) => return false,
            }
        }
        true
    };
    // 16-bit samples in a little-endian syntax (nearly every CT and MR) are read straight from
    // the bytes: dicom-pixeldata's generic conversion took 1 ms a slice, most of the load.
    let (bits, allocated) = (decoded.bits_stored(), decoded.bits_allocated());
    let data = decoded.frame_data(frame).unwrap_or_default();
    if px.little_endian
        && allocated == 16
        && (1..=16).contains(&bits)
        && decoded.high_bit() + 1 == bits
        && data.len() >= 2 * plane
    {
        let mask = if bits == 16 {
            0xFFFF
        } else {
            (1u32 << bits) - 1
        };
        let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
        let sign = 1u32 << (bits - 1);
        let mut values = data[..2 * plane].chunks_exact(2).map(|c| {
            let raw = u32::from(u16::from_le_bytes([c[0], c[1]])) & mask;
            if signed && raw & sign != 0 {
                raw as i32 - (mask as i32 + 1)
            } else {
                raw as i32
            }
        });
        return put(out, &mut values);
    }
    let raw = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
    let Ok(values) = decoded.to_vec_frame_with_options::<i32>(frame, &raw) else {
        return false;
    };
    if values.len() != plane {
        return false; // the f32 path reports it
    }
    put(out, &mut values.into_iter())
}

/// One frame's values with the modality LUT (rescale) applied.
fn frame_f32(
    px: &Pixels<'_>,
    frame: u32,
    plane: usize,
    path: &Path,
) -> Result<Vec<f32>, FileError> {
    let bad = |what: String| FileError::new(path, what);
    let decoded = &px.data;
    if decoded.samples_per_pixel() != 1 {
        return Err(bad(format!(
            "{} samples per pixel: only greyscale images are supported",
            decoded.samples_per_pixel()
        )));
    }
    let values: Vec<f32> = decoded
        .to_vec_frame(frame)
        .map_err(|e| bad(format!("cannot convert pixel data: {e}")))?;
    if values.len() != plane {
        return Err(bad(format!(
            "pixel data holds {} values, Rows×Columns says {plane}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("pixel {i} is NaN or infinite after rescale")));
    }
    Ok(values)
}

/// BitsAllocated and BitsStored must make sense, and native (uncompressed) pixel data must hold
/// exactly Rows × Columns × SamplesPerPixel × BitsAllocated/8 × NumberOfFrames bytes (one pad
/// byte allowed): anything else means the header lies about the image, and decoding would read
/// the wrong pixels.
fn check_pixel_length(obj: &dicom_object::DefaultDicomObject, plane: usize) -> Result<(), String> {
    use dicom_core::value::Value;
    let Ok(e) = obj.element(tags::PIXEL_DATA) else {
        return Err("file has no PixelData".into());
    };
    let int = |tag, default: u64| {
        obj.get(tag)
            .and_then(|e| e.value().to_int::<u64>().ok())
            .unwrap_or(default)
    };
    let bits = int(tags::BITS_ALLOCATED, 16);
    if !matches!(bits, 8 | 16 | 32 | 64) {
        return Err(format!("BitsAllocated is {bits}: expected 8, 16, 32 or 64"));
    }
    // dicom-pixeldata sizes its rescale table by BitsStored (and panics on 0 or over 32).
    let stored = int(tags::BITS_STORED, bits);
    if stored == 0 || stored > bits.min(32) {
        return Err(format!(
            "BitsStored is {stored}: expected 1..{} (BitsAllocated {bits})",
            bits.min(32)
        ));
    }
    let Value::Primitive(p) = e.value() else {
        return Ok(()); // encapsulated: the codec knows its own size
    };
    let want = plane as u64
        * int(tags::SAMPLES_PER_PIXEL, 1)
        * int(tags::NUMBER_OF_FRAMES, 1).max(1)
        * (bits / 8);
    let have = p.calculate_byte_len() as u64;
    if have != want && have != want + 1 {
        return Err(format!(
            "PixelData holds {have} bytes, but Rows×Columns×SamplesPerPixel×BitsAllocated/8×\
             NumberOfFrames says {want}"
        ));
    }
    Ok(())
}
