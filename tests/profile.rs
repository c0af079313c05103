//! Per-kernel profiling: off by default, counts and times every dispatch while on, nothing
//! after it is turned off. Its own device, so other tests' work does not land in its profile.
use wgformer::gpu::format_profile;
use wgformer::{ops, Gpu, Tensor};

#[test]
fn profiling_times_every_dispatch_by_kernel_only_while_on() {
    let gpu = Gpu::new().unwrap();
    let a = Tensor::from_slice(
        &gpu,
        &(0..64).map(|i| i as f32).collect::<Vec<_>>(),
        &[8, 8],
    )
    .unwrap();
    let b = Tensor::from_slice(&gpu, &[0.5; 64], &[8, 8]).unwrap();
    ops::add(&a, &b).unwrap().to_vec().unwrap();
    assert!(gpu.profile().is_empty(), "profiling is off by default");

    gpu.set_profiling(true).unwrap();
    let before = gpu.counters();
    let s = ops::add(&a, &b).unwrap();
    let s = ops::add(&s, &b).unwrap();
    let c = ops::matmul(&s, &b).unwrap();
    let values = c.to_vec().unwrap();
    let dispatched = (gpu.counters() - before).dispatches;
    let profile = gpu.profile();
    gpu.set_profiling(false).unwrap();

    // The results are those of an unprofiled run.
    let want: Vec<f32> = (0..8)
        .flat_map(|r| {
            let row: f32 = (0..8).map(|k| (8 * r + k) as f32 + 1.0).sum();
            vec![0.5 * row; 8]
        })
        .collect();
    assert_eq!(values, want);
    let counted: u64 = profile.iter().map(|t| t.dispatches).sum();
    assert_eq!(
        counted, dispatched,
        "every dispatch is in the profile: {profile:?}"
    );
    let adds = profile
        .iter()
        .find(|t| t.kernel.starts_with("elementwise.wgsl:"))
        .expect("the adds are profiled");
    assert_eq!(adds.dispatches, 2, "{profile:?}");
    assert!(profile.iter().any(|t| t.kernel.starts_with("matmul/")));
    assert!(
        profile.windows(2).all(|w| w[0].total >= w[1].total),
        "largest first"
    );
    let table = format_profile(&profile);
    assert!(table.contains("elementwise.wgsl:") && table.contains("matmul/"));

    ops::add(&a, &b).unwrap().to_vec().unwrap();
    assert_eq!(
        gpu.profile(),
        profile,
        "nothing is added once profiling is off"
    );
    gpu.reset_profile();
    assert!(gpu.profile().is_empty());
}
