"""The PyTorch eager peer of `scripts/bench-worker.sh`: the worker's model, batch, optimizer and
thread count written the way a researcher would write them in PyTorch (karpathy/nanoGPT style:
`F.scaled_dot_product_attention(is_causal=True)`, `torch.optim.AdamW` on its default foreach path,
`clip_grad_norm_`, `F.cross_entropy`, a warm-up + cosine LR set per step, `.item()` of the loss
every `--log-every` steps).

The model is the worker's (`worker/src/model.rs`): learned positions, pre-LayerNorm blocks without
biases, fused QKV, exact GELU, untied head, nanoGPT's initialisation. Batches are random windows of
a byte corpus (nanoGPT's `get_batch`), built on the host each step as the worker builds its own.

Prints one JSON line: {"device", "dtype", "threads", "steps", "ms_per_step", "tokens_per_s",
"params", "flops_per_token", "loss"}.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.wqkv = nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).contiguous().view(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, bias=False)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d, bias=False)
        self.fc = nn.Linear(d, ratio * d, bias=False)
        self.proj = nn.Linear(ratio * d, d, bias=False)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, layers, d, heads, seq_len, ratio):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, ratio) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.head = nn.Linear(d, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("wo.weight", "proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--mlp-ratio", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    vocab = 256
    model = GPT(vocab, a.layers, a.d_model, a.heads, a.seq_len, a.mlp_ratio).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")

    # A byte corpus of 2 MB (random bytes with some structure do not matter for the timing).
    rng = np.random.default_rng(0)
    data = rng.integers(0, vocab, size=2_000_000, dtype=np.uint8)

    def get_batch():
        ix = torch.randint(len(data) - a.seq_len - 1, (a.batch_size,))
        x = torch.stack([torch.from_numpy(data[i : i + a.seq_len].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + a.seq_len].astype(np.int64)) for i in ix])
        if cuda:
            return x.pin_memory().to(dev, non_blocking=True), y.pin_memory().to(dev, non_blocking=True)
        return x, y

    total = a.warmup + a.steps

    def lr_at(step):
        warm = max(1, total // 10)
        if step < warm:
            return a.lr * (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    last = float("nan")
    start = None
    for step in range(total):
        if step == a.warmup:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = get_batch()
        with amp:
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % a.log_every == 0:
            last = loss.item()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    ms = 1000 * elapsed / a.steps
    # Model FLOPs per token (PaLM's appendix B, as nanoGPT's estimate_mfu): 6N + 12·L·d·T.
    flops_per_token = 6 * n_params + 12 * a.layers * a.d_model * a.seq_len
    print(json.dumps({
        "device": str(dev), "dtype": a.dtype, "threads": a.threads, "steps": a.steps,
        "ms_per_step": ms, "tokens_per_s": a.batch_size * a.seq_len / (ms / 1000),
        "params": n_params, "flops_per_token": flops_per_token, "loss": last,
    }))


if __name__ == "__main__":
    main()
