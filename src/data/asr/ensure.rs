//! The synthetic speech corpus a config names, built on demand: synthesised when its
//! manifests are missing, grown in place when the config asks for more training utterances
//! than a synthetic corpus holds. A user's own manifests are never touched.

use super::{
    build_speech_corpus, is_synthetic_split, read_manifest, CorpusSizes, ModernSizes, ModernText,
    Split,
};
use crate::config::AsrConfig;
use crate::error::{Error, Result};

/// The synthetic corpus, built when its manifests are missing (and the config allows it).
pub fn ensure_corpus(config: &AsrConfig, verbose: bool) -> Result<()> {
    let dir = &config.data.corpus_dir;
    let train_manifest = dir.join(&config.data.train);
    // The modern text's manifests, when the config reads them and its corpus makes them.
    let modern_missing = match config.data.corpus.modern {
        Some(_) => [&config.data.train_modern, &config.data.test_modern]
            .into_iter()
            .flatten()
            .find(|m| !dir.join(m).exists()),
        None => None,
    };
    if train_manifest.exists() && modern_missing.is_none() {
        // A config asking for more training utterances than a synthetic corpus holds grows it
        // in place (configs/asr-finetune.yaml after configs/asr.yaml); any other manifest is
        // the user's data and is left alone.
        let entries = read_manifest(&train_manifest)?;
        let grow = config.data.build_corpus
            && !entries.is_empty()
            && entries.len() < config.data.corpus.train
            && is_synthetic_split(dir, Split::Train, &entries);
        if !grow {
            return Ok(());
        }
        if verbose {
            eprintln!(
                "{} has {} training utterances and data.corpus.train asks for {}: growing it",
                train_manifest.display(),
                entries.len(),
                config.data.corpus.train
            );
        }
    }
    if !config.data.build_corpus {
        let missing = match modern_missing {
            Some(m) if train_manifest.exists() => m,
            _ => &config.data.train,
        };
        return Err(Error::format(
            &config.origin,
            format!(
                "data.corpus_dir: {} has no {missing} (set data.build_corpus: true to \
                 synthesise it)",
                dir.display(),
            ),
        ));
    }
    if verbose {
        eprintln!(
            "building the speech corpus in {} (text-to-speech)",
            dir.display()
        );
    }
    let c = &config.data.corpus;
    let text_path = &c.text;
    let text = crate::data::read_text(text_path)?;
    let modern_text = match &c.modern {
        Some(m) => Some(crate::data::read_text(&m.text)?),
        None => None,
    };
    let modern = c
        .modern
        .as_ref()
        .zip(modern_text.as_deref())
        .map(|(m, text)| ModernText {
            text,
            sizes: ModernSizes {
                train: m.train,
                test: m.test,
            },
        });
    let sizes = CorpusSizes {
        train: c.train,
        val: c.val,
        test: c.test,
        test_voices: c.test_voices,
    };
    let progress = |done: usize, total: usize| {
        if verbose && (done.is_multiple_of(200) || done == total) {
            eprintln!("  synthesised {done}/{total} utterances");
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report = build_speech_corpus(&text, modern, dir, sizes, c.seed, threads, &progress)?;
    if verbose {
        eprintln!("corpus built: {report:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_modern_manifest_is_named_when_the_corpus_may_not_be_built() {
        let dir = std::env::temp_dir().join(format!("wgformer-ensure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train.tsv"), "audio\tvoice\ttranscript\n").unwrap();
        let yaml = format!(
            "data: {{corpus_dir: {}, build_corpus: false, train_modern: train_modern.tsv,\n  \
             corpus: {{modern: {{text: data/sotu.txt, train: 10, test: 2}}}}}}",
            dir.display()
        );
        let config = AsrConfig::from_yaml_str(&yaml, "modern.yaml").unwrap();
        let msg = ensure_corpus(&config, false).unwrap_err().to_string();
        assert!(
            msg.contains("modern.yaml") && msg.contains("has no train_modern.tsv"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
