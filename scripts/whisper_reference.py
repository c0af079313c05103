#!/usr/bin/env python3
"""faster-whisper's transcripts of the Asterisk prompts, the reference wgformer's Whisper is
compared with (tests/whisper_real.rs, scripts/whisper_wer.py):

    scripts/asterisk_clips && scripts/fetch_whisper tiny.en
    pip install faster-whisper==1.2.1 ctranslate2==4.8.5
    python3 scripts/whisper_reference.py [--beam 1|5] [--model models/whisper-tiny.en]

CPU, float32, temperature 0, without_timestamps=True, condition_on_previous_text=False, the
given beam size, 2 threads; otherwise faster-whisper's defaults. Writes
tests/fixtures/asterisk/faster_whisper_{greedy,beam5}.tsv ("NAME<TAB>transcript").
"""
import argparse
import pathlib
import time

from faster_whisper import WhisperModel

ROOT = pathlib.Path(__file__).resolve().parent.parent

parser = argparse.ArgumentParser()
parser.add_argument("--beam", type=int, default=1)
parser.add_argument("--model", default=str(ROOT / "models/whisper-tiny.en"))
parser.add_argument("--manifest", default=str(ROOT / "data/asterisk/manifest.tsv"))
args = parser.parse_args()

model = WhisperModel(args.model, device="cpu", compute_type="float32", cpu_threads=2)
rows = [line.rstrip("\n").split("\t") for line in open(args.manifest, encoding="utf-8")]
kind = "greedy" if args.beam == 1 else f"beam{args.beam}"
out_path = ROOT / f"tests/fixtures/asterisk/faster_whisper_{kind}.tsv"
start = time.time()
with open(out_path, "w", encoding="utf-8") as out:
    for name, wav, _reference in rows:
        segments, _info = model.transcribe(
            str(ROOT / wav),
            beam_size=args.beam,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
        )
        text = "".join(s.text for s in segments).strip()
        out.write(f"{name}\t{' '.join(text.split())}\n")
print(f"wrote {out_path}: {len(rows)} clips in {time.time() - start:.0f} s")
