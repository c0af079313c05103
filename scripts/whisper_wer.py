#!/usr/bin/env python3
"""Word and character error rates of transcript files against the Asterisk references, and how
many transcripts are identical (character for character) to a chosen system's:

    python3 scripts/whisper_wer.py [--manifest data/asterisk/manifest.tsv] \
        [--same-as tests/fixtures/asterisk/faster_whisper_greedy.tsv] [--common] A.tsv [B.tsv ...]

With --common every file is scored on the clips that all of them hold.

Each file holds "NAME<TAB>transcript" lines. Scoring normalises both sides the same way:
lower case, hyphens as spaces, punctuation other than inner apostrophes removed, digits left as
they are (so "1" against the reference's "One" counts as an error for every system alike).
WER and CER are corpus-level: edits summed over clips / reference words (characters).
"""
import argparse
import re


def normalise(text):
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    words = [w.strip("'") for w in text.split()]
    return [w for w in words if w]


def edits(ref, hyp):
    """Levenshtein distance between two sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def read_tsv(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        name, _, text = line.rstrip("\n").partition("\t")
        out[name] = text
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--manifest", default="data/asterisk/manifest.tsv")
    p.add_argument("--same-as", help="count transcripts identical to this file's")
    p.add_argument("--common", action="store_true", help="score only clips every file holds")
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    refs = {}
    for line in open(a.manifest, encoding="utf-8"):
        name, _wav, text = line.rstrip("\n").split("\t")
        refs[name] = text
    same = read_tsv(a.same_as) if a.same_as else None
    all_hyps = {path: read_tsv(path) for path in a.files}
    if a.common:
        refs = {n: t for n, t in refs.items() if all(n in h for h in all_hyps.values())}
    print(f"| transcripts | clips | WER % | CER % |" + (" identical to reference system |" if same else ""))
    print("|---|---|---|---|" + ("---|" if same else ""))
    for path in a.files:
        hyps = all_hyps[path]
        names = [n for n in refs if n in hyps]
        w_err = w_tot = c_err = c_tot = 0
        for n in names:
            r, h = normalise(refs[n]), normalise(hyps[n])
            w_err += edits(r, h)
            w_tot += len(r)
            rc, hc = " ".join(r), " ".join(h)
            c_err += edits(rc, hc)
            c_tot += len(rc)
        row = f"| {path} | {len(names)} | {100 * w_err / w_tot:.2f} | {100 * c_err / c_tot:.2f} |"
        if same:
            both = [n for n in names if n in same]
            k = sum(hyps[n] == same[n] for n in both)
            row += f" {k} / {len(both)} ({100 * k / max(len(both), 1):.1f}%) |"
        print(row)


if __name__ == "__main__":
    main()
