"""How good is the scaling-law prediction? For each seed, train a profile's ladder and its ~10x target run,
fit L(C) = a*C^b + c on the ladder, and compare the predicted loss of the target with its measured loss.
Also the same prediction from the ladder with two smaller rungs added (on the byte-statistics plateau), with
compute counted as 6 x non-embedding parameters x tokens (Kaplan's N), and with every rung on the target's
schedule length instead of its own (the three mistakes of lesson 06).

    python bench/scaling_prediction.py [--profile default] [--seeds 0,1,2] [--results runs/scaling-bench.jsonl]

Results go to a JSONL as they finish, so an interrupted bench resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from labkit import scaling


def error(law: scaling.PowerLaw, flops: float, loss: float) -> float:
    return float(law.predict(flops)) / loss - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=sorted(scaling.PROFILES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", default="runs/scaling-bench.jsonl")
    args = ap.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    config = dataclasses.replace(scaling.PROFILES[args.profile], seeds=seeds)
    started = time.perf_counter()
    ladder = scaling.sweep(config, args.results)
    small = scaling.sweep(config, args.results, shapes=scaling.below_ladder(config))
    targets = {r["seed"]: r for r in scaling.sweep(config, args.results, shapes=(config.target,))}
    target_steps = targets[seeds[0]]["steps"]
    unmatched = scaling.sweep(dataclasses.replace(config, schedule_steps=target_steps), args.results)
    print(f"{args.profile} profile, seeds {seeds}: {time.perf_counter() - started:.0f} s of training "
          "(0 if every run was already in the results file)")
    rows = []
    for seed in seeds:
        mine = [r for r in ladder if r["seed"] == seed]
        t = targets[seed]
        exact = scaling.fit_power_law([r["flops"] for r in mine], [r["loss"] for r in mine])
        kaplan = scaling.fit_power_law([r["flops_6N_non_embedding"] for r in mine], [r["loss"] for r in mine])
        other = [r for r in unmatched if r["seed"] == seed]
        late = scaling.fit_power_law([r["flops"] for r in other], [r["loss"] for r in other])
        extended = mine + [r for r in small if r["seed"] == seed]
        low = scaling.fit_power_law([r["flops"] for r in extended], [r["loss"] for r in extended])
        rows.append((seed, t["loss"], error(exact, t["flops"], t["loss"]), error(low, t["flops"], t["loss"]),
                     error(kaplan, t["flops_6N_non_embedding"], t["loss"]), error(late, t["flops"], t["loss"])))
        largest, smallest = max(r["flops"] for r in mine), min(r["flops"] for r in mine)
        print(f"seed {seed}: {len(mine)} rungs spanning {largest / smallest:.0f}x compute; target "
              f"{t['flops'] / largest:.1f}x the largest; fit {exact}")
    print("\nseed  measured     ladder  + smaller rungs  6N non-embedding  unmatched schedules   (prediction error)")
    for seed, loss, *errors in rows:
        print(f"{seed:4d}  {loss:8.4f}  " + "  ".join(f"{e:+{w}.2%}" for e, w in zip(errors, (9, 15, 16, 19))))
    for name, k in (("ladder", 2), ("+ smaller rungs", 3), ("6N non-embedding", 4), ("unmatched schedules", 5)):
        errs = [abs(r[k]) for r in rows]
        print(f"{name:20s} mean |error| {statistics.mean(errs):.2%}, worst {max(errs):.2%}")


if __name__ == "__main__":
    main()
