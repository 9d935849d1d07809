//! Model-side code that needs no ML framework: the preprocessing recipe shared by training and
//! inference, and heatmap targets and decoding. (The candle networks, training and inference
//! are not written yet.)

pub mod heatmap;
pub mod preprocess;
