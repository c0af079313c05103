#!/usr/bin/env python3
"""PyTorch's side of benches/whisper.rs: Whisper tiny.en's shapes in Hugging Face
`transformers` (`WhisperForConditionalGeneration` from a `WhisperConfig`, random weights, built
offline), one window at a time against N windows together, measured the same way:
- encoder: ms per 30 s window (N windows in one batch);
- decoder: greedy over the KV caches (`past_key_values`), the prompt
  `<|startoftranscript|><|notimestamps|>` then T tokens per window (end-of-text never chosen),
  in ms per step and per token; the cross-attention keys and values are computed on the first
  step, as in the crate;
- windows per second for a window of T tokens.

    python3 scripts/pytorch_whisper.py [--windows N] [--tokens T] [--mode fp32|fp16] [--device cuda|cpu]

Prints one `RESULT key=value ...` line per batch size. Eager mode, no torch.compile; fp32
with TF32 off (the crate's f32 path), or fp16 weights and activations for context.
"""

import argparse
import time
import warnings

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

SOT, NO_TIMESTAMPS, EOT = 50257, 50362, 50256


def tiny_en():
    return WhisperConfig(
        vocab_size=51864,
        num_mel_bins=80,
        d_model=384,
        encoder_layers=4,
        encoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_layers=4,
        decoder_attention_heads=6,
        decoder_ffn_dim=1536,
        max_source_positions=1500,
        max_target_positions=448,
    )


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def run_once(model, mels, tokens, device):
    started = time.perf_counter()
    memory = model.model.encoder(mels).last_hidden_state
    sync(device)
    encoder = time.perf_counter() - started
    started = time.perf_counter()
    n = mels.shape[0]
    ids = torch.tensor([[SOT, NO_TIMESTAMPS]] * n, device=device)
    past = None
    for _ in range(tokens + 1):
        out = model.model.decoder(
            input_ids=ids, encoder_hidden_states=memory, past_key_values=past, use_cache=True
        )
        past = out.past_key_values
        logits = model.proj_out(out.last_hidden_state[:, -1])
        logits[:, EOT] = float("-inf")
        ids = logits.argmax(-1, keepdim=True)
        ids.cpu()  # the crate reads every step's logits back; read the choice back here
    sync(device)
    return encoder, time.perf_counter() - started


def timing(model, windows, tokens, device, dtype):
    mels = torch.rand(windows, 80, 3000, device=device, dtype=dtype) * 2 - 1
    run_once(model, mels, tokens, device)
    runs = 2
    enc = dec = 0.0
    for _ in range(runs):
        e, d = run_once(model, mels, tokens, device)
        enc += e
        dec += d
    enc_ms = enc * 1e3 / (runs * windows)
    step_ms = dec * 1e3 / (runs * (tokens + 1))
    per_batch_ms = enc_ms * windows + step_ms * (tokens + 1)
    return enc_ms, step_ms, windows / per_batch_ms * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--mode", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    # Newer transformers name `past_key_values` `cache`; the old name works in every version.
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dtype = torch.float16 if args.mode == "fp16" else torch.float32
    model = WhisperForConditionalGeneration(tiny_en()).to(args.device, dtype).eval()
    for windows in sorted({1, args.windows}):
        enc_ms, step_ms, wps = timing(model, windows, args.tokens, args.device, dtype)
        print(
            f"RESULT system=pytorch model=whisper-tiny.en mode={args.mode} windows={windows} "
            f"encoder_ms_per_window={enc_ms:.1f} decoder_ms_per_step={step_ms:.2f} "
            f"decoder_ms_per_token={step_ms / windows:.2f} windows_per_s={wps:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
