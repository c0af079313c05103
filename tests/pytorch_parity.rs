//! The crate against PyTorch and Hugging Face `tokenizers`, through committed fixtures (no
//! Python at test time). `scripts/pytorch_parity.py` writes them: it builds both models with
//! torch.nn defaults (`nn.Linear`, `nn.LayerNorm`, `nn.GELU()`, `nn.Embedding`, `nn.Conv2d`,
//! attention written out), loads the checkpoints in `tests/fixtures/parity/` (written by this
//! crate, see `write_parity_fixtures`) with `load_state_dict(strict=True)`, and stores
//! PyTorch's logits, loss and parameter gradients for the inputs beside them, and the ids the
//! `tokenizers` library gives for a text.
//!
//! Errors are measured per tensor as max |crate - PyTorch| / max |PyTorch| (for gradients, the
//! denominator is at least 1e-3 of the model's largest gradient entry: see `compare_gradients`).
//!
//! Regenerate (then run the script, which checks the figures too):
//! `WGFORMER_WRITE_PARITY=1 cargo test --test pytorch_parity the_fixture_models`.
mod common;
use common::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use wgformer::checkpoint::{self, NamedArrays};
use wgformer::data::{read_text, Corpus, Tokenizer, PAD, SOS};
use wgformer::models::{
    DecoderOnlyConfig, DecoderOnlyTransformer, EncoderDecoderConfig, EncoderDecoderTransformer,
};
use wgformer::nn::{Ctx, Module};
use wgformer::ops::{self, Activation, AdamWParams};
use wgformer::{AdamW, Tensor};

const LOGITS_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

/// The causal LM case: model sizes and one padded batch.
#[derive(Serialize, Deserialize)]
struct ClmCase {
    vocab_size: usize,
    d_model: usize,
    d_ff: usize,
    num_layers: usize,
    num_heads: usize,
    max_seq_len: usize,
    weight_tying: bool,
    activation: Activation,
    batch: usize,
    seq_len: usize,
    /// [batch, seq_len]
    ids: Vec<u32>,
    /// [batch] real length of each row (keys past it are masked)
    lens: Vec<u32>,
    /// [batch * seq_len], PAD where ignored
    targets: Vec<u32>,
    label_smoothing: f32,
}

impl ClmCase {
    fn config(&self) -> DecoderOnlyConfig {
        DecoderOnlyConfig {
            vocab_size: self.vocab_size,
            d_model: self.d_model,
            d_ff: self.d_ff,
            num_layers: self.num_layers,
            num_heads: self.num_heads,
            dropout: 0.0,
            layer_drop_rate: 0.0,
            weight_tying: self.weight_tying,
            max_seq_len: self.max_seq_len,
            activation: self.activation,
        }
    }

    /// Logits [B, T, V] and the mean cross-entropy (label smoothing, PAD ignored).
    fn forward(&self, model: &DecoderOnlyTransformer) -> (Tensor, Tensor) {
        let g = gpu();
        let ids = Tensor::from_u32(&g, &self.ids, &[self.batch, self.seq_len]).unwrap();
        let lens = Tensor::from_u32(&g, &self.lens, &[self.batch]).unwrap();
        let targets = Tensor::from_u32(&g, &self.targets, &[self.targets.len()]).unwrap();
        let logits = model.forward(&ids, Some(&lens), &Ctx::eval()).unwrap();
        let flat = logits
            .reshape(&[self.batch * self.seq_len, self.vocab_size])
            .unwrap();
        let loss = ops::cross_entropy(&flat, &targets, PAD, self.label_smoothing).unwrap();
        (logits, loss)
    }
}

/// The speech recognizer case: model sizes and one padded batch.
#[derive(Serialize, Deserialize)]
struct AsrCase {
    vocab_size: usize,
    n_mels: usize,
    conv_channels: usize,
    conv_strides: [usize; 2],
    d_model: usize,
    num_heads: usize,
    d_ff: usize,
    encoder_layers: usize,
    decoder_layers: usize,
    max_source_len: usize,
    max_target_len: usize,
    activation: Activation,
    batch: usize,
    frames: usize,
    /// [batch, frames, n_mels], zero past each utterance's frames
    features: Vec<f32>,
    frame_lens: Vec<usize>,
    /// S: the most labels in a row
    labels: usize,
    /// [batch, S + 1]: SOS, the labels, PAD
    decoder_input: Vec<u32>,
    /// [batch, S + 1]: the labels, EOS, PAD
    decoder_target: Vec<u32>,
    /// [batch, S]: the labels, PAD
    ctc_targets: Vec<u32>,
    target_lens: Vec<u32>,
    label_smoothing: f32,
    ctc_weight: f32,
}

