//! All wgpu code: the volume uploaded once as a 3D texture, a slice pipeline and a ray-marching
//! volume pipeline (WGSL in `shaders/`), drawn inside egui through paint callbacks.
//!
//! The texture holds values normalised to 0..1 over the volume's range as `R16Float`
//! (filterable on every backend, half the memory of `R32Float`). Volumes larger than the
//! adapter's 3D-texture limit are downsampled by an integer factor, and [`GpuVolume::notice`]
//! says so.

use std::collections::HashMap;
use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};
use glam::{DMat4, DVec2, DVec3};

use crate::slice_view::{
    DvrPreset, OrbitCamera, Pane, SlabMode, SlabSamples, SliceView, VolumeMode, Window,
};
mod texture;
use texture::{structures_texture, texture_3d};
pub use texture::{GpuStructures, GpuVolume};

/// Keep in sync with `SliceUniforms` in shaders/slice.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SliceUniforms {
    tex_from_world: [[f32; 4]; 4],
    origin: [f32; 4],
    du: [f32; 4],
    dv: [f32; 4],
    rect: [f32; 4],
    window: [f32; 4],
    slab: [f32; 4],
}
const _: () = assert!(std::mem::size_of::<SliceUniforms>() == 160);

/// Keep in sync with `VolumeUniforms` in shaders/volume.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct VolumeUniforms {
    world_from_clip: [[f32; 4]; 4],
    tex_from_world: [[f32; 4]; 4],
    rect: [f32; 4],
    params: [f32; 4],
    window: [f32; 4],
    texel: [f32; 4],
    box_lo: [f32; 4],
    box_hi: [f32; 4],
    palette: [[f32; 4]; 16],
}
const _: () = assert!(std::mem::size_of::<VolumeUniforms>() == 480);

const UNIFORM_BYTES: u64 = 480;

/// Keep in sync with `BlitUniforms` in shaders/blit.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BlitUniforms {
    rect: [f32; 4],
}

// Each pipeline's WGSL is the shared vertex stage followed by its own file.
pub const BLIT_WGSL: &str = concat!(
    include_str!("../../shaders/fullscreen.wgsl"),
    include_str!("../../shaders/blit.wgsl")
);
pub const SLICE_WGSL: &str = concat!(
    include_str!("../../shaders/fullscreen.wgsl"),
    include_str!("../../shaders/slice.wgsl")
);
pub const VOLUME_WGSL: &str = concat!(
    include_str!("../../shaders/fullscreen.wgsl"),
    include_str!("../../shaders/volume.wgsl")
);

/// Pipelines and GPU state, kept in egui's callback resources.
pub struct Renderer {
    slice_pipeline: wgpu::RenderPipeline,
    volume_pipeline: wgpu::RenderPipeline,
    blit_pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    blit_layout: wgpu::BindGroupLayout,
    target: wgpu::TextureFormat,
    offscreen: HashMap<u32, Offscreen>,
    sampler: wgpu::Sampler,
    srgb_target: bool,
    texture: Option<(u64, wgpu::TextureView)>,
    /// The structure slots of the Labels mode (key 0: none, a 1×1×1 texture of slot 0).
    structures: (u64, wgpu::TextureView),
    panes: HashMap<u32, PaneUniforms>,
}

