//! The volume as the GPU holds it: values normalised to 0..1 over the volume's range as
//! `R16Float`, downsampled by an integer factor (with a notice) beyond the adapter's 3D-texture
//! limit, and its placement in the world (`tex_from_world`); the structure slots beside it; the
//! one routine that makes a 3D texture of either.

use eframe::egui_wgpu::wgpu;
use glam::{DMat4, DVec3};

use crate::volume::Volume;

/// A volume ready for upload: normalised half floats and the texture's placement in the world.
pub struct GpuVolume {
    /// Changes whenever the shown volume changes; the texture is uploaded once per id.
    pub id: u64,
    pub dims: [u32; 3],
    pub(super) texels: Vec<half::f16>,
    /// Stored value → normalised texture value: `(v - lo) / (hi - lo)`.
    pub value_lo: f64,
    pub value_hi: f64,
    /// LPS mm → texture coordinates (0..1 across the voxel extents).
    pub tex_from_world: DMat4,
    /// Set when the volume had to be downsampled to fit the GPU.
    pub notice: Option<String>,
}

/// Structure slots (see `overlay::structure_texels`) on the volume texture's texels, for the
/// 3D view's Labels mode; uploaded once per `key`.
pub struct GpuStructures {
    pub key: u64,
    pub dims: [u32; 3],
    pub texels: Vec<u8>,
}

impl GpuVolume {
    /// LPS mm of texel centres: texel index (i, j, k) → world.
    pub fn world_from_texel(&self) -> DMat4 {
        let n = DVec3::new(
            f64::from(self.dims[0]),
            f64::from(self.dims[1]),
            f64::from(self.dims[2]),
        );
        self.tex_from_world.inverse()
            * DMat4::from_scale(1.0 / n)
            * DMat4::from_translation(DVec3::splat(0.5))
    }

    /// The texture-space box (min, max; the volume is 0..1) around an LPS box, or the whole
    /// volume for `None`.
    pub fn tex_box(&self, crop_lps: Option<(DVec3, DVec3)>) -> (glam::Vec3, glam::Vec3) {
        let Some((lo, hi)) = crop_lps else {
            return (glam::Vec3::ZERO, glam::Vec3::ONE);
        };
        let (mut a, mut b) = (DVec3::splat(f64::INFINITY), DVec3::splat(f64::NEG_INFINITY));
        for c in 0..8 {
            let pick = |bit: usize, l: f64, h: f64| if c & bit == 0 { l } else { h };
            let p = DVec3::new(
                pick(1, lo.x, hi.x),
                pick(2, lo.y, hi.y),
                pick(4, lo.z, hi.z),
            );
            let t = self.tex_from_world.transform_point3(p);
            (a, b) = (a.min(t), b.max(t));
        }
        (
            a.clamp(DVec3::ZERO, DVec3::ONE).as_vec3(),
            b.clamp(DVec3::ZERO, DVec3::ONE).as_vec3(),
        )
    }

    /// Prepare `volume` for a GPU whose 3D textures may be at most `max_dim` texels per side.
    pub fn new(id: u64, volume: &Volume, max_dim: u32) -> Self {
        let dims = volume.dims();
        let largest = *dims.iter().max().unwrap_or(&1) as u32;
        let factor = largest.div_ceil(max_dim.max(1)).max(1) as usize;
        let out_dims = dims.map(|d| d.div_ceil(factor));
        let (lo, hi) = volume.intensity_range();
        let (lo, hi) = (f64::from(lo), f64::from(hi).max(f64::from(lo) + 1e-6));
        let scale = 1.0 / (hi - lo);
        let mut texels = Vec::with_capacity(out_dims.iter().product());
        for k in 0..out_dims[2] {
            for j in 0..out_dims[1] {
                for i in 0..out_dims[0] {
                    let v = volume.at(
                        (i * factor).min(dims[0] - 1),
                        (j * factor).min(dims[1] - 1),
                        (k * factor).min(dims[2] - 1),
                    );
                    texels.push(half::f16::from_f64((f64::from(v) - lo) * scale));
                }
            }
        }
        // Texture coordinate of voxel centre i (of the downsampled grid) is (i + 0.5) / n.
        let world_from_small =
            volume.world_from_voxel() * DMat4::from_scale(DVec3::splat(factor as f64));
        let n = DVec3::new(out_dims[0] as f64, out_dims[1] as f64, out_dims[2] as f64);
        let tex_from_small =
            DMat4::from_scale(n.recip()) * DMat4::from_translation(DVec3::splat(0.5));
        let notice = (factor > 1).then(|| {
            format!(
                "volume {}×{}×{} exceeds the GPU's 3D texture limit ({max_dim}); shown downsampled ×{factor}",
                dims[0], dims[1], dims[2]
            )
        });
        GpuVolume {
            id,
            dims: out_dims.map(|d| d as u32),
            texels,
            value_lo: lo,
            value_hi: hi,
            tex_from_world: tex_from_small * world_from_small.inverse(),
            notice,
        }
    }

