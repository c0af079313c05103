#!/usr/bin/env python3
"""PyTorch and Hugging Face parity for wgformer's checkpoints and tokenizer files.

The models below are wgformer's DecoderOnlyTransformer (the character LM) and
EncoderDecoderTransformer (the speech recognizer) written with torch.nn defaults: nn.Embedding,
nn.Linear (weight [out, in]), nn.LayerNorm (eps 1e-5), nn.GELU() (exact erf), nn.Conv2d, and
attention written out as softmax(q k^T / sqrt(d_head) + mask) v. Their parameter names are the
crate's, so a checkpoint the crate wrote loads with load_state_dict(strict=True).

The conventions a PyTorch user must follow (README, "Conventions"):
  * token embedding multiplied by sqrt(d_model), then sinusoidal positions added with sin and
    cos interleaved: PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d));
  * pre-LN layers: x + SelfAttn(LN(x)), [x + CrossAttn(LN(x), memory)], x + FFN(LN(x)), and a
    final LayerNorm before the output projection;
  * a tied output projection is token_embedding.weight; the checkpoint stores it once, with no
    lm_head.weight (the crate also loads a checkpoint whose lm_head.weight equals it);
  * speech: two 3x3 convolutions (padding 1) striding (2, 2) in time only, the activation after
    each, the [B, C, T', F] output flattened channel-major into C * F features per frame, a
    Linear to d_model, multiplied by sqrt(d_model), then positions.

What it does:
  1. runs `cargo test --test pytorch_parity the_fixture_models` with WGFORMER_WRITE_PARITY=1
     (unless --no-cargo): the crate writes tiny trained checkpoints, their inputs, tokenizer
     files and a sample text under tests/fixtures/parity/, and under target/parity/ its ids of
     the whole corpus;
  2. loads each checkpoint strictly, computes logits, loss and parameter gradients, and writes
     them as expected.safetensors beside it (the cargo test compares the crate against them);
  3. loads a tied checkpoint the way a PyTorch user ties (lm_head.weight = embedding weight)
     and writes its state_dict in bf16 and f16 for the crate's loader test;
  4. encodes the sample text with Hugging Face tokenizers and writes the ids and decoding;
     checks that tokenizers encodes and decodes the whole corpus exactly as the crate does;
  5. runs the cargo test and prints the figures.

Not run by CI. Needs torch, safetensors and tokenizers (>= 0.20):
    python3 -m venv ../venv-parity && ../venv-parity/bin/pip install torch safetensors tokenizers
    ../venv-parity/bin/python scripts/pytorch_parity.py
Check another tokenizer file against the corpus: --tokenizer runs/clm/tokenizer.json
(only the round trip and the ids' range: the crate's ids are written for the two tokenizers
the fixture step builds).
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
PAD, SOS, EOS = 0, 2, 3

ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": lambda: nn.ReLU(),
}


def sinusoid_table(max_len, d):
    """PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(same): interleaved, computed in f64."""
    pe = np.zeros((max_len, d))
    for i in range(d):
        freq = 10000.0 ** (-(i // 2 * 2) / d)
        angle = np.arange(max_len) * freq
        pe[:, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    return torch.tensor(pe, dtype=torch.float32)


class MultiHeadAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x_q, x_kv, mask):
        """x_q: [B, Tq, d], x_kv: [B, Tk, d], mask: [B, 1, Tq, Tk] bool (True = may attend)."""
        b, tq, d = x_q.shape
        tk = x_kv.shape[1]
        dh = d // self.heads
        q = self.q_proj(x_q).view(b, tq, self.heads, dh).transpose(1, 2)  # [B, H, Tq, Dh]
        k = self.k_proj(x_kv).view(b, tk, self.heads, dh).transpose(1, 2)  # [B, H, Tk, Dh]
        v = self.v_proj(x_kv).view(b, tk, self.heads, dh).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)  # [B, H, Tq, Tk]
        scores = scores.masked_fill(~mask, float("-inf"))
        o = scores.softmax(-1) @ v  # [B, H, Tq, Dh]
        return self.out_proj(o.transpose(1, 2).reshape(b, tq, d))


class FeedForward(nn.Module):
    def __init__(self, d, d_ff, activation):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x):
        return self.linear2(self.act(self.linear1(x)))


class SelfAttentionLayer(nn.Module):
    """x + SelfAttn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d, heads, d_ff, activation):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(d), MultiHeadAttention(d, heads)
        self.norm2, self.ffn = nn.LayerNorm(d), FeedForward(d, d_ff, activation)

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, mask)
        return x + self.ffn(self.norm2(x))