/// The volume view renders into this at a chosen resolution; the blit draws it into the pane.
struct Offscreen {
    size: [u32; 2],
    view: wgpu::TextureView,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

struct PaneUniforms {
    buffer: wgpu::Buffer,
    /// Built for (volume id, structures key).
    bind_group: Option<((u64, u64), wgpu::BindGroup)>,
}

impl Renderer {
    /// Create pipelines once and store them for the paint callbacks.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let renderer = Renderer::new(
            &render_state.device,
            &render_state.queue,
            render_state.target_format,
        );
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(renderer);
    }

    fn new(device: &wgpu::Device, queue: &wgpu::Queue, target: wgpu::TextureFormat) -> Self {
        let layout = bind_group_layout(device, "heartloc volume", wgpu::TextureViewDimension::D3);
        let blit_layout =
            bind_group_layout(device, "heartloc blit", wgpu::TextureViewDimension::D2);
        let no_structures = structures_texture(device, queue, None);
        let pipeline_layout = |l: &wgpu::BindGroupLayout| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("heartloc"),
                bind_group_layouts: &[Some(l)],
                immediate_size: 0,
            })
        };
        let volume_layout = pipeline_layout(&layout);
        let image_layout = pipeline_layout(&blit_layout);
        let make = |label, source, layout| pipeline(device, target, label, source, layout);
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("heartloc volume"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            address_mode_w: wgpu::AddressMode::ClampToEdge,
            ..Default::default()
        });
        Renderer {
            slice_pipeline: make("slice.wgsl", SLICE_WGSL, &volume_layout),
            volume_pipeline: make("volume.wgsl", VOLUME_WGSL, &volume_layout),
            blit_pipeline: make("blit.wgsl", BLIT_WGSL, &image_layout),
            layout,
            blit_layout,
            target,
            offscreen: HashMap::new(),
            sampler,
            srgb_target: target.is_srgb(),
            texture: None,
            structures: (0, no_structures),
            panes: HashMap::new(),
        }
    }

    /// Upload the Labels mode's structure slots when they changed (none: slot 0 everywhere).
    fn upload_structures(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        structures: Option<&GpuStructures>,
    ) {
        let key = structures.map_or(0, |s| s.key);
        if self.structures.0 == key {
            return;
        }
        let view = structures_texture(device, queue, structures);
        self.structures = (key, view);
    }

    fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, volume: &GpuVolume) {
        if self
            .texture
            .as_ref()
            .is_some_and(|(id, _)| *id == volume.id)
        {
            return;
        }
        let texels = bytemuck::cast_slice(&volume.texels);
        let format = wgpu::TextureFormat::R16Float;
        let view = texture_3d(
            device,
            queue,
            "heartloc volume",
            format,
            volume.dims,
            2,
            texels,
        );
        self.texture = Some((volume.id, view));
    }

    fn write_pane(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, pane: u32, bytes: &[u8]) {
        let Some((volume_id, view)) = self.texture.as_ref() else {
            return;
        };
        let key = (*volume_id, self.structures.0);
        let entry = self.panes.entry(pane).or_insert_with(|| PaneUniforms {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("heartloc pane uniforms"),
                size: UNIFORM_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            bind_group: None,
        });
        if entry.bind_group.as_ref().is_none_or(|(k, _)| *k != key) {
            let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("heartloc pane"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: entry.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::TextureView(&self.structures.1),
                    },
                ],
            });
            entry.bind_group = Some((key, group));
        }
        let mut padded = [0u8; UNIFORM_BYTES as usize];
        padded[..bytes.len()].copy_from_slice(bytes);
        queue.write_buffer(&entry.buffer, 0, &padded);
    }
}

impl Renderer {
    fn offscreen(&mut self, device: &wgpu::Device, pane: u32, size: [u32; 2]) -> &Offscreen {
        let stale = self.offscreen.get(&pane).is_none_or(|o| o.size != size);
        if stale {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("heartloc volume view"),
                size: wgpu::Extent3d {
                    width: size[0],
                    height: size[1],
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: self.target,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT
                    | wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("heartloc blit uniforms"),
                size: std::mem::size_of::<BlitUniforms>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("heartloc blit"),
                layout: &self.blit_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: uniforms.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                ],
            });
            self.offscreen.insert(
                pane,
                Offscreen {
                    size,
                    view,
                    uniforms,
                    bind_group,
                },
            );
        }
        &self.offscreen[&pane]
    }
}

/// A uniform buffer, a texture (3D volume or 2D image) and a filtering sampler, seen by the
/// fragment stage; for the 3D volume also the structure slots (unsigned, read by `textureLoad`).
fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    dim: wgpu::TextureViewDimension,
) -> wgpu::BindGroupLayout {
    let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty,
        count: None,
    };
    let structures = entry(
        3,
        wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Uint,
            view_dimension: wgpu::TextureViewDimension::D3,
            multisampled: false,
        },
    );
    let mut entries = vec![
        entry(
            0,
            wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
        ),
        entry(
            1,
            wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: dim,
                multisampled: false,
            },
        ),
        entry(
            2,
            wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
        ),
    ];
    if dim == wgpu::TextureViewDimension::D3 {
        entries.push(structures);
    }
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// A full-screen-triangle pipeline of one WGSL file (`vs_main`, `fs_main`) drawing into
/// `target`.
fn pipeline(
    device: &wgpu::Device,
    target: wgpu::TextureFormat,
    label: &str,
    source: &str,
    layout: &wgpu::PipelineLayout,
) -> wgpu::RenderPipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            targets: &[Some(target.into())],
            compilation_options: Default::default(),
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    })
}

