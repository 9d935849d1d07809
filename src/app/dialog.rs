//! Asking the user for paths (behind [`FileDialog`], so tests never open a dialog) and
//! writing screenshots: the dialog's answer, or a dated file in a default folder where no
//! dialog can be shown.

use std::path::{Path, PathBuf};

use eframe::egui;

/// Ask the user for paths. Behind a trait so tests never open a dialog.
pub trait FileDialog {
    fn pick_file(&self) -> Option<PathBuf>;
    fn pick_folder(&self) -> Option<PathBuf>;
    /// Ask where to save a new file named like `suggested` with `extension` ("png", "csv").
    fn save_file(&self, suggested: &str, extension: &str) -> Option<PathBuf>;
    /// Whether a dialog can be shown at all (where not, screenshots go to a default folder).
    fn available(&self) -> bool {
        true
    }
}

/// Answers every question with "cancelled": for tests, benchmarks and headless runs.
pub struct NoDialog;

impl FileDialog for NoDialog {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        None
    }
    fn save_file(&self, _: &str, _: &str) -> Option<PathBuf> {
        None
    }
}

/// Native dialogs (rfd).
pub struct NativeDialog;

impl FileDialog for NativeDialog {
    fn pick_file(&self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("NIfTI or DICOM", &["nii", "gz", "dcm"])
            .add_filter("All files", &["*"])
            .pick_file()
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        rfd::FileDialog::new().pick_folder()
    }
    fn save_file(&self, suggested: &str, extension: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_file_name(suggested)
            .add_filter(extension.to_uppercase(), &[extension])
            .save_file()
    }
    /// rfd on Linux needs the desktop portal (over the session bus) or zenity; with neither it
    /// returns "cancelled" without showing anything.
    fn available(&self) -> bool {
        !cfg!(target_os = "linux")
            || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            || std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|d| d.join("zenity").is_file())
            })
    }
}

/// Where screenshots go when no file dialog can be shown: `$HEARTLOC_SCREENSHOT_DIR`, else
/// `~/Pictures/heartloc`, else `~/heartloc-screenshots`, else the temporary folder's.
pub fn default_screenshot_folder() -> PathBuf {
    if let Some(d) = std::env::var_os("HEARTLOC_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.join("Pictures").is_dir() => home.join("Pictures").join("heartloc"),
        Some(home) if home.is_dir() => home.join("heartloc-screenshots"),
        _ => std::env::temp_dir().join("heartloc-screenshots"),
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of `secs` since 1970-01-01.
fn utc_stamp(secs: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `stem-YYYYMMDD-HHMMSS.png` (UTC) in [`default_screenshot_folder`], which is created.
pub(super) fn fallback_screenshot_path(stem: &str) -> std::io::Result<PathBuf> {
    let dir = default_screenshot_folder();
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let stamp = utc_stamp(secs);
    let mut path = dir.join(format!("{stem}-{stamp}.png"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{stamp}-{n}.png"));
        n += 1;
    }
    Ok(path)
}

/// Write an egui image as PNG, durably (see [`crate::io::durable`]).
pub fn save_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    crate::io::durable::replace_with(path, |tmp| {
        let file = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        let mut enc = png::Encoder::new(file, image.size[0] as u32, image.size[1] as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        w.write_image_data(image.as_raw())
            .map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamps_follow_the_civil_calendar() {
        assert_eq!(super::utc_stamp(0), "19700101-000000");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(super::utc_stamp(1_709_251_199), "20240229-235959");
    }
}
