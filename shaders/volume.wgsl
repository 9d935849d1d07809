// Volume view: ray marching through a 3D texture. Modes: 0 = MIP, 1 = DVR (front-to-back
// compositing with early ray termination), 2 = isosurface (first hit, bisection refinement,
// gradient shading), 3 = structures (first texel of a shown structure slot, in its colour,
// shaded by the slot's own gradient). Keep VolumeUniforms in sync with `VolumeUniforms` in src/render.rs.

struct VolumeUniforms {
    world_from_clip: mat4x4<f32>,
    tex_from_world: mat4x4<f32>,
    // Pane rectangle in framebuffer pixels: x, y, width, height.
    rect: vec4<f32>,
    // mode, step length (texture units), iso level (normalised), 1.0 when the target is sRGB.
    params: vec4<f32>,
    // window low/high (normalised), DVR opacity scale, DVR preset (0 = CT, 1 = MR).
    window: vec4<f32>,
    // one texel in texture units (x, y, z), unused.
    texel: vec4<f32>,
    // The box rendered (texture units; the whole volume is 0..1): min xyz, unused; max xyz,
    // unused.
    box_lo: vec4<f32>,
    box_hi: vec4<f32>,
    // Colour of each structure slot (1..15); alpha 1 where the slot is shown.
    palette: array<vec4<f32>, 16>,
};

@group(0) @binding(0) var<uniform> u: VolumeUniforms;
@group(0) @binding(1) var volume_tex: texture_3d<f32>;
@group(0) @binding(2) var volume_sampler: sampler;
@group(0) @binding(3) var structures_tex: texture_3d<u32>;

// The structure slot of the texel around texture point `p` (nearest).
fn slot_at(p: vec3<f32>) -> u32 {
    let dims = vec3<i32>(textureDimensions(structures_tex));
    let i = clamp(vec3<i32>(floor(p * vec3<f32>(dims))), vec3<i32>(0), dims - vec3<i32>(1));
    return textureLoad(structures_tex, i, 0).r;
}

fn shown(slot: u32) -> bool {
    return slot > 0u && slot < 16u && u.palette[slot].a > 0.5;
}

fn sample_at(p: vec3<f32>) -> f32 {
    return textureSampleLevel(volume_tex, volume_sampler, p, 0.0).r;
}

fn windowed(v: f32) -> f32 {
    return clamp((v - u.window.x) / max(u.window.y - u.window.x, 1e-6), 0.0, 1.0);
}

// Transfer functions: windowed value -> colour and opacity.
fn transfer(t: f32) -> vec4<f32> {
    if (u.window.w < 0.5) {
        // Cardiac CT over -100..700 HU: fat, lung, skin and muscle (< 60 HU) clear, myocardium
        // (60-150) dark red and faint, contrast blood (150-450) bright red, bone (> 450) ivory.
        let muscle = smoothstep(0.2, 0.275, t);
        let blood = smoothstep(0.3125, 0.4375, t);
        let bone = smoothstep(0.6875, 0.9375, t);
        var rgb = mix(vec3<f32>(0.55, 0.12, 0.1), vec3<f32>(0.95, 0.3, 0.25), blood);
        rgb = mix(rgb, vec3<f32>(0.95, 0.92, 0.85), bone);
        return vec4<f32>(rgb, muscle * 0.04 + blood * 0.3 + bone * 0.4);
    }
    // MR: a warm ramp over the upper half of the window.
    let a = smoothstep(0.3, 0.9, t) * 0.35;
    let rgb = mix(vec3<f32>(0.6, 0.3, 0.15), vec3<f32>(1.0, 0.9, 0.7), t);
    return vec4<f32>(rgb, a);
}

