// The activation functions and their derivatives, on `Val` (f32, or vec4<f32> in the wide
// elementwise kernels; an alias the kernel is compiled with). Compiled before
// elementwise.wgsl (the activation kernels) and matmul/common.wgsl (the epilogue of a Linear
// whose activation is fused, `ops::linear_act`). The math is that of
// src/reference/elementwise.rs.

// Which activation the matmul epilogue applies (`Params.activation` there).
const ACT_NONE: u32 = 0u;
const ACT_GELU: u32 = 1u;
const ACT_GELU_TANH: u32 = 2u;
const ACT_RELU: u32 = 3u;

// GELU, exact form (PyTorch's nn.GELU() default): gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
// WGSL has no erf: Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 over the whole line, below
// f32 rounding of the sum 1 + erf.
const SQRT_HALF: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

fn erf_approx(x: Val) -> Val {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-z * z));
}

fn gelu(x: Val) -> Val {
    return 0.5 * x * (1.0 + erf_approx(x * SQRT_HALF));
}

// d gelu / dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
fn gelu_grad(x: Val) -> Val {
    let cdf = 0.5 * (1.0 + erf_approx(x * SQRT_HALF));
    return cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}

// GELU, tanh approximation (GPT-2; PyTorch's nn.GELU(approximate="tanh")):
// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
const GELU_C: f32 = 0.7978845608028654;

fn tanh_safe(u: Val) -> Val {
    // Some drivers compute tanh through exp and overflow to NaN for large |u|.
    return tanh(clamp(u, Val(-15.0), Val(15.0)));
}

fn gelu_tanh(x: Val) -> Val {
    return 0.5 * x * (1.0 + tanh_safe(GELU_C * (x + 0.044715 * x * x * x)));
}

// d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
fn gelu_tanh_grad(x: Val) -> Val {
    let t = tanh_safe(GELU_C * (x + 0.044715 * x * x * x));
    let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
}

fn relu(x: Val) -> Val {
    return max(x, Val(0.0));
}

// `kind` (ACT_*) of x.
fn activate(kind: u32, x: Val) -> Val {
    switch kind {
        case ACT_GELU: { return gelu(x); }
        case ACT_GELU_TANH: { return gelu_tanh(x); }
        case ACT_RELU: { return relu(x); }
        default: { return x; }
    }
}
