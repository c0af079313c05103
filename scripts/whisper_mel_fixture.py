#!/usr/bin/env python3
"""Writes tests/fixtures/whisper_mel.safetensors: two test signals and the log-mel features
faster-whisper's FeatureExtractor computes for them (80 mels), the reference
tests/whisper_mel.rs checks `audio::whisper_log_mel` against.

    pip install faster-whisper==1.2.1 safetensors numpy
    python3 scripts/whisper_mel_fixture.py
"""
import pathlib

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/whisper_mel.safetensors"
rng = np.random.default_rng(3)
t = np.arange(21_937) / 16_000  # 1.37 s, not a whole number of hops
chirp = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) * np.exp(-0.5 * t)
speech_like = (chirp + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
short = (0.5 * rng.standard_normal(3_001)).astype(np.float32)  # 0.19 s of loud noise

extractor = FeatureExtractor(feature_size=80)
tensors = {}
for name, samples in [("chirp", speech_like), ("noise", short)]:
    features = extractor(samples)  # [80, frames]
    tensors[f"{name}.samples"] = samples
    tensors[f"{name}.features"] = np.ascontiguousarray(features.T.astype(np.float32))
    print(name, samples.shape, "->", features.shape)
save_file(tensors, OUT)
print("wrote", OUT)