class CrossAttentionLayer(nn.Module):
    """x + SelfAttn(LN(x)) (causal), x + CrossAttn(LN(x), memory), x + FFN(LN(x))."""

    def __init__(self, d, heads, d_ff, activation):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(d), MultiHeadAttention(d, heads)
        self.cross_norm, self.cross_attn = nn.LayerNorm(d), MultiHeadAttention(d, heads)
        self.norm2, self.ffn = nn.LayerNorm(d), FeedForward(d, d_ff, activation)

    def forward(self, x, memory, self_mask, memory_mask):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, self_mask)
        x = x + self.cross_attn(self.cross_norm(x), memory, memory_mask)
        return x + self.ffn(self.norm2(x))


def causal_mask(t):
    return torch.ones(t, t, dtype=torch.bool).tril()[None, None]  # [1, 1, T, T]


def key_mask(lens, tq, tk):
    """[B, 1, Tq, Tk]: keys before each row's length."""
    return (torch.arange(tk)[None, :] < lens[:, None])[:, None, None, :].expand(-1, 1, tq, tk)


class DecoderOnlyTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.d = c["d_model"]
        self.token_embedding = nn.Embedding(c["vocab_size"], self.d)
        self.layers = nn.ModuleList(
            SelfAttentionLayer(self.d, c["num_heads"], c["d_ff"], c["activation"])
            for _ in range(c["num_layers"])
        )
        self.norm = nn.LayerNorm(self.d)
        self.tied = c["weight_tying"]
        if not self.tied:
            self.lm_head = nn.Linear(self.d, c["vocab_size"], bias=False)
        self.register_buffer("pe", sinusoid_table(c["max_seq_len"], self.d), persistent=False)

    def forward(self, ids, lens):
        """ids: [B, T] -> logits [B, T, V]; keys past each row's length are masked."""
        t = ids.shape[1]
        x = self.token_embedding(ids) * math.sqrt(self.d) + self.pe[:t]
        mask = causal_mask(t) & key_mask(lens, t, t)
        for layer in self.layers:
            x = layer(x, mask)
        h = self.norm(x)
        return F.linear(h, self.token_embedding.weight) if self.tied else self.lm_head(h)


class TiedAsUsual(DecoderOnlyTransformer):
    """Tied the way most PyTorch code ties: an lm_head module sharing the embedding's weight,
    so state_dict() carries both token_embedding.weight and lm_head.weight."""

    def __init__(self, c):
        super().__init__({**c, "weight_tying": False})
        self.lm_head.weight = self.token_embedding.weight


class SpeechEmbedding(nn.Module):
    def __init__(self, n_mels, channels, strides, d, activation):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(strides[0], 1), padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(strides[1], 1), padding=1)
        self.proj = nn.Linear(channels * n_mels, d)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x):
        """[B, T, F] -> [B, T', d]: the conv output [B, C, T', F] flattened channel-major."""
        h = self.act(self.conv2(self.act(self.conv1(x[:, None]))))  # [B, C, T', F]
        b, c, t, f = h.shape
        return self.proj(h.permute(0, 2, 1, 3).reshape(b, t, c * f))  # [B, T', C * F]

    def output_len(self, n):
        for conv in (self.conv1, self.conv2):
            n = (n + 2 - 3) // conv.stride[0] + 1
        return n


class EncoderDecoderTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.d = d = c["d_model"]
        sizes = (d, c["num_heads"], c["d_ff"], c["activation"])
        self.encoder = nn.Module()
        self.encoder.embedding = SpeechEmbedding(
            c["n_mels"], c["conv_channels"], c["conv_strides"], d, c["activation"]
        )
        self.encoder.layers = nn.ModuleList(
            SelfAttentionLayer(*sizes) for _ in range(c["encoder_layers"])
        )
        self.encoder.norm = nn.LayerNorm(d)
        self.ctc_head = nn.Linear(d, c["vocab_size"])
        self.decoder = nn.Module()
        self.decoder.token_embedding = nn.Embedding(c["vocab_size"], d)
        self.decoder.layers = nn.ModuleList(
            CrossAttentionLayer(*sizes) for _ in range(c["decoder_layers"])
        )
        self.decoder.norm = nn.LayerNorm(d)
        self.register_buffer("source_pe", sinusoid_table(c["max_source_len"], d), persistent=False)
        self.register_buffer("target_pe", sinusoid_table(c["max_target_len"], d), persistent=False)

    def forward(self, features, frame_lens, ids):
        """features [B, T, F], ids [B, S] -> (ctc logits [B, T', V], logits [B, S, V], T' lens)."""
        x = self.encoder.embedding(features)
        s_src = x.shape[1]
        x = x * math.sqrt(self.d) + self.source_pe[:s_src]
        lens = torch.tensor([self.encoder.embedding.output_len(n) for n in frame_lens])
        mask = key_mask(lens, s_src, s_src)
        for layer in self.encoder.layers:
            x = layer(x, mask)
        memory = self.encoder.norm(x)
        t = ids.shape[1]
        y = self.decoder.token_embedding(ids) * math.sqrt(self.d) + self.target_pe[:t]
        for layer in self.decoder.layers:
            y = layer(y, memory, causal_mask(t), key_mask(lens, t, s_src))
        logits = F.linear(self.decoder.norm(y), self.decoder.token_embedding.weight)  # tied
        return self.ctc_head(memory), logits, lens


def gradients(model):
    return {f"grad.{n}": p.grad.detach().clone() for n, p in model.named_parameters()}


def parity_clm():
    d = FIXTURES / "clm"
    case = json.loads((d / "inputs.json").read_text())
    model = DecoderOnlyTransformer(case)
    state = load_file(d / "model.safetensors")
    model.load_state_dict(state, strict=True)
    b, t = case["batch"], case["seq_len"]
    ids = torch.tensor(case["ids"]).view(b, t)
    logits = model(ids, torch.tensor(case["lens"]))
    loss = F.cross_entropy(
        logits.reshape(b * t, -1),
        torch.tensor(case["targets"]),
        ignore_index=PAD,
        label_smoothing=case["label_smoothing"],
    )
    loss.backward()
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1), **gradients(model)}
    save_file(out, d / "expected.safetensors")
    print(f"clm: loss {loss.item():.6f}, {len(state)} tensors loaded strictly")

    # The crate also loads a checkpoint from a model tied as PyTorch code usually ties.
    usual = TiedAsUsual(case)
    usual.load_state_dict({**state, "lm_head.weight": state["token_embedding.weight"]}, strict=True)
    assert torch.equal(usual(ids, torch.tensor(case["lens"])), logits.detach())
    for dtype, name in [(torch.bfloat16, "bf16"), (torch.float16, "f16")]:
        sd = {k: v.detach().to(dtype).clone() for k, v in usual.state_dict().items()}
        save_file(sd, d / f"torch_tied_{name}.safetensors")


