//! NIfTI-1 (`.nii`, `.nii.gz`) reading and writing, RAS ↔ LPS at this border.
//!
//! The header is parsed by the `nifti` crate; sizes are checked here, and voxel data is read by
//! this module so that no allocation trusts the header before the bytes are known to exist.
//!
//! **Which transform wins.** When `sform_code > 0` the sform is used, else the qform when
//! `qform_code > 0`, else pixdim alone (NIfTI "method 1", with a warning). The sform wins when
//! both are set because it is the general affine that registration and resampling tools write
//! last and that nibabel, FSL and Slicer also prefer; the qform can only hold rotation + scale.
//! A disagreement between the two is reported as a warning. The qform is rebuilt in `f64` from
//! its quaternion (the `nifti` crate's path loses up to 6e-4 when qfac = -1).
//!
//! **Spacing.** As ITK does, the voxel size comes from `pixdim` and the directions and origin
//! from the chosen transform. When the transform's column lengths disagree with `pixdim` (the
//! ACDC files as distributed have a unit-scaled sform with 1.5625×1.5625×10 mm pixdim) the file
//! loads with a warning naming both sizes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use glam::{DMat3, DMat4, DQuat, DVec3, DVec4};

use super::{FileError, MAX_VOXELS};
use crate::volume::{lps_from_ras, Grid, Phase, Volume, Voxels};

/// A NIfTI file's name without `.nii` or `.nii.gz` (any file's name, for others; empty when
/// the path has no file name): the one stem helper for names derived from an image's.
pub fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.trim_end_matches(".gz")
        .trim_end_matches(".nii")
        .to_string()
}

const HEADER_BYTES: usize = 348;
/// Deflate cannot expand data by more than this factor; used to bound what a `.gz` can hold.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Element types NIfTI can store that we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataType {
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
    fn from_code(code: i16) -> Result<Self, String> {
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

    fn bytes(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::I64 | DataType::U64 | DataType::F64 => 8,
        }
    }
}

/// What the header says, checked: enough to size and place the data.
struct Layout {
    dims: [usize; 3],
    volumes: u64,
    datatype: DataType,
    big_endian: bool,
    vox_offset: u64,
    scl: Option<(f32, f32)>,
    ras_from_voxel: DMat4,
    warnings: Vec<String>,
}

/// Read a `.nii` or `.nii.gz` (gzip is detected from the bytes, not the name). 4D files give
/// their first volume (phase), with a note.
pub fn read(path: &Path) -> Result<Volume, FileError> {
    read_phase(path, 0)
}

/// Read volume `phase` (0-based) of a `.nii`/`.nii.gz`; a 3D file has only phase 0.
pub fn read_phase(path: &Path, phase: usize) -> Result<Volume, FileError> {
    let (mut reader, stream) = open_stream(path)?;
    match read_stream(path, &mut reader, &stream, phase) {
        Err(e) if stream.gz => {
            // Whatever went wrong inside a gzip file, a failed CRC-32/ISIZE check is the real
            // cause: a flipped byte can make the header or the voxels look wrong.
            match std::io::copy(&mut reader, &mut std::io::sink()) {
                Err(gz) => Err(FileError::new(
                    path,
                    format!("gzip stream is corrupt or truncated ({gz}); {}", e.problem),
                )),
                Ok(_) => Err(e),
            }
        }
        other => other,
    }
}

/// What the file around the NIfTI stream is.
struct Stream {
    gz: bool,
    file_len: u64,
    /// gzip's trailer: the uncompressed size mod 2^32, a cheap claim to check against.
    gz_isize: Option<u64>,
}

