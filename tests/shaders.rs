//! Every pipeline's WGSL (the shared vertex stage in `fullscreen.wgsl` followed by the
//! pipeline's own file, as `render` composes them) parses and validates with naga.

#[test]
fn every_wgsl_pipeline_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let shared = std::fs::read_to_string(dir.join("fullscreen.wgsl")).unwrap();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") || path.ends_with("fullscreen.wgsl") {
            continue;
        }
        let source = shared.clone() + &std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        count += 1;
    }
    assert_eq!(count, 3, "expected blit.wgsl, slice.wgsl and volume.wgsl");
}

#[cfg(feature = "gui")]
#[test]
fn the_renderer_uses_the_same_composition() {
    for source in [
        heartloc::render::BLIT_WGSL,
        heartloc::render::SLICE_WGSL,
        heartloc::render::VOLUME_WGSL,
    ] {
        let module = naga::front::wgsl::parse_str(source).unwrap();
        assert!(module.entry_points.iter().any(|e| e.name == "vs_main"));
        assert!(module.entry_points.iter().any(|e| e.name == "fs_main"));
    }
}
