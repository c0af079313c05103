//! Faults wgpu reports outside our own checks become errors at the next wait or readback,
//! not wgpu's default panic or a hang: a validation error on the raw device, and a lost device.
//! Each test opens its own device, so the shared one stays healthy.
use wgformer::{ops, Gpu, Tensor};

#[test]
fn an_uncaptured_gpu_error_surfaces_at_the_next_readback() {
    let gpu = Gpu::new().unwrap();
    // Misuse of the raw device: MAP_READ may not be combined with STORAGE.
    let _bad = gpu.inner().device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let x = Tensor::from_slice(&gpu, &[1.0, 2.0], &[2]).unwrap();
    let err = ops::scale(&x, 2.0)
        .unwrap()
        .to_vec()
        .unwrap_err()
        .to_string();
    assert!(err.contains("GPU error"), "{err}");
    assert!(gpu.synchronize().is_err());
}

#[test]
fn a_lost_device_is_an_error_not_a_panic_or_a_hang() {
    let gpu = Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(
        ops::scale(&x, 2.0).unwrap().to_vec().unwrap(),
        vec![2.0, 4.0, 6.0]
    );
    gpu.inner().device.destroy();
    let result = ops::scale(&x, 2.0).and_then(|y| y.to_vec());
    let err = result
        .expect_err("work on a destroyed device must fail")
        .to_string();
    assert!(
        err.contains("lost") || err.contains("GPU error") || err.contains("readback"),
        "{err}"
    );
}
