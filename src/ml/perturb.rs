//! Perturbations of a scan for measuring how robust the models are (`heartloc eval
//! --perturb`): the scan turned or mirrored in world space by changing only its affine (the
//! expert heart moves with it), its field of view cut near the heart, noise added, slices made
//! thicker. Each perturbation is seeded by the case, so a table can be remade exactly.

use glam::{DMat4, DQuat, DVec3};

use super::rng::Rng;
use crate::volume::{about_point, Grid, Interpolation, Volume, Voxels};

/// One way of disturbing a scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Perturbation {
    None,
    /// Turned by this many degrees about a random axis through the scan's centre.
    Rotate {
        degrees: f64,
    },
    /// Mirrored left–right about the scan's centre (a header with one axis flipped, or situs
    /// inversus as far as the image goes).
    Mirror,
    /// One face of the field of view moved to this many mm beyond the heart's box (negative:
    /// through the heart).
    Crop {
        margin_mm: f64,
    },
    /// Gaussian noise of this many standard deviations of the scan's intensities.
    Noise {
        sd: f64,
    },
    /// Slices this many times thicker (averaged) along the scan's thickest voxel axis.
    Thick {
        factor: usize,
    },
}

impl Perturbation {
    /// Parse one `--perturb` word: `rotate:45,90` (several angles, several perturbations),
    /// `mirror`, `crop[:mm]` (20 mm), `noise[:sd]` (0.45), `thick[:factor]` (3), `none`.
    pub fn parse(word: &str) -> Result<Vec<Perturbation>, String> {
        let (name, args) = word.split_once(':').unwrap_or((word, ""));
        let numbers = || -> Result<Vec<f64>, String> {
            args.split(',')
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("perturbation {word:?}: {a:?} is not a number"))
                })
                .collect()
        };
        let one = |default: f64| -> Result<f64, String> {
            match numbers()?.as_slice() {
                [] => Ok(default),
                [v] => Ok(*v),
                _ => Err(format!("perturbation {word:?} takes one number")),
            }
        };
        Ok(match name {
            "none" => vec![Perturbation::None],
            "rotate" => {
                let angles = numbers()?;
                if angles.is_empty() {
                    return Err("rotate needs angles in degrees, e.g. rotate:45,90".into());
                }
                angles
                    .into_iter()
                    .map(|degrees| Perturbation::Rotate { degrees })
                    .collect()
            }
            "mirror" => vec![Perturbation::Mirror],
            "crop" => vec![Perturbation::Crop {
                margin_mm: one(20.0)?,
            }],
            "noise" => {
                let sd = one(0.45)?;
                if sd < 0.0 {
                    return Err(format!("perturbation {word:?}: noise must be >= 0"));
                }
                vec![Perturbation::Noise { sd }]
            }
            "thick" => {
                let f = one(3.0)?;
                if !(1.0..=20.0).contains(&f) || f.fract() != 0.0 {
                    return Err(format!("perturbation {word:?}: a whole factor 1-20"));
                }
                vec![Perturbation::Thick { factor: f as usize }]
            }
            _ => {
                return Err(format!(
                    "unknown perturbation {name:?} (rotate:DEG[,DEG..], mirror, crop[:MM], \
                     noise[:SD], thick[:FACTOR], none)"
                ))
            }
        })
    }

    /// A short name for tables and logs: `none`, `rotate:45`, `mirror`, `crop:20`, …
    pub fn name(&self) -> String {
        match self {
            Perturbation::None => "none".into(),
            Perturbation::Rotate { degrees } => format!("rotate:{degrees}"),
            Perturbation::Mirror => "mirror".into(),
            Perturbation::Crop { margin_mm } => format!("crop:{margin_mm}"),
            Perturbation::Noise { sd } => format!("noise:{sd}"),
            Perturbation::Thick { factor } => format!("thick:{factor}"),
        }
    }
}

/// A scan with its expert heart: the mask on the scan's own grid and the centre (LPS mm).
pub struct Scene {
    pub volume: Volume,
    pub truth: Option<Volume>,
    pub center_lps: Option<DVec3>,
}