fn open_stream(path: &Path) -> Result<(Box<dyn Read>, Stream), FileError> {
    let mut file = File::open(path).map_err(|e| FileError::io(path, "cannot open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| FileError::io(path, "cannot read file size", e))?
        .len();
    let mut magic = [0u8; 2];
    let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let gz_isize = if gz && file_len >= 18 {
        let mut t = [0u8; 4];
        file.seek(SeekFrom::End(-4))
            .and_then(|_| file.read_exact(&mut t))
            .map_err(|e| FileError::io(path, "cannot read gzip trailer", e))?;
        Some(u64::from(u32::from_le_bytes(t)))
    } else {
        None
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| FileError::io(path, "cannot seek", e))?;
    let buffered = BufReader::with_capacity(1 << 20, file);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok((
        reader,
        Stream {
            gz,
            file_len,
            gz_isize,
        },
    ))
}

fn read_stream(
    path: &Path,
    reader: &mut Box<dyn Read>,
    stream: &Stream,
    phase: usize,
) -> Result<Volume, FileError> {
    let err = |msg: String| FileError::new(path, msg);
    let Stream {
        gz,
        file_len,
        gz_isize,
    } = *stream;
    let stream_err = |what: &str, e: std::io::Error| {
        if gz {
            err(format!("{what}: gzip stream is corrupt or truncated ({e})"))
        } else {
            err(format!("{what}: {e}"))
        }
    };

    let mut header = [0u8; HEADER_BYTES];
    read_fully(reader, &mut header).map_err(|e| stream_err("reading the header", e))?;
    let layout = parse_header(&header).map_err(err)?;

    let bpv = layout.datatype.bytes() as u64;
    let [nx, ny, nz] = layout.dims;
    let nvox = nx as u64 * ny as u64 * nz as u64;
    let needed = nvox * bpv;
    let phases = usize::try_from(layout.volumes).unwrap_or(usize::MAX);
    let chosen = Phase::new(phase, phases).ok_or_else(|| {
        err(format!(
            "phase {} asked for, but the file holds {phases} volume(s)",
            phase + 1
        ))
    })?;
    // The bytes of the volumes before the chosen one are skipped, never kept.
    let before = needed * phase as u64;
    let total = layout.vox_offset + before + needed;
    let allocate_upfront = if gz {
        if needed > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
            return Err(err(format!(
                "header claims {nvox} voxels ({needed} bytes) but a {file_len}-byte gzip file \
                 cannot hold that much"
            )));
        }
        // Trust the size only where the trailer agrees (single-member gzip under 4 GiB).
        matches!(gz_isize, Some(s) if total < (1 << 32) && s >= total)
    } else {
        if file_len < total {
            return Err(err(format!(
                "file is truncated: header needs {needed} bytes of voxel data from offset {} \
                 ({}×{}×{} {:?}), but the file has {file_len} bytes",
                layout.vox_offset, nx, ny, nz, layout.datatype
            )));
        }
        true
    };

    // Skip extensions between the header and the data, and the phases before the chosen one.
    let skip = layout.vox_offset - HEADER_BYTES as u64 + before;
    let skipped = std::io::copy(&mut reader.take(skip), &mut std::io::sink())
        .map_err(|e| stream_err("skipping header extensions", e))?;
    if skipped < skip {
        return Err(err(format!(
            "file ends inside the header extensions (vox_offset {})",
            layout.vox_offset
        )));
    }

    let mut raw = Vec::with_capacity(if allocate_upfront { needed as usize } else { 0 });
    reader
        .take(needed)
        .read_to_end(&mut raw)
        .map_err(|e| stream_err("reading voxel data", e))?;
    if (raw.len() as u64) < needed {
        return Err(err(format!(
            "file is truncated: header needs {needed} bytes of voxel data ({nx}×{ny}×{nz} {:?}), \
             only {} are there",
            layout.datatype,
            raw.len()
        )));
    }

    if gz {
        // Read to the end so that the decoder checks the trailer's CRC-32 and ISIZE: a byte
        // flipped inside the deflate stream can still inflate, to wrong voxels.
        std::io::copy(reader, &mut std::io::sink())
            .map_err(|e| stream_err("checking the gzip trailer", e))?;
    }
    let voxels = decode(&raw, &layout).map_err(err)?;
    drop(raw);
    let mut vol = Volume::new(
        Grid::new(layout.dims, lps_from_ras() * layout.ras_from_voxel),
        voxels,
    );
    vol.warnings = layout.warnings;
    vol.phase = chosen;
    if phases > 1 {
        vol.warnings.push(format!(
            "4D file with {phases} volumes: phase {} of {phases} loaded (--phase chooses)",
            phase + 1
        ));
    }
    Ok(vol)
}

/// Like `read_exact`, but reports a clean "ends after N bytes" for short input.
fn read_fully(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ends after {filled} bytes; a NIfTI-1 header needs {}",
                        buf.len()
                    ),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Parse and check a 348-byte NIfTI-1 header. Never panics, whatever the bytes.
fn parse_header(bytes: &[u8; HEADER_BYTES]) -> Result<Layout, String> {
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
    let h = nifti::NiftiHeader::from_reader(&bytes[..])
        .map_err(|e| format!("invalid NIfTI-1 header: {e}"))?;
    let mut warnings = Vec::new();

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
        warnings,
    })
}

