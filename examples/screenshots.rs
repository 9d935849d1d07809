//! Writes the README's figures: the real app (egui_kittest, wgpu) on the built-in synthetic
//! phantom, with the shipped models run and their overlays. Only the phantom is drawn, so the
//! committed figures hold nothing cut from patient data.
//!
//! Run: `cargo run --release --example screenshots` (writes `docs/img/*.png`).

use std::path::Path;

use egui_kittest::Harness;
use heartloc::app::{HeartlocApp, NoDialog, Source};

fn settle(h: &mut Harness<'static, HeartlocApp>) {
    for _ in 0..6000 {
        h.step();
        let s = h.state();
        if !s.is_loading() && !s.models_running() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(4);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = Path::new("docs/img");
    std::fs::create_dir_all(out)?;
    // (file, heatmap overlay instead of the mask, mask as outline and framed on the heart)
    let shots = [
        ("review-demo.png", false, false),
        ("heatmap-demo.png", true, false),
        ("outline-demo.png", false, true),
    ];
    for (file, heat, outline) in shots {
        let mut h = Harness::builder()
            .with_size([1100.0, 720.0])
            .wgpu()
            .build_eframe(|cc| HeartlocApp::new(cc, Source::Demo, Box::new(NoDialog)));
        settle(&mut h);
        let ctx = h.ctx.clone();
        h.state_mut().settings.overlays.heat = heat;
        h.state_mut().settings.overlays.mask = !heat;
        h.state_mut().settings.overlays.mask_outline = outline;
        h.state_mut().run_models(&ctx);
        settle(&mut h);
        if outline {
            h.state_mut().frame_heart();
        }
        h.run_steps(3);
        let img = h.render()?;
        img.save(out.join(file))?;
        println!("{}", out.join(file).display());
    }
    Ok(())
}
