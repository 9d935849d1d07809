//! heartloc: find the heart in 3D CT and MRI.
//!
//! Layers only look down (see ARCHITECTURE.md): [`volume`] (geometry core) ← [`io`] (file
//! formats) ← [`info`] (reports) ← the binary's CLI and, with the `gui` feature, the app.

pub mod annotation;
#[cfg(feature = "gui")]
pub mod app;
pub mod info;
pub mod io;
pub mod mesh;
pub mod ml;
pub mod overlay;
pub mod phantom;
#[cfg(feature = "gui")]
pub mod render;
pub mod slice_view;
pub mod stats;
pub mod volume;
pub mod worker;
pub mod worklist;
