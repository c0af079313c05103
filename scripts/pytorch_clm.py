#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu_vs_pytorch: the crate's decoder-only LM (benches/clm.rs)
built from torch.nn, trained on random tokens, and the square matmuls of benches/matmul.rs.

The model is wgformer's `DecoderOnlyTransformer` layer for layer: token embedding times
sqrt(d_model) plus sinusoidal positions, pre-LN blocks (LayerNorm, separate q/k/v/out
projections with bias, causal attention, LayerNorm, Linear -> exact GELU -> Linear), a final
LayerNorm and the output projection tied to the embedding; AdamW (lr 1e-3, betas 0.9/0.999,
weight decay 0.01), gradient clipping at 1.0, cross-entropy over every position. Attention is
`F.scaled_dot_product_attention(is_causal=True)`, what a PyTorch user writes (PyTorch picks
its fused kernel). Eager mode, no torch.compile.

    python3 scripts/pytorch_clm.py train --model ref|gpt2-small --mode fp32|tf32|bf16 \
        [--batch B] [--seq T] [--steps N] [--device cuda|cpu]
    python3 scripts/pytorch_clm.py matmul --size 4096 --mode fp32|tf32|fp16

Each prints one `RESULT key=value ...` line.
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (vocab, d_model, layers, heads, d_ff, batch, seq): benches/clm.rs's presets.
MODELS = {
    "ref": (1024, 256, 4, 4, 1024, 16, 128),
    "gpt2-small": (50304, 768, 12, 12, 3072, 8, 1024),
}


class Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.norm1(x)

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out_proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DecoderOnly(nn.Module):
    def __init__(self, vocab, d, layers, heads, ff, max_len):
        super().__init__()
        self.d = d
        self.embed = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed.weight, std=0.02)  # as the crate's Embedding
        pos = torch.arange(max_len).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, d)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe)
        self.layers = nn.ModuleList(Block(d, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, ids):
        x = self.embed(ids) * math.sqrt(self.d) + self.pe[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.norm(x) @ self.embed.weight.t()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def train(args):
    vocab, d, layers, heads, ff, batch, seq = MODELS[args.model]
    batch, seq = args.batch or batch, args.seq or seq
    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = args.mode == "tf32"
    torch.backends.cudnn.allow_tf32 = args.mode == "tf32"
    torch.manual_seed(0)
    model = DecoderOnly(vocab, d, layers, heads, ff, seq).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    data = torch.randint(4, vocab, (batch, seq + 1), device=dev)
    inputs, targets = data[:, :-1], data[:, 1:]

    def step():
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=args.mode == "bf16"):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(2):
        step()
    sync(dev)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss = loss.item()
    sync(dev)
    secs = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else float("nan")
    print(
        f"RESULT system=pytorch model={args.model} mode={args.mode} params={params} "
        f"batch={batch} seq={seq} tokens_per_s={args.steps * batch * seq / secs:.0f} "
        f"s_per_step={secs / args.steps:.4f} peak_mib={peak:.0f} loss={loss:.4f}"
    )


def matmul(args):
    n, dev = args.size, args.device
    torch.backends.cuda.matmul.allow_tf32 = args.mode == "tf32"
    dtype = torch.float16 if args.mode == "fp16" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(dev)
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    secs = (time.perf_counter() - start) / reps
    print(
        f"RESULT system=pytorch matmul={n} mode={args.mode} ms={secs * 1e3:.3f} "
        f"tflops={2 * n**3 / secs / 1e12:.1f}"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", choices=MODELS, default="ref")
    t.add_argument("--mode", choices=["fp32", "tf32", "bf16"], default="fp32")
    t.add_argument("--batch", type=int)
    t.add_argument("--seq", type=int)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    m = sub.add_parser("matmul")
    m.add_argument("--size", type=int, default=4096)
    m.add_argument("--mode", choices=["fp32", "tf32", "fp16"], default="fp32")
    m.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    train(args) if args.what == "train" else matmul(args)


if __name__ == "__main__":
    main()
