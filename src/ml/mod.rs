//! Model code: the preprocessing recipe shared by training and inference, heatmap targets and
//! decoding, candle building blocks (3D convolution from conv2d, a small 3D U-Net), training
//! with augmentation, inference and evaluation.

pub mod conv3d;
pub mod cycle;
pub mod data;
pub mod eval;
pub mod heatmap;
pub mod learn;
pub mod model;
pub mod net;
pub mod perturb;
pub mod pose;
pub mod preprocess;
pub mod reliability;
pub mod repose;
pub mod rng;
pub mod train;
pub mod versions;
