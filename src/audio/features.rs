//! A feature matrix: one row per 10 ms frame, one column per mel bin.

/// Log-mel features of one utterance, row-major `[frames, bins]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub frames: usize,
    pub bins: usize,
    pub data: Vec<f32>,
}

impl Features {
    pub fn new(frames: usize, bins: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            frames * bins,
            "features: data length != frames * bins"
        );
        Features { frames, bins, data }
    }

    /// Frame `t` as a slice of `bins` values.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.data[t * self.bins..(t + 1) * self.bins]
    }
}
