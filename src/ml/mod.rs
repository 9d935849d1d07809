//! Model code: the preprocessing recipe shared by training and inference, heatmap targets and
//! decoding, and candle building blocks (3D convolution from conv2d). The networks, training,
//! evaluation and inference commands are not written yet.

pub mod conv3d;
pub mod heatmap;
pub mod preprocess;
