//! The speech recognizer as a whole: the speech embedding's length arithmetic, incremental
//! decoding against teacher forcing, beam search, initialising the decoder from a CLM, and a
//! tiny model that learns a few utterances.
mod common;
use common::*;
use wgformer::data::asr::AsrBatch;
use wgformer::data::{EOS, PAD, SOS};
use wgformer::decode::{beam_search, greedy_batch, BeamConfig, SpeechDecoder};
use wgformer::inference::transcribe::encode_batch;
use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use wgformer::models::{EncoderDecoderConfig, EncoderDecoderTransformer};
use wgformer::nn::{Ctx, Module};
use wgformer::ops::AdamWParams;
use wgformer::optim::Optimizer;
use wgformer::train::asr_loss::asr_loss;
use wgformer::train::LrSchedule;
use wgformer::train::Trainer;
use wgformer::Tensor;

const VOCAB: usize = 11;
const MELS: usize = 6;

fn config(strides: [usize; 2], ctc: bool) -> EncoderDecoderConfig {
    EncoderDecoderConfig {
        vocab_size: VOCAB,
        n_mels: MELS,
        conv_channels: 3,
        conv_strides: strides,
        d_model: 16,
        num_heads: 2,
        d_ff: 24,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout: 0.0,
        ctc_head: ctc,
        max_source_len: 64,
        max_target_len: 16,
        activation: wgformer::ops::Activation::Gelu,
    }
}

fn model(strides: [usize; 2], seed: u64) -> EncoderDecoderTransformer {
    EncoderDecoderTransformer::new(&gpu(), config(strides, true), seed).unwrap()
}

/// A batch of `frames[i]`-frame utterances with transcripts `labels[i]` (ids >= 4).
fn batch(frames: &[usize], labels: &[Vec<u32>], seed: u64) -> AsrBatch {
    let b = frames.len();
    let t = *frames.iter().max().unwrap();
    let s = labels.iter().map(Vec::len).max().unwrap();
    let mut features = vec![0.0; b * t * MELS];
    let noise = values(b * t * MELS, seed);
    for (i, &n) in frames.iter().enumerate() {
        let row = i * t * MELS;
        features[row..row + n * MELS].copy_from_slice(&noise[row..row + n * MELS]);
    }
    let mut decoder_input = vec![PAD; b * (s + 1)];
    let mut decoder_target = vec![PAD; b * (s + 1)];
    let mut ctc_targets = vec![PAD; b * s];
    for (i, l) in labels.iter().enumerate() {
        decoder_input[i * (s + 1)] = SOS;
        decoder_input[i * (s + 1) + 1..i * (s + 1) + 1 + l.len()].copy_from_slice(l);
        decoder_target[i * (s + 1)..i * (s + 1) + l.len()].copy_from_slice(l);
        decoder_target[i * (s + 1) + l.len()] = EOS;
        ctc_targets[i * s..i * s + l.len()].copy_from_slice(l);
    }
    AsrBatch {
        batch: b,
        frames: t,
        bins: MELS,
        features,
        feature_lens: frames.iter().map(|&n| n as u32).collect(),
        labels: s,
        decoder_input,
        decoder_target,
        ctc_targets,
        target_lens: labels.iter().map(|l| l.len() as u32).collect(),
        ids: (0..b).map(|i| format!("utt{i}")).collect(),
    }
}

#[test]
fn speech_embedding_lengths_follow_the_convolution_arithmetic() {
    for strides in [[1, 1], [2, 1], [2, 2], [3, 1], [2, 3]] {
        let m = model(strides, 1);
        for frames in [1usize, 2, 3, 4, 5, 7, 8, 13, 30] {
            // Padding 1, kernel 3: n -> floor((n - 1) / s) + 1 per convolution.
            let one = |n: usize, s: usize| (n - 1) / s + 1;
            let want = one(one(frames, strides[0]), strides[1]);
            assert_eq!(
                m.encoded_len(frames),
                want,
                "{frames} frames, strides {strides:?}"
            );
            let b = batch(&[frames], &[vec![4]], 2);
            let enc = encode_batch(&m, &b, &Ctx::eval()).unwrap();
            assert_eq!(enc.memory.shape(), &[1, want, 16], "strides {strides:?}");
            assert_eq!(enc.lens, vec![want]);
        }
    }
}

