#!/usr/bin/env python3
"""Compares two runs of one experiment, trial by trial: each trial's phase and the last value of a
metric (default eval/loss), as two databases hold them (e.g. one filled by the binaries before a
change and one after). Exit 1 when a phase differs or a value differs by more than --tol.

    scripts/compare-runs.py OLD.db NEW.db EXPERIMENT [--metric eval/loss] [--tol 1e-4]

Reads each database through `orrery show --json` (ORRERY, default target/debug/orrery).
"""
import argparse
import json
import os
import subprocess
import sys


def board(db, experiment, orrery):
    out = subprocess.run([orrery, "--db", db, "show", experiment, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return {r["index"]: r for r in json.loads(out)["rows"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("experiment")
    ap.add_argument("--metric", default="eval/loss")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    orrery = os.environ.get("ORRERY", "target/debug/orrery")
    old, new = board(a.old, a.experiment, orrery), board(a.new, a.experiment, orrery)
    bad = 0
    worst = 0.0
    print(f"{'trial':>5}  {'phase (old → new)':<24} {a.metric + ' old':>16} {'new':>16} {'|diff|':>10}  params")
    for i in sorted(set(old) | set(new)):
        o, n = old.get(i), new.get(i)
        if o is None or n is None:
            print(f"{i:>5}  only in {'old' if n is None else 'new'}")
            bad += 1
            continue
        last = lambda r: (r["summaries"].get(a.metric) or {}).get("last")
        lo, ln = last(o), last(n)
        diff = abs(lo - ln) if isinstance(lo, (int, float)) and isinstance(ln, (int, float)) else None
        ok = o["phase"] == n["phase"] and (diff is not None and diff <= a.tol or lo == ln)
        bad += not ok
        worst = max(worst, diff or 0.0)
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(o["params"].items()))
        print(f"{i:>5}  {o['phase'] + ' → ' + n['phase']:<24} {lo!s:>16} {ln!s:>16} "
              f"{'' if diff is None else f'{diff:.2e}':>10}  {params}{'' if ok else '  <-- differs'}")
    print(f"{len(old)} trials; largest |diff| {worst:.2e} (tolerance {a.tol:g}); {bad} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
