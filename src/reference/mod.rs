//! Plain-Rust CPU reference implementations ("the oracle") of every op.
//!
//! Each GPU kernel in this crate has a counterpart here, forward and
//! backward, written for clarity rather than speed: straightforward loops,
//! `f64` everywhere, row-major contiguous layout. Tests run an op on the GPU
//! (in `f32`), convert the result to `f64`, and compare it against these
//! functions. The backward passes here are themselves checked against
//! central finite differences ([`finite_diff::numerical_grad`]) by the unit
//! tests in each file, so the chain of trust is:
//! finite differences -> CPU reference -> GPU kernels.
//!
//! Shapes are written in comments as `[dim0, dim1, ...]`, outermost first.

pub mod adamw;
pub mod attention;
pub mod conv1d;
pub mod conv2d;
pub mod cross_entropy;
pub mod ctc;
pub mod elementwise;
pub mod embedding;
pub mod finite_diff;
pub mod half_copy;
pub mod layer_norm;
pub mod layout;
pub mod matmul;
pub mod matmul_half;
pub mod reduce;
pub mod softmax;