impl Scene {
    /// This scene disturbed by `p`, drawn from `seed`. Crop needs the truth mask (without it
    /// the scene is returned unchanged).
    pub fn perturbed(&self, p: Perturbation, seed: u64) -> Scene {
        let mut rng = Rng::new(seed);
        match p {
            Perturbation::None => self.moved(DMat4::IDENTITY),
            Perturbation::Rotate { degrees } => {
                let axis =
                    DVec3::new(rng.normal(), rng.normal(), rng.normal()).normalize_or(DVec3::Z);
                let turn = DMat4::from_quat(DQuat::from_axis_angle(axis, degrees.to_radians()));
                self.moved(self.about_centre(turn))
            }
            Perturbation::Mirror => {
                self.moved(self.about_centre(DMat4::from_scale(DVec3::new(-1.0, 1.0, 1.0))))
            }
            Perturbation::Crop { margin_mm } => self.cropped(margin_mm, &mut rng),
            Perturbation::Noise { sd } => self.noisy(sd, &mut rng),
            Perturbation::Thick { factor } => self.thickened(factor),
        }
    }

    /// `world_from_world` applied about the scan's centre.
    fn about_centre(&self, m: DMat4) -> DMat4 {
        about_point(super::preprocess::scan_center(&self.volume), m)
    }

    /// The same voxels placed elsewhere in the world (`world_from_world`), the truth with them.
    pub fn moved(&self, world_from_world: DMat4) -> Scene {
        let place = |v: &Volume| {
            let mut v = v.clone();
            v.grid.world_from_voxel = world_from_world * v.grid.world_from_voxel;
            v
        };
        Scene {
            volume: place(&self.volume),
            truth: self.truth.as_ref().map(place),
            center_lps: self
                .center_lps
                .map(|c| world_from_world.transform_point3(c)),
        }
    }

    /// A new grid for the scan, the truth resampled onto it (nearest), the centre unchanged.
    fn regridded(&self, volume: Volume) -> Scene {
        let truth = self
            .truth
            .as_ref()
            .map(|t| t.resample(&volume.grid, Interpolation::Nearest, 0.0));
        Scene {
            volume,
            truth,
            center_lps: self.center_lps,
        }
    }

    /// One face of the scan moved to `margin_mm` beyond the heart's voxel box, on a random
    /// face among those where that removes something. The centre stays the whole heart's.
    fn cropped(&self, margin_mm: f64, rng: &mut Rng) -> Scene {
        let Some(truth) = &self.truth else {
            return self.moved(DMat4::IDENTITY);
        };
        let dims = truth.grid.dims;
        let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
        for idx in (0..truth.voxels.len()).filter(|&i| truth.voxels.get(i) > 0.5) {
            let ijk = crate::volume::ijk_of(dims, idx);
            for a in 0..3 {
                lo[a] = lo[a].min(ijk[a]);
                hi[a] = hi[a].max(ijk[a]);
            }
        }
        if lo[0] == usize::MAX {
            return self.moved(DMat4::IDENTITY);
        }
        let spacing = truth.grid.spacing_mm();
        // (axis, keep from, keep to) for every face whose cut removes at least one slice.
        let mut faces = Vec::new();
        for a in 0..3 {
            let m = (margin_mm / spacing[a]).round() as i64;
            let upper = (hi[a] as i64 + m).clamp(0, dims[a] as i64 - 1) as usize;
            if upper + 1 < dims[a] {
                faces.push((a, 0, upper));
            }
            let lower = (lo[a] as i64 - m).clamp(0, dims[a] as i64 - 1) as usize;
            if lower > 0 {
                faces.push((a, lower, dims[a] - 1));
            }
        }
        if faces.is_empty() {
            return self.moved(DMat4::IDENTITY);
        }
        let (a, from, to) = faces[rng.below(faces.len())];
        let mut new_dims = dims;
        new_dims[a] = to - from + 1;
        let mut offset = DVec3::ZERO;
        offset[a] = from as f64;
        let grid = Grid::new(
            new_dims,
            self.volume.grid.world_from_voxel * DMat4::from_translation(offset),
        );
        self.regridded(self.volume.resample(&grid, Interpolation::Nearest, 0.0))
    }

    /// Gaussian noise of `sd` standard deviations of the scan's intensities.
    fn noisy(&self, sd: f64, rng: &mut Rng) -> Scene {
        let v = &self.volume.voxels;
        let n = v.len().max(1) as f64;
        let mean = (0..v.len()).map(|i| f64::from(v.get(i))).sum::<f64>() / n;
        let var = (0..v.len())
            .map(|i| (f64::from(v.get(i)) - mean).powi(2))
            .sum::<f64>()
            / n;
        let scale = sd * var.sqrt();
        let values = (0..v.len())
            .map(|i| (f64::from(v.get(i)) + scale * rng.normal()) as f32)
            .collect();
        Scene {
            volume: Volume::new(self.volume.grid, Voxels::F32(values)),
            truth: self.truth.clone(),
            center_lps: self.center_lps,
        }
    }