#[test]
fn parameters_are_named_and_the_ctc_head_is_optional() {
    let m = model([2, 2], 3);
    let names: Vec<String> = m
        .params()
        .iter()
        .map(|p| p.name().unwrap().to_string())
        .collect();
    for want in [
        "encoder.embedding.conv1.weight",
        "encoder.embedding.conv2.bias",
        "encoder.embedding.proj.weight",
        "encoder.layers.1.self_attn.q_proj.weight",
        "encoder.norm.weight",
        "ctc_head.weight",
        "decoder.token_embedding.weight",
        "decoder.layers.0.cross_attn.k_proj.weight",
        "decoder.layers.1.cross_norm.bias",
        "decoder.norm.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
    let mut seen = std::collections::HashSet::new();
    assert!(
        names.iter().all(|n| seen.insert(n.clone())),
        "duplicate names"
    );
    let no_ctc = EncoderDecoderTransformer::new(&gpu(), config([2, 2], false), 3).unwrap();
    assert_eq!(no_ctc.params().len(), m.params().len() - 2);
}

#[test]
fn cached_decoding_matches_teacher_forcing() {
    let m = model([2, 1], 4);
    let b = batch(&[9, 6], &[vec![4, 5, 6], vec![7, 8, 9]], 5);
    let enc = encode_batch(&m, &b, &Ctx::eval()).unwrap();
    let ids = Tensor::from_u32(&gpu(), &b.decoder_input, &[2, 4]).unwrap();
    let full = m
        .decode(&ids, &enc, &Ctx::eval())
        .unwrap()
        .to_vec()
        .unwrap(); // [2, 4, V]
    let mut caches = m.new_caches();
    for t in 0..4 {
        let step_ids: Vec<u32> = (0..2).map(|r| b.decoder_input[r * 4 + t]).collect();
        let step_ids = Tensor::from_u32(&gpu(), &step_ids, &[2, 1]).unwrap();
        let got = m
            .decode_cached(&step_ids, &enc, &mut caches)
            .unwrap()
            .to_vec()
            .unwrap();
        for r in 0..2 {
            let want = &full[(r * 4 + t) * VOCAB..(r * 4 + t + 1) * VOCAB];
            let want: Vec<f64> = want.iter().map(|&x| x as f64).collect();
            assert_close(
                &format!("row {r} step {t}"),
                &got[r * VOCAB..(r + 1) * VOCAB],
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn padding_frames_do_not_change_an_utterance_beyond_the_conv_window() {
    // The same utterance alone and next to a longer one: the encoder output at frames whose
    // conv window ends inside the utterance must agree (key masks hide the padding).
    let m = model([2, 2], 6);
    let alone = batch(&[12], &[vec![4]], 7);
    let mut padded = batch(&[12, 20], &[vec![4], vec![5]], 7);
    padded.features[..12 * MELS].copy_from_slice(&alone.features[..12 * MELS]);
    let a = encode_batch(&m, &alone, &Ctx::eval()).unwrap();
    let p = encode_batch(&m, &padded, &Ctx::eval()).unwrap();
    assert_eq!(a.lens[0], p.lens[0]);
    let a = a.memory.to_vec().unwrap();
    let p = p.memory.to_vec().unwrap();
    // Frames 0..lens-1 see only real input (the last may see a padded frame).
    let keep = (m.encoded_len(12) - 1) * 16;
    let want: Vec<f64> = a[..keep].iter().map(|&x| x as f64).collect();
    // The whole utterance attends to all its frames, so the last frame's conv difference
    // spreads a little: compare with a loose tolerance and require it to be exact-ish.
    let diff = p[..keep]
        .iter()
        .zip(&want)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max);
    assert!(diff < 0.5, "max difference {diff}");
}

#[test]
fn beam_search_of_width_one_is_greedy() {
    let m = model([2, 1], 8);
    let b = batch(&[10], &[vec![4, 5]], 9);
    let enc = encode_batch(&m, &b, &Ctx::eval()).unwrap();
    let d = SpeechDecoder {
        model: &m,
        encoded: &enc,
    };
    let greedy = greedy_batch(&d, 1, SOS, EOS, 6).unwrap();
    let cfg = BeamConfig {
        beam_width: 1,
        max_new_tokens: 6,
        length_penalty: 0.0,
        eos: Some(EOS),
    };
    let mut beam = beam_search(&d, &[SOS], &cfg).unwrap();
    beam.retain(|&t| t != EOS);
    assert_eq!(beam, greedy[0]);
    // A wider beam finds a sequence at least as likely as greedy's; it runs without error
    // and reorders the caches, memory and lengths.
    let cfg = BeamConfig {
        beam_width: 3,
        ..cfg
    };
    assert!(beam_search(&d, &[SOS], &cfg).unwrap().len() <= 6);
}

#[test]
fn decoder_initialises_from_a_causal_lm() {
    let m = model([2, 2], 10);
    let lm = DecoderOnlyTransformer::new(
        &gpu(),
        DecoderOnlyConfig {
            vocab_size: VOCAB,
            d_model: 16,
            d_ff: 24,
            num_layers: 2,
            num_heads: 2,
            dropout: 0.0,
            layer_drop_rate: 0.0,
            weight_tying: true,
            max_seq_len: 16,
            activation: wgformer::ops::Activation::Gelu,
        },
        11,
    )
    .unwrap();
    let copied = m.load_decoder_from_clm(&lm).unwrap();
    assert_eq!(copied, lm.params().len());
    let get = |name: &str| {
        m.params()
            .into_iter()
            .find(|p| p.name() == Some(name))
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let lm_w = lm
        .params()
        .into_iter()
        .find(|p| p.name() == Some("layers.1.ffn.linear1.weight"));
    assert_eq!(
        get("decoder.layers.1.ffn.linear1.weight"),
        lm_w.unwrap().to_vec().unwrap()
    );
    // A mismatched LM is refused with the parameter named.
    let wide = DecoderOnlyTransformer::new(
        &gpu(),
        DecoderOnlyConfig {
            vocab_size: VOCAB,
            d_model: 32,
            d_ff: 24,
            num_layers: 1,
            num_heads: 2,
            dropout: 0.0,
            layer_drop_rate: 0.0,
            weight_tying: true,
            max_seq_len: 16,
            activation: wgformer::ops::Activation::Gelu,
        },
        12,
    )
    .unwrap();
    let err = m.load_decoder_from_clm(&wide).unwrap_err().to_string();
    assert!(err.contains("token_embedding.weight"), "{err}");
}

#[test]
fn a_tiny_model_learns_three_utterances() {
    let m = model([2, 1], 13);
    let labels = vec![vec![4, 5, 6, 7], vec![8, 9], vec![10, 4, 10]];
    let b = batch(&[14, 10, 12], &labels, 14);
    let hyper = AdamWParams {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        weight_decay: 0.0,
        coupled_weight_decay: false,
    };
    let optimizer = Optimizer::new(m.params(), hyper).unwrap();
    let model = m;
    let mut trainer = Trainer::new(optimizer, LrSchedule::constant(3e-3), 1.0, 1);
    let (ls, ctc) = (0.0, 0.3);
    let first = trainer
        .step(1, |_, ctx| asr_loss(&model, &b, ctx, ls, ctc))
        .unwrap()
        .loss;
    let mut last = first;
    for _ in 0..150 {
        last = trainer
            .step(1, |_, ctx| asr_loss(&model, &b, ctx, ls, ctc))
            .unwrap()
            .loss;
    }
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    let enc = encode_batch(&model, &b, &Ctx::eval()).unwrap();
    let d = SpeechDecoder {
        model: &model,
        encoded: &enc,
    };
    assert_eq!(greedy_batch(&d, 3, SOS, EOS, 8).unwrap(), labels);
}

#[test]
fn shallow_fusion_with_a_causal_lm_of_the_same_vocabulary() {
    use wgformer::decode::{CausalLmDecoder, ShallowFusion};
    let m = model([2, 1], 15);
    let lm_config = |vocab_size| DecoderOnlyConfig {
        vocab_size,
        d_model: 16,
        d_ff: 24,
        num_layers: 1,
        num_heads: 2,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 16,
        activation: wgformer::ops::Activation::Gelu,
    };
    let lm = DecoderOnlyTransformer::new(&gpu(), lm_config(VOCAB), 16).unwrap();
    let b = batch(&[10], &[vec![4, 5]], 17);
    let enc = encode_batch(&m, &b, &Ctx::eval()).unwrap();
    let speech = || SpeechDecoder {
        model: &m,
        encoded: &enc,
    };
    let cfg = BeamConfig {
        beam_width: 3,
        max_new_tokens: 6,
        length_penalty: 0.0,
        eos: Some(EOS),
    };
    let plain = beam_search(&speech(), &[SOS], &cfg).unwrap();
    // Weight 0: the LM changes nothing.
    let fused = ShallowFusion::new(speech(), CausalLmDecoder(&lm), 0.0).unwrap();
    assert_eq!(beam_search(&fused, &[SOS], &cfg).unwrap(), plain);
    // A heavy LM weight follows the LM: its own greedy continuation wins.
    let heavy = ShallowFusion::new(speech(), CausalLmDecoder(&lm), 50.0).unwrap();
    let lm_alone = wgformer::decode::greedy(&CausalLmDecoder(&lm), &[SOS], 6, Some(EOS)).unwrap();
    let got = beam_search(
        &heavy,
        &[SOS],
        &BeamConfig {
            beam_width: 1,
            ..cfg
        },
    )
    .unwrap();
    assert_eq!(got, lm_alone);
    // With a sentence boundary the LM reads SOS as the boundary token, and EOS is scored with
    // the LM's log-probability of that token.
    use wgformer::decode::{log_softmax, Boundary, IncrementalDecoder};
    use wgformer::gpu::block_on;
    let space = 3u32;
    let bounded = ShallowFusion::new(speech(), CausalLmDecoder(&lm), 0.5)
        .unwrap()
        .with_boundary(Boundary {
            token: space,
            sos: SOS,
            eos: EOS,
        })
        .unwrap();
    let got = block_on(bounded.step(&mut bounded.start(1).unwrap(), &[SOS], 1)).unwrap();
    let a = block_on(speech().step(&mut speech().start(1).unwrap(), &[SOS], 1)).unwrap();
    let lm_dec = CausalLmDecoder(&lm);
    let l = block_on(lm_dec.step(&mut lm_dec.start(1).unwrap(), &[space], 1)).unwrap();
    let (la, mut ll) = (log_softmax(&a), log_softmax(&l));
    ll[EOS as usize] = ll[space as usize];
    for (i, g) in got.iter().enumerate() {
        let want = la[i] + 0.5 * ll[i];
        assert!((*g as f64 - want).abs() < 1e-4, "token {i}: {g} vs {want}");
    }
    let outside = Boundary {
        token: VOCAB as u32,
        sos: SOS,
        eos: EOS,
    };
    let fusion = ShallowFusion::new(speech(), CausalLmDecoder(&lm), 0.5).unwrap();
    assert!(fusion.with_boundary(outside).is_err());
    // Another vocabulary is refused, naming the problem.
    let other = DecoderOnlyTransformer::new(&gpu(), lm_config(VOCAB + 3), 18).unwrap();
    let err = ShallowFusion::new(speech(), CausalLmDecoder(&other), 0.3)
        .err()
        .unwrap();
    assert!(err.to_string().contains("vocabulary"), "{err}");
}