impl AsrCase {
    fn config(&self) -> EncoderDecoderConfig {
        EncoderDecoderConfig {
            vocab_size: self.vocab_size,
            n_mels: self.n_mels,
            conv_channels: self.conv_channels,
            conv_strides: self.conv_strides,
            d_model: self.d_model,
            num_heads: self.num_heads,
            d_ff: self.d_ff,
            encoder_layers: self.encoder_layers,
            decoder_layers: self.decoder_layers,
            dropout: 0.0,
            ctc_head: true,
            max_source_len: self.max_source_len,
            max_target_len: self.max_target_len,
            activation: self.activation,
        }
    }

    /// CTC logits [B, S', V], decoder logits [B, S + 1, V] and the training loss: decoder
    /// cross-entropy + ctc_weight x CTC (PyTorch's reduction="mean": per utterance over its
    /// label count, then over the batch), as `train::AsrTrainer` computes it.
    fn forward(&self, model: &EncoderDecoderTransformer) -> (Tensor, Tensor, Tensor) {
        let g = gpu();
        let (b, s1) = (self.batch, self.labels + 1);
        let features =
            Tensor::from_slice(&g, &self.features, &[b, self.frames, self.n_mels]).unwrap();
        let encoded = model
            .encode(&features, &self.frame_lens, &Ctx::eval())
            .unwrap();
        let ctc_logits = model.ctc_logits(&encoded).unwrap();
        let input = Tensor::from_u32(&g, &self.decoder_input, &[b, s1]).unwrap();
        let target = Tensor::from_u32(&g, &self.decoder_target, &[b * s1]).unwrap();
        let logits = model.decode(&input, &encoded, &Ctx::eval()).unwrap();
        let flat = logits.reshape(&[b * s1, self.vocab_size]).unwrap();
        let ce = ops::cross_entropy(&flat, &target, PAD, self.label_smoothing).unwrap();
        let ctc_targets = Tensor::from_u32(&g, &self.ctc_targets, &[b, self.labels]).unwrap();
        let target_lens = Tensor::from_u32(&g, &self.target_lens, &[b]).unwrap();
        let per_utt = ops::ctc_loss(
            &ctc_logits,
            &encoded.lens_tensor,
            &ctc_targets,
            &target_lens,
            PAD,
        )
        .unwrap();
        let weights: Vec<f32> = self
            .target_lens
            .iter()
            .map(|&n| self.ctc_weight / (b as f32 * n as f32))
            .collect();
        let weights = Tensor::from_slice(&g, &weights, &[b]).unwrap();
        let ctc = ops::sum_axis(&ops::mul(&per_utt, &weights).unwrap(), 0).unwrap();
        let loss = ops::add(&ce, &ctc.reshape(ce.shape()).unwrap()).unwrap();
        (ctc_logits, logits, loss)
    }
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_tensors(path: &Path) -> NamedArrays {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    checkpoint::tensors_from_bytes(path, &bytes).unwrap()
}

fn max_abs(values: &[f32]) -> f64 {
    values.iter().fold(0f64, |m, &v| m.max((v as f64).abs()))
}

/// max |got - want| / max(max |want|, floor).
fn relative_error(got: &[f32], want: &[f32], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    if diff.is_nan() {
        f64::INFINITY
    } else {
        diff / max_abs(want).max(floor).max(f64::MIN_POSITIVE)
    }
}

/// Compare one tensor with PyTorch's `key`, print the figure, and return it.
fn compare(what: &str, got: &Tensor, expected: &NamedArrays, key: &str, tol: f64) -> f64 {
    compare_scaled(what, got, expected, key, tol, 0.0)
}

fn compare_scaled(
    what: &str,
    got: &Tensor,
    expected: &NamedArrays,
    key: &str,
    tol: f64,
    floor: f64,
) -> f64 {
    let (shape, want) = expected
        .get(key)
        .unwrap_or_else(|| panic!("the fixture has no tensor {key:?}"));
    let got_values = got.to_vec().unwrap();
    assert_eq!(
        got_values.len(),
        shape.iter().product::<usize>(),
        "{what}: the crate's {:?} vs PyTorch's {shape:?}",
        got.shape()
    );
    let err = relative_error(&got_values, want, floor);
    let note = if max_abs(want) < floor {
        " (zero in exact arithmetic: scaled by the floor)"
    } else {
        ""
    };
    eprintln!("{what:>40}: {err:.2e}{note}");
    assert!(err <= tol, "{what}: relative error {err:.3e} > {tol:.0e}");
    err
}

/// Every parameter's gradient against PyTorch's `grad.<name>`; returns the largest error.
/// A gradient that is zero in exact arithmetic (the key projection's bias: it adds the same
/// q.b to every score of a row, which softmax ignores) holds only rounding noise on both
/// sides, so each error is taken relative to at least 1e-3 of the largest gradient entry.
fn compare_gradients(params: &[Tensor], expected: &NamedArrays) -> f64 {
    let largest = expected
        .iter()
        .filter(|(k, _)| k.starts_with("grad."))
        .fold(0f64, |m, (_, (_, v))| m.max(max_abs(v)));
    let floor = 1e-3 * largest;
    let mut worst = 0f64;
    for p in params {
        let name = p.name().unwrap();
        let grad = p.grad().unwrap_or_else(|| panic!("no gradient for {name}"));
        let key = format!("grad.{name}");
        worst = worst.max(compare_scaled(name, &grad, expected, &key, GRAD_TOL, floor));
    }
    eprintln!("{:>40}: {worst:.2e}", "largest gradient error");
    worst
}

#[test]
fn causal_lm_matches_pytorch_logits_loss_and_gradients() {
    let dir = fixtures().join("clm");
    let case: ClmCase = read_json(&dir.join("inputs.json"));
    let model = DecoderOnlyTransformer::new(&gpu(), case.config(), 0).unwrap();
    model
        .load_safetensors(dir.join("model.safetensors"))
        .unwrap();
    let expected = read_tensors(&dir.join("expected.safetensors"));
    let (logits, loss) = case.forward(&model);
    compare("logits", &logits, &expected, "logits", LOGITS_TOL);
    compare("loss", &loss, &expected, "loss", LOGITS_TOL);
    loss.backward().unwrap();
    compare_gradients(&model.params(), &expected);
}

#[test]
fn speech_recognizer_matches_pytorch_logits_loss_and_gradients() {
    let dir = fixtures().join("asr");
    let case: AsrCase = read_json(&dir.join("inputs.json"));
    let model = EncoderDecoderTransformer::new(&gpu(), case.config(), 0).unwrap();
    model
        .load_safetensors(dir.join("model.safetensors"))
        .unwrap();
    let expected = read_tensors(&dir.join("expected.safetensors"));
    let (ctc_logits, logits, loss) = case.forward(&model);
    compare(
        "ctc logits",
        &ctc_logits,
        &expected,
        "ctc_logits",
        LOGITS_TOL,
    );
    compare("decoder logits", &logits, &expected, "logits", LOGITS_TOL);
    compare("loss", &loss, &expected, "loss", LOGITS_TOL);
    loss.backward().unwrap();
    compare_gradients(&model.params(), &expected);
}

#[test]
fn a_pytorch_checkpoint_tied_the_usual_way_loads_from_bf16_and_f16() {
    let dir = fixtures().join("clm");
    let case: ClmCase = read_json(&dir.join("inputs.json"));
    assert!(case.weight_tying);
    let ours = read_tensors(&dir.join("model.safetensors"));
    let model = DecoderOnlyTransformer::new(&gpu(), case.config(), 0).unwrap();
    type Rounding = fn(f32) -> f32;
    let widen: [(&str, Rounding); 2] = [
        ("bf16", |x| half::bf16::from_f32(x).to_f32()),
        ("f16", |x| half::f16::from_f32(x).to_f32()),
    ];
    for (dtype, round) in widen {
        // state_dict() of a PyTorch model whose lm_head.weight is token_embedding.weight.
        let file = dir.join(format!("torch_tied_{dtype}.safetensors"));
        assert!(read_tensors(&file).contains_key("lm_head.weight"));
        model.load_safetensors(&file).unwrap();
        for p in model.params() {
            let name = p.name().unwrap();
            let want: Vec<f32> = ours[name].1.iter().map(|&x| round(x)).collect();
            let got = p.to_vec().unwrap();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dtype}: {name} is not the {dtype} rounding of our checkpoint"
            );
        }
    }
}

