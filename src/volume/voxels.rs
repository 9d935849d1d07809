//! Voxel values in memory order, in the smallest type that holds them exactly.

/// Voxel values in memory order (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub enum Voxels {
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

impl Voxels {
    pub fn len(&self) -> usize {
        match self {
            Voxels::U8(v) => v.len(),
            Voxels::I16(v) => v.len(),
            Voxels::U16(v) => v.len(),
            Voxels::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at a flat index, as `f32`.
    #[inline]
    pub fn get(&self, index: usize) -> f32 {
        match self {
            Voxels::U8(v) => f32::from(v[index]),
            Voxels::I16(v) => f32::from(v[index]),
            Voxels::U16(v) => f32::from(v[index]),
            Voxels::F32(v) => v[index],
        }
    }

    /// Name of the stored type, for reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Voxels::U8(_) => "uint8",
            Voxels::I16(_) => "int16",
            Voxels::U16(_) => "uint16",
            Voxels::F32(_) => "float32",
        }
    }

    /// Bytes per stored voxel.
    pub fn bytes_per_voxel(&self) -> usize {
        match self {
            Voxels::U8(_) => 1,
            Voxels::I16(_) | Voxels::U16(_) => 2,
            Voxels::F32(_) => 4,
        }
    }

    /// All values as `f32` (a copy).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Voxels::F32(v) => v.clone(),
            _ => (0..self.len()).map(|i| self.get(i)).collect(),
        }
    }

    /// Store `f32` values in the smallest type that holds every value exactly.
    pub fn from_f32_compact(values: Vec<f32>) -> Voxels {
        let integral = values.iter().all(|v| v.fract() == 0.0);
        if integral {
            let (lo, hi) = values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if lo >= 0.0 && hi <= 255.0 {
                return Voxels::U8(values.iter().map(|&v| v as u8).collect());
            }
            if lo >= -32768.0 && hi <= 32767.0 {
                return Voxels::I16(values.iter().map(|&v| v as i16).collect());
            }
            if lo >= 0.0 && hi <= 65535.0 {
                return Voxels::U16(values.iter().map(|&v| v as u16).collect());
            }
        }
        Voxels::F32(values)
    }
}
