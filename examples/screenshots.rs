//! Writes the README's figures with the real app (egui_kittest, wgpu) and the shipped models:
//! the synthetic demo phantom, and three held-out shared cases (small PNG figures only, 6 bits
//! per channel; skipped without `../shared/data`).
//!
//! Run: `cargo run --release --example screenshots` (writes `docs/img/*.png`).

use std::path::Path;

use egui_kittest::Harness;
use heartloc::app::{HeartlocApp, LandmarkTarget, NoDialog, Source};

fn settle(h: &mut Harness<'static, HeartlocApp>) {
    for _ in 0..6000 {
        h.step();
        let s = h.state();
        if !s.is_loading() && !s.models_running() && !s.models.labels_loading() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(4);
}

struct Shot {
    /// A shared case folder, or `None` for the demo phantom.
    case: Option<&'static str>,
    file: &'static str,
    /// Open the case's `labels.nii.gz`, outline the mask and frame the heart.
    labels: bool,
    /// Heatmap overlay instead of the mask.
    heat: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new("../shared/data");
    let out = Path::new("docs/img");
    std::fs::create_dir_all(out)?;
    let tmp = tempfile::tempdir()?;
    let shots = [
        Shot {
            case: None,
            file: "review-demo.png",
            labels: false,
            heat: false,
        },
        Shot {
            case: Some("ct-segthor/Patient_12"),
            file: "review-ct.png",
            labels: false,
            heat: false,
        },
        Shot {
            case: Some("mri-acdc/patient060_ED"),
            file: "heatmap-mr.png",
            labels: false,
            heat: true,
        },
        Shot {
            case: Some("ct-segthor/Patient_40"),
            file: "labels-ct.png",
            labels: true,
            heat: false,
        },
    ];
    for shot in shots {
        let image = shot.case.map(|c| data.join(c).join("image.nii.gz"));
        if let Some(image) = &image {
            if !image.is_file() {
                println!("SKIP {}: {} is not here", shot.file, image.display());
                continue;
            }
        }
        let mut h = Harness::builder()
            .with_size([1000.0, 680.0])
            .wgpu()
            .build_eframe(|cc| HeartlocApp::new(cc, Source::Demo, Box::new(NoDialog)));
        settle(&mut h);
        let ctx = h.ctx.clone();
        if let Some(image) = image {
            let marks = tmp.path().join(format!("{}.mrk.json", shot.file));
            h.state_mut().open_with_landmarks(
                Source::Path(image.clone()),
                LandmarkTarget::File(marks),
                &ctx,
            );
            settle(&mut h);
            if shot.labels {
                let labels = image.with_file_name("labels.nii.gz");
                h.state_mut().open_labels(labels);
            }
        }
        h.state_mut().settings.overlays.heat = shot.heat;
        h.state_mut().settings.overlays.mask = !shot.heat;
        h.state_mut().settings.overlays.mask_outline = shot.labels;
        h.state_mut().run_models(&ctx);
        settle(&mut h);
        if shot.labels {
            h.state_mut().frame_heart();
        }
        h.run_steps(3);
        // Opaque RGB at 6 bits per channel keeps the figures small.
        let rgba = h.render()?;
        let rgb = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let p = rgba.get_pixel(x, y).0;
            image::Rgb([p[0] & 0xfc, p[1] & 0xfc, p[2] & 0xfc])
        });
        rgb.save(out.join(shot.file))?;
        println!("{}", out.join(shot.file).display());
    }
    Ok(())
}
