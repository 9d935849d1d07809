//! Writing NIfTI-1: little-endian, LPS → RAS, qform and sform both set where the grid allows.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use glam::{DMat3, DMat4, DQuat};

use super::header::HEADER_BYTES;
use crate::io::FileError;
use crate::volume::{lps_from_ras, Volume, Voxels};

/// Write a volume as NIfTI-1 (gzip when the name ends in `.gz`), little-endian, LPS → RAS,
/// with qform and sform both set (code 1, scanner) to the same affine; the qform is left unset
/// (code 0) for sheared grids it cannot represent. Written durably (see [`crate::io::durable`]), so a
/// crash never leaves a half-written file under the final name.
pub fn write(path: &Path, volume: &Volume) -> Result<(), FileError> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    let header = build_header(volume);
    crate::io::durable::replace_with(path, |tmp| {
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
pub(super) fn build_header(volume: &Volume) -> [u8; HEADER_BYTES] {
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
