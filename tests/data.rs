//! Tokenizers, corpus splitting and batching (CPU only).

use wgformer::data::{
    read_text, Batch, Batcher, Corpus, Tokenizer, EOS, NUM_SPECIAL, PAD, SOS, UNK,
};
use wgformer::rng::SplitMix64;

const CORPUS: &str = "data/shakespeare.txt";

fn corpus() -> String {
    read_text(CORPUS).unwrap()
}

/// A scratch file path unique to this test process and `name`.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgformer-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `count` slices of `text` of up to `max_chars` characters, at seeded character offsets.
fn slices(text: &str, count: usize, max_chars: usize, seed: u64) -> Vec<&str> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let a = (rng.next_u64() % bounds.len() as u64) as usize;
            let len = (rng.next_u64() % (max_chars as u64 + 1)) as usize;
            &text[bounds[a]..bounds[(a + len).min(bounds.len() - 1)]]
        })
        .collect()
}

/// A seeded random string drawn from `alphabet`.
fn random_string(alphabet: &[char], len: usize, rng: &mut SplitMix64) -> String {
    (0..len)
        .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
        .collect()
}

fn assert_round_trip(tok: &Tokenizer, s: &str) {
    let ids = tok.encode(s);
    assert!(
        ids.iter()
            .all(|&id| id >= NUM_SPECIAL && (id as usize) < tok.vocab_size()),
        "{s:?} -> {ids:?}"
    );
    assert_eq!(
        tok.decode(&ids),
        s,
        "{} round trip of {s:?} via {ids:?}",
        tok.kind()
    );
}

#[test]
fn shipped_corpus_is_about_a_megabyte_of_utf8_with_unix_line_endings() {
    let text = corpus();
    assert!(
        (1_000_000..2_000_000).contains(&text.len()),
        "{} bytes",
        text.len()
    );
    assert!(!text.contains('\r'));
    assert!(text.ends_with(".]\n"));
}

#[test]
fn char_tokenizer_ids_are_specials_then_sorted_characters() {
    let tok = Tokenizer::char_level("banana\n");
    assert_eq!(tok.vocab_size(), 4 + 4);
    assert_eq!(tok.encode("\nabn"), [4, 5, 6, 7]);
    assert_eq!(tok.token_name(PAD), "[PAD]");
    assert_eq!(tok.token_name(EOS), "[EOS]");
    assert_eq!(tok.token_name(6), "b");
}

#[test]
fn char_tokenizer_round_trips_corpus_slices() {
    let text = corpus();
    let tok = Tokenizer::char_level(&text);
    assert_eq!(tok.vocab_size(), 4 + 76);
    for s in slices(&text, 200, 500, 1) {
        assert_round_trip(&tok, s);
    }
    assert_round_trip(&tok, &text);
}

#[test]
fn tokenizers_round_trip_random_strings_of_covered_characters() {
    let alphabet: Vec<char> = "ab c\n\té日🦀-'.".chars().collect();
    let mut rng = SplitMix64::new(7);
    let training: String = (0..50)
        .map(|_| random_string(&alphabet, 40, &mut rng))
        .collect();
    let tokenizers = [
        Tokenizer::char_level(&training),
        Tokenizer::train_bpe(&training, 60).unwrap(),
    ];
    for tok in &tokenizers {
        for len in [0, 1, 2, 3, 17, 200] {
            for _ in 0..20 {
                let s = random_string(&alphabet, len, &mut rng);
                assert!(tok.covers(&s));
                assert_round_trip(tok, &s);
            }
        }
    }
}

#[test]
fn unknown_characters_encode_to_unk_and_decode_to_the_replacement_character() {
    let tokenizers = [
        Tokenizer::char_level("ab ab ab"),
        Tokenizer::train_bpe("ab ab ab", 9).unwrap(),
    ];
    for tok in &tokenizers {
        assert!(!tok.covers("aZ"));
        let ids = tok.encode("aZ€b");
        assert_eq!(ids[1..3], [UNK, UNK], "{} encoded {ids:?}", tok.kind());
        assert_eq!(tok.decode(&ids), "a\u{FFFD}\u{FFFD}b");
    }
}

#[test]
fn decode_skips_pad_sos_eos_and_replaces_out_of_range_ids() {
    let tok = Tokenizer::char_level("xy");
    assert_eq!(tok.decode(&[SOS, 4, PAD, 5, EOS, 99]), "xy\u{FFFD}");
}

