#!/usr/bin/env python3
"""Writes tests/fixtures/whisper_tokenizer.json: how Hugging Face `tokenizers` encodes and decodes
a set of texts with Whisper tiny.en's tokenizer.json, and faster-whisper's default suppressed
tokens for it (suppress_tokens=[-1]), the references tests/whisper_real.rs checks
`data::ByteBpe` and `WhisperTokens` against.

    scripts/fetch_whisper tiny.en && pip install tokenizers faster-whisper==1.2.1
    python3 scripts/whisper_tokenizer_fixture.py
"""
import json
import pathlib

import tokenizers
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

ROOT = pathlib.Path(__file__).resolve().parent.parent
hf = tokenizers.Tokenizer.from_file(str(ROOT / "models/whisper-tiny.en/tokenizer.json"))
texts = [
    "Hello world.",
    " Please enter your agent number, followed by the pound key.",
    "It's 10:45 -- we'll've been there; they're fine, I'd say!",
    "Numbers 1234567 and 3.14159, dates 2024-12-05.",
    "  two  spaces\tand a tab\nand\n\nnewlines  ",
    "Café naïve résumé: Ünïcödé, Straße, 東京, Москва, 🙂 emoji.",
    "(laughs) [MUSIC] ♪♪ ♪ la la ♪ <<quoted>> {braces} @home #tag",
    "Don't stop 'til you get enough... O'Neil's rock'n'roll",
    "UPPER lower MiXeD 123abc abc123 a1b2c3",
    "",
]
encoded = [hf.encode(t, add_special_tokens=False).ids for t in texts]
fw = Tokenizer(hf, multilingual=False)
fixture = {
    "texts": texts,
    "ids": encoded,
    "decoded": [hf.decode(ids) for ids in encoded],
    "suppressed": list(get_suppressed_tokens(fw, [-1])),
}
out = ROOT / "tests/fixtures/whisper_tokenizer.json"
out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print("wrote", out)
