//! Writes the README's figures: the real app (egui_kittest, wgpu) on shared cases, with the
//! models run and their overlays. Needs `../shared/data`; the PNGs are small figures only.
//!
//! Run: `cargo run --release --example screenshots` (writes `docs/img/*.png`).

use std::path::Path;

use egui_kittest::Harness;
use heartloc::app::{HeartlocApp, LandmarkTarget, NoDialog, Source};

fn settle(h: &mut Harness<'static, HeartlocApp>) {
    for _ in 0..6000 {
        h.step();
        let s = h.state();
        if !s.is_loading() && !s.models_running() && s.models.pending_labels.is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(4);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new("../shared/data");
    if !data.join("manifest.csv").is_file() {
        println!("SKIP: ../shared/data is not here");
        return Ok(());
    }
    let out = Path::new("docs/img");
    std::fs::create_dir_all(out)?;
    let tmp = tempfile::tempdir()?;
    let shots: [(&str, &str, bool, bool); 3] = [
        // (case, file, label map, heatmap overlay)
        ("ct-segthor/Patient_12", "review-ct.png", false, false),
        ("mri-acdc/patient060_ED", "heatmap-mr.png", false, true),
        ("ct-segthor/Patient_40", "labels-ct.png", true, false),
    ];
    for (case, file, labels, heat) in shots {
        let image = data.join(case).join("image.nii.gz");
        let mut h = Harness::builder()
            .with_size([1100.0, 720.0])
            .wgpu()
            .build_eframe(|cc| HeartlocApp::new(cc, Source::Demo, Box::new(NoDialog)));
        settle(&mut h);
        let ctx = h.ctx.clone();
        let marks = tmp.path().join(format!("{}.mrk.json", file));
        h.state_mut().open_with_landmarks(
            Source::Path(image.clone()),
            LandmarkTarget::File(marks),
            &ctx,
        );
        settle(&mut h);
        h.state_mut().settings.overlays.heat = heat;
        h.state_mut().settings.overlays.mask = !heat;
        if labels {
            h.state_mut()
                .open_labels(data.join(case).join("labels.nii.gz"));
        }
        h.state_mut().run_models(&ctx);
        settle(&mut h);
        if labels {
            h.state_mut().settings.overlays.mask_outline = true;
            h.state_mut().frame_heart();
        }
        h.run_steps(3);
        let img = h.render()?;
        img.save(out.join(file))?;
        println!("{}: {}", out.join(file).display(), case);
    }
    Ok(())
}
