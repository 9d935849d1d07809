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
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::FileError;
use header::{parse_header, DataType, Layout, HEADER_BYTES, MAX_DEFLATE_RATIO};
pub use write::write;

mod header;
mod write;
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

/// Read a `.nii` or `.nii.gz` (gzip is detected from the bytes, not the name). 4D files give
/// their first volume (phase), with a note.
pub fn read(path: &Path) -> Result<Volume, FileError> {
    read_phase(path, 0)
}

/// Read volume `phase` (0-based) of a `.nii`/`.nii.gz`; a 3D file has only phase 0.
pub fn read_phase(path: &Path, phase: usize) -> Result<Volume, FileError> {
    let file = File::open(path).map_err(|e| FileError::io(path, "cannot open", e))?;
    read_from(path, file, phase)
}

/// Read the first volume of a NIfTI file held in memory (the embedded demo); `name` stands
/// for its path in messages.
pub fn read_bytes(name: &Path, bytes: &'static [u8]) -> Result<Volume, FileError> {
    read_from(name, std::io::Cursor::new(bytes), 0)
}

fn read_from<R: Read + Seek + 'static>(
    path: &Path,
    source: R,
    phase: usize,
) -> Result<Volume, FileError> {
    let (mut reader, stream) = open_stream(path, source)?;
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

fn open_stream<R: Read + Seek + 'static>(
    path: &Path,
    mut file: R,
) -> Result<(Box<dyn Read>, Stream), FileError> {
    let file_len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| FileError::io(path, "cannot read file size", e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| FileError::io(path, "cannot seek", e))?;
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

/// What reading one phase's voxels takes.
struct Budget {
    /// Bytes of one volume.
    needed: u64,
    /// Bytes of the phases before the chosen one (skipped, never kept).
    before: u64,
    /// Whether the claimed size is trusted for allocating the buffer up front.
    upfront: bool,
}

/// The header's sizes checked against what the file can hold, before anything is allocated.
fn budget(layout: &Layout, stream: &Stream, phase: usize) -> Result<Budget, String> {
    let bpv = layout.datatype.bytes() as u64;
    let [nx, ny, nz] = layout.dims;
    let nvox = nx as u64 * ny as u64 * nz as u64;
    let needed = nvox * bpv;
    let before = needed * phase as u64;
    let total = layout.vox_offset + before + needed;
    let file_len = stream.file_len;
    let upfront = if stream.gz {
        if needed > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
            return Err(format!(
                "header claims {nvox} voxels ({needed} bytes) but a {file_len}-byte gzip file \
                 cannot hold that much"
            ));
        }
        // Trust the size only where the trailer agrees (single-member gzip under 4 GiB).
        matches!(stream.gz_isize, Some(s) if total < (1 << 32) && s >= total)
    } else {
        if file_len < total {
            return Err(format!(
                "file is truncated: header needs {needed} bytes of voxel data from offset {} \
                 ({}×{}×{} {:?}), but the file has {file_len} bytes",
                layout.vox_offset, nx, ny, nz, layout.datatype
            ));
        }
        true
    };
    Ok(Budget {
        needed,
        before,
        upfront,
    })
}

fn read_stream(
    path: &Path,
    reader: &mut Box<dyn Read>,
    stream: &Stream,
    phase: usize,
) -> Result<Volume, FileError> {
    let err = |msg: String| FileError::new(path, msg);
    let stream_err = |what: &str, e: std::io::Error| {
        if stream.gz {
            err(format!("{what}: gzip stream is corrupt or truncated ({e})"))
        } else {
            err(format!("{what}: {e}"))
        }
    };
    let mut header = [0u8; HEADER_BYTES];
    read_fully(reader, &mut header).map_err(|e| stream_err("reading the header", e))?;
    let layout = parse_header(&header).map_err(err)?;
    let phases = usize::try_from(layout.volumes).unwrap_or(usize::MAX);
    let chosen = Phase::new(phase, phases).ok_or_else(|| {
        err(format!(
            "phase {} asked for, but the file holds {phases} volume(s)",
            phase + 1
        ))
    })?;
    let Budget {
        needed,
        before,
        upfront,
    } = budget(&layout, stream, phase).map_err(err)?;
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
    let mut raw = Vec::with_capacity(if upfront { needed as usize } else { 0 });
    reader
        .take(needed)
        .read_to_end(&mut raw)
        .map_err(|e| stream_err("reading voxel data", e))?;
    if (raw.len() as u64) < needed {
        let [nx, ny, nz] = layout.dims;
        return Err(err(format!(
            "file is truncated: header needs {needed} bytes of voxel data ({nx}×{ny}×{nz} {:?}), \
             only {} are there",
            layout.datatype,
            raw.len()
        )));
    }
    if stream.gz {
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
    vol.phase = match layout.phase_interval_ms {
        Some(ms) if phases > 1 => chosen.with_interval_ms(ms),
        _ => chosen,
    };
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

#[cfg(test)]
mod tests {
    use super::header::max_abs_diff;
    use super::write::build_header;
    use super::*;
    use glam::{DMat3, DMat4, DQuat, DVec3, DVec4};

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