/// The ids Hugging Face `tokenizers` gave for `sample.txt`, and the text it decoded them to.
#[derive(Deserialize)]
struct HfEncoding {
    ids: Vec<u32>,
    decoded: String,
}

#[test]
fn tokenizer_files_encode_and_decode_as_hugging_face_tokenizers_does() {
    let dir = fixtures().join("tokenizer");
    let text = read_text(dir.join("sample.txt")).unwrap();
    for kind in ["char", "bpe"] {
        let tokenizer = Tokenizer::load(dir.join(format!("{kind}.json"))).unwrap();
        assert_eq!(tokenizer.kind(), kind);
        let hf: HfEncoding = read_json(&dir.join(format!("{kind}.hf.json")));
        let ids = tokenizer.encode(&text);
        let first_difference = ids.iter().zip(&hf.ids).position(|(a, b)| a != b);
        assert_eq!(
            (ids.len(), first_difference),
            (hf.ids.len(), None),
            "{kind}: the crate's ids differ from Hugging Face's"
        );
        assert_eq!(tokenizer.decode(&ids), hf.decoded, "{kind}: decoded text");
        assert!(
            hf.decoded.contains('\u{FFFD}') && hf.ids.contains(&wgformer::data::UNK),
            "the sample exercises unknown characters"
        );
    }
}

