//! The NIfTI-1 header: magic, dims, datatype, offsets and scaling checked, and the affine
//! chosen (sform, qform or pixdim; see the module above for which wins).

use glam::{DMat3, DMat4, DVec3, DVec4};

use crate::io::MAX_VOXELS;

pub(super) const HEADER_BYTES: usize = 348;
/// Deflate cannot expand data by more than this factor; used to bound what a `.gz` can hold.
pub(super) const MAX_DEFLATE_RATIO: u64 = 1032;

/// Element types NIfTI can store that we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DataType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl DataType {
    pub(super) fn from_code(code: i16) -> Result<Self, String> {
        Ok(match code {
            2 => DataType::U8,
            256 => DataType::I8,
            4 => DataType::I16,
            512 => DataType::U16,
            8 => DataType::I32,
            768 => DataType::U32,
            1024 => DataType::I64,
            1280 => DataType::U64,
            16 => DataType::F32,
            64 => DataType::F64,
            32 | 1792 | 2048 => {
                return Err(format!("unsupported datatype {code} (complex numbers)"))
            }
            128 | 2304 => return Err(format!("unsupported datatype {code} (RGB colour)")),
            1536 => return Err("unsupported datatype 1536 (float128)".into()),
            _ => return Err(format!("unknown datatype code {code}")),
        })
    }

    pub(super) fn bytes(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::I64 | DataType::U64 | DataType::F64 => 8,
        }
    }
}

/// What the header says, checked: enough to size and place the data.
pub(super) struct Layout {
    pub(super) dims: [usize; 3],
    pub(super) volumes: u64,
    pub(super) datatype: DataType,
    pub(super) big_endian: bool,
    pub(super) vox_offset: u64,
    pub(super) scl: Option<(f32, f32)>,
    pub(super) ras_from_voxel: DMat4,
    /// pixdim[4] in ms where xyzt_units gives it a time unit (s, ms, µs).
    pub(super) phase_interval_ms: Option<f64>,
    pub(super) warnings: Vec<String>,
}

/// sizeof_hdr and magic: a NIfTI-1 single file, or a clear word on what it is instead.
pub(super) fn check_magic(bytes: &[u8; HEADER_BYTES]) -> Result<(), String> {
    let sizeof_le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let sizeof_be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if sizeof_le == 540 || sizeof_be == 540 {
        return Err("NIfTI-2 files are not supported (sizeof_hdr = 540); save as NIfTI-1".into());
    }
    if sizeof_le != 348 && sizeof_be != 348 {
        return Err(format!(
            "not a NIfTI-1 file: sizeof_hdr is {sizeof_le}, expected 348"
        ));
    }
    match &bytes[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err("header-only NIfTI (.hdr/.img pair) is not supported; use .nii".into())
        }
        m => {
            return Err(format!(
                "not a NIfTI-1 file: magic is {m:?}, expected \"n+1\\0\""
            ))
        }
    }
    Ok(())
}

/// The first three dims and the number of volumes the others hold.
pub(super) fn dims_of(h: &nifti::NiftiHeader) -> Result<([usize; 3], u64), String> {
    let ndim = h.dim[0] as i16;
    if !(1..=7).contains(&ndim) {
        return Err(format!("invalid dim[0] = {ndim}: must be 1..7"));
    }
    let ndim = ndim as usize;
    let mut dims = [1usize; 3];
    let mut volumes: u64 = 1;
    for a in 1..=ndim {
        let d = h.dim[a] as i16;
        if d < 1 {
            return Err(format!("invalid dim[{a}] = {d}: must be at least 1"));
        }
        if a <= 3 {
            dims[a - 1] = d as usize;
        } else {
            volumes = volumes.saturating_mul(d as u64);
        }
    }
    Ok((dims, volumes))
}

