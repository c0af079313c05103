//! The causal LM as a whole: shapes, incremental decoding, checkpoints.
mod common;
use common::*;
use wgformer::checkpoint;
use wgformer::decode::{beam_search, greedy, BeamConfig, CausalLmDecoder, Recompute};
use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use wgformer::nn::{Ctx, Module};
use wgformer::Tensor;

fn tiny(weight_tying: bool, seed: u64) -> DecoderOnlyTransformer {
    let config = DecoderOnlyConfig {
        vocab_size: 19,
        d_model: 32,
        d_ff: 48,
        num_layers: 2,
        num_heads: 1,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying,
        max_seq_len: 32,
        activation: wgformer::ops::Activation::Gelu,
    };
    DecoderOnlyTransformer::new(&gpu(), config, seed).unwrap()
}

#[test]
fn forward_gives_logits_for_every_position_and_parameters_have_pytorch_names() {
    let model = tiny(false, 1);
    let ids = Tensor::from_u32(&gpu(), &[1, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
    let logits = model.forward(&ids, None, &Ctx::eval()).unwrap();
    assert_eq!(logits.shape(), &[2, 3, 19]);
    assert!(logits.to_vec().unwrap().iter().all(|v| v.is_finite()));
    let names: Vec<String> = model
        .params()
        .iter()
        .map(|p| p.name().unwrap().to_string())
        .collect();
    for want in [
        "token_embedding.weight",
        "layers.0.self_attn.q_proj.weight",
        "layers.1.ffn.linear2.bias",
        "norm.weight",
        "lm_head.weight",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    let q = model
        .params()
        .into_iter()
        .find(|p| p.name() == Some("layers.0.ffn.linear1.weight"))
        .unwrap();
    assert_eq!(
        q.shape(),
        &[48, 32],
        "Linear weights are [out, in] as in PyTorch"
    );
}

#[test]
fn causal_logits_do_not_depend_on_later_tokens() {
    let model = tiny(true, 2);
    let a = Tensor::from_u32(&gpu(), &[3, 4, 5, 6], &[1, 4]).unwrap();
    let b = Tensor::from_u32(&gpu(), &[3, 4, 9, 1], &[1, 4]).unwrap();
    let la = model
        .forward(&a, None, &Ctx::eval())
        .unwrap()
        .to_vec()
        .unwrap();
    let lb = model
        .forward(&b, None, &Ctx::eval())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "first two positions",
        &la[..2 * 19],
        &f64s(&lb[..2 * 19]),
        1e-5,
    );
    assert!(la[2 * 19..]
        .iter()
        .zip(&lb[2 * 19..])
        .any(|(x, y)| (x - y).abs() > 1e-4));
}

#[test]
fn greedy_decoding_with_and_without_kv_cache_gives_identical_tokens() {
    let model = tiny(false, 3);
    let prompt = [2u32, 7, 7, 1];
    let cached = greedy(&CausalLmDecoder(&model), &prompt, 12, None).unwrap();
    let recomputed = greedy(&Recompute(&model), &prompt, 12, None).unwrap();
    assert_eq!(cached.len(), 12);
    assert_eq!(cached, recomputed);
}

#[test]
fn beam_search_with_width_one_equals_greedy_and_wider_beams_score_no_worse() {
    let model = tiny(true, 4);
    let prompt = [2u32, 5];
    let g = greedy(&CausalLmDecoder(&model), &prompt, 6, None).unwrap();
    let cfg = BeamConfig {
        beam_width: 1,
        max_new_tokens: 6,
        length_penalty: 0.0,
        eos: None,
    };
    assert_eq!(
        beam_search(&CausalLmDecoder(&model), &prompt, &cfg).unwrap(),
        g
    );
    let wide = BeamConfig {
        beam_width: 4,
        ..cfg.clone()
    };
    let cached = beam_search(&CausalLmDecoder(&model), &prompt, &wide).unwrap();
    let recomputed = beam_search(&Recompute(&model), &prompt, &wide).unwrap();
    assert_eq!(
        cached, recomputed,
        "reordering the KV cache must match re-running the beams"
    );
}

#[test]
fn checkpoint_round_trips_bit_exactly_and_refuses_mismatched_models() {
    let dir = std::env::temp_dir().join(format!("wgformer-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = tiny(false, 5);
    let params = model.params();
    let named: Vec<(String, &Tensor)> = params
        .iter()
        .map(|p| (p.name().unwrap().to_string(), p))
        .collect();
    let bytes = checkpoint::tensors_to_bytes(&named).unwrap();
    let saved = checkpoint::save(&dir, "step-1", &[(checkpoint::PARAMS_FILE, bytes)]).unwrap();
    assert_eq!(checkpoint::latest(&dir).unwrap().unwrap(), saved);

    let other = tiny(false, 6);
    let file = saved.join(checkpoint::PARAMS_FILE);
    let raw = checkpoint::read(&saved, checkpoint::PARAMS_FILE).unwrap();
    checkpoint::load_params(&file, &raw, &other.params()).unwrap();
    for (a, b) in model.params().iter().zip(other.params()) {
        let (va, vb) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        assert!(
            va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{:?} differs",
            a.name()
        );
    }

    let tied = tiny(true, 7); // no lm_head: the file has a tensor this model lacks
    let err = checkpoint::load_params(&file, &raw, &tied.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("lm_head.weight"), "{err}");
    let mut wider = DecoderOnlyConfig {
        ..tiny(false, 1).config
    };
    wider.d_ff = 64;
    let wider = DecoderOnlyTransformer::new(&gpu(), wider, 1).unwrap();
    let err = checkpoint::load_params(&file, &raw, &wider.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
    let err = checkpoint::load_params(&file, b"not a safetensors file", &model.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("safetensors"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Safetensors bytes of `tensors` (name, shape, f32 values).
fn safetensors_bytes(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let uploaded: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, shape, v)| (n.to_string(), Tensor::from_slice(&gpu(), v, shape).unwrap()))
        .collect();
    let named: Vec<(String, &Tensor)> = uploaded.iter().map(|(n, t)| (n.clone(), t)).collect();
    checkpoint::tensors_to_bytes(&named).unwrap()
}

#[test]
fn a_tied_model_accepts_lm_head_weight_only_as_an_exact_copy_of_the_embedding() {
    let dir = std::env::temp_dir().join(format!("wgformer-tied-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny(true, 8);
    let path = dir.join("tied.safetensors");
    model.save_safetensors(&path).unwrap();
    let saved = checkpoint::tensors_from_bytes(&path, &std::fs::read(&path).unwrap()).unwrap();
    assert!(
        !saved.contains_key("lm_head.weight"),
        "a tied projection is stored once"
    );

    let mut tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = saved
        .iter()
        .map(|(n, (shape, v))| (n.as_str(), shape.clone(), v.clone()))
        .collect();
    let (shape, embedding) = saved["token_embedding.weight"].clone();
    tensors.push(("lm_head.weight", shape, embedding));
    let with_head = dir.join("with_head.safetensors");
    std::fs::write(&with_head, safetensors_bytes(&tensors)).unwrap();
    let other = tiny(true, 9);
    other.load_safetensors(&with_head).unwrap();
    assert_eq!(
        other.token_embedding.weight.to_vec().unwrap(),
        saved["token_embedding.weight"].1
    );

    tensors.last_mut().unwrap().2[3] += 1e-3;
    let differing = dir.join("differing_head.safetensors");
    std::fs::write(&differing, safetensors_bytes(&tensors)).unwrap();
    let err = other.load_safetensors(&differing).unwrap_err().to_string();
    assert!(
        err.contains("differing_head.safetensors")
            && err.contains("lm_head.weight")
            && err.contains("differs from \"token_embedding.weight\""),
        "{err}"
    );
    let untied = tiny(false, 10);
    let err = untied.load_safetensors(&path).unwrap_err().to_string();
    assert!(
        err.contains("missing parameter \"lm_head.weight\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_tensors_of_an_unsupported_dtype_are_refused_naming_file_and_tensor() {
    use safetensors::{tensor::TensorView, Dtype};
    let raw = [0u8; 16];
    let view = TensorView::new(Dtype::I64, vec![2], &raw).unwrap();
    let bytes = safetensors::serialize([("norm.weight", view)], None).unwrap();
    let file = std::path::Path::new("int.safetensors");
    let err = checkpoint::tensors_from_bytes(file, &bytes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("int.safetensors") && err.contains("\"norm.weight\"") && err.contains("I64"),
        "{err}"
    );
}
