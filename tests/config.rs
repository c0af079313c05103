//! The YAML training configuration: parsing, validation and `--set` overrides.

use wgformer::config::{Config, OptimizerKind, SchedulerKind, TokenizerKind, WarmupKind};

fn parse(yaml: &str) -> Result<Config, String> {
    Config::from_yaml_str(yaml, "test.yaml").map_err(|e| e.to_string())
}

fn parse_err(yaml: &str) -> String {
    match parse(yaml) {
        Ok(c) => panic!("accepted {yaml:?} as {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn shipped_configs_load_and_validate() {
    let clm = Config::load("configs/clm.yaml").unwrap();
    assert_eq!(clm.origin, "configs/clm.yaml");
    assert_eq!(clm.tokenizer.kind, TokenizerKind::Char);
    assert_eq!(
        (clm.model.d_model, clm.model.num_layers, clm.model.num_heads),
        (128, 4, 4)
    );
    assert_eq!((clm.train.seq_len, clm.train.batch_size), (128, 16));
    assert_eq!(clm.optimizer.kind, OptimizerKind::AdamW);
    assert_eq!(clm.optimizer.lr, 3e-3);
    assert_eq!(clm.optimizer.eps, 1e-8);
    assert_eq!(clm.scheduler.kind, SchedulerKind::Cosine);
    assert_eq!(clm.scheduler.warmup, WarmupKind::Linear);
    assert!(clm.data.path.exists(), "{:?} is missing", clm.data.path);

    let small = Config::load("configs/clm-small.yaml").unwrap();
    assert_eq!(
        (
            small.model.d_model,
            small.model.num_layers,
            small.train.seq_len
        ),
        (64, 2, 64)
    );
    assert!(small.train.max_steps.unwrap() < clm.train.max_steps.unwrap());
}

#[test]
fn the_defaults_validate_and_an_empty_mapping_means_all_defaults() {
    Config::default().validate().unwrap();
    let err = parse_err("# nothing set\n");
    assert!(err.starts_with("test.yaml: holds no settings"), "{err}");
    let empty = parse("{}\n").unwrap();
    assert_eq!(
        Config {
            origin: "<defaults>".into(),
            ..empty
        },
        Config::default()
    );
    let partial = parse("model:\n  num_layers: 2\n").unwrap();
    assert_eq!(partial.model.num_layers, 2);
    assert_eq!(partial.model.d_model, Config::default().model.d_model);
}

#[test]
fn an_unknown_key_is_rejected_with_the_file_and_the_key_named() {
    let err = parse_err("model:\n  d_model: 64\n  d_modle: 64\n");
    assert!(
        err.starts_with("test.yaml: ") && err.contains("d_modle") && err.contains("line 3"),
        "{err}"
    );
    let err = parse_err("optimiser:\n  lr: 0.1\n");
    assert!(err.contains("optimiser"), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_rejected_with_the_key_named() {
    let err = parse_err("model:\n  num_layers: four\n");
    assert!(
        err.starts_with("test.yaml: ")
            && err.contains("model.num_layers")
            && err.contains("line 2"),
        "{err}"
    );
    let err = parse_err("optimizer:\n  lr: fast\n");
    assert!(
        err.contains("optimizer.lr") && err.contains("a number"),
        "{err}"
    );
    let err = parse_err("scheduler:\n  kind: linear\n");
    assert!(
        err.contains("scheduler.kind") && err.contains("cosine"),
        "{err}"
    );
    let err = parse_err("optimizer:\n  betas: [0.9]\n");
    assert!(err.contains("optimizer.betas"), "{err}");
}

#[test]
fn floats_parse_with_and_without_a_decimal_point_in_the_mantissa() {
    for text in ["1e-4", "1.0e-4", "1E-4", "0.0001", "\"1e-4\"", "+1.e-4"] {
        let c = parse(&format!(
            "optimizer:\n  lr: {text}\nscheduler:\n  min_lr: 0\n"
        ))
        .unwrap();
        assert_eq!(c.optimizer.lr, 1e-4, "lr: {text}");
    }
    let c = parse("optimizer:\n  betas: [9e-1, 0.95]\n  eps: 1e-8\nscheduler:\n  min_lr: 1e-5\n")
        .unwrap();
    assert_eq!(c.optimizer.betas, [0.9, 0.95]);
    assert_eq!((c.optimizer.eps, c.scheduler.min_lr), (1e-8, 1e-5));
    assert_eq!(
        parse("optimizer:\n  weight_decay: 0\n")
            .unwrap()
            .optimizer
            .weight_decay,
        0.0
    );
}

#[test]
fn num_heads_that_do_not_divide_d_model_are_rejected() {
    let err = parse_err("model:\n  d_model: 128\n  num_heads: 3\n");
    assert_eq!(
        err,
        "test.yaml: model.num_heads: 3 does not divide model.d_model = 128"
    );
}

#[test]
fn impossible_values_are_rejected_naming_the_key() {
    let cases = [
        (
            "model:\n  dropout: 1.0\n",
            "model.dropout: 1 is outside [0, 1)",
        ),
        ("model:\n  layer_drop_rate: -0.1\n", "model.layer_drop_rate"),
        (
            "train:\n  batch_size: 0\n",
            "train.batch_size: must be at least 1",
        ),
        ("model:\n  num_layers: 0\n", "model.num_layers"),
        (
            "data:\n  val_fraction: 0.6\n  test_fraction: 0.4\n",
            "nothing to train on",
        ),
        ("data:\n  test_fraction: 1.5\n", "data.test_fraction"),
        (
            "data:\n  val_fraction: 0\n",
            "data.val_fraction: is 0, but validation picks the best checkpoint",
        ),
        (
            "train:\n  time_limit_minutes: -1\n",
            "train.time_limit_minutes",
        ),
        (
            "train:\n  epochs: null\n  max_steps: null\n",
            "train.max_steps: neither",
        ),
        (
            "train:\n  seq_len: 512\n",
            "model.max_seq_len: 256 is shorter than train.seq_len = 512",
        ),
        ("optimizer:\n  lr: 0\n", "optimizer.lr"),
        ("optimizer:\n  betas: [0.9, 1.0]\n", "optimizer.betas[1]"),
        (
            "scheduler:\n  min_lr: -0.1\n",
            "scheduler.min_lr: -0.1 must be a number >= 0",
        ),
        ("scheduler:\n  factor: 1.5\n", "scheduler.factor"),
        (
            "tokenizer:\n  kind: bpe\n  vocab_size: 4\n",
            "tokenizer.vocab_size",
        ),
        (
            "train:\n  loss_scale: {initial: 0.5}\n",
            "train.loss_scale.initial: 0.5 must be a number >= 1",
        ),
        (
            "train:\n  loss_scale: {growth_interval: 0}\n",
            "train.loss_scale.growth_interval",
        ),
        ("train:\n  precision: bf16\n", "precision"),
    ];
    for (yaml, want) in cases {
        let err = parse_err(yaml);
        eprintln!("{err}");
        assert!(
            err.starts_with("test.yaml: ") && err.contains(want),
            "{yaml:?}: {err}"
        );
    }
}

#[test]
fn mixed_precision_is_read_with_its_loss_scale() {
    let c = parse("train: {precision: mixed, loss_scale: {initial: 1024, growth_interval: 50}}")
        .unwrap();
    assert_eq!(c.train.precision, wgformer::config::Precision::Mixed);
    assert_eq!(
        (
            c.train.loss_scale.initial,
            c.train.loss_scale.growth_interval
        ),
        (1024.0, 50)
    );
    let d = parse("{}").unwrap();
    assert_eq!(d.train.precision, wgformer::config::Precision::F32);
    assert_eq!(d.train.loss_scale.initial, 65536.0);
}

#[test]
fn overrides_set_values_anywhere_in_the_tree() {
    let mut c = Config::load("configs/clm.yaml").unwrap();
    c.apply_override("model.num_layers=2").unwrap();
    c.apply_override("optimizer.lr=1e-4").unwrap();
    c.apply_override("tokenizer.kind=bpe").unwrap();
    c.apply_override("train.epochs=3").unwrap();
    c.apply_override("optimizer.betas=[0.8, 0.9]").unwrap();
    c.apply_override("scheduler.kind=cosine_warm_restarts")
        .unwrap();
    c.apply_override("train.out_dir=runs/other").unwrap();
    assert_eq!(c.model.num_layers, 2);
    assert_eq!(c.optimizer.lr, 1e-4);
    assert_eq!(c.tokenizer.kind, TokenizerKind::Bpe);
    assert_eq!(c.train.epochs, Some(3));
    assert_eq!(c.optimizer.betas, [0.8, 0.9]);
    assert_eq!(c.scheduler.kind, SchedulerKind::CosineWarmRestarts);
    assert_eq!(c.train.out_dir.to_str(), Some("runs/other"));
    assert_eq!(c.origin, "configs/clm.yaml");
}

#[test]
fn overrides_reach_keys_the_file_leaves_out() {
    let mut c = parse("model:\n  d_model: 64\n").unwrap();
    c.apply_override("scheduler.patience=7").unwrap();
    assert_eq!(c.scheduler.patience, 7);
}

#[test]
fn an_unknown_override_key_is_rejected_naming_it_and_the_known_keys() {
    let mut c = Config::default();
    let err = c.apply_override("model.layers=2").unwrap_err().to_string();
    assert!(
        err.contains("unknown key `layers` in `model`") && err.contains("num_layers"),
        "{err}"
    );
    let err = c
        .apply_override("modle.num_layers=2")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `modle`"), "{err}");
    let err = c
        .apply_override("model.num_layers.deep=2")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`model.num_layers` is a value"), "{err}");
    assert_eq!(
        c,
        Config::default(),
        "a failed override must leave the config unchanged"
    );
}

#[test]
fn bad_override_values_are_rejected() {
    let mut c = Config::default();
    let err = c
        .apply_override("model.num_layers=two")
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.num_layers"), "{err}");
    let err = c
        .apply_override("model.num_heads=3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.num_heads: 3 does not divide"), "{err}");
    let err = c
        .apply_override("model.num_layers")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key.path=value"), "{err}");
    assert_eq!(c, Config::default());
}

#[test]
fn load_with_overrides_validates_after_the_overrides() {
    let path =
        std::env::temp_dir().join(format!("wgformer-config-test-{}.yaml", std::process::id()));
    std::fs::write(&path, "model:\n  d_model: 100\n  num_heads: 8\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("model.num_heads"),
        "{err}"
    );
    let c = Config::load_with_overrides(&path, &["model.num_heads=5"]).unwrap();
    assert_eq!(c.model.num_heads, 5);
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let err = Config::load("configs/no-such-config.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("configs/no-such-config.yaml"), "{err}");
}

#[test]
fn to_yaml_round_trips() {
    let mut c = Config::load("configs/clm.yaml").unwrap();
    c.apply_override("optimizer.lr=1e-4").unwrap();
    let back = Config::from_yaml_str(&c.to_yaml().unwrap(), "configs/clm.yaml").unwrap();
    assert_eq!(back, c);
}

#[test]
fn total_steps_is_the_smaller_of_max_steps_and_the_epochs() {
    let mut c = Config::default();
    c.apply_override("train.grad_accumulation=2").unwrap();
    c.apply_override("train.max_steps=100").unwrap();
    c.apply_override("train.epochs=3").unwrap();
    assert_eq!(c.total_steps(50), 75);
    assert_eq!(c.total_steps(1000), 100);
    c.apply_override("train.max_steps=null").unwrap();
    assert_eq!(c.total_steps(1000), 1500);
}

#[test]
fn the_tokenizer_section_builds_its_tokenizer() {
    let text = "to be or not to be, that is the question\n".repeat(20);
    let c = Config::default();
    assert_eq!(
        wgformer::data::build_tokenizer(&c.tokenizer, &text)
            .unwrap()
            .kind(),
        "char"
    );
    let bpe = parse("tokenizer:\n  kind: bpe\n  vocab_size: 40\n").unwrap();
    let tok = wgformer::data::build_tokenizer(&bpe.tokenizer, &text).unwrap();
    assert_eq!((tok.kind(), tok.vocab_size()), ("bpe", 40));
}

mod asr {
    use wgformer::config::{conv_strides, AsrConfig};

    fn err(yaml: &str) -> String {
        AsrConfig::from_yaml_str(yaml, "asr-test.yaml")
            .expect_err("the config should be refused")
            .to_string()
    }

    #[test]
    fn the_shipped_asr_config_loads_and_round_trips() {
        let c = AsrConfig::load_with_overrides("configs/asr.yaml", &[] as &[&str]).unwrap();
        assert_eq!(c.features.n_mels, 80);
        assert_eq!(c.conv_strides(), [2, 2]);
        let again = AsrConfig::from_yaml_str(&c.to_yaml().unwrap(), "again").unwrap();
        assert_eq!(again.model, c.model);
        assert_eq!(again.features, c.features);
    }

    #[test]
    fn the_finetune_stage_is_the_asr_model_on_a_grown_corpus_with_the_same_held_out_sets() {
        let base = AsrConfig::load_with_overrides("configs/asr.yaml", &[] as &[&str]).unwrap();
        let tune =
            AsrConfig::load_with_overrides("configs/asr-finetune.yaml", &[] as &[&str]).unwrap();
        let (b, t) = (&base.data.corpus, &tune.data.corpus);
        assert!(t.train > b.train);
        assert_eq!(
            (&t.text, t.val, t.test, t.test_voices, t.seed),
            (&b.text, b.val, b.test, b.test_voices, b.seed),
            "stage 2 must keep stage 1's held-out sentences"
        );
        assert_eq!(tune.data.corpus_dir, base.data.corpus_dir);
        assert_eq!(tune.features, base.features);
        let mut model = tune.model.clone();
        assert_eq!(
            model.init_from.take(),
            Some(base.train.out_dir.join("checkpoints/best"))
        );
        assert_eq!(model, base.model, "the same architecture as stage 1");
    }

    #[test]
    fn the_modern_stage_keeps_the_held_out_sets_and_adds_the_modern_splits() {
        let base = AsrConfig::load_with_overrides("configs/asr.yaml", &[] as &[&str]).unwrap();
        let tune =
            AsrConfig::load_with_overrides("configs/asr-finetune.yaml", &[] as &[&str]).unwrap();
        let modern =
            AsrConfig::load_with_overrides("configs/asr-modern.yaml", &[] as &[&str]).unwrap();
        let (b, m) = (&base.data.corpus, &modern.data.corpus);
        assert_eq!(
            (&m.text, m.val, m.test, m.test_voices, m.seed),
            (&b.text, b.val, b.test, b.test_voices, b.seed),
            "stage 3 must keep stage 1's held-out sentences"
        );
        let text = m.modern.as_ref().expect("corpus.modern").text.clone();
        assert_eq!(text, std::path::PathBuf::from("data/sotu.txt"));
        assert_eq!(
            modern.data.train_modern.as_deref(),
            Some("train_modern.tsv")
        );
        assert_eq!(modern.data.test_modern.as_deref(), Some("test_modern.tsv"));
        assert_eq!(modern.features, base.features);
        let mut model = modern.model.clone();
        assert_eq!(
            model.init_from.take(),
            Some(tune.train.out_dir.join("checkpoints/best"))
        );
        assert_eq!(model, base.model, "the same architecture as stage 1");
        let again = AsrConfig::from_yaml_str(&modern.to_yaml().unwrap(), "again").unwrap();
        assert_eq!(again.data, modern.data);
    }

    #[test]
    fn the_channel_stage_changes_only_the_augmentation_of_the_modern_stage() {
        let modern =
            AsrConfig::load_with_overrides("configs/asr-modern.yaml", &[] as &[&str]).unwrap();
        let channels =
            AsrConfig::load_with_overrides("configs/asr-channels.yaml", &[] as &[&str]).unwrap();
        assert_eq!(
            channels.data, modern.data,
            "stage 4 trains on stage 3's corpus"
        );
        let mut features = channels.features.clone();
        assert!(features.narrowband_probability > 0.0 && features.quantize_probability > 0.0);
        (
            features.narrowband_probability,
            features.quantize_probability,
        ) = (0.0, 0.0);
        assert_eq!(features, modern.features);
        let mut model = channels.model.clone();
        assert_eq!(
            model.init_from.take(),
            Some(modern.train.out_dir.join("checkpoints/best"))
        );
        model.init_from = modern.model.init_from.clone();
        assert_eq!(model, modern.model, "the same architecture as stage 3");
    }

    fn load(path: &str) -> AsrConfig {
        AsrConfig::load_with_overrides(path, &[] as &[&str]).unwrap()
    }

    /// A stage that continues `earlier`: starts from its best checkpoint with fresh random
    /// draws. Returns `later` with its run keys (start, seed, folder, length) set to
    /// `earlier`'s, for the caller to compare whole.
    fn continues(mut later: AsrConfig, earlier: &AsrConfig) -> AsrConfig {
        assert_eq!(
            later.model.init_from,
            Some(earlier.train.out_dir.join("checkpoints/best"))
        );
        assert_ne!(later.train.seed, earlier.train.seed, "fresh draws");
        assert!(later.train.time_limit_minutes.is_some());
        later.model.init_from = earlier.model.init_from.clone();
        later.train.seed = earlier.train.seed;
        later.train.out_dir = earlier.train.out_dir.clone();
        later.train.max_steps = earlier.train.max_steps;
        later.train.time_limit_minutes = earlier.train.time_limit_minutes;
        later
    }

    #[test]
    fn the_redraw_stage_changes_only_the_seed_length_and_start_of_the_channel_stage() {
        let channels = load("configs/asr-channels.yaml");
        let redraw = continues(load("configs/asr-redraw.yaml"), &channels);
        // Everything else, every section, as stage 4 has it.
        assert_eq!(redraw.to_yaml().unwrap(), channels.to_yaml().unwrap());
    }

    #[test]
    fn the_grow_stage_changes_only_the_corpus_size_seed_length_and_start_of_the_redraw_stage() {
        let redraw = load("configs/asr-redraw.yaml");
        let mut grow = continues(load("configs/asr-grow.yaml"), &redraw);
        let (old, old_modern) = (&redraw.data.corpus, redraw.data.corpus.modern.as_ref());
        let corpus = &mut grow.data.corpus;
        assert!(corpus.train > old.train, "more play utterances");
        let modern = corpus.modern.as_mut().unwrap();
        assert!(
            modern.train > old_modern.unwrap().train,
            "more modern utterances"
        );
        // Everything else, every section, as stage 5 has it: the same corpus seed and held-out
        // sizes, so the grown corpus keeps stage 5's utterances and its test sets.
        modern.train = old_modern.unwrap().train;
        corpus.train = old.train;
        assert_eq!(grow.to_yaml().unwrap(), redraw.to_yaml().unwrap());
    }

    #[test]
    fn bad_asr_values_are_refused_naming_the_file_and_key() {
        for (yaml, key) in [
            ("model: {d_model: 130, num_heads: 4}", "model.num_heads"),
            ("features: {normalization: loud}", "features.normalization"),
            ("features: {speed_perturb: [3.0]}", "features.speed_perturb"),
            ("model: {time_reduction: 0}", "model.time_reduction"),
            ("train: {epochs: null, max_steps: null}", "train.max_steps"),
            ("model: {ctc_weight: -1}", "model.ctc_weight"),
            ("train: {time_limit_minutes: 0}", "train.time_limit_minutes"),
            (
                "train: {loss_scale: {initial: 0}}",
                "train.loss_scale.initial",
            ),
            ("train: {precision: half}", "precision"),
            ("features: {floor_db: -3}", "features.floor_db"),
            (
                "features: {quantize_probability: 1.5}",
                "features.quantize_probability",
            ),
            ("modle: {}", "modle"),
        ] {
            let msg = err(yaml);
            assert!(
                msg.contains("asr-test.yaml") && msg.contains(key),
                "{yaml}: {msg}"
            );
        }
    }

    #[test]
    fn overrides_apply_to_the_asr_config() {
        let c = AsrConfig::load_with_overrides(
            "configs/asr.yaml",
            &["model.time_reduction=6", "train.max_steps=3"],
        )
        .unwrap();
        assert_eq!(c.conv_strides(), [2, 3]);
        assert_eq!(c.train.max_steps, Some(3));
        let msg = AsrConfig::load_with_overrides("configs/asr.yaml", &["model.nope=1"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope") && msg.contains("known keys"), "{msg}");
    }

    #[test]
    fn the_asr_tokenizer_kind_normalises_the_lm_text() {
        use wgformer::config::{TokenizerConfig, TokenizerKind};
        let t = TokenizerConfig {
            kind: TokenizerKind::Asr,
            vocab_size: 0,
        };
        let text = wgformer::data::prepare_text(
            &t,
            "ROMEO:\nO, she doth teach the torches to burn bright!\n\n",
        );
        assert_eq!(text, "ROMEO O SHE DOTH TEACH THE TORCHES TO BURN BRIGHT");
        let tok = wgformer::data::build_tokenizer(&t, &text).unwrap();
        assert!(tok.covers(&text));
        assert_eq!(tok, wgformer::data::asr::asr_tokenizer());
    }

    #[test]
    fn time_reductions_split_into_two_strides() {
        for r in 1..=12 {
            let [a, b] = conv_strides(r);
            assert_eq!(a * b, r);
        }
    }
}
