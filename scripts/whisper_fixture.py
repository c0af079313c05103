#!/usr/bin/env python3
"""Writes tests/fixtures/whisper-tiny-random/: a tiny randomly initialised Whisper saved by
`transformers` (config.json + model.safetensors, the Hugging Face layout), the same model
converted by CTranslate2's converter (ct2/model.bin, float32), and expected.safetensors with a
fixed input and the encoder output and logits `transformers` computes for it (float32, CPU).

    pip install torch transformers safetensors numpy ctranslate2
    python3 scripts/whisper_fixture.py

tests/whisper.rs loads the folder with wgformer and compares its logits with these.
"""
import pathlib
import shutil

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import WhisperConfig, WhisperForConditionalGeneration

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/whisper-tiny-random"

torch.manual_seed(0)
config = WhisperConfig(
    vocab_size=100,
    num_mel_bins=80,
    d_model=32,
    encoder_layers=2,
    encoder_attention_heads=2,
    decoder_layers=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=48,
    decoder_ffn_dim=48,
    max_source_positions=16,  # 32 mel frames
    max_target_positions=12,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    decoder_start_token_id=1,
    suppress_tokens=[],
    begin_suppress_tokens=[],
)
model = WhisperForConditionalGeneration(config).eval()
# Random values well away from the initialisation's (LayerNorm gains near 1, biases 0, weights
# of std 0.02), so that every parameter moves the logits.
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("layer_norm.weight"):
            p.copy_(1.0 + 0.3 * torch.randn_like(p))
        else:
            p.copy_(0.3 * torch.randn_like(p))
OUT.mkdir(parents=True, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=True)
for extra in ["generation_config.json"]:
    (OUT / extra).unlink(missing_ok=True)

rng = np.random.default_rng(1)
features = rng.uniform(-1.0, 1.0, size=(1, 80, 32)).astype(np.float32)  # [B, n_mels, frames]
ids = np.array([[1, 5, 17, 42, 99, 3, 64]], dtype=np.int64)
with torch.no_grad():
    out = model(
        input_features=torch.from_numpy(features),
        decoder_input_ids=torch.from_numpy(ids),
        output_hidden_states=True,
    )
save_file(
    {
        # Frames first ([B, frames, n_mels]), the layout wgformer's encoder reads.
        "mel": np.ascontiguousarray(features.transpose(0, 2, 1)),
        "decoder_input_ids": ids.astype(np.float32),
        "encoder_output": out.encoder_last_hidden_state.numpy(),
        "logits": out.logits.numpy(),
    },
    OUT / "expected.safetensors",
)
print("wrote", OUT, "logits", tuple(out.logits.shape), "max |logit|", float(out.logits.abs().max()))

import ctranslate2.converters

shutil.rmtree(OUT / "ct2", ignore_errors=True)
ctranslate2.converters.TransformersConverter(str(OUT)).convert(
    str(OUT / "ct2"), quantization="float32"
)
print("wrote", OUT / "ct2")
