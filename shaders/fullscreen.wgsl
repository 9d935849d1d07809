// Shared vertex stage: one triangle covering the viewport, which egui sets to the pane.
// Prepended to each pipeline's WGSL (see `render.rs`); the fragment stages use
// @builtin(position) and their pane rectangle, so no vertex outputs are needed.

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    return vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
}
