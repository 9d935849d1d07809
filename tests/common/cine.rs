//! A classic multi-phase DICOM cine written in code (several images per position told apart by
//! TriggerTime), for the time-series tests and the app's cine loop.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use glam::DMat4;
use heartloc::io::dicom;
use heartloc::volume::{Grid, Volume, Voxels};

pub const PHASES: usize = 4;

pub fn phase_volume(m: DMat4, phase: usize) -> Volume {
    let n = 12 * 10 * 3;
    Volume::new(
        Grid::new([12, 10, 3], m),
        Voxels::I16(
            (0..n)
                .map(|x| (x % 97) as i16 + 100 * phase as i16)
                .collect(),
        ),
    )
}

pub fn put(path: &Path, tag: dicom_core::Tag, vr: VR, value: String) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    obj.write_to_file(path).unwrap();
}

/// A cine of `PHASES` phases at 3 positions in one folder, one series UID; trigger times
/// 0, 40, 80, 120 ms while InstanceNumber runs backwards (so only the trigger time orders it).
pub fn cine(root: &Path, m: DMat4) -> PathBuf {
    let dir = root.join("cine");
    std::fs::create_dir_all(&dir).unwrap();
    for p in 0..PHASES {
        let tmp = root.join(format!("phase{p}"));
        let opts = dicom::WriteSeriesOptions {
            series_uid: "2.25.4242".into(),
            modality: "MR".into(),
            description: "cine".into(),
        };
        let files = dicom::write_series(&tmp, &phase_volume(m, p), &opts).unwrap();
        for (k, f) in files.iter().enumerate() {
            put(f, tags::TRIGGER_TIME, VR::DS, format!("{}", 40 * p));
            put(
                f,
                tags::INSTANCE_NUMBER,
                VR::IS,
                format!("{}", 100 - (p * 3 + k)),
            );
            put(
                f,
                tags::SOP_INSTANCE_UID,
                VR::UI,
                format!("2.25.4242.{p}.{k}"),
            );
            std::fs::copy(f, dir.join(format!("img{:03}.dcm", (7 * (p * 3 + k)) % 97))).unwrap();
        }
    }
    dir
}
