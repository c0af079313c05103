//! `IncrementalDecoder` for the speech recognizer: the decoder runs over a fixed encoder
//! output with its self-attention and cross-attention caches; beam search re-ranks the
//! sequences by gathering rows of the caches, the memory and its lengths alike.
//! `ShallowFusion` adds a causal LM's log-probabilities (times a weight) to the recognizer's.

use super::{log_softmax, IncrementalDecoder};
use crate::error::{Error, Result};
use crate::models::{Encoded, EncoderDecoderTransformer};
use crate::nn::CrossLayerCache;
use crate::ops::gather_rows;
use crate::tensor::Tensor;

pub struct SpeechDecoder<'a> {
    pub model: &'a EncoderDecoderTransformer,
    /// The encoder output of the utterances being decoded (batch = number of utterances).
    pub encoded: &'a Encoded,
}

/// The caches of every decoder layer plus the (re-ordered) encoder output they attend to.
pub struct SpeechState {
    caches: Vec<CrossLayerCache>,
    encoded: Encoded,
}

impl IncrementalDecoder for SpeechDecoder<'_> {
    type State = SpeechState;

    fn start(&self, batch: usize) -> Result<SpeechState> {
        if batch != self.encoded.lens.len() {
            return Err(Error::shape(
                "SpeechDecoder",
                format!(
                    "{batch} sequences for {} encoded utterances",
                    self.encoded.lens.len()
                ),
            ));
        }
        Ok(SpeechState {
            caches: self.model.new_caches(),
            encoded: self.encoded.clone(),
        })
    }

    async fn step(&self, state: &mut SpeechState, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            return Err(Error::shape(
                "SpeechDecoder",
                format!("{} ids do not form {batch} rows", ids.len()),
            ));
        }
        let logits = {
            let _g = crate::no_grad();
            let t_new = ids.len() / batch;
            let ids = Tensor::from_u32(self.model.gpu(), ids, &[batch, t_new])?;
            self.model
                .decode_cached(&ids, &state.encoded, &mut state.caches)?
        };
        super::last_position(&logits).await
    }

    fn reorder(&self, state: &mut SpeechState, order: &[u32]) -> Result<()> {
        // The caches apply it at their next use (`KvCache::reorder`); the memory of one
        // utterance is shared by all its sequences (`forward_cross_cached`), as is its length.
        for c in state.caches.iter_mut() {
            c.self_kv.reorder(order)?;
            c.cross_kv.reorder(order)?;
        }
        let e = &mut state.encoded;
        if e.lens.len() == 1 {
            return Ok(());
        }
        let _g = crate::no_grad();
        let idx = Tensor::from_u32(self.model.gpu(), order, &[order.len()])?;
        e.memory = gather_rows(&e.memory, &idx)?;
        e.lens = order.iter().map(|&i| e.lens[i as usize]).collect();
        let lens: Vec<u32> = e.lens.iter().map(|&n| n as u32).collect();
        e.lens_tensor = Tensor::from_u32(self.model.gpu(), &lens, &[lens.len()])?;
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }
}

/// Scores log p_asr(y) + weight * log p_lm(y) for every next token (shallow fusion). The LM
/// must share the recognizer's vocabulary.
pub struct ShallowFusion<A, L> {
    pub asr: A,
    pub lm: L,
    pub weight: f32,
    /// See `with_boundary`.
    pub boundary: Option<Boundary>,
}

/// How an LM that read plain text meets the decoder's sentence markers.
#[derive(Clone, Copy, Debug)]
pub struct Boundary {
    /// The token between sentences in the LM's text (a space: its lines were joined by spaces).
    pub token: u32,
    pub sos: u32,
    pub eos: u32,
}

impl<A: IncrementalDecoder, L: IncrementalDecoder> ShallowFusion<A, L> {
    pub fn new(asr: A, lm: L, weight: f32) -> Result<Self> {
        if asr.vocab_size() != lm.vocab_size() {
            return Err(Error::shape(
                "ShallowFusion",
                format!(
                    "the LM's vocabulary ({}) differs from the recognizer's ({}): train the LM \
                     with the recognizer's tokenizer",
                    lm.vocab_size(),
                    asr.vocab_size()
                ),
            ));
        }
        Ok(ShallowFusion {
            asr,
            lm,
            weight,
            boundary: None,
        })
    }

    /// An LM trained on text never saw EOS and gives it next to no probability, so fusion
    /// would keep every hypothesis running past its end. With a boundary the LM reads SOS as
    /// `b.token` (the sentence reads as if it followed another), and EOS is scored with the
    /// LM's probability of `b.token`: a sentence can end where the LM would start another.
    pub fn with_boundary(mut self, b: Boundary) -> Result<Self> {
        let v = self.vocab_size() as u32;
        if [b.token, b.sos, b.eos].iter().any(|&t| t >= v) {
            return Err(Error::shape(
                "ShallowFusion",
                format!("boundary tokens {b:?} outside the vocabulary of {v}"),
            ));
        }
        self.boundary = Some(b);
        Ok(self)
    }
}

impl<A: IncrementalDecoder, L: IncrementalDecoder> IncrementalDecoder for ShallowFusion<A, L> {
    type State = (A::State, L::State);

    fn start(&self, batch: usize) -> Result<Self::State> {
        Ok((self.asr.start(batch)?, self.lm.start(batch)?))
    }

    async fn step(&self, state: &mut Self::State, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        let a = self.asr.step(&mut state.0, ids, batch).await?;
        let l = match self.boundary {
            Some(b) => {
                let lm_ids: Vec<u32> = ids
                    .iter()
                    .map(|&t| if t == b.sos { b.token } else { t })
                    .collect();
                self.lm.step(&mut state.1, &lm_ids, batch).await?
            }
            None => self.lm.step(&mut state.1, ids, batch).await?,
        };
        let v = self.vocab_size();
        let mut out = Vec::with_capacity(a.len());
        for (ra, rl) in a.chunks(v).zip(l.chunks(v)) {
            let (la, mut ll) = (log_softmax(ra), log_softmax(rl));
            if let Some(b) = self.boundary {
                ll[b.eos as usize] = ll[b.token as usize];
            }
            out.extend(
                la.iter()
                    .zip(&ll)
                    .map(|(x, y)| (x + self.weight as f64 * y) as f32),
            );
        }
        Ok(out)
    }

    fn reorder(&self, state: &mut Self::State, order: &[u32]) -> Result<()> {
        self.asr.reorder(&mut state.0, order)?;
        self.lm.reorder(&mut state.1, order)
    }

    fn vocab_size(&self) -> usize {
        self.asr.vocab_size()
    }
}
