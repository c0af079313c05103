//! Reports of a run that are not training itself: PNG plots of its curves.

pub mod plot;

pub use plot::{plot_curves, Series};