fn mat(m: DMat4) -> [[f32; 4]; 4] {
    m.as_mat4().to_cols_array_2d()
}

fn v4(v: DVec3) -> [f32; 4] {
    [v.x as f32, v.y as f32, v.z as f32, 0.0]
}

/// The 3D Labels mode's structure slots and the colour of each slot (alpha 1: shown).
#[derive(Clone)]
pub struct StructureDraw {
    pub slots: Arc<GpuStructures>,
    pub palette: [[f32; 4]; 16],
}

/// What one pane draws this frame.
#[derive(Clone)]
pub enum PaneDraw {
    Slice {
        view: SliceView,
        crosshair: DVec3,
        window: Window,
        slab: SlabSamples,
    },
    Volume {
        camera: OrbitCamera,
        mode: VolumeMode,
        window: Window,
        /// Isosurface level in stored values.
        iso: f64,
        /// The DVR transfer function.
        dvr: DvrPreset,
        /// Ray step in voxels (larger while interacting).
        step_voxels: f64,
        /// Rendered at this fraction of the pane's resolution, then upscaled (smaller while
        /// interacting, to stay responsive on a software rasteriser).
        resolution_scale: f64,
        /// Only this LPS box (min, max) is rendered; `None`: the whole volume.
        crop_lps: Option<(DVec3, DVec3)>,
        /// The Labels mode's structure slots and each slot's colour.
        structures: Option<Box<StructureDraw>>,
    },
}

/// The paint callback of one pane: its rectangle in framebuffer pixels and what to draw.
struct PaneCallback {
    pane: u32,
    volume: Arc<GpuVolume>,
    draw: PaneDraw,
    rect_px: [f32; 4],
}

/// A paint callback drawing `draw` into `rect` (points) of the egui frame.
pub fn pane_callback(
    pane: Pane,
    volume: Arc<GpuVolume>,
    draw: PaneDraw,
    rect: eframe::egui::Rect,
    pixels_per_point: f32,
) -> eframe::egui::PaintCallback {
    let rect_px = [
        rect.min.x * pixels_per_point,
        rect.min.y * pixels_per_point,
        rect.width() * pixels_per_point,
        rect.height() * pixels_per_point,
    ];
    egui_wgpu::Callback::new_paint_callback(
        rect,
        PaneCallback {
            pane: pane.index() as u32,
            volume,
            draw,
            rect_px,
        },
    )
}