// ---- Writing the fixtures -------------------------------------------------------------

fn clm_case() -> ClmCase {
    let (batch, seq_len, vocab_size) = (2, 12, 24);
    let mut rng = wgformer::rng::SplitMix64::new(11);
    let stream: Vec<u32> = (0..batch * seq_len + 1)
        .map(|_| 4 + (rng.next_u64() % (vocab_size as u64 - 4)) as u32)
        .collect();
    let mut ids = vec![SOS; batch * seq_len];
    let mut targets = vec![PAD; batch * seq_len];
    let lens = vec![seq_len as u32, 9];
    for (r, &len) in lens.iter().enumerate() {
        let row = &stream[r * seq_len..];
        let len = len as usize;
        ids[r * seq_len + 1..r * seq_len + len].copy_from_slice(&row[..len - 1]);
        targets[r * seq_len..r * seq_len + len].copy_from_slice(&row[..len]);
        ids[r * seq_len + len..(r + 1) * seq_len].fill(PAD);
    }
    ClmCase {
        vocab_size,
        d_model: 32,
        d_ff: 64,
        num_layers: 2,
        num_heads: 2,
        max_seq_len: 16,
        weight_tying: true,
        activation: Activation::Gelu,
        batch,
        seq_len,
        ids,
        lens,
        targets,
        label_smoothing: 0.1,
    }
}

fn asr_case() -> AsrCase {
    let (batch, frames, n_mels, vocab_size) = (2, 40, 8, 12);
    let frame_lens = vec![frames, 30];
    let mut features = values(batch * frames * n_mels, 21);
    for (b, &n) in frame_lens.iter().enumerate() {
        features[(b * frames + n) * n_mels..(b + 1) * frames * n_mels].fill(0.0);
    }
    let rows: [&[u32]; 2] = [&[4, 7, 5, 9, 11], &[6, 10, 4]];
    let labels = 5;
    let (mut decoder_input, mut decoder_target, mut ctc_targets) = (vec![], vec![], vec![]);
    for row in rows {
        let pad = |v: &mut Vec<u32>, n: usize| v.resize(v.len() + n, PAD);
        decoder_input.push(SOS);
        decoder_input.extend_from_slice(row);
        pad(&mut decoder_input, labels - row.len());
        decoder_target.extend_from_slice(row);
        decoder_target.push(wgformer::data::EOS);
        pad(&mut decoder_target, labels - row.len());
        ctc_targets.extend_from_slice(row);
        pad(&mut ctc_targets, labels - row.len());
    }
    AsrCase {
        vocab_size,
        n_mels,
        conv_channels: 4,
        conv_strides: [2, 2],
        d_model: 32,
        num_heads: 2,
        d_ff: 64,
        encoder_layers: 1,
        decoder_layers: 1,
        max_source_len: 16,
        max_target_len: 8,
        activation: Activation::Gelu,
        batch,
        frames,
        features,
        frame_lens,
        labels,
        decoder_input,
        decoder_target,
        ctc_targets,
        target_lens: rows.iter().map(|r| r.len() as u32).collect(),
        label_smoothing: 0.1,
        ctc_weight: 0.3,
    }
}

/// A few AdamW steps on `loss`, so every parameter (LayerNorm gains and biases included)
/// moves away from its initial value before the checkpoint is written.
const LR: f32 = 2e-2;
const TRAIN_STEPS: usize = 5;

