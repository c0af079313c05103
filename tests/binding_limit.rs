//! Both sides of the storage-binding limit, with the limit lowered to 64 KiB
//! (`Gpu::with_binding_limit`): a tensor at the limit is created, one element more is a
//! `TooLarge` error naming the size and the limit (never a panic), an op whose output would
//! exceed it fails the same way, and conv2d splits its batch so that it still computes the
//! reference result.
mod common;
use common::*;
use wgformer::ops::{self, Conv2dConfig};
use wgformer::reference::conv2d::{conv2d as reference_conv2d, Conv2dShape};
use wgformer::{Error, Gpu, Tensor};

const LIMIT: u64 = 64 * 1024;

#[test]
fn tensors_and_ops_on_both_sides_of_a_lowered_binding_limit() {
    let gpu = Gpu::with_binding_limit(LIMIT).unwrap();
    assert_eq!(gpu.max_binding_bytes(), LIMIT);

    // At the limit: fine. One element over: refused, naming the size and the limit.
    let at = Tensor::zeros(&gpu, &[(LIMIT / 4) as usize]).unwrap();
    assert_eq!(at.numel() as u64 * 4, LIMIT);
    match Tensor::zeros(&gpu, &[(LIMIT / 4) as usize + 1]) {
        Err(Error::TooLarge { bytes, limit, .. }) => {
            assert_eq!((bytes, limit), (LIMIT + 4, LIMIT));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let msg = Tensor::zeros(&gpu, &[100_000]).unwrap_err().to_string();
    assert!(
        msg.contains("400000")
            && msg.contains("65536")
            && msg.contains("max_storage_buffer_binding_size"),
        "{msg}"
    );

    // An op whose output would not fit: an error, not a panic.
    let a = Tensor::from_slice(&gpu, &values(130 * 8, 1), &[130, 8]).unwrap();
    let b = Tensor::from_slice(&gpu, &values(8 * 130, 2), &[8, 130]).unwrap();
    assert!(matches!(ops::matmul(&a, &b), Err(Error::TooLarge { .. })));

    // conv2d whose unfolded input (18 taps x 6 images x 320 pixels x 4 bytes = 138 KiB) is
    // over the limit: split into batches of images, same result as the reference.
    let s = Conv2dShape {
        batch: 6,
        c_in: 2,
        h: 20,
        w: 16,
        c_out: 3,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        padding: [1, 1],
    };
    let (xs, ws, bs) = (
        values(6 * 2 * 20 * 16, 3),
        values(3 * 2 * 9, 4),
        values(3, 5),
    );
    let x = Tensor::from_slice(&gpu, &xs, &[6, 2, 20, 16]).unwrap();
    let w = Tensor::from_slice(&gpu, &ws, &[3, 2, 3, 3]).unwrap();
    let bias = Tensor::from_slice(&gpu, &bs, &[3]).unwrap();
    let cfg = Conv2dConfig {
        stride: [1, 1],
        padding: [1, 1],
    };
    let y = ops::conv2d(&x, &w, Some(&bias), cfg).unwrap();
    let want = reference_conv2d(&f64s(&xs), &f64s(&ws), Some(&f64s(&bs)), &s);
    assert_close("split conv2d", &y.to_vec().unwrap(), &want, 1e-5);
}
