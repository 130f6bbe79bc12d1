"""Training speed and quality with bf16 autocast against fp32, same model, data and seed.

    python bench/bench_train.py [--steps 150] [--profile default]

Prints tokens/s (including one validation pass) and the validation loss each reaches after the
same number of steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile

import torch

from labkit.train import PROFILES, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    args = ap.parse_args()
    base = dataclasses.replace(PROFILES[args.profile], max_steps=args.steps, eval_every=args.steps,
                               warmup_steps=min(PROFILES[args.profile].warmup_steps, args.steps // 4))
    print(f"{args.profile} profile, {args.steps} steps of {base.tokens_per_step:,} tokens, "
          f"{torch.get_num_threads()} threads")
    rows = []
    for bf16 in (False, True):
        with tempfile.TemporaryDirectory() as out:
            log = json.loads((train(dataclasses.replace(base, bf16=bf16), out, resume=False, progress=False)
                              / "train_log.json").read_text())
        rate = args.steps * base.tokens_per_step / log["train_seconds"]
        rows.append(("bf16 autocast" if log["bf16"] else "fp32", rate, log["history"][-1]["valid_loss"]))
    print(f"\n{'':14s} {'tokens/s':>9s} {'valid loss':>10s}")
    for name, rate, loss in rows:
        print(f"{name:14s} {rate:9,.0f} {loss:10.3f}")
    print(f"bf16 speed-up: {rows[1][1] / rows[0][1]:.2f}x; loss difference {rows[1][2] - rows[0][2]:+.3f}")


if __name__ == "__main__":
    main()