#[test]
fn bpe_merges_the_most_frequent_pair_first_with_whitespace_attached_to_words() {
    // Chunks "ab", " ab", " ab": (a,b) occurs 3 times, then (" ", ab) twice.
    let tok = Tokenizer::train_bpe("ab ab ab", 9).unwrap();
    let Tokenizer::Bpe(bpe) = &tok else {
        panic!("not BPE")
    };
    assert_eq!(bpe.chars(), [' ', 'a', 'b']);
    assert_eq!(bpe.merges(), [(5, 6), (4, 7)]);
    assert_eq!(tok.encode("ab ab"), [7, 8]);
    assert_eq!(tok.token_text(8), " ab");
}

#[test]
fn bpe_stops_when_no_pair_repeats() {
    let tok = Tokenizer::train_bpe("abcd", 100).unwrap();
    assert_eq!(tok.vocab_size(), 4 + 4);
}

#[test]
fn bpe_on_the_corpus_reaches_the_target_size_compresses_and_round_trips() {
    let text = corpus();
    let split = Corpus::split(&text, 0.05, 0.05).unwrap();
    let tok = Tokenizer::train_bpe(&split.train, 1024).unwrap();
    assert_eq!(tok.vocab_size(), 1024);
    let ids = tok.encode(&split.val);
    let ratio = split.val.chars().count() as f64 / ids.len() as f64;
    assert!(ratio > 2.2, "only {ratio:.2} characters per token");
    assert_round_trip(&tok, &split.val);
    for s in slices(&text, 200, 300, 2) {
        assert_round_trip(&tok, s);
    }
}

#[test]
fn bpe_training_is_deterministic() {
    let text = corpus();
    let part = &text[..200_000];
    assert_eq!(
        Tokenizer::train_bpe(part, 400).unwrap(),
        Tokenizer::train_bpe(part, 400).unwrap()
    );
}

#[test]
fn bpe_vocab_size_below_the_base_symbols_is_an_error_naming_the_key() {
    let err = Tokenizer::train_bpe("abcdef", 6).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.vocab_size") && err.contains("10 base symbols"),
        "{err}"
    );
}

#[test]
fn tokenizers_save_and_load_unchanged() {
    let text = &corpus()[..100_000];
    for tok in [
        Tokenizer::char_level(text),
        Tokenizer::train_bpe(text, 300).unwrap(),
    ] {
        let path = scratch(&format!("{}.json", tok.kind()));
        tok.save(&path).unwrap();
        let back = Tokenizer::load(&path).unwrap();
        assert_eq!(back, tok);
        assert_eq!(back.encode(text), tok.encode(text));
    }
}

#[test]
fn loading_a_missing_tokenizer_file_names_the_file() {
    let path = scratch("does-not-exist.json");
    let err = Tokenizer::load(&path).unwrap_err().to_string();
    assert!(err.contains("does-not-exist.json"), "{err}");
}

#[test]
fn loading_a_malformed_tokenizer_file_names_the_file_and_the_problem() {
    let cases = [
        (
            "truncated.json",
            r#"{"kind": "char", "chars": ["a""#,
            "not a tokenizer JSON file",
        ),
        (
            "kind.json",
            r#"{"kind": "wordpiece", "chars": []}"#,
            "wordpiece",
        ),
        (
            "specials.json",
            r#"{"kind": "char", "special_tokens": ["[UNK]", "[PAD]", "[SOS]", "[EOS]"], "chars": ["a"]}"#,
            "special_tokens",
        ),
        (
            "unsorted.json",
            r#"{"kind": "char", "special_tokens": ["[PAD]", "[UNK]", "[SOS]", "[EOS]"], "chars": ["b", "a"]}"#,
            "sorted",
        ),
        (
            "merge.json",
            r#"{"kind": "bpe", "special_tokens": ["[PAD]", "[UNK]", "[SOS]", "[EOS]"], "chars": ["a", "b"], "merges": [[4, 6]]}"#,
            "merge 0 is [4, 6]",
        ),
        (
            "extra.json",
            r#"{"kind": "char", "special_tokens": ["[PAD]", "[UNK]", "[SOS]", "[EOS]"], "chars": [], "lowercase": true}"#,
            "lowercase",
        ),
    ];
    for (name, json, what) in cases {
        let path = scratch(name);
        std::fs::write(&path, json).unwrap();
        let err = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(what), "{name}: {err}");
    }
}

