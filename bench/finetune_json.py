"""Does a CPU fine-tune change behaviour, and how long does it take? SmolLM2-135M before and after a
fine-tuning job on labkit/data/finetune/json_train.jsonl (through the local server's Files and Fine-tuning
APIs, as lesson 04 runs it), scored on the 12 held-out JSON prompts with labkit.evals.JsonReply.

    python bench/finetune_json.py [--examples 60] [--epochs 2] [--lr 1.0]
"""

from __future__ import annotations

import argparse
import io
import time

from labkit import DATA, Lab, evals
from labkit.finetune.follow import follow

SHAPE = evals.JsonReply({"answer": str, "confidence": float})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=60, help="first N lines of json_train.jsonl")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1.0, help="learning_rate_multiplier")
    args = ap.parse_args()
    lab = Lab("local")
    lines = (DATA / "finetune" / "json_train.jsonl").read_bytes().splitlines(keepends=True)[: args.examples]
    items = [x for x in evals.load("heldout_prompts", DATA / "finetune") if x["task"] == "json"]
    before = evals.run(lab, items, SHAPE, prompt=lambda x: x["input"], model=lab.models.fine_tune)
    upload = lab.client.files.create(file=("json_train.jsonl", io.BytesIO(b"".join(lines))), purpose="fine-tune")
    started = time.perf_counter()
    job = lab.client.fine_tuning.jobs.create(
        model=lab.models.fine_tune, training_file=upload.id, seed=0,
        hyperparameters={"n_epochs": args.epochs, "learning_rate_multiplier": args.lr})
    job, metrics = follow(lab.client, job.id, plot=False)
    seconds = time.perf_counter() - started
    after = evals.run(lab, items, SHAPE, prompt=lambda x: x["input"], model=job.fine_tuned_model)
    print(f"{len(lines)} examples x {args.epochs} epochs (lr multiplier {args.lr}): {len(metrics)} steps, "
          f"{seconds:.0f} s for the job on this machine, final training loss {metrics.train_loss.iloc[-1]:.3f}")
    print(f"valid JSON on {len(items)} held-out prompts: base {before.accuracy:.0%}, fine-tuned {after.accuracy:.0%}")
    print(f"first prompt, base:       {before.df.answer[0]!r}\nfirst prompt, fine-tuned: {after.df.answer[0]!r}")


if __name__ == "__main__":
    main()
