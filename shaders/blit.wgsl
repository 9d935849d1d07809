// Blit: draws the volume view's offscreen image into its pane, linearly upscaled.
// Keep BlitUniforms in sync with `BlitUniforms` in src/render.rs.

struct BlitUniforms {
    // Pane rectangle in framebuffer pixels: x, y, width, height.
    rect: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: BlitUniforms;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var image_sampler: sampler;

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let uv = (frag.xy - u.rect.xy) / u.rect.zw;
    return textureSampleLevel(image, image_sampler, uv, 0.0);
}
