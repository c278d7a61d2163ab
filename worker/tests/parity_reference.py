"""Independent PyTorch reference for Orrery's GPT (worker/src/model.rs), for the parity test.

Reads an .npz written by worker/tests/parity.rs holding the Rust model's weights, a batch, and the
Rust loss and gradients; rebuilds the same architecture here in plain PyTorch (pre-LN, no biases,
learned positions, GELU MLP, optional qk-layernorm, z-loss), computes loss and gradients in float64,
and compares. Prints the worst relative errors; exits 1 when any exceeds the tolerance.
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-5


def forward(w, cfg, idx, fused):
    b, t = idx.shape
    d, h = cfg["d_model"], cfg["heads"]
    hd = d // h
    x = w["tok_emb"][idx] + w["pos_emb"][:t]
    for i in range(cfg["layers"]):
        p = f"blocks.{i}."
        hdn = F.layer_norm(x, (d,), w[p + "ln1"], None, 1e-5)
        q, k, v = (hdn @ w[p + "wqkv"].T).split(d, dim=-1)
        q, k, v = (z.view(b, t, h, hd).transpose(1, 2) for z in (q, k, v))
        if cfg["qk_layernorm"]:
            q = F.layer_norm(q, (hd,), w[p + "q_ln"], None, 1e-5)
            k = F.layer_norm(k, (hd,), w[p + "k_ln"], None, 1e-5)
        if fused:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(b, t, d)
        x = x + y @ w[p + "wo"].T
        m = F.gelu(F.layer_norm(x, (d,), w[p + "ln2"], None, 1e-5) @ w[p + "w_fc"].T)
        x = x + m @ w[p + "w_proj"].T
    # muParam (simple) scales the output logits by base_width / d_model.
    return cfg["logit_mult"] * (F.layer_norm(x, (d,), w["ln_f"], None, 1e-5) @ w["head"].T)


def main(path):
    z = np.load(path)
    cfg = {
        "layers": int(z["cfg.layers"]),
        "d_model": int(z["cfg.d_model"]),
        "heads": int(z["cfg.heads"]),
        "qk_layernorm": bool(int(z["cfg.qk_layernorm"])),
        "logit_mult": float(z["cfg.logit_mult"]) if "cfg.logit_mult" in z.files else 1.0,
    }
    z_coef = float(z["cfg.z_loss"])
    idx = torch.from_numpy(z["inputs"]).long()
    targets = torch.from_numpy(z["targets"]).long()
    worst = 0.0
    for fused in (False, True):
        tag = "fused" if fused else "explicit"
        w = {k[2:]: torch.tensor(z[k], dtype=torch.float64, requires_grad=True) for k in z.files if k.startswith("w.")}
        logits = forward(w, cfg, idx, fused).view(-1, 256)
        ce = F.cross_entropy(logits, targets.view(-1))
        logz = torch.logsumexp(logits, dim=-1)
        loss = ce + z_coef * (logz**2).mean()
        loss.backward()
        rust_loss = float(z[f"{tag}.loss"])
        err = abs(loss.item() - rust_loss) / abs(loss.item())
        print(f"{tag}: loss torch {loss.item():.12f} rust {rust_loss:.12f} rel.err {err:.2e}")
        worst = max(worst, err)
        for name, t in sorted(w.items()):
            g_rust = torch.from_numpy(z[f"{tag}.grad.{name}"]).double()
            rel = ((t.grad - g_rust).norm() / t.grad.norm().clamp_min(1e-30)).item()
            worst = max(worst, rel)
            if rel > TOL:
                print(f"  gradient of {name}: relative error {rel:.2e} > {TOL}")
        print(f"{tag}: worst relative error so far {worst:.2e}")
    if worst > TOL:
        print(f"FAIL: worst relative error {worst:.2e} exceeds {TOL}")
        sys.exit(1)
    print(f"OK: loss and gradients match PyTorch to {worst:.2e} (tolerance {TOL})")


if __name__ == "__main__":
    main(sys.argv[1])
