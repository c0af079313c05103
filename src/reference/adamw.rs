//! The AdamW optimizer step (decoupled weight decay, as PyTorch `torch.optim.AdamW`).

/// AdamW hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay rate of the second-moment (uncentered variance) estimate.
    pub beta2: f64,
    /// Added to `sqrt(vhat)` to avoid division by zero.
    pub eps: f64,
    /// Decoupled weight decay coefficient.
    pub weight_decay: f64,
}

/// One AdamW update of parameters `p` with gradient `g`, updating the moment
/// buffers `m` and `v` in place. `step` is 1-based (the first step is 1).
///
/// Per element:
/// ```text
/// p    -= lr * wd * p                    (decoupled decay, before the Adam step)
/// m     = b1 * m + (1 - b1) * g
/// v     = b2 * v + (1 - b2) * g^2
/// mhat  = m / (1 - b1^t),  vhat = v / (1 - b2^t)   (bias correction)
/// p    -= lr * mhat / (sqrt(vhat) + eps)
/// ```
pub fn adamw_update(
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    step: u32,
    h: &AdamWParams,
) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adamw_update: length mismatch"
    );
    assert!(step >= 1, "adamw_update: step is 1-based");
    let t = f64::from(step);
    let correction1 = 1.0 - h.beta1.powf(t);
    let correction2 = 1.0 - h.beta2.powf(t);
    for i in 0..n {
        p[i] -= h.lr * h.weight_decay * p[i];
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
        let mhat = m[i] / correction1;
        let vhat = v[i] / correction2;
        p[i] -= h.lr * mhat / (vhat.sqrt() + h.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: AdamWParams = AdamWParams {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };

    #[test]
    fn first_step_is_signed_lr() {
        // At t = 1, mhat = g and vhat = g^2, so the Adam part moves each
        // parameter by about lr * sign(g), after decay p *= (1 - lr * wd).
        let mut p = vec![1.0, -2.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        adamw_update(&mut p, &[0.5, -3.0], &mut m, &mut v, 1, &H);
        let decay = 1.0 - 0.1 * 0.01;
        assert!((p[0] - (1.0 * decay - 0.1)).abs() < 1e-7);
        assert!((p[1] - (-2.0 * decay + 0.1)).abs() < 1e-7);
        assert!((m[0] - 0.05).abs() < 1e-15 && (v[1] - 0.009).abs() < 1e-15);
    }

    #[test]
    fn second_step_matches_hand_computation() {
        let mut p = vec![0.5];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        adamw_update(&mut p, &[0.2], &mut m, &mut v, 1, &H);
        adamw_update(&mut p, &[-0.4], &mut m, &mut v, 2, &H);
        // Hand-expanded second step.
        let p1 = 0.5 * (1.0 - 0.001) - 0.1 * 0.2 / (0.2 + 1e-8);
        let m2 = 0.9 * (0.1 * 0.2) + 0.1 * -0.4;
        let v2 = 0.999 * (0.001 * 0.04) + 0.001 * 0.16;
        let mhat = m2 / (1.0 - 0.81);
        let vhat = v2 / (1.0 - 0.999f64 * 0.999);
        let p2 = p1 * (1.0 - 0.001) - 0.1 * mhat / (vhat.sqrt() + 1e-8);
        assert!((p[0] - p2).abs() < 1e-12, "{} vs {p2}", p[0]);
    }
}