pub(super) fn parse_header(bytes: &[u8; HEADER_BYTES]) -> Result<Layout, String> {
    check_magic(bytes)?;
    let h = nifti::NiftiHeader::from_reader(&bytes[..])
        .map_err(|e| format!("invalid NIfTI-1 header: {e}"))?;
    let mut warnings = Vec::new();

    let (dims, volumes) = dims_of(&h)?;
    let nvox = dims.iter().map(|&d| d as u64).product::<u64>();
    if nvox > MAX_VOXELS {
        return Err(format!(
            "header claims {}×{}×{} = {nvox} voxels, more than the {MAX_VOXELS} this reader accepts",
            dims[0], dims[1], dims[2]
        ));
    }
    let datatype = DataType::from_code(h.datatype)?;
    if h.bitpix as usize != datatype.bytes() * 8 {
        warnings.push(format!(
            "bitpix {} disagrees with datatype {:?}; using the datatype",
            h.bitpix, datatype
        ));
    }
    let off = h.vox_offset;
    if !off.is_finite() || off < HEADER_BYTES as f32 || off.fract() != 0.0 || off > 1e9 {
        return Err(format!(
            "invalid vox_offset {off}: must be a whole number ≥ 352"
        ));
    }
    if off < 352.0 {
        warnings.push(format!(
            "vox_offset {off} is below the standard's minimum of 352"
        ));
    }
    let scl = if h.scl_slope == 0.0 || (h.scl_slope == 1.0 && h.scl_inter == 0.0) {
        None
    } else if h.scl_slope.is_finite() && h.scl_inter.is_finite() {
        Some((h.scl_slope, h.scl_inter))
    } else {
        warnings.push(format!(
            "ignoring non-finite scl_slope/scl_inter ({}, {})",
            h.scl_slope, h.scl_inter
        ));
        None
    };

    let ras_from_voxel = choose_affine(&h, &mut warnings)?;
    Ok(Layout {
        dims,
        volumes,
        datatype,
        big_endian: h.endianness == nifti::Endianness::Big,
        vox_offset: off as u64,
        scl,
        ras_from_voxel,
        phase_interval_ms: time_step_ms(h.pixdim[4], h.xyzt_units),
        warnings,
    })
}

/// pixdim[4] in ms, when xyzt_units' time bits (0x38) name seconds, ms or µs; ACDC's 1.0
/// with no unit is a frame index, not a time.
fn time_step_ms(step: f32, units: u8) -> Option<f64> {
    let scale = match units & 0x38 {
        8 => 1e3,
        16 => 1.0,
        24 => 1e-3,
        _ => return None,
    };
    let ms = f64::from(step) * scale;
    (ms.is_finite() && ms > 0.0).then_some(ms)
}

/// `ras_from_voxel` by the rules in the module doc, refused when it cannot place a scan (see
/// [`crate::volume::geometry_problem`]); the message names the header fields it came from.
pub(super) fn choose_affine(
    h: &nifti::NiftiHeader,
    warnings: &mut Vec<String>,
) -> Result<DMat4, String> {
    let named = |p: String| {
        let fields = if h.sform_code > 0 {
            "sform (srow_x, srow_y, srow_z) and pixdim[1..3]"
        } else if h.qform_code > 0 {
            "qform (quatern_b/c/d, qoffset_x/y/z) and pixdim[1..3]"
        } else {
            "pixdim[1..3]"
        };
        format!(
            "{p}; from {fields} = [{}, {}, {}]",
            h.pixdim[1], h.pixdim[2], h.pixdim[3]
        )
    };
    let m = choose_affine_unchecked(h, warnings).map_err(named)?;
    match crate::volume::geometry_problem(&m) {
        None => Ok(m),
        Some(p) => Err(named(p)),
    }
}

pub(super) fn choose_affine_unchecked(
    h: &nifti::NiftiHeader,
    warnings: &mut Vec<String>,
) -> Result<DMat4, String> {
    let pixdim = [
        f64::from(h.pixdim[1]),
        f64::from(h.pixdim[2]),
        f64::from(h.pixdim[3]),
    ];
    let pixdim_ok = pixdim.iter().all(|p| p.is_finite() && *p > 0.0);
    let qform = (h.qform_code > 0).then(|| qform_affine(h, pixdim));
    let sform = (h.sform_code > 0).then(|| sform_affine(h));

    let chosen = match (sform, qform) {
        (Some(s), q) => {
            if let Some(q) = q {
                let diff = max_abs_diff(&s, &q);
                if diff > 1e-3 && is_finite(&q) {
                    warnings.push(format!(
                        "qform and sform disagree (up to {diff:.3} mm); using the sform"
                    ));
                }
            }
            s
        }
        (None, Some(q)) => q,
        (None, None) => {
            warnings.push(
                "no qform or sform: orientation unknown, assuming voxel axes along RAS".into(),
            );
            let p = if pixdim_ok { pixdim } else { [1.0; 3] };
            DMat4::from_diagonal(DVec4::new(p[0], p[1], p[2], 1.0))
        }
    };
    if !is_finite(&chosen) || chosen.determinant().abs() < 1e-12 {
        return Err("the voxel-to-world transform is singular or not finite".into());
    }

    // The pixdim repair below is only for a sane transform with another scale (ACDC's unit
    // sform); a transform that cannot place a scan by itself is not repaired.
    if let Some(p) = crate::volume::geometry_problem(&chosen) {
        return Err(p);
    }
    let cols = [
        chosen.x_axis.truncate(),
        chosen.y_axis.truncate(),
        chosen.z_axis.truncate(),
    ];
    let lengths = cols.map(|c| c.length());
    if !pixdim_ok {
        warnings.push(format!(
            "pixdim ({}, {}, {}) is not a valid voxel size; using the transform's",
            pixdim[0], pixdim[1], pixdim[2]
        ));
        return Ok(chosen);
    }
    let disagrees = (0..3).any(|a| (lengths[a] - pixdim[a]).abs() > 1e-3 * pixdim[a].max(1e-6));
    if !disagrees {
        return Ok(chosen);
    }
    warnings.push(format!(
        "transform voxel size {:.4}×{:.4}×{:.4} mm disagrees with pixdim {:.4}×{:.4}×{:.4} mm; \
         using pixdim for spacing and the transform for directions and origin",
        lengths[0], lengths[1], lengths[2], pixdim[0], pixdim[1], pixdim[2]
    ));
    let mut fixed = chosen;
    fixed.x_axis = (cols[0] / lengths[0] * pixdim[0]).extend(0.0);
    fixed.y_axis = (cols[1] / lengths[1] * pixdim[1]).extend(0.0);
    fixed.z_axis = (cols[2] / lengths[2] * pixdim[2]).extend(0.0);
    Ok(fixed)
}