#[test]
fn read_text_rejects_invalid_utf8_naming_the_file_and_offset() {
    let path = scratch("latin1.txt");
    std::fs::write(&path, b"caf\xe9 au lait").unwrap();
    let err = read_text(&path).unwrap_err().to_string();
    assert!(
        err.contains("latin1.txt") && err.contains("UTF-8") && err.contains("offset 3"),
        "{err}"
    );
    let err = Corpus::load(&path, 0.1, 0.1).unwrap_err().to_string();
    assert!(err.contains("latin1.txt"), "{err}");
}

#[test]
fn corpus_split_is_contiguous_line_aligned_and_sized_by_the_fractions() {
    let text = corpus();
    let c = Corpus::split(&text, 0.1, 0.05).unwrap();
    assert_eq!(format!("{}{}{}", c.train, c.val, c.test), text);
    assert!(c.train.ends_with('\n') && c.val.ends_with('\n'));
    let n = text.len() as f64;
    assert!(
        (c.val.len() as f64 / n - 0.1).abs() < 0.001,
        "val {} bytes",
        c.val.len()
    );
    assert!(
        (c.test.len() as f64 / n - 0.05).abs() < 0.001,
        "test {} bytes",
        c.test.len()
    );
    let none = Corpus::split(&text, 0.0, 0.0).unwrap();
    assert_eq!(
        (none.train.len(), none.val.len(), none.test.len()),
        (text.len(), 0, 0)
    );
}

#[test]
fn corpus_split_rejects_fractions_that_leave_no_training_text() {
    for (v, t, what) in [
        (1.0, 0.0, "data.val_fraction"),
        (0.0, -0.1, "data.test_fraction"),
        (0.6, 0.5, "nothing to train"),
    ] {
        let err = Corpus::split("one\ntwo\n", v, t).unwrap_err().to_string();
        assert!(err.contains(what), "{v} {t}: {err}");
    }
}

fn stream_of(n: u32) -> Vec<u32> {
    (0..n).map(|i| NUM_SPECIAL + i % 50).collect()
}

#[test]
fn every_window_opens_with_sos_and_its_targets_are_the_inputs_shifted_by_one() {
    let tokens: Vec<u32> = (100..1100).collect();
    let b = Batcher::new(tokens.clone(), 16, 4, 3).unwrap();
    let mut targeted = vec![0usize; tokens.len()];
    for batch in b.epoch(0) {
        assert_eq!(
            (batch.inputs.len(), batch.targets.len(), batch.lens.len()),
            (64, 64, 4)
        );
        for r in 0..4 {
            let len = batch.lens[r] as usize;
            let targets = &batch.targets[r * 16..r * 16 + len];
            let start = (targets[0] - 100) as usize;
            assert_eq!(start % 16, 0);
            assert_eq!(len, 16.min(1000 - start));
            assert_eq!(targets, &tokens[start..start + len]);
            let inputs = &batch.inputs[r * 16..r * 16 + len];
            assert_eq!(inputs[0], SOS, "row {r} starts with SOS");
            assert_eq!(&inputs[1..], &tokens[start..start + len - 1]);
            targeted[start..start + len]
                .iter_mut()
                .for_each(|n| *n += 1);
        }
    }
    // 63 windows make 15 full batches of 4: all but 3 windows are visited, each once.
    assert!(targeted.iter().all(|&n| n <= 1));
    assert!(targeted.iter().sum::<usize>() >= 1000 - 3 * 16);
}

#[test]
fn the_short_last_window_is_padded_with_pad_inputs_and_targets() {
    // 23 tokens: windows of 10 targets start at 0, 10 and 20; the last has 3 real positions.
    let tokens: Vec<u32> = (10..33).collect();
    let b = Batcher::new(tokens, 10, 4, 0).unwrap();
    assert_eq!(b.num_windows(), 3);
    let eval = b.eval_batches(usize::MAX);
    assert_eq!(eval.len(), 1);
    let batch = &eval[0];
    assert_eq!(batch.batch_size, 3);
    assert_eq!(batch.lens, [10, 10, 3]);
    assert_eq!(
        &batch.inputs[20..],
        [SOS, 30, 31, PAD, PAD, PAD, PAD, PAD, PAD, PAD]
    );
    assert_eq!(
        &batch.targets[20..],
        [30, 31, 32, PAD, PAD, PAD, PAD, PAD, PAD, PAD]
    );
    assert_eq!(&batch.targets[..10], (10..20).collect::<Vec<u32>>());
    assert_eq!(batch.inputs[10..12], [SOS, 20]);
}

