//! Every parser a user can feed, run on the committed broken files of
//! `tests/fixtures/corrupt/` (each must be refused with its name in the error) and on randomly
//! corrupted copies of valid files (bit flips,
//! truncations, inserted and overwritten bytes, spliced halves): the result is always `Ok` or
//! an error whose message names the file, never a panic. A bounded, seeded property test
//! that runs in CI (`WGFORMER_FUZZ_ITERS` raises the count per parser; default 150).
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use wgformer::rng::SplitMix64;

fn iterations() -> usize {
    std::env::var("WGFORMER_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

fn mutate(seed: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut data = seed.to_vec();
    let pick = |rng: &mut SplitMix64, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    for _ in 0..1 + pick(rng, 4) {
        match pick(rng, 6) {
            0 if !data.is_empty() => {
                let i = pick(rng, data.len());
                data[i] ^= 1 << pick(rng, 8);
            }
            1 => data.truncate(pick(rng, data.len() + 1)),
            2 => {
                let i = pick(rng, data.len() + 1);
                let junk: Vec<u8> = (0..1 + pick(rng, 16))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                data.splice(i..i, junk);
            }
            3 if data.len() >= 4 => {
                // Overwrite 4 bytes with an extreme integer (length fields).
                let i = pick(rng, data.len() - 3);
                let v = [u32::MAX, 0, 0x7fff_ffff, 1 << 31][pick(rng, 4)];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            4 => {
                let (a, b) = (pick(rng, data.len() + 1), pick(rng, data.len() + 1));
                let (lo, hi) = (a.min(b), a.max(b));
                let copy = data[lo..hi].to_vec();
                data.extend_from_slice(&copy);
            }
            _ => {
                let i = pick(rng, data.len() + 1);
                data.insert(i, b"\0\xff\n\t:[{\""[pick(rng, 8)]);
            }
        }
    }
    data
}

/// Run `parse` on `iterations()` corruptions of `seed`, each written to `dir/name`.
fn fuzz(name: &str, seed: &[u8], parse: impl Fn(&Path) -> Result<(), String>) {
    let dir = std::env::temp_dir().join(format!("wgformer-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut rng = SplitMix64::new(name.len() as u64 * 7919 + seed.len() as u64);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..iterations() {
        let data = mutate(seed, &mut rng);
        std::fs::write(&path, &data).unwrap();
        match catch_unwind(AssertUnwindSafe(|| parse(&path))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(msg)) => {
                assert!(
                    msg.contains(name),
                    "{name} #{i}: the error does not name the file: {msg}"
                );
                refused += 1;
            }
            Err(_) => {
                let keep = dir.join(format!("{name}.panic-{i}"));
                std::fs::write(&keep, &data).unwrap();
                panic!(
                    "{name} #{i}: the parser panicked; input kept at {}",
                    keep.display()
                );
            }
        }
    }
    println!(
        "{name}: {} inputs, {ok} accepted, {refused} refused with an error",
        ok + refused
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn err(e: wgformer::Error) -> String {
    e.to_string()
}

#[test]
fn wav_reader_survives_corruption() {
    // A small whole file (0.05 s), so that some corruptions still parse.
    let seed_path =
        std::env::temp_dir().join(format!("wgformer-fuzz-seed-{}.wav", std::process::id()));
    let tone: Vec<f32> = (0..800).map(|i| (i as f32 * 0.17).sin() * 0.5).collect();
    wgformer::audio::write_wav_16k(&seed_path, &tone).unwrap();
    let seed = std::fs::read(&seed_path).unwrap();
    let _ = std::fs::remove_file(&seed_path);
    fuzz("clip.wav", &seed, |p| {
        wgformer::audio::read_wav(p).map(|_| ()).map_err(err)
    });
}

#[test]
fn config_loaders_survive_corruption() {
    let clm = std::fs::read(repo("configs/clm.yaml")).unwrap();
    fuzz("clm.yaml", &clm, |p| {
        wgformer::config::Config::load(p).map(|_| ()).map_err(err)
    });
    let asr = std::fs::read(repo("configs/asr.yaml")).unwrap();
    fuzz("asr.yaml", &asr, |p| {
        wgformer::config::AsrConfig::load_with_overrides(p, &[] as &[&str])
            .map(|_| ())
            .map_err(err)
    });
}

#[test]
fn tokenizer_text_and_manifest_readers_survive_corruption() {
    let dir = std::env::temp_dir().join(format!("wgformer-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tok_path = dir.join("seed-tokenizer.json");
    wgformer::data::Tokenizer::train_bpe("to be or not to be, that is the question", 40)
        .unwrap()
        .save(&tok_path)
        .unwrap();
    let tok = std::fs::read(&tok_path).unwrap();
    fuzz("tokenizer.json", &tok, |p| {
        wgformer::data::Tokenizer::load(p).map(|_| ()).map_err(err)
    });
    let text = std::fs::read(repo("data/shakespeare.txt")).unwrap();
    fuzz("corpus.txt", &text[..3000], |p| {
        wgformer::data::read_text(p).map(|_| ()).map_err(err)
    });
    let manifest = b"audio\tvoice\ttranscript\nwav/a.wav\tespeak-ng en\tTO BE OR NOT TO BE\nwav/b.wav\tflite slt\tTHAT IS THE QUESTION\n";
    fuzz("train.tsv", manifest, |p| {
        wgformer::data::asr::read_manifest(p)
            .map(|_| ())
            .map_err(err)
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_loader_survives_corruption() {
    use wgformer::nn::Module;
    let gpu = wgformer::Gpu::shared().unwrap();
    let config = wgformer::models::DecoderOnlyConfig {
        vocab_size: 9,
        d_model: 8,
        d_ff: 8,
        num_layers: 1,
        num_heads: 1,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 4,
        activation: wgformer::ops::Activation::Gelu,
    };
    let model = wgformer::models::DecoderOnlyTransformer::new(&gpu, config, 1).unwrap();
    let params = model.params();
    let named: Vec<(String, &wgformer::Tensor)> = params
        .iter()
        .map(|p| (p.name().unwrap().to_string(), p))
        .collect();
    let seed = wgformer::checkpoint::tensors_to_bytes(&named).unwrap();
    fuzz("model.safetensors", &seed, |p| {
        let bytes = std::fs::read(p).unwrap();
        wgformer::checkpoint::load_params(p, &bytes, &params).map_err(err)
    });
}

#[test]
fn committed_broken_files_are_refused_naming_them() {
    use wgformer::config::{AsrConfig, Config};
    let dir = repo("tests/fixtures/corrupt");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let results: Vec<Result<(), String>> = match path.extension().and_then(|e| e.to_str()) {
            Some("wav") => vec![wgformer::audio::read_wav(&path).map(|_| ()).map_err(err)],
            Some("yaml") => vec![
                Config::load(&path).map(|_| ()).map_err(err),
                AsrConfig::load_with_overrides(&path, &[] as &[&str])
                    .map(|_| ())
                    .map_err(err),
            ],
            Some("json") => vec![wgformer::data::Tokenizer::load(&path)
                .map(|_| ())
                .map_err(err)],
            Some("tsv") => vec![wgformer::data::asr::read_manifest(&path)
                .map(|_| ())
                .map_err(err)],
            Some("txt") => vec![wgformer::data::read_text(&path).map(|_| ()).map_err(err)],
            Some("safetensors") => {
                let bytes = std::fs::read(&path).unwrap();
                vec![wgformer::checkpoint::tensors_from_bytes(&path, &bytes)
                    .map(|_| ())
                    .map_err(err)]
            }
            _ => continue,
        };
        for r in results {
            let msg = r.expect_err(&format!("{name} must be refused"));
            assert!(
                msg.contains(&name),
                "{name}: the error does not name the file: {msg}"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 11,
        "only {seen} broken files found in {}",
        dir.display()
    );
}