pub(super) fn sform_affine(h: &nifti::NiftiHeader) -> DMat4 {
    let r = |row: [f32; 4]| row.map(f64::from);
    let (x, y, z) = (r(h.srow_x), r(h.srow_y), r(h.srow_z));
    DMat4::from_cols(
        DVec4::new(x[0], y[0], z[0], 0.0),
        DVec4::new(x[1], y[1], z[1], 0.0),
        DVec4::new(x[2], y[2], z[2], 0.0),
        DVec4::new(x[3], y[3], z[3], 1.0),
    )
}

/// NIfTI method 2: rotation from the quaternion, scaled by pixdim, k flipped when qfac = -1.
pub(super) fn qform_affine(h: &nifti::NiftiHeader, pixdim: [f64; 3]) -> DMat4 {
    let (b, c, d) = (
        f64::from(h.quatern_b),
        f64::from(h.quatern_c),
        f64::from(h.quatern_d),
    );
    let a2 = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if a2 < 1e-7 {
        // The standard: a = 0 and (b, c, d) renormalised.
        let n = (b * b + c * c + d * d).sqrt();
        (0.0, b / n, c / n, d / n)
    } else {
        (a2.sqrt(), b, c, d)
    };
    let rot = DMat3::from_cols(
        DVec3::new(
            a * a + b * b - c * c - d * d,
            2.0 * (b * c + a * d),
            2.0 * (b * d - a * c),
        ),
        DVec3::new(
            2.0 * (b * c - a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d + a * b),
        ),
        DVec3::new(
            2.0 * (b * d + a * c),
            2.0 * (c * d - a * b),
            a * a + d * d - c * c - b * b,
        ),
    );
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let p = pixdim.map(|x| if x > 0.0 && x.is_finite() { x } else { 1.0 });
    DMat4::from_cols(
        (rot.x_axis * p[0]).extend(0.0),
        (rot.y_axis * p[1]).extend(0.0),
        (rot.z_axis * p[2] * qfac).extend(0.0),
        DVec4::new(
            f64::from(h.quatern_x),
            f64::from(h.quatern_y),
            f64::from(h.quatern_z),
            1.0,
        ),
    )
}

pub(super) fn max_abs_diff(a: &DMat4, b: &DMat4) -> f64 {
    let (a, b) = (a.to_cols_array(), b.to_cols_array());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub(super) fn is_finite(m: &DMat4) -> bool {
    m.to_cols_array().iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_step_needs_a_time_unit() {
        // xyzt_units: space in bits 0-2 (2 = mm), time in bits 3-5 (8 s, 16 ms, 24 µs).
        assert_eq!(time_step_ms(0.04, 2 | 8), Some(f64::from(0.04f32) * 1e3));
        assert_eq!(time_step_ms(40.0, 2 | 16), Some(40.0));
        assert_eq!(time_step_ms(40000.0, 24), Some(40.0));
        // ACDC: 1.0 with no unit is a frame index; nonsense steps are no frame rate.
        assert_eq!(time_step_ms(1.0, 2), None);
        assert_eq!(time_step_ms(f32::NAN, 16), None);
        assert_eq!(time_step_ms(-5.0, 16), None);
        let p = crate::volume::Phase::new(1, 12).unwrap();
        assert_eq!(p.with_interval_ms(40.0).interval_ms(), Some(40.0));
        assert_eq!(p.with_interval_ms(0.0).interval_ms(), None);
        assert_eq!(p.with_interval_ms(1e9).interval_ms(), None);
    }
}