#[test]
fn an_epoch_visits_every_full_batch_of_windows_once_in_a_seeded_order() {
    let tokens = stream_of(1000);
    let b = Batcher::new(tokens, 8, 5, 11).unwrap();
    assert_eq!((b.num_windows(), b.batches_per_epoch()), (125, 25));
    let mut order = b.epoch_order(0);
    assert_ne!(order, (0..125).collect::<Vec<_>>());
    order.sort_unstable();
    assert_eq!(order, (0..125).collect::<Vec<_>>());
    assert_eq!(b.epoch(0).count(), 25);
}

#[test]
fn batches_are_deterministic_for_a_seed_and_change_with_seed_and_epoch() {
    let tokens = stream_of(3000);
    let a: Vec<_> = Batcher::new(tokens.clone(), 32, 4, 5)
        .unwrap()
        .epoch(0)
        .collect();
    let same: Vec<_> = Batcher::new(tokens.clone(), 32, 4, 5)
        .unwrap()
        .epoch(0)
        .collect();
    let other_seed: Vec<_> = Batcher::new(tokens.clone(), 32, 4, 6)
        .unwrap()
        .epoch(0)
        .collect();
    let next_epoch: Vec<_> = Batcher::new(tokens.clone(), 32, 4, 5)
        .unwrap()
        .epoch(1)
        .collect();
    assert_eq!(a, same);
    assert_ne!(a, other_seed);
    assert_ne!(a, next_epoch);
}

#[test]
fn a_stream_runs_through_epochs_and_resumes_at_any_batch() {
    let tokens = stream_of(500);
    let b = Batcher::new(tokens, 8, 4, 9).unwrap();
    let per_epoch = b.batches_per_epoch();
    assert_eq!(per_epoch, 15);
    let epochs: Vec<_> = b.epoch(0).chain(b.epoch(1)).chain(b.epoch(2)).collect();
    let mut stream = b.stream(0).unwrap();
    let streamed: Vec<_> = stream.by_ref().take(3 * per_epoch).collect();
    assert_eq!(streamed, epochs);
    assert_eq!(stream.epoch(), 2);
    let resumed: Vec<_> = b.stream(per_epoch + 4).unwrap().take(20).collect();
    assert_eq!(resumed, epochs[per_epoch + 4..per_epoch + 24]);
}

#[test]
fn a_stream_needs_at_least_one_full_batch() {
    let b = Batcher::new(stream_of(30), 8, 5, 0).unwrap();
    let err = b
        .stream(0)
        .err()
        .expect("4 windows cannot fill a batch of 5")
        .to_string();
    assert!(err.contains("fewer than one batch of 5"), "{err}");
    assert!(Batcher::new(vec![], 0, 1, 0).is_err());
}

#[test]
fn eval_batches_take_windows_in_order_and_stop_at_the_limit() {
    let tokens = stream_of(1000);
    let b = Batcher::new(tokens.clone(), 10, 8, 1).unwrap();
    let two = b.eval_batches(2);
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].targets[..10], tokens[80..90]);
    assert_eq!(two[1].inputs[1..10], tokens[80..89]);
    let all = b.eval_batches(usize::MAX);
    let rows: usize = all.iter().map(|x| x.batch_size).sum();
    assert_eq!(rows, b.num_windows());
    let counted: u32 = all.iter().flat_map(|x| x.lens.iter()).sum();
    assert_eq!(counted, 1000, "every token is a target once");
    assert!(Batcher::new(vec![], 10, 8, 1)
        .unwrap()
        .eval_batches(4)
        .is_empty());
}

#[test]
fn corpus_encoding_feeds_the_batcher_with_tokens_of_the_vocabulary() {
    let c = Corpus::load(CORPUS, 0.05, 0.05).unwrap();
    let tok = Tokenizer::char_level(&c.train);
    let splits = c.encode(&tok);
    assert_eq!(splits.train.len(), c.train.chars().count());
    let b = Batcher::new(splits.val, 128, 16, 42).unwrap();
    let batch = b.stream(0).unwrap().next().unwrap();
    assert!(batch
        .inputs
        .iter()
        .all(|&id| (id as usize) < tok.vocab_size()));
}

