//! Joint CTC/attention beam search on a scripted decoder (no GPU): the CTC prefix scores keep a
//! hypothesis from ending before its characters account for the whole utterance.

use wgformer::decode::{
    beam_search, joint_beam_search, BeamConfig, CtcPrefixScorer, IncrementalDecoder,
};
use wgformer::Result;

const BLANK: u32 = 0;
const SOS: u32 = 2;
const EOS: u32 = 3;
const A: u32 = 4;
const B: u32 = 5;
const C: u32 = 6;
const VOCAB: usize = 7;

/// An attention decoder that has learnt short sentences: after its first token it wants to
/// stop (EOS 0.85), where the audio says two more letters follow.
struct EagerToStop;

impl IncrementalDecoder for EagerToStop {
    /// Tokens fed so far, per sequence.
    type State = Vec<usize>;

    fn start(&self, batch: usize) -> Result<Vec<usize>> {
        Ok(vec![0; batch])
    }

    async fn step(&self, fed: &mut Vec<usize>, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        let t_new = ids.len() / batch;
        let mut out = Vec::with_capacity(batch * VOCAB);
        for n in fed.iter_mut() {
            *n += t_new;
            let mut p = [0.01f32; VOCAB];
            match *n {
                1 => p[A as usize] = 0.9,
                2 => {
                    p[EOS as usize] = 0.85;
                    p[B as usize] = 0.1;
                }
                3 => p[C as usize] = 0.9,
                _ => p[EOS as usize] = 0.9,
            }
            out.extend(p.iter().map(|x| x.ln()));
        }
        Ok(out)
    }

    fn reorder(&self, fed: &mut Vec<usize>, order: &[u32]) -> Result<()> {
        *fed = order.iter().map(|&i| fed[i as usize]).collect();
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        VOCAB
    }
}

/// CTC posteriors that spell A B C over nine frames (blanks around the letters).
fn ctc_spelling_abc() -> CtcPrefixScorer {
    let frames = [BLANK, A, A, BLANK, B, BLANK, BLANK, C, BLANK];
    let logits: Vec<f32> = frames
        .iter()
        .flat_map(|&c| (0..VOCAB as u32).map(move |v| if v == c { 5.0 } else { 0.0 }))
        .collect();
    CtcPrefixScorer::new(&logits, frames.len(), VOCAB, BLANK, SOS, EOS)
}

fn config(beam_width: usize) -> BeamConfig {
    BeamConfig {
        beam_width,
        max_new_tokens: 12,
        length_penalty: 1.0,
        eos: Some(EOS),
    }
}

#[test]
fn joint_decoding_does_not_end_before_the_audio_is_accounted_for() -> Result<()> {
    let ctc = ctc_spelling_abc();
    for beam_width in [1, 4] {
        // The decoder alone stops after its first letter...
        let alone = beam_search(&EagerToStop, &[SOS], &config(beam_width))?;
        assert_eq!(alone, vec![A, EOS], "beam {beam_width}");
        // ... and with CTC prefix scores it writes what the audio holds.
        let joint = joint_beam_search(&EagerToStop, &[SOS], &config(beam_width), &ctc, 0.3)?;
        assert_eq!(joint, vec![A, B, C, EOS], "beam {beam_width}");
    }
    Ok(())
}

#[test]
fn joint_decoding_with_ctc_weight_zero_is_the_decoder_alone() -> Result<()> {
    let ctc = ctc_spelling_abc();
    for beam_width in [1, 3] {
        assert_eq!(
            joint_beam_search(&EagerToStop, &[SOS], &config(beam_width), &ctc, 0.0)?,
            beam_search(&EagerToStop, &[SOS], &config(beam_width))?
        );
    }
    Ok(())
}

#[test]
fn joint_decoding_refuses_a_weight_outside_the_unit_interval() {
    let ctc = ctc_spelling_abc();
    for w in [-0.1, 1.5, f32::NAN] {
        let err = joint_beam_search(&EagerToStop, &[SOS], &config(2), &ctc, w).unwrap_err();
        assert!(err.to_string().contains("CTC weight"), "{err}");
    }
}
