// Slice view: one world-oriented plane through a 3D texture (or a slab of planes around it,
// combined by maximum or mean), window/level applied.
// Keep SliceUniforms in sync with `SliceUniforms` in src/render.rs.

struct SliceUniforms {
    tex_from_world: mat4x4<f32>,
    // World point (LPS mm) at the pane's top-left pixel, and world steps per pixel.
    origin: vec4<f32>,
    du: vec4<f32>,
    dv: vec4<f32>,
    // Pane rectangle in framebuffer pixels: x, y, width, height.
    rect: vec4<f32>,
    // Window low/high in normalised texture units, 1.0 when the target is sRGB, 1.0 for a
    // maximum intensity projection (else the mean).
    window: vec4<f32>,
    // The step between a slab's planes (world mm, along the normal) and how many (odd; 1: the
    // plane alone).
    slab: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: SliceUniforms;
@group(0) @binding(1) var volume_tex: texture_3d<f32>;
@group(0) @binding(2) var volume_sampler: sampler;

fn to_target(g: f32, srgb: f32) -> vec4<f32> {
    // The value is a display grey level; an sRGB target would encode it again.
    let c = select(g, pow(g, 2.2), srgb > 0.5);
    return vec4<f32>(c, c, c, 1.0);
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let local = frag.xy - u.rect.xy;
    let world = u.origin.xyz + u.du.xyz * local.x + u.dv.xyz * local.y;
    let count = max(i32(u.slab.w), 1);
    var sum = 0.0;
    var most = 0.0;
    var n = 0.0;
    for (var s = 0; s < count; s = s + 1) {
        let p = world + u.slab.xyz * (f32(s) - 0.5 * f32(count - 1));
        let tc = (u.tex_from_world * vec4<f32>(p, 1.0)).xyz;
        if (any(tc < vec3<f32>(0.0)) || any(tc > vec3<f32>(1.0))) {
            continue;
        }
        let v = textureSampleLevel(volume_tex, volume_sampler, tc, 0.0).r;
        most = select(v, max(most, v), n > 0.0);
        sum = sum + v;
        n = n + 1.0;
    }
    if (n == 0.0) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    let value = select(sum / n, most, u.window.w > 0.5);
    let g = clamp((value - u.window.x) / max(u.window.y - u.window.x, 1e-6), 0.0, 1.0);
    return to_target(g, u.window.z);
}