    /// Slices `factor` times thicker along the thickest voxel axis (the last on ties), each
    /// the mean of the slices it replaces, centred where they were.
    fn thickened(&self, factor: usize) -> Scene {
        let grid = self.volume.grid;
        let spacing = grid.spacing_mm();
        let a = (0..3)
            .rev()
            .max_by(|&x, &y| spacing[x].total_cmp(&spacing[y]))
            .unwrap_or(2);
        let factor = factor.max(1);
        let mut dims = grid.dims;
        dims[a] = (dims[a] / factor).max(1);
        let mut shift = DVec3::ZERO;
        shift[a] = (factor as f64 - 1.0) * 0.5;
        let mut scale = DVec3::ONE;
        scale[a] = factor as f64;
        let thick = Grid::new(
            dims,
            grid.world_from_voxel * DMat4::from_translation(shift) * DMat4::from_scale(scale),
        );
        let src = &self.volume;
        let mut values = Vec::with_capacity(thick.voxel_count());
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let mut sum = 0.0f64;
                    let mut count = 0usize;
                    for s in 0..factor {
                        let mut ijk = [i, j, k];
                        ijk[a] = ijk[a] * factor + s;
                        if ijk[a] < grid.dims[a] {
                            sum += f64::from(src.at(ijk[0], ijk[1], ijk[2]));
                            count += 1;
                        }
                    }
                    values.push((sum / count.max(1) as f64) as f32);
                }
            }
        }
        self.regridded(Volume::new(thick, Voxels::F32(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20×16×12 scan, 2 mm voxels, with a heart mask in a box and its centre.
    fn scene() -> Scene {
        let dims = [20, 16, 12];
        let grid = Grid::new(dims, DMat4::from_scale(DVec3::splat(2.0)));
        let inside = |i: usize, j: usize, k: usize| {
            (6..12).contains(&i) && (5..10).contains(&j) && (4..8).contains(&k)
        };
        let (mut image, mut mask) = (Vec::new(), Vec::new());
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    image.push((i + j + k) as f32);
                    mask.push(u8::from(inside(i, j, k)));
                }
            }
        }
        let truth = Volume::new(grid, Voxels::U8(mask));
        Scene {
            volume: Volume::new(grid, Voxels::F32(image)),
            truth: Some(truth),
            center_lps: Some(DVec3::new(8.5, 7.0, 5.5) * 2.0),
        }
    }

    /// Where the truth mask's voxels are, on average, in the world.
    fn mask_centre(s: &Scene) -> DVec3 {
        let t = s.truth.as_ref().unwrap();
        let inside: Vec<usize> = (0..t.voxels.len())
            .filter(|&i| t.voxels.get(i) > 0.5)
            .collect();
        inside
            .iter()
            .map(|&i| t.grid.world_from_flat(i))
            .sum::<DVec3>()
            / inside.len() as f64
    }

    #[test]
    fn words_parse_into_perturbations_and_bad_ones_are_named() {
        let ps = Perturbation::parse("rotate:45,90").unwrap();
        assert_eq!(
            ps,
            vec![
                Perturbation::Rotate { degrees: 45.0 },
                Perturbation::Rotate { degrees: 90.0 }
            ]
        );
        assert_eq!(
            Perturbation::parse("crop").unwrap(),
            vec![Perturbation::Crop { margin_mm: 20.0 }]
        );
        assert_eq!(
            Perturbation::parse("thick:2").unwrap(),
            vec![Perturbation::Thick { factor: 2 }]
        );
        assert_eq!(ps[1].name(), "rotate:90");
        assert!(Perturbation::parse("rotate")
            .unwrap_err()
            .contains("angles"));
        assert!(Perturbation::parse("spin").unwrap_err().contains("spin"));
        assert!(Perturbation::parse("thick:2.5").is_err());
        assert!(Perturbation::parse("noise:x")
            .unwrap_err()
            .contains("\"x\""));
    }

    #[test]
    fn turned_and_mirrored_scenes_carry_their_truth_along() {
        let s = scene();
        assert!(mask_centre(&s).distance(s.center_lps.unwrap()) < 1e-9);
        for p in [Perturbation::Rotate { degrees: 90.0 }, Perturbation::Mirror] {
            let t = s.perturbed(p, 3);
            // The voxels are untouched; the centre moved and is still the mask's centre.
            assert_eq!(t.volume.voxels.len(), s.volume.voxels.len());
            assert!(t.center_lps.unwrap().distance(s.center_lps.unwrap()) > 1.0);
            assert!(mask_centre(&t).distance(t.center_lps.unwrap()) < 1e-9);
        }
        let m = s.perturbed(Perturbation::Mirror, 0);
        assert!(m.volume.grid.world_from_voxel.determinant() < 0.0);
        let r = s.perturbed(Perturbation::Rotate { degrees: 45.0 }, 0);
        let (a, b) = (
            s.volume.grid.world_from_voxel.determinant(),
            r.volume.grid.world_from_voxel.determinant(),
        );
        assert!((a - b).abs() < 1e-9, "a turn keeps the voxel size");
    }

    #[test]
    fn a_crop_leaves_the_margin_beyond_the_heart_on_one_face() {
        let s = scene();
        let c = s.perturbed(Perturbation::Crop { margin_mm: 4.0 }, 1);
        let (d0, d1) = (s.volume.grid.dims, c.volume.grid.dims);
        let changed: Vec<usize> = (0..3).filter(|&a| d0[a] != d1[a]).collect();
        assert_eq!(changed.len(), 1, "{d0:?} -> {d1:?}");
        // The heart survives whole: the mask's voxel count is unchanged.
        let count = |v: &Volume| {
            (0..v.voxels.len())
                .filter(|&i| v.voxels.get(i) > 0.5)
                .count()
        };
        assert_eq!(
            count(c.truth.as_ref().unwrap()),
            count(s.truth.as_ref().unwrap())
        );
        // 4 mm = 2 voxels of margin: the heart's last slice is 2 from the new edge.
        let a = changed[0];
        let heart_slices = [6..12, 5..10, 4..8][a].clone();
        assert!(
            d1[a] == heart_slices.end + 2 || d1[a] == d0[a] - (heart_slices.start - 2),
            "axis {a}: {d1:?}"
        );
        // Through the heart: part of the mask is cut away.
        let cut = s.perturbed(Perturbation::Crop { margin_mm: -4.0 }, 1);
        assert!(count(cut.truth.as_ref().unwrap()) < count(s.truth.as_ref().unwrap()));
    }

    #[test]
    fn thick_slices_average_along_the_thickest_axis_and_keep_the_world_place() {
        let mut s = scene();
        s.volume.grid.world_from_voxel = DMat4::from_scale(DVec3::new(2.0, 2.0, 5.0));
        s.truth.as_mut().unwrap().grid = s.volume.grid;
        let t = s.perturbed(Perturbation::Thick { factor: 3 }, 0);
        assert_eq!(t.volume.grid.dims, [20, 16, 4]);
        assert_eq!(t.volume.grid.spacing_mm(), [2.0, 2.0, 15.0]);
        // Slice 1 of the thick scan is the mean of slices 3, 4, 5, centred on slice 4.
        assert_eq!(t.volume.at(2, 3, 1), (2 + 3 + 4) as f32);
        assert!((t.volume.grid.world_from_index(DVec3::new(0.0, 0.0, 1.0)).z - 20.0).abs() < 1e-9);
    }

    #[test]
    fn noise_is_seeded_and_scaled_to_the_scan() {
        let s = scene();
        let a = s.perturbed(Perturbation::Noise { sd: 0.5 }, 9);
        let b = s.perturbed(Perturbation::Noise { sd: 0.5 }, 9);
        assert_eq!(a.volume.voxels.to_f32(), b.volume.voxels.to_f32());
        let diff: Vec<f64> = (0..s.volume.voxels.len())
            .map(|i| f64::from(a.volume.voxels.get(i) - s.volume.voxels.get(i)))
            .collect();
        let rms = (diff.iter().map(|d| d * d).sum::<f64>() / diff.len() as f64).sqrt();
        // The ramp i + j + k has variance (20² − 1 + 16² − 1 + 12² − 1) / 12; half its SD.
        let want = 0.5 * ((400.0 + 256.0 + 144.0 - 3.0) / 12.0f64).sqrt();
        assert!((rms / want - 1.0).abs() < 0.1, "{rms} vs {want}");
    }
}
