#!/usr/bin/env python3
"""pocketsphinx 5.1.1's transcripts of the Asterisk prompts (its default US-English model), the
classic baseline beside Whisper in the README's table:

    scripts/asterisk_clips && pip install pocketsphinx==5.1.1
    python3 scripts/pocketsphinx_reference.py

Writes tests/fixtures/asterisk/pocketsphinx.tsv ("NAME<TAB>transcript").
"""
import pathlib
import wave

from pocketsphinx import Decoder

ROOT = pathlib.Path(__file__).resolve().parent.parent
decoder = Decoder(samprate=16000)
rows = [l.rstrip("\n").split("\t") for l in open(ROOT / "data/asterisk/manifest.tsv", encoding="utf-8")]
with open(ROOT / "tests/fixtures/asterisk/pocketsphinx.tsv", "w", encoding="utf-8") as out:
    for name, wav, _reference in rows:
        with wave.open(str(ROOT / wav)) as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
            data = w.readframes(w.getnframes())
        decoder.start_utt()
        decoder.process_raw(data, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.write(f"{name}\t{hyp.hypstr if hyp else ''}\n")
print("wrote tests/fixtures/asterisk/pocketsphinx.tsv")