#[test]
fn tokenizer_files_are_in_hugging_face_schema_with_the_specials_first() {
    let tok = Tokenizer::train_bpe(&corpus()[..20_000], 120).unwrap();
    let Tokenizer::Bpe(bpe) = &tok else {
        unreachable!()
    };
    let path = scratch("hf-schema.json");
    tok.save(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&read_text(&path).unwrap()).unwrap();
    let model = &json["model"];
    assert_eq!(model["type"], "BPE");
    assert_eq!(model["unk_token"], "[UNK]");
    for (id, name) in ["[PAD]", "[UNK]", "[SOS]", "[EOS]"].iter().enumerate() {
        assert_eq!(model["vocab"][name], id);
        assert_eq!(json["added_tokens"][id]["content"], *name);
        assert_eq!(json["added_tokens"][id]["special"], *name != "[UNK]");
    }
    let vocab = model["vocab"].as_object().unwrap();
    assert_eq!(vocab.len(), tok.vocab_size());
    for (token, id) in vocab {
        let id = id.as_u64().unwrap() as u32;
        if id >= NUM_SPECIAL {
            assert_eq!(tok.token_text(id), token);
        }
    }
    let merges = model["merges"].as_array().unwrap();
    assert_eq!(merges.len(), bpe.merges().len());
    for (m, &(a, b)) in merges.iter().zip(bpe.merges()) {
        assert_eq!(m[0], tok.token_text(a));
        assert_eq!(m[1], tok.token_text(b));
    }
    assert_eq!(json["pre_tokenizer"]["type"], "Split");
    assert_eq!(json["decoder"]["decoders"][1]["type"], "Fuse");
}

#[test]
fn the_compact_tokenizer_schema_still_loads() {
    // The shipped recognizer's tokenizer, as its checkpoints wrote it before it was converted.
    let compact = Tokenizer::load("tests/fixtures/tokenizer/compact_char.json").unwrap();
    let shipped = Tokenizer::load("models/asr/tokenizer.json").unwrap();
    assert_eq!(compact, shipped);
    let text = read_text("models/asr/tokenizer.json").unwrap();
    assert!(
        text.contains("\"model\""),
        "the shipped file is in Hugging Face's schema"
    );
}

/// A saved tokenizer file with `edit` applied to its JSON.
fn edited_tokenizer_file(name: &str, edit: impl Fn(&mut serde_json::Value)) -> std::path::PathBuf {
    let path = scratch(name);
    Tokenizer::train_bpe("to be or not to be, that is the question", 40)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&read_text(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

#[test]
fn hugging_face_files_this_crate_cannot_reproduce_are_refused_naming_the_field() {
    use serde_json::json;
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "wordpiece.json",
            |j| j["model"]["type"] = json!("WordPiece"),
            "model.type",
        ),
        (
            "lowercase.json",
            |j| j["normalizer"] = json!({"type": "Lowercase"}),
            "normalizer",
        ),
        ("no-decoder.json", |j| j["decoder"] = json!(null), "decoder"),
        (
            "specials.json",
            |j| j["added_tokens"][2]["content"] = json!("<s>"),
            "added_tokens",
        ),
        (
            "bytelevel.json",
            |j| j["pre_tokenizer"] = json!({"type": "ByteLevel"}),
            "pre_tokenizer",
        ),
        (
            "merge.json",
            |j| {
                let m = j["model"]["merges"][0].clone();
                j["model"]["merges"][0] = json!([m[1], m[0]]);
            },
            "model.merges[0]",
        ),
    ];
    for (name, edit, field) in cases {
        let path = edited_tokenizer_file(name, edit);
        let err = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(field), "{name}: {err}");
    }
}

#[test]
fn a_bpe_that_spells_one_string_twice_cannot_be_saved_in_hugging_face_schema() {
    // ids 4..7 are a b c; merges: ab (7), bc (8), ab+c (9) and a+bc (10) both spell "abc".
    let bpe = wgformer::data::BpeTokenizer::from_parts(
        vec!['a', 'b', 'c'],
        vec![(4, 5), (5, 6), (7, 6), (4, 8)],
    )
    .unwrap();
    let err = Tokenizer::Bpe(bpe)
        .save(scratch("twice.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("twice.json") && err.contains("ids 9 and 10") && err.contains("\"abc\""),
        "{err}"
    );
}

#[test]
fn a_batch_from_windows_shifts_each_row_by_one_and_refuses_partial_windows() {
    let tokens: Vec<u32> = (10..18).collect(); // two windows of 4 = seq_len 3 + 1
    let b = Batch::from_windows(&tokens, 3).unwrap();
    assert_eq!(b.inputs, vec![10, 11, 12, 14, 15, 16]);
    assert_eq!(b.targets, vec![11, 12, 13, 15, 16, 17]);
    assert_eq!((b.lens, b.batch_size, b.seq_len), (vec![3, 3], 2, 3));
    for (tokens, seq) in [(&tokens[..7], 3), (&tokens[..0], 3), (&tokens[..], 0)] {
        let e = Batch::from_windows(tokens, seq).unwrap_err().to_string();
        assert!(e.contains("whole windows"), "{e}");
    }
}
