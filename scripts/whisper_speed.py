#!/usr/bin/env python3
"""faster-whisper's (CTranslate2's) time per 30 s window on the CPU: encoder ms per window and
decoder ms per token (end-of-text included; the first step's cross-attention keys/values
counted in the decoder, as in wgformer's figure), greedy, float32, the same clips and start
sequence as `examples/whisper_eval`. `scripts/whisper_speed` runs the two side by side.

    python3 scripts/whisper_speed.py [--threads 2] [--limit 20] [--model models/whisper-tiny.en]
"""
import argparse
import pathlib
import time

from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio, pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

ROOT = pathlib.Path(__file__).resolve().parent.parent
p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--limit", type=int, default=20)
p.add_argument("--model", default=str(ROOT / "models/whisper-tiny.en"))
p.add_argument("--manifest", default=str(ROOT / "data/asterisk/manifest.tsv"))
a = p.parse_args()

model = WhisperModel(a.model, device="cpu", compute_type="float32", cpu_threads=a.threads)
tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
prompt = tokenizer.sot_sequence + [tokenizer.no_timestamps]
suppress = list(get_suppressed_tokens(tokenizer, [-1]))
rows = [l.rstrip("\n").split("\t") for l in open(a.manifest, encoding="utf-8")][: a.limit]
enc = dec = 0.0
windows = tokens = 0
for _name, wav, _ref in rows:
    features = model.feature_extractor(decode_audio(str(ROOT / wav)))
    content = features.shape[-1] - 1
    for seek in range(0, content, 3000):
        segment = pad_or_trim(features[:, seek : min(seek + 3000, content)])
        t0 = time.perf_counter()
        encoded = model.encode(segment)
        t1 = time.perf_counter()
        result = model.model.generate(
            encoded, [prompt], beam_size=1, max_length=448, suppress_blank=True,
            suppress_tokens=suppress, return_no_speech_prob=True,
        )[0]
        t2 = time.perf_counter()
        enc += t1 - t0
        dec += t2 - t1
        windows += 1
        tokens += len(result.sequences_ids[0]) + 1
print(
    f"faster-whisper {a.threads} threads: {windows} windows, encoder {1e3 * enc / windows:.0f} ms "
    f"per window, decoder {1e3 * dec / tokens:.1f} ms per token ({tokens} tokens)"
)