    /// A stored value as a normalised texture value.
    pub fn normalise(&self, v: f64) -> f32 {
        ((v - self.value_lo) / (self.value_hi - self.value_lo)) as f32
    }
}

/// A 3D texture of `dims` texels of `texel_bytes` each, filled with `data` (memory order, x
/// fastest): the volume and the structure slots alike.
pub(super) fn texture_3d(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    format: wgpu::TextureFormat,
    dims: [u32; 3],
    texel_bytes: u32,
    data: &[u8],
) -> wgpu::TextureView {
    let size = wgpu::Extent3d {
        width: dims[0],
        height: dims[1],
        depth_or_array_layers: dims[2],
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    queue.write_texture(
        texture.as_image_copy(),
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(dims[0] * texel_bytes),
            rows_per_image: Some(dims[1]),
        },
        size,
    );
    texture.create_view(&wgpu::TextureViewDescriptor::default())
}

/// The structure slots as an `R8Uint` 3D texture (none: 1×1×1 of slot 0).
pub(super) fn structures_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    data: Option<&GpuStructures>,
) -> wgpu::TextureView {
    let (dims, texels) = data.map_or(([1, 1, 1], &[0u8][..]), |s| (s.dims, &s.texels[..]));
    let format = wgpu::TextureFormat::R8Uint;
    texture_3d(
        device,
        queue,
        "heartloc structures",
        format,
        dims,
        1,
        texels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Grid, Voxels};

    #[test]
    fn oversized_volumes_are_downsampled_with_a_notice_and_keep_their_world_placement() {
        let m = DMat4::from_scale(DVec3::new(0.5, 0.7, 2.0))
            * DMat4::from_translation(DVec3::new(-10.0, 3.0, 1.0));
        let vals: Vec<f32> = (0..100 * 40 * 9).map(|x| x as f32).collect();
        let vol = Volume::new(Grid::new([100, 40, 9], m), Voxels::F32(vals));
        let fits = GpuVolume::new(1, &vol, 128);
        assert!(fits.notice.is_none());
        assert_eq!(fits.dims, [100, 40, 9]);
        let small = GpuVolume::new(2, &vol, 32);
        assert_eq!(small.dims, [25, 10, 3]);
        assert!(small
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("downsampled ×4")));
        // Voxel (0,0,0)'s centre is at the first texel's centre in both.
        let p = vol.grid.world_from_index(DVec3::ZERO);
        let tc_full = fits.tex_from_world.transform_point3(p);
        assert!((tc_full - DVec3::new(0.5 / 100.0, 0.5 / 40.0, 0.5 / 9.0)).length() < 1e-9);
        let tc_small = small.tex_from_world.transform_point3(p);
        assert!((tc_small - DVec3::new(0.5 / 25.0, 0.5 / 10.0, 0.5 / 3.0)).length() < 1e-9);
        // Values are normalised to 0..1 over the volume's range.
        assert_eq!(fits.normalise(0.0), 0.0);
        assert_eq!(fits.normalise(f64::from(100 * 40 * 9 - 1)), 1.0);
        // Texel centres map back onto the voxel centres they were taken from (every 4th on
        // the small grid).
        let w = fits
            .world_from_texel()
            .transform_point3(DVec3::new(3.0, 2.0, 1.0));
        assert!((w - vol.grid.world_from_index(DVec3::new(3.0, 2.0, 1.0))).length() < 1e-9);
        let w = small.world_from_texel().transform_point3(DVec3::ONE);
        assert!((w - vol.grid.world_from_index(DVec3::splat(4.0))).length() < 1e-9);
    }
}