def parity_asr():
    d = FIXTURES / "asr"
    case = json.loads((d / "inputs.json").read_text())
    model = EncoderDecoderTransformer(case)
    model.load_state_dict(load_file(d / "model.safetensors"), strict=True)
    b, s1 = case["batch"], case["labels"] + 1
    features = torch.tensor(case["features"]).view(b, case["frames"], case["n_mels"])
    ids = torch.tensor(case["decoder_input"]).view(b, s1)
    ctc_logits, logits, lens = model(features, case["frame_lens"], ids)
    ce = F.cross_entropy(
        logits.reshape(b * s1, -1),
        torch.tensor(case["decoder_target"]),
        ignore_index=PAD,
        label_smoothing=case["label_smoothing"],
    )
    ctc = F.ctc_loss(
        ctc_logits.log_softmax(-1).transpose(0, 1),  # [T', B, V]
        torch.tensor(case["ctc_targets"]).view(b, case["labels"]),
        lens,
        torch.tensor(case["target_lens"]),
        blank=PAD,
        reduction="mean",
    )
    loss = ce + case["ctc_weight"] * ctc
    loss.backward()
    out = {
        "ctc_logits": ctc_logits.detach(),
        "logits": logits.detach(),
        "loss": loss.detach().reshape(1),
        **gradients(model),
    }
    save_file(out, d / "expected.safetensors")
    print(f"asr: loss {loss.item():.6f} (ce {ce.item():.6f}, ctc {ctc.item():.6f})")


def hf_encoding(tokenizer_path, text):
    tok = Tokenizer.from_file(str(tokenizer_path))
    ids = tok.encode(text).ids
    return ids, tok.decode(ids)


def parity_tokenizers():
    d = FIXTURES / "tokenizer"
    text = (d / "sample.txt").read_text(encoding="utf-8")
    for kind in ["char", "bpe"]:
        ids, decoded = hf_encoding(d / f"{kind}.json", text)
        (d / f"{kind}.hf.json").write_text(json.dumps({"ids": ids, "decoded": decoded}) + "\n")
        print(f"tokenizer {kind}: {len(ids)} ids for the {len(text)}-character sample")


def check_corpus(tokenizer_path, crate_ids_path=None):
    """Hugging Face's encoding of the whole corpus: the crate's ids (when given) and the text back."""
    text = (ROOT / "data" / "shakespeare.txt").read_text(encoding="utf-8")
    ids, decoded = hf_encoding(tokenizer_path, text)
    same_text = decoded == text
    line = f"{tokenizer_path}: {len(ids)} ids, decode(encode(corpus)) == corpus: {same_text}"
    ok = same_text
    if crate_ids_path is not None:
        crate = np.fromfile(crate_ids_path, dtype="<u4")
        same_ids = len(crate) == len(ids) and bool(np.array_equal(crate, np.array(ids)))
        line += f", ids equal to the crate's: {same_ids}"
        ok = ok and same_ids
    print(line)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-cargo", action="store_true", help="use the fixtures already written")
    ap.add_argument("--tokenizer", type=Path, action="append", default=[],
                    help="also check this tokenizer.json's round trip of the corpus")
    args = ap.parse_args()
    torch.manual_seed(0)
    cargo = ["cargo", "test", "--test", "pytorch_parity"]
    if not args.no_cargo:
        env = {**os.environ, "WGFORMER_WRITE_PARITY": "1"}
        subprocess.run(cargo + ["the_fixture_models_are_what_their_generator_makes"], cwd=ROOT, env=env,
                       check=True)
    parity_clm()
    parity_asr()
    parity_tokenizers()
    ok = True
    for kind in ["char", "bpe"]:
        ok &= check_corpus(ROOT / "target" / "parity" / f"{kind}.json",
                           ROOT / "target" / "parity" / f"{kind}.corpus-ids.u32")
    for path in args.tokenizer:
        ok &= check_corpus(path)
    if not args.no_cargo:
        subprocess.run(cargo + ["--", "--nocapture"], cwd=ROOT, check=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