fn to_target(c: vec3<f32>) -> vec4<f32> {
    let out = select(c, pow(c, vec3<f32>(2.2)), u.params.w > 0.5);
    return vec4<f32>(out, 1.0);
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec3<f32>(0.02, 0.02, 0.03);
    let local = (frag.xy - u.rect.xy) / u.rect.zw;
    let ndc = vec2<f32>(local.x * 2.0 - 1.0, 1.0 - local.y * 2.0);
    let near_h = u.world_from_clip * vec4<f32>(ndc, 0.0, 1.0);
    let far_h = u.world_from_clip * vec4<f32>(ndc, 1.0, 1.0);
    let near_w = near_h.xyz / near_h.w;
    let far_w = far_h.xyz / far_h.w;
    // The ray in texture space, where the volume is the unit cube; it is cut to the box.
    let o = (u.tex_from_world * vec4<f32>(near_w, 1.0)).xyz;
    let e = (u.tex_from_world * vec4<f32>(far_w, 1.0)).xyz;
    let dir = normalize(e - o);
    let inv = 1.0 / select(dir, vec3<f32>(1e-8), abs(dir) < vec3<f32>(1e-8));
    let t0 = (u.box_lo.xyz - o) * inv;
    let t1 = (u.box_hi.xyz - o) * inv;
    let tmin = max(max(min(t0.x, t1.x), min(t0.y, t1.y)), max(min(t0.z, t1.z), 0.0));
    let tmax = min(min(max(t0.x, t1.x), max(t0.y, t1.y)), max(t0.z, t1.z));
    if (tmax <= tmin) {
        return to_target(background);
    }
    let step = u.params.y;
    let n = min(u32((tmax - tmin) / step) + 1u, 2048u);
    let mode = u32(u.params.x + 0.5);

    if (mode == 0u) {
        var best = 0.0;
        for (var i = 0u; i < n; i = i + 1u) {
            best = max(best, sample_at(o + dir * (tmin + f32(i) * step)));
        }
        let g = windowed(best);
        return to_target(vec3<f32>(g, g, g));
    }

    if (mode == 1u) {
        var acc = vec4<f32>(0.0);
        // Opacity per unit length is defined for a step of 1/256 of the cube.
        let k = step * 256.0 * u.window.z;
        // Headlight shading from the change along the ray (no extra samples): where the
        // density rises toward the viewer's ray the surface faces the light.
        var prev = windowed(sample_at(o + dir * tmin));
        let gain = 0.03 / max(step, 1e-5);
        for (var i = 0u; i < n; i = i + 1u) {
            let w = windowed(sample_at(o + dir * (tmin + f32(i) * step)));
            let s = transfer(w);
            let light = clamp(0.85 + (w - prev) * gain, 0.45, 1.4);
            prev = w;
            let a = 1.0 - pow(1.0 - clamp(s.a, 0.0, 0.999), k);
            acc = vec4<f32>(acc.rgb + (1.0 - acc.a) * a * s.rgb * light, acc.a + (1.0 - acc.a) * a);
            if (acc.a > 0.97) {
                break;
            }
        }
        return to_target(acc.rgb + (1.0 - acc.a) * background);
    }

    if (mode == 3u) {
        var hit_slot = 0u;
        var hit_t = 0.0;
        for (var i = 0u; i < n; i = i + 1u) {
            let t = tmin + f32(i) * step;
            let slot = slot_at(o + dir * t);
            if (shown(slot)) {
                hit_slot = slot;
                hit_t = t;
                break;
            }
        }
        if (hit_slot == 0u) {
            return to_target(background);
        }
        // The slot's indicator differenced over two texels each way: a smooth enough normal
        // for blocky label maps, computed once per pixel.
        let p = o + dir * hit_t;
        let d = u.texel.xyz * 2.0;
        let inside = vec3<f32>(
            f32(slot_at(p + vec3<f32>(d.x, 0.0, 0.0)) == hit_slot) - f32(slot_at(p - vec3<f32>(d.x, 0.0, 0.0)) == hit_slot),
            f32(slot_at(p + vec3<f32>(0.0, d.y, 0.0)) == hit_slot) - f32(slot_at(p - vec3<f32>(0.0, d.y, 0.0)) == hit_slot),
            f32(slot_at(p + vec3<f32>(0.0, 0.0, d.z)) == hit_slot) - f32(slot_at(p - vec3<f32>(0.0, 0.0, d.z)) == hit_slot),
        );
        let m = mat3x3<f32>(u.tex_from_world[0].xyz, u.tex_from_world[1].xyz, u.tex_from_world[2].xyz);
        let g = transpose(m) * inside;
        let view_dir = normalize(far_w - near_w);
        var diffuse = 0.8;
        if (length(g) > 1e-6) {
            diffuse = abs(dot(normalize(g), view_dir));
        }
        return to_target(u.palette[hit_slot].rgb * (0.3 + 0.7 * diffuse));
    }

    // Isosurface: march to the first sample above the level, then refine and shade once,
    // outside the loop (keeps the loop body small for software rasterisers).
    let iso = u.params.z;
    var hit = -1.0;
    var prev_t = tmin;
    for (var i = 0u; i < n; i = i + 1u) {
        let t = tmin + f32(i) * step;
        if (sample_at(o + dir * t) >= iso) {
            hit = t;
            break;
        }
        prev_t = t;
    }
    if (hit < 0.0) {
        return to_target(background);
    }
    var lo = prev_t;
    var hi = hit;
    for (var b = 0; b < 5; b = b + 1) {
        let mid = 0.5 * (lo + hi);
        if (sample_at(o + dir * mid) >= iso) { hi = mid; } else { lo = mid; }
    }
    let p = o + dir * hi;
    let d = u.texel.xyz;
    let grad = vec3<f32>(
        sample_at(p + vec3<f32>(d.x, 0.0, 0.0)) - sample_at(p - vec3<f32>(d.x, 0.0, 0.0)),
        sample_at(p + vec3<f32>(0.0, d.y, 0.0)) - sample_at(p - vec3<f32>(0.0, d.y, 0.0)),
        sample_at(p + vec3<f32>(0.0, 0.0, d.z)) - sample_at(p - vec3<f32>(0.0, 0.0, d.z)),
    );
    // Normals transform with the transpose of tex_from_world's linear part.
    let m = mat3x3<f32>(u.tex_from_world[0].xyz, u.tex_from_world[1].xyz, u.tex_from_world[2].xyz);
    let normal = normalize(transpose(m) * grad + vec3<f32>(1e-9));
    let view_dir = normalize(far_w - near_w);
    let diffuse = abs(dot(normal, view_dir));
    let base = vec3<f32>(0.95, 0.85, 0.75);
    return to_target(base * (0.2 + 0.8 * diffuse));
}
