//! The real chest CT shipped inside the binary as the demo: TCIA Pancreatic-CT-CBCT-SEG, case
//! Pancreas-CT-CB_001, under CC BY 4.0 (attribution required: the About box, the README and
//! NOTICE carry it). No expert heart label exists for it; it is a demo, never a measure.

use std::path::Path;

use super::{nifti, FileError};
use crate::volume::Volume;

/// What the scan is, what was changed, its licence and the attribution it asks for (the
/// repository's NOTICE file; the source's own text is `assets/demo/LICENSE_AND_SOURCE.txt`).
pub const ATTRIBUTION: &str = include_str!("../../NOTICE");

/// One line of credit, for status bars and notes.
pub const CREDIT: &str = "Demo CT: TCIA Pancreatic-CT-CBCT-SEG, Pancreas-CT-CB_001 (Hong et al., \
                          Sci Data 9, 637, 2022), CC BY 4.0";

/// What the app calls it.
pub const NAME: &str = "Demo chest CT (Pancreas-CT-CB_001)";

const BYTES: &[u8] = include_bytes!("../../assets/demo/chest-ct.nii.gz");

/// The demo scan: 256 × 216 × 79 int16 HU, 2.15 × 2.15 × 3 mm.
pub fn chest_ct() -> Result<Volume, FileError> {
    nifti::read_bytes(Path::new("(built-in demo) chest-ct.nii.gz"), BYTES)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_demo_reads_as_the_shipped_chest_ct() {
        let v = super::chest_ct().unwrap();
        assert_eq!(v.dims(), [256, 216, 79]);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        let (lo, hi) = v.intensity_range();
        assert!(lo <= -1000.0 && hi >= 1000.0, "HU range {lo}..{hi}");
        assert!(
            super::ATTRIBUTION.contains("CC BY 4.0")
                || super::ATTRIBUTION.contains("Creative Commons")
        );
    }
}
