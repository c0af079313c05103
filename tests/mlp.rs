//! End to end: a tiny MLP learns XOR through the tape (matmul, bias add, GELU, an MSE built
//! from add/scale/mul/mean) and the fused AdamW update.
mod common;
mod toy_mlp;
use toy_mlp::ToyMlp;

#[test]
fn tiny_mlp_learns_xor_to_near_zero_loss_with_adamw() {
    let mut mlp = ToyMlp::new(&common::gpu(), 0.02).unwrap();
    let initial = mlp.step().unwrap();
    let mut last = initial;
    for _ in 0..300 {
        last = mlp.step().unwrap();
        assert!(last.is_finite(), "loss became {last}");
    }
    let fin = mlp.loss().unwrap().to_scalar().unwrap();
    eprintln!("XOR MSE: initial {initial}, final {fin}");
    assert!(
        fin < 1e-3,
        "final loss {fin} (initial {initial}, last step {last})"
    );
    assert!(
        fin < initial * 1e-2,
        "final loss {fin} is not far below the initial {initial}"
    );
    let pred = mlp.forward().unwrap().to_vec().unwrap();
    for (p, want) in pred.iter().zip([0.0, 1.0, 1.0, 0.0]) {
        assert!(
            (p - want).abs() < 0.1,
            "predictions {pred:?} do not match XOR"
        );
    }
}
