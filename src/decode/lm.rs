//! `IncrementalDecoder` for the causal LM: with the KV cache (`CausalLmDecoder`) or by
//! re-running the whole prefix each step (`Recompute`, the slow baseline that tests compare to).

use super::{last_position, IncrementalDecoder};
use crate::error::{Error, Result};
use crate::models::DecoderOnlyTransformer;
use crate::nn::{Ctx, KvCache};
use crate::tensor::Tensor;

pub struct CausalLmDecoder<'a>(pub &'a DecoderOnlyTransformer);

fn ids_tensor(model: &DecoderOnlyTransformer, ids: &[u32], batch: usize) -> Result<Tensor> {
    if batch == 0 || !ids.len().is_multiple_of(batch) || ids.is_empty() {
        return Err(Error::shape(
            "decode",
            format!("{} ids do not form {batch} rows", ids.len()),
        ));
    }
    Tensor::from_u32(
        model.token_embedding.weight.gpu(),
        ids,
        &[batch, ids.len() / batch],
    )
}

impl IncrementalDecoder for CausalLmDecoder<'_> {
    type State = Vec<KvCache>;

    fn start(&self, _batch: usize) -> Result<Vec<KvCache>> {
        Ok(self.0.new_caches())
    }

    async fn step(&self, caches: &mut Vec<KvCache>, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        let logits = {
            let _g = crate::no_grad();
            self.0
                .forward_cached(&ids_tensor(self.0, ids, batch)?, caches)?
        };
        last_position(&logits).await
    }

    fn reorder(&self, caches: &mut Vec<KvCache>, order: &[u32]) -> Result<()> {
        // Applied as each cache grows by the next step (`KvCache::reorder`).
        caches.iter_mut().try_for_each(|c| c.reorder(order))
    }

    fn vocab_size(&self) -> usize {
        self.0.config.vocab_size
    }
}

/// No cache: every step runs the model over the whole sequence so far.
pub struct Recompute<'a>(pub &'a DecoderOnlyTransformer);

impl IncrementalDecoder for Recompute<'_> {
    /// The ids seen so far, per sequence.
    type State = Vec<Vec<u32>>;

    fn start(&self, batch: usize) -> Result<Vec<Vec<u32>>> {
        Ok(vec![Vec::new(); batch])
    }

    async fn step(&self, seen: &mut Vec<Vec<u32>>, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        let logits = {
            let _g = crate::no_grad();
            let t_new = ids.len() / batch.max(1);
            for (b, row) in seen.iter_mut().enumerate() {
                row.extend_from_slice(&ids[b * t_new..(b + 1) * t_new]);
            }
            let all: Vec<u32> = seen.concat();
            self.0
                .forward(&ids_tensor(self.0, &all, batch)?, None, &Ctx::eval())?
        };
        last_position(&logits).await
    }

    fn reorder(&self, seen: &mut Vec<Vec<u32>>, order: &[u32]) -> Result<()> {
        *seen = order.iter().map(|&i| seen[i as usize].clone()).collect();
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        self.0.config.vocab_size
    }
}
