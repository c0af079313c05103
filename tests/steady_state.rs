//! Once warm, a training step reuses everything: no buffer, pipeline or bind group is created,
//! the work goes to the GPU in a couple of submits, and only the loss comes back.
//! Its own test binary with ONE test, so nothing else moves the shared device's counters.
mod common;
mod toy_mlp;
use toy_mlp::ToyMlp;

const WARMUP: usize = 3;
const MEASURED: u64 = 5;

#[test]
fn warm_training_step_creates_nothing_and_reads_back_only_the_loss() {
    let gpu = common::gpu();
    let mut mlp = ToyMlp::new(&gpu, 0.01).unwrap();
    for _ in 0..WARMUP {
        mlp.step().unwrap();
    }
    let before = gpu.counters();
    for _ in 0..MEASURED {
        mlp.step().unwrap();
    }
    let d = gpu.counters() - before;
    eprintln!("{MEASURED} warm steps: {d:?}");
    assert_eq!(d.buffers_created, 0, "buffers created in warm steps: {d:?}");
    assert_eq!(
        d.pipelines_compiled, 0,
        "pipelines compiled in warm steps: {d:?}"
    );
    assert_eq!(
        d.bind_groups_created, 0,
        "bind groups created in warm steps: {d:?}"
    );
    assert!(
        d.submits <= 2 * MEASURED,
        "more than 2 submits per step: {d:?}"
    );
    assert_eq!(
        d.bytes_read_back,
        4 * MEASURED,
        "read back more than the loss: {d:?}"
    );
    assert_eq!(d.bytes_uploaded, 0, "uploaded data in warm steps: {d:?}");
    assert!(
        d.dispatches > 0 && d.dispatches.is_multiple_of(MEASURED),
        "steps differ in dispatches: {d:?}"
    );
}
