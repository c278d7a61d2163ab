"""PyTorch's side of worker/tests/adamw_parity.rs: torch.optim.AdamW (its default foreach path) with
two parameter groups — matrices decayed, 1-D gains not, as the worker decays them — and
torch.nn.utils.clip_grad_norm_, on the initial weights and gradient sequence the Rust test wrote.
Compares the global norms, final weights and both moments; exits 1 if any relative error exceeds
the tolerance."""
import sys

import numpy as np
import torch

TOL = 1e-10

z = np.load(sys.argv[1])
names = sorted(k[len("init."):] for k in z.files if k.startswith("init."))
beta1, beta2, eps, wd, max_norm = z["cfg"].tolist()
lrs = z["lrs"].tolist()
params = {n: torch.tensor(z[f"init.{n}"], dtype=torch.float64, requires_grad=True) for n in names}
groups = [
    {"params": [params[n] for n in names if params[n].dim() >= 2], "weight_decay": wd},
    {"params": [params[n] for n in names if params[n].dim() < 2], "weight_decay": 0.0},
]
opt = torch.optim.AdamW(groups, lr=lrs[0], betas=(beta1, beta2), eps=eps)
worst = []
for step, lr in enumerate(lrs):
    for n in names:
        params[n].grad = torch.tensor(z[f"grad.{step}.{n}"], dtype=torch.float64)
    norm = torch.nn.utils.clip_grad_norm_([params[n] for n in names], max_norm).item()
    worst.append((abs(norm - float(z[f"norm.{step}"])) / abs(norm), f"norm at step {step}"))
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


for n in names:
    p = params[n]
    st = opt.state[p]
    worst.append((rel(torch.from_numpy(z[f"final.{n}"]), p.detach()), f"weights {n}"))
    worst.append((rel(torch.from_numpy(z[f"m.{n}"]), st["exp_avg"]), f"exp_avg {n}"))
    worst.append((rel(torch.from_numpy(z[f"v.{n}"]), st["exp_avg_sq"]), f"exp_avg_sq {n}"))
worst.sort(reverse=True)
for err, what in worst[:5]:
    print(f"{what}: relative error {err:.2e}")
if worst[0][0] > TOL:
    print(f"FAIL: {worst[0][1]} differs by {worst[0][0]:.2e} > {TOL}")
    sys.exit(1)
print(f"ok: {len(worst)} quantities within {TOL}")
