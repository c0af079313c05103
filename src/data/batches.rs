//! Next-token batches from a token stream.
//!
//! Every window opens with SOS, as every generation does (`inference::clm::sample_text` feeds
//! `[SOS] + prompt`), so position 0 always holds SOS in training and in generation alike. The
//! stream is cut at stride `seq_len` (T): window `w` has targets `tokens[w*T .. w*T+T]` and
//! inputs `[SOS] + tokens[w*T .. w*T+T-1]`, so every token, the first included, is a target
//! exactly once per epoch; the first target of a window is predicted from SOS alone. The last
//! window may be short; it is padded with PAD in both inputs and targets (the loss ignores PAD
//! targets) and its `lens` entry is the real length.
//! Training epochs visit the windows in an order shuffled from `(seed, epoch)` and drop the
//! last incomplete batch, so every training batch has the same shape. Evaluation batches take
//! the windows in file order and keep the last, smaller batch.

use super::tokenizer::{PAD, SOS};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// `batch_size` windows of `seq_len` tokens, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// [batch_size * seq_len] input ids; each row opens with SOS.
    pub inputs: Vec<u32>,
    /// [batch_size * seq_len] the id following each input; PAD where the row is padding.
    pub targets: Vec<u32>,
    /// [batch_size] real (unpadded) length of each row, 1..=seq_len.
    pub lens: Vec<u32>,
    pub batch_size: usize,
    pub seq_len: usize,
}

impl Batch {
    /// A batch of full rows from windows of `seq_len + 1` tokens laid end to end: each row's
    /// inputs are its window's first `seq_len` tokens and its targets the last `seq_len` (for
    /// tests and benchmarks that make their own token rows; training uses `Batcher`).
    pub fn from_windows(tokens: &[u32], seq_len: usize) -> Result<Batch> {
        let w = seq_len + 1;
        if seq_len == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(w) {
            return Err(Error::shape(
                "Batch::from_windows",
                format!(
                    "{} tokens are not whole windows of seq_len + 1 = {w}",
                    tokens.len()
                ),
            ));
        }
        let rows = tokens.len() / w;
        let mut batch = Batch {
            inputs: Vec::with_capacity(rows * seq_len),
            targets: Vec::with_capacity(rows * seq_len),
            lens: vec![seq_len as u32; rows],
            batch_size: rows,
            seq_len,
        };
        for row in tokens.chunks(w) {
            batch.inputs.extend_from_slice(&row[..seq_len]);
            batch.targets.extend_from_slice(&row[1..]);
        }
        Ok(batch)
    }
}

#[derive(Clone, Debug)]
pub struct Batcher {
    tokens: Vec<u32>,
    seq_len: usize,
    batch_size: usize,
    seed: u64,
}

impl Batcher {
    pub fn new(tokens: Vec<u32>, seq_len: usize, batch_size: usize, seed: u64) -> Result<Batcher> {
        if seq_len == 0 || batch_size == 0 {
            return Err(Error::shape(
                "Batcher::new",
                format!(
                    "seq_len ({seq_len}) and batch_size ({batch_size}) must both be at least 1"
                ),
            ));
        }
        Ok(Batcher {
            tokens,
            seq_len,
            batch_size,
            seed,
        })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Windows in the stream: ceil(len / seq_len).
    pub fn num_windows(&self) -> usize {
        self.tokens.len().div_ceil(self.seq_len)
    }

    /// Full training batches per epoch (the incomplete last one is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.num_windows() / self.batch_size
    }

    /// Window indices in the order epoch `epoch` visits them.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.num_windows()).collect();
        let mut rng =
            SplitMix64::new(self.seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.shuffle(&mut order);
        order
    }

    /// The full batches of training epoch `epoch`, shuffled deterministically from the seed.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Batch> + '_ {
        let order = self.epoch_order(epoch);
        (0..self.batches_per_epoch())
            .map(move |b| self.batch(&order[b * self.batch_size..(b + 1) * self.batch_size]))
    }

    /// Training batches across epochs without end, starting at global batch `start` (batch
    /// `start % batches_per_epoch` of epoch `start / batches_per_epoch`), so a resumed run sees
    /// the batches it would have seen. Errors when the stream holds no full batch.
    pub fn stream(&self, start: usize) -> Result<Stream<'_>> {
        let per_epoch = self.batches_per_epoch();
        if per_epoch == 0 {
            return Err(Error::shape(
                "Batcher::stream",
                format!(
                    "{} tokens make {} windows of {} tokens, fewer than one batch of {}",
                    self.tokens.len(),
                    self.num_windows(),
                    self.seq_len,
                    self.batch_size
                ),
            ));
        }
        let epoch = start / per_epoch;
        Ok(Stream {
            batcher: self,
            order: self.epoch_order(epoch),
            epoch,
            index: start % per_epoch,
        })
    }

    /// Up to `max_batches` evaluation batches over the windows in order; the last one may hold
    /// fewer rows. `usize::MAX` covers the whole stream.
    pub fn eval_batches(&self, max_batches: usize) -> Vec<Batch> {
        let windows: Vec<usize> = (0..self.num_windows()).collect();
        windows
            .chunks(self.batch_size)
            .take(max_batches)
            .map(|rows| self.batch(rows))
            .collect()
    }

    /// The batch made of windows `rows`, padded to `seq_len`.
    fn batch(&self, rows: &[usize]) -> Batch {
        let t = self.seq_len;
        let mut inputs = vec![PAD; rows.len() * t];
        let mut targets = vec![PAD; rows.len() * t];
        let mut lens = Vec::with_capacity(rows.len());
        for (r, &w) in rows.iter().enumerate() {
            let start = w * t;
            let len = t.min(self.tokens.len() - start);
            let row = r * t;
            inputs[row] = SOS;
            inputs[row + 1..row + len].copy_from_slice(&self.tokens[start..start + len - 1]);
            targets[row..row + len].copy_from_slice(&self.tokens[start..start + len]);
            lens.push(len as u32);
        }
        Batch {
            inputs,
            targets,
            lens,
            batch_size: rows.len(),
            seq_len: t,
        }
    }
}

/// Endless training batches (see `Batcher::stream`).
pub struct Stream<'a> {
    batcher: &'a Batcher,
    order: Vec<usize>,
    epoch: usize,
    index: usize,
}

impl Stream<'_> {
    /// The epoch the next batch belongs to.
    pub fn epoch(&self) -> usize {
        self.epoch
    }
}

impl Iterator for Stream<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let b = self.batcher;
        if self.index == b.batches_per_epoch() {
            self.epoch += 1;
            self.index = 0;
            self.order = b.epoch_order(self.epoch);
        }
        let rows = &self.order[self.index * b.batch_size..(self.index + 1) * b.batch_size];
        self.index += 1;
        Some(b.batch(rows))
    }
}
