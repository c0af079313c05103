//! The twin of `ops::to_half` / `ops::from_half`: the values an f32 -> f16 -> f32 round trip
//! leaves (nearest half, ties to even; past +-65504 clamped to it).

const HALF_MAX: f64 = 65504.0;

/// Each value as its f16 copy reads back.
pub fn half_copy(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| half::f16::from_f64(v.clamp(-HALF_MAX, HALF_MAX)).to_f64())
        .collect()
}