impl PaneCallback {
    /// Uniform bytes; `target_rect` is where the pass draws (the pane, or the offscreen image).
    fn uniforms(&self, ppp: f64, srgb: f32, target_rect: [f32; 4]) -> Vec<u8> {
        let vol = &self.volume;
        let size_pt = DVec2::new(
            f64::from(self.rect_px[2]) / ppp,
            f64::from(self.rect_px[3]) / ppp,
        );
        match &self.draw {
            PaneDraw::Slice {
                view,
                crosshair,
                window,
                slab,
            } => {
                let (r, d, n) = view.axes();
                // `origin` is the world point at the pane's top-left corner; the shader adds
                // per-pixel steps to fragment positions (pixel centres).
                let origin = view.world_from_screen(DVec2::ZERO, size_pt, *crosshair);
                let u = SliceUniforms {
                    tex_from_world: mat(vol.tex_from_world),
                    origin: v4(origin),
                    du: v4(r * view.mm_per_px / ppp),
                    dv: v4(d * view.mm_per_px / ppp),
                    rect: target_rect,
                    window: [
                        vol.normalise(window.low),
                        vol.normalise(window.high),
                        srgb,
                        f32::from(u8::from(slab.mode == SlabMode::Max)),
                    ],
                    slab: {
                        let [x, y, z, _] = v4(n * slab.step_mm);
                        [x, y, z, slab.count as f32]
                    },
                };
                bytemuck::bytes_of(&u).to_vec()
            }
            PaneDraw::Volume {
                camera,
                mode,
                window,
                iso,
                dvr,
                step_voxels,
                crop_lps,
                structures,
                ..
            } => {
                let (box_lo, box_hi) = vol.tex_box(*crop_lps);
                let max_dim = f64::from(*vol.dims.iter().max().unwrap_or(&1));
                let u = VolumeUniforms {
                    world_from_clip: mat(camera
                        .clip_from_world(size_pt.x / size_pt.y.max(1.0))
                        .inverse()),
                    tex_from_world: mat(vol.tex_from_world),
                    rect: target_rect,
                    params: [
                        match mode {
                            VolumeMode::Mip => 0.0,
                            VolumeMode::Dvr => 1.0,
                            VolumeMode::Isosurface => 2.0,
                            VolumeMode::Labels => 3.0,
                        },
                        (step_voxels / max_dim) as f32,
                        vol.normalise(*iso),
                        srgb,
                    ],
                    window: [
                        vol.normalise(window.low),
                        vol.normalise(window.high),
                        1.0,
                        if *dvr == DvrPreset::Mr { 1.0 } else { 0.0 },
                    ],
                    texel: [
                        1.0 / vol.dims[0] as f32,
                        1.0 / vol.dims[1] as f32,
                        1.0 / vol.dims[2] as f32,
                        0.0,
                    ],
                    box_lo: box_lo.extend(0.0).to_array(),
                    box_hi: box_hi.extend(0.0).to_array(),
                    palette: structures.as_ref().map_or([[0.0; 4]; 16], |s| s.palette),
                };
                bytemuck::bytes_of(&u).to_vec()
            }
        }
    }
}

impl egui_wgpu::CallbackTrait for PaneCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(renderer) = resources.get_mut::<Renderer>() else {
            return Vec::new();
        };
        renderer.upload(device, queue, &self.volume);
        if let PaneDraw::Volume { structures, .. } = &self.draw {
            renderer.upload_structures(device, queue, structures.as_ref().map(|s| &*s.slots));
        }
        let srgb = if renderer.srgb_target { 1.0 } else { 0.0 };
        let ppp = f64::from(screen.pixels_per_point);
        let PaneDraw::Volume {
            resolution_scale, ..
        } = self.draw
        else {
            let bytes = self.uniforms(ppp, srgb, self.rect_px);
            renderer.write_pane(device, queue, self.pane, &bytes);
            return Vec::new();
        };
        let scale = resolution_scale.clamp(0.05, 1.0) as f32;
        let size = [
            ((self.rect_px[2] * scale).round() as u32).max(1),
            ((self.rect_px[3] * scale).round() as u32).max(1),
        ];
        let bytes = self.uniforms(ppp, srgb, [0.0, 0.0, size[0] as f32, size[1] as f32]);
        renderer.write_pane(device, queue, self.pane, &bytes);
        renderer.offscreen(device, self.pane, size);
        let (Some(off), Some((_, group))) = (
            renderer.offscreen.get(&self.pane),
            renderer
                .panes
                .get(&self.pane)
                .and_then(|p| p.bind_group.as_ref()),
        ) else {
            return Vec::new();
        };
        queue.write_buffer(
            &off.uniforms,
            0,
            bytemuck::bytes_of(&BlitUniforms { rect: self.rect_px }),
        );
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("heartloc volume view"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &off.view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&renderer.volume_pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.draw(0..3, 0..1);
        Vec::new()
    }

    fn paint(
        &self,
        _info: eframe::egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(renderer) = resources.get::<Renderer>() else {
            return;
        };
        let (pipeline, group) = match self.draw {
            PaneDraw::Slice { .. } => (
                &renderer.slice_pipeline,
                renderer
                    .panes
                    .get(&self.pane)
                    .and_then(|p| p.bind_group.as_ref())
                    .map(|(_, g)| g),
            ),
            PaneDraw::Volume { .. } => (
                &renderer.blit_pipeline,
                renderer.offscreen.get(&self.pane).map(|o| &o.bind_group),
            ),
        };
        let Some(group) = group else { return };
        render_pass.set_pipeline(pipeline);
        render_pass.set_bind_group(0, group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