/// `ras_from_voxel` by the rules in the module doc, refused when it cannot place a scan (see
/// [`crate::volume::geometry_problem`]); the message names the header fields it came from.
fn choose_affine(h: &nifti::NiftiHeader, warnings: &mut Vec<String>) -> Result<DMat4, String> {
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

fn choose_affine_unchecked(
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

fn sform_affine(h: &nifti::NiftiHeader) -> DMat4 {
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
fn qform_affine(h: &nifti::NiftiHeader, pixdim: [f64; 3]) -> DMat4 {
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

fn max_abs_diff(a: &DMat4, b: &DMat4) -> f64 {
    let (a, b) = (a.to_cols_array(), b.to_cols_array());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn is_finite(m: &DMat4) -> bool {
    m.to_cols_array().iter().all(|x| x.is_finite())
}

/// Raw bytes → stored voxels: keep u8/i16/u16 when unscaled, else `f32`. Rejects NaN/Inf.
fn decode(raw: &[u8], layout: &Layout) -> Result<Voxels, String> {
    macro_rules! ints {
        ($t:ty, $n:literal) => {
            raw.chunks_exact($n).map(|c| {
                let b: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                if layout.big_endian {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                }
            })
        };
    }
    let as_f32: Vec<f32> = match (layout.datatype, layout.scl) {
        (DataType::U8, None) => return Ok(Voxels::U8(raw.to_vec())),
        (DataType::I16, None) => return Ok(Voxels::I16(ints!(i16, 2).collect())),
        (DataType::U16, None) => return Ok(Voxels::U16(ints!(u16, 2).collect())),
        (DataType::U8, _) => raw.iter().map(|&x| f32::from(x)).collect(),
        (DataType::I8, _) => raw.iter().map(|&x| f32::from(x as i8)).collect(),
        (DataType::I16, _) => ints!(i16, 2).map(f32::from).collect(),
        (DataType::U16, _) => ints!(u16, 2).map(f32::from).collect(),
        (DataType::I32, _) => ints!(i32, 4).map(|x| x as f32).collect(),
        (DataType::U32, _) => ints!(u32, 4).map(|x| x as f32).collect(),
        (DataType::I64, _) => ints!(i64, 8).map(|x| x as f32).collect(),
        (DataType::U64, _) => ints!(u64, 8).map(|x| x as f32).collect(),
        (DataType::F32, _) => ints!(u32, 4).map(f32::from_bits).collect(),
        (DataType::F64, _) => ints!(u64, 8).map(|x| f64::from_bits(x) as f32).collect(),
    };
    let mut values = as_f32;
    if let Some((slope, inter)) = layout.scl {
        for v in &mut values {
            *v = *v * slope + inter;
        }
    }
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
        let [nx, ny, _] = layout.dims;
        return Err(format!(
            "{bad} voxels are NaN or infinite (first at voxel ({}, {}, {}))",
            first % nx,
            (first / nx) % ny,
            first / (nx * ny)
        ));
    }
    Ok(Voxels::F32(values))
}

/// Write a volume as NIfTI-1 (gzip when the name ends in `.gz`), little-endian, LPS → RAS,
/// with qform and sform both set (code 1, scanner) to the same affine; the qform is left unset
/// (code 0) for sheared grids it cannot represent. Written durably (see [`super::durable`]), so a
/// crash never leaves a half-written file under the final name.
pub fn write(path: &Path, volume: &Volume) -> Result<(), FileError> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    let header = build_header(volume);
    super::durable::replace_with(path, |tmp| {
        let file = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
        if gz {
            let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::new(4));
            write_nifti(&mut out, &header, &volume.voxels)?;
            out.finish()?.flush()
        } else {
            let mut out = file;
            write_nifti(&mut out, &header, &volume.voxels)?;
            out.flush()
        }
    })
}

fn write_nifti(out: &mut dyn Write, header: &[u8], voxels: &Voxels) -> std::io::Result<()> {
    out.write_all(header)?;
    out.write_all(&[0u8; 4])?; // no extensions
    write_voxels(out, voxels)
}

fn write_voxels(out: &mut dyn Write, voxels: &Voxels) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 16;
    match voxels {
        Voxels::U8(v) => out.write_all(v),
        Voxels::I16(v) => write_chunked(out, v, CHUNK, |x| x.to_le_bytes()),
        Voxels::U16(v) => write_chunked(out, v, CHUNK, |x| x.to_le_bytes()),
        Voxels::F32(v) => write_chunked(out, v, CHUNK, |x| x.to_le_bytes()),
    }
}

fn write_chunked<T: Copy, const N: usize>(
    out: &mut dyn Write,
    values: &[T],
    chunk: usize,
    to_bytes: impl Fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(chunk * N);
    for part in values.chunks(chunk) {
        buf.clear();
        for &x in part {
            buf.extend_from_slice(&to_bytes(x));
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

/// The 348 header bytes for a volume (little-endian).
fn build_header(volume: &Volume) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &348i32.to_le_bytes());
    put(38, b"r"); // regular
    let [nx, ny, nz] = volume.dims();
    for (a, d) in [3usize, nx, ny, nz, 1, 1, 1, 1].iter().enumerate() {
        put(40 + 2 * a, &(*d as i16).to_le_bytes());
    }
    let (code, bitpix): (i16, i16) = match volume.voxels {
        Voxels::U8(_) => (2, 8),
        Voxels::I16(_) => (4, 16),
        Voxels::U16(_) => (512, 16),
        Voxels::F32(_) => (16, 32),
    };
    put(70, &code.to_le_bytes());
    put(72, &bitpix.to_le_bytes());

    let ras_from_voxel = lps_from_ras() * volume.world_from_voxel();
    let spacing = volume.spacing_mm();
    let quat = qform_quaternion(&ras_from_voxel);
    let qfac = quat.map_or(1.0, |(_, qfac)| qfac);
    for (a, p) in [qfac, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0]
        .iter()
        .enumerate()
    {
        put(76 + 4 * a, &(*p as f32).to_le_bytes());
    }
    put(108, &352f32.to_le_bytes()); // vox_offset
    put(112, &1f32.to_le_bytes()); // scl_slope
    put(123, &[2u8]); // xyzt_units: mm
    put(148, b"heartloc");
    let origin = ras_from_voxel.w_axis;
    if let Some((q, _)) = quat {
        put(252, &1i16.to_le_bytes());
        for (a, v) in [q.x, q.y, q.z, origin.x, origin.y, origin.z]
            .iter()
            .enumerate()
        {
            put(256 + 4 * a, &(*v as f32).to_le_bytes());
        }
    }
    put(254, &1i16.to_le_bytes()); // sform_code
    let rows = ras_from_voxel.transpose();
    for (r, row) in [rows.x_axis, rows.y_axis, rows.z_axis].iter().enumerate() {
        for (c, v) in row.to_array().iter().enumerate() {
            put(280 + 16 * r + 4 * c, &(*v as f32).to_le_bytes());
        }
    }
    put(344, b"n+1\0");
    h
}

/// The qform quaternion (a ≥ 0) and qfac of an affine, or `None` when its axes are not
/// orthogonal (a qform cannot represent shear).
fn qform_quaternion(ras_from_voxel: &DMat4) -> Option<(DQuat, f64)> {
    let cols = [
        ras_from_voxel.x_axis.truncate().normalize(),
        ras_from_voxel.y_axis.truncate().normalize(),
        ras_from_voxel.z_axis.truncate().normalize(),
    ];
    let orthogonal = cols[0].dot(cols[1]).abs() < 1e-4
        && cols[0].dot(cols[2]).abs() < 1e-4
        && cols[1].dot(cols[2]).abs() < 1e-4;
    if !orthogonal {
        return None;
    }
    let mut rot = DMat3::from_cols(cols[0], cols[1], cols[2]);
    let qfac = if rot.determinant() < 0.0 {
        rot.z_axis = -rot.z_axis;
        -1.0
    } else {
        1.0
    };
    let q = DQuat::from_mat3(&rot);
    Some((if q.w < 0.0 { -q } else { q }, qfac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_volume(world_from_voxel: DMat4) -> Volume {
        let dims = [5, 4, 3];
        let vals: Vec<i16> = (0..60).map(|x| x * 7 - 100).collect();
        Volume::new(Grid::new(dims, world_from_voxel), Voxels::I16(vals))
    }

    fn oblique_flipped() -> DMat4 {
        let rot = DMat3::from_quat(DQuat::from_euler(glam::EulerRot::XYZ, 0.2, -0.4, 0.9));
        let mut m = DMat4::from_mat3(rot) * DMat4::from_scale(DVec3::new(0.8, 1.2, 3.0));
        m.z_axis = -m.z_axis; // left-handed: qfac = -1
        m.w_axis = DVec4::new(-12.5, 40.0, 7.25, 1.0);
        m
    }

    #[test]
    fn write_then_read_round_trips_geometry_and_values() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.nii", "a.nii.gz"] {
            let path = dir.path().join(name);
            let vol = sample_volume(oblique_flipped());
            write(&path, &vol).unwrap();
            let back = read(&path).unwrap();
            assert_eq!(back.voxels, vol.voxels);
            assert!(back.warnings.is_empty(), "{:?}", back.warnings);
            let d = max_abs_diff(&back.world_from_voxel(), &vol.world_from_voxel());
            assert!(d < 1e-4, "affine differs by {d}");
        }
    }

    #[test]
    fn qform_alone_gives_the_same_affine_as_sform() {
        // Written headers hold both; blank the sform and read again through the qform path.
        let vol = sample_volume(oblique_flipped());
        let mut header = build_header(&vol);
        header[254..256].copy_from_slice(&0i16.to_le_bytes());
        let layout = parse_header(&header).unwrap();
        let d = max_abs_diff(
            &(lps_from_ras() * layout.ras_from_voxel),
            &vol.world_from_voxel(),
        );
        assert!(d < 1e-4, "qform path differs by {d}");
    }

    #[test]
    fn header_lies_are_refused_with_reasons() {
        let vol = sample_volume(DMat4::IDENTITY);
        let base = build_header(&vol);
        let check = |edit: &dyn Fn(&mut [u8; HEADER_BYTES]), want: &str| {
            let mut h = base;
            edit(&mut h);
            match parse_header(&h) {
                Err(e) => assert!(e.contains(want), "{e} lacks {want}"),
                Ok(_) => panic!("accepted a header that should fail: {want}"),
            }
        };
        check(&|h| h[344..348].copy_from_slice(b"abcd"), "magic");
        check(
            &|h| h[0..4].copy_from_slice(&540i32.to_le_bytes()),
            "NIfTI-2",
        );
        check(
            &|h| h[0..4].copy_from_slice(&1i32.to_le_bytes()),
            "sizeof_hdr",
        );
        check(
            &|h| h[42..44].copy_from_slice(&(-3i16).to_le_bytes()),
            "dim[1]",
        );
        check(
            &|h| h[40..42].copy_from_slice(&9i16.to_le_bytes()),
            "dim[0]",
        );
        check(
            &|h| {
                for a in 1..4 {
                    h[40 + 2 * a..42 + 2 * a].copy_from_slice(&32000i16.to_le_bytes());
                }
            },
            "voxels",
        );
        check(
            &|h| h[70..72].copy_from_slice(&32i16.to_le_bytes()),
            "complex",
        );
        check(
            &|h| h[108..112].copy_from_slice(&f32::NAN.to_le_bytes()),
            "vox_offset",
        );
        check(
            &|h| {
                h[280..328].fill(0);
                h[252..254].fill(0);
            },
            "singular",
        );
    }
}