fn train_a_little(params: Vec<Tensor>, mut loss: impl FnMut() -> Tensor) {
    let hyper = AdamWParams {
        lr: LR,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(params, hyper).unwrap();
    for _ in 0..TRAIN_STEPS {
        loss().backward().unwrap();
        opt.step().unwrap();
        opt.zero_grad();
    }
}

fn write_json(path: &Path, value: &impl Serialize) {
    std::fs::write(path, serde_json::to_string(value).unwrap() + "\n").unwrap();
}

/// `tests/fixtures/parity/<name>/`: the model's checkpoint and the case's inputs.
fn write_case(name: &str, model: &impl Module, case: &impl Serialize) {
    let dir = fixtures().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    model
        .save_safetensors(dir.join("model.safetensors"))
        .unwrap();
    write_json(&dir.join("inputs.json"), case);
}

/// A text for the tokenizer check: Shakespeare with whitespace runs longer than a BPE chunk,
/// tabs, non-ASCII letters and characters no tokenizer has seen.
fn tokenizer_sample(corpus: &str) -> String {
    let mut s: String = corpus.chars().skip(200_000).take(4000).collect();
    s.push_str("\n\n\n   indented\tand\t\ttabbed   \n");
    s.push_str(&" ".repeat(300));
    s.push_str("after a long run of spaces, a word of 300 letters: ");
    s.push_str(&"abc".repeat(100));
    s.push_str(" and unknown characters: café, 東京, emoji 🙂, «quotes».\n");
    s.push_str(&"\n".repeat(257));
    s.push_str("The end.");
    s
}

/// The fixture models are what the generator below makes: each is trained a few steps from
/// its seed and must equal the committed checkpoint (to 1e-4), so the fixtures and the code
/// that describes them cannot drift apart. With `WGFORMER_WRITE_PARITY=1` it writes the
/// crate's side of the fixtures instead: the checkpoints and inputs the script reads, the
/// tokenizer files and sample text, and, under `target/parity/`, the crate's ids of the whole
/// corpus for the script's corpus check (`scripts/pytorch_parity.py` runs it that way).
#[test]
fn the_fixture_models_are_what_their_generator_makes() {
    fn check(name: &str, model: &impl Module) {
        let file = fixtures().join(name).join("model.safetensors");
        let saved = checkpoint::tensors_from_bytes(&file, &std::fs::read(&file).unwrap()).unwrap();
        for p in model.params() {
            let name = p.name().unwrap();
            let (_, want) = &saved[name];
            // A key bias adds the same amount to every score of a query, which the softmax
            // cancels: its exact gradient is 0, so Adam steps it by the rounding noise of the
            // kernels that ran (up to lr per step). Only that bound holds for it across
            // kernel choices and adapters.
            // The other parameters: Adam also turns the rounding of near-zero gradient entries
            // into steps, so kernels of another summation order (another matmul variant or
            // attention path) move them by up to ~1e-5; a change of the model's definition
            // moves them by far more.
            let tol = match name.ends_with("k_proj.bias") {
                true => TRAIN_STEPS as f64 * LR as f64,
                false => 1e-4,
            };
            assert_close(name, &p.to_vec().unwrap(), &f64s(want), tol);
        }
    }
    let write = std::env::var_os("WGFORMER_WRITE_PARITY").is_some();
    let g = gpu();

    let case = clm_case();
    let model = DecoderOnlyTransformer::new(&g, case.config(), 5).unwrap();
    train_a_little(model.params(), || case.forward(&model).1);
    match write {
        true => write_case("clm", &model, &case),
        false => check("clm", &model),
    }

    let case = asr_case();
    let model = EncoderDecoderTransformer::new(&g, case.config(), 6).unwrap();
    train_a_little(model.params(), || case.forward(&model).2);
    match write {
        true => write_case("asr", &model, &case),
        false => check("asr", &model),
    }
    if !write {
        return;
    }

    let dir = fixtures().join("tokenizer");
    std::fs::create_dir_all(&dir).unwrap();
    let corpus_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/shakespeare.txt");
    let corpus = read_text(&corpus_path).unwrap();
    let head: String = corpus.chars().take(150_000).collect();
    let small = [
        Tokenizer::char_level(&head),
        Tokenizer::train_bpe(&head, 400).unwrap(),
    ];
    for t in &small {
        t.save(dir.join(format!("{}.json", t.kind()))).unwrap();
    }
    std::fs::write(dir.join("sample.txt"), tokenizer_sample(&corpus)).unwrap();

    // The tokenizers train_clm builds from the corpus's train part (configs/clm.yaml's split).
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/parity");
    std::fs::create_dir_all(&out).unwrap();
    let train = Corpus::load(&corpus_path, 0.05, 0.05).unwrap().train;
    for t in [
        Tokenizer::char_level(&train),
        Tokenizer::train_bpe(&train, 1024).unwrap(),
    ] {
        t.save(out.join(format!("{}.json", t.kind()))).unwrap();
        let ids: Vec<u8> = t
            .encode(&corpus)
            .iter()
            .flat_map(|id| id.to_le_bytes())
            .collect();
        std::fs::write(out.join(format!("{}.corpus-ids.u32", t.kind())), ids).unwrap();
    }
}
