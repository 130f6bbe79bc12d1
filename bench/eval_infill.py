"""Single-line infilling on held-out standard-library code: a FIM-trained model against the same
architecture trained left to right, and SmolLM2 as a bigger reference. Prints one table.

    python bench/eval_infill.py --fim MODEL_DIR --l2r MODEL_DIR [--tasks 200] [--context 300]

Rows (through labkit's server and the official SDK; greedy unless said):
  fim + suffix      the FIM model given prefix and suffix; stops on its own (<|endoftext|>)
  l2r + suffix      the left-to-right model given the same FIM prompt it never trained on
  l2r, prefix only  the left-to-right model continuing the prefix; its first line is the answer
  smollm2, prefix   SmolLM2-135M (22x the parameters) continuing the prefix, no suffix
  smollm2 + suffix  SmolLM2 inserting by ranking: 8 samples (T=0.8), each tried cut at its line
                    ends; the one after which the suffix is likeliest wins (labkit.engine.ranking)
The left-to-right loss of both models on every window of the validation files, with the paired
difference's 95% interval, tests "FIM for free": FIM training should not make it worse.
Middle loss is the true line's loss teacher-forced after the FIM prompt vs after the prefix
alone: the gap is what the suffix is worth.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import openai
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from labkit.engine import DEFAULT_MODEL
from labkit.server import LocalServer, create_app
from labkit.train.infill import exact, first_line, middle_loss, parses, single_line_tasks
from labkit.train.trainer import TrainConfig, prepare_data, window_losses


def run(client, model: str, tasks, max_tokens: int, suffix: bool, **kw) -> tuple[float, float, float]:
    """Rates of exact matches, of answers the module still parses with, and of finish_reason "stop".
    Without a suffix the answer is the continuation's first line (and "stop" means it reached one)."""
    hits = parsed = stops = 0
    for task in tqdm(tasks, desc=model, leave=False):
        extra = {"suffix": task.suffix} if suffix else {}
        r = client.completions.create(model=model, prompt=task.prefix, max_tokens=max_tokens, **extra, **kw)
        c = r.choices[0]
        answer = c.text if suffix else first_line(c.text)
        hits += exact(answer, task)
        parsed += parses(answer, task)
        stops += c.finish_reason == "stop" if suffix else answer != c.text
    return hits / len(tasks), parsed / len(tasks), stops / len(tasks)


def heldout_losses(model_dir: Path) -> list[float]:
    """Left-to-right loss of every window of the validation files, for the model in model_dir."""
    cfg = TrainConfig(**json.loads((model_dir / "train_log.json").read_text())["config"])
    _, _, valid = prepare_data(cfg)
    return window_losses(AutoModelForCausalLM.from_pretrained(model_dir), valid, cfg.block_size)


def for_free(fim_dir: Path, l2r_dir: Path) -> None:
    """FIM for free: the two models' left-to-right loss on the same held-out windows, and the paired difference."""
    fim, l2r = heldout_losses(fim_dir), heldout_losses(l2r_dir)
    diff = [a - b for a, b in zip(fim, l2r)]
    mean = statistics.fmean
    se = statistics.stdev(diff) / math.sqrt(len(diff))
    print(f"\nleft-to-right loss on all {len(diff)} windows of the validation files (nats/token)")
    print(f"  fim {mean(fim):.4f}   l2r {mean(l2r):.4f}   fim - l2r {mean(diff):+.4f} +- {1.96 * se:.4f} (95%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fim", type=Path, required=True)
    ap.add_argument("--l2r", type=Path, required=True)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--context", type=int, default=300, help="characters of prefix (half as many of suffix)")
    args = ap.parse_args()

    tasks = single_line_tasks(args.tasks, context_chars=args.context)
    with LocalServer(create_app([str(args.fim), str(args.l2r), DEFAULT_MODEL])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="local", max_retries=0, timeout=600)
        fim, l2r, n = args.fim.name, args.l2r.name, args.max_tokens
        greedy, ranked = {"temperature": 0}, {"temperature": 0.8, "best_of": 8, "seed": 0}
        rows = [
            ("fim + suffix", *run(client, fim, tasks, n, True, **greedy)),
            ("l2r + suffix (never trained on it)", *run(client, l2r, tasks, n, True, **greedy)),
            ("l2r, prefix only (first line)", *run(client, l2r, tasks, n, False, **greedy)),
            ("smollm2-135m, prefix only (first line)", *run(client, DEFAULT_MODEL, tasks, n, False, **greedy)),
            ("smollm2-135m + suffix, ranked (8, T=0.8)", *run(client, DEFAULT_MODEL, tasks, n, True, **ranked)),
        ]
    print(f"{len(tasks)} single-line infilling tasks from held-out standard-library modules "
          f"({args.context} characters of prefix, {args.context // 2} of suffix)\n")
    print(f"{'model':42s} {'exact match':>11s} {'parses':>7s} {'stopped':>8s}")
    for name, em, ok, stop in rows:
        print(f"{name:42s} {em:11.1%} {ok:7.1%} {stop:8.1%}")
    print("\n'parses' = the module still parses with the answer as the line (necessary, not sufficient)")
    print("'stopped' = finish_reason 'stop' with a suffix; without, the continuation reached a second line")
    print(f"\n{'middle loss, nats/token':38s} {'with suffix':>11s} {'prefix only':>11s}")
    for path in (args.fim, args.l2r):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        with_suffix, prefix_only = (middle_loss(model, tok, tasks, s) for s in (True, False))
        print(f"{path.name:38s} {with_suffix:11.3f} {prefix_only:11.3f}")
    for_free(args.fim, args.l2r)


if __name__ == "__main__":
    main()
