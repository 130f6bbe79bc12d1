"""Single-line infilling on held-out standard-library code: a FIM-trained model against the same
architecture trained left to right, and SmolLM2 as a bigger reference. Prints one table.

    python bench/eval_infill.py --fim MODEL_DIR --l2r MODEL_DIR [--tasks 200]

Rows (greedy decoding, through labkit's server and the official SDK):
  fim + suffix      the FIM model given prefix and suffix; stops on its own (<|endoftext|>)
  l2r + suffix      the left-to-right model given the same FIM prompt it never trained on
  l2r, prefix only  the left-to-right model continuing the prefix up to the end of the line
  smollm2, prefix   SmolLM2-135M (22x the parameters) continuing the prefix, no suffix
Validation loss is each training run's final left-to-right loss on held-out files
("FIM for free": FIM training should not make it worse). Middle loss is the true line's loss
teacher-forced after the FIM prompt vs after the prefix alone: the gap is what the suffix is worth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import openai
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from labkit.engine import DEFAULT_MODEL
from labkit.server import LocalServer, create_app
from labkit.train.infill import exact, middle_loss, single_line_tasks


def run(client, model: str, tasks, use_suffix: bool, max_tokens: int) -> tuple[float, float]:
    hits = stops = 0
    for task in tqdm(tasks, desc=model, leave=False):
        kw = {"suffix": task.suffix} if use_suffix else {"stop": ["\n"]}
        r = client.completions.create(model=model, prompt=task.prefix, max_tokens=max_tokens, temperature=0, **kw)
        c = r.choices[0]
        hits += exact(c.text, task)
        stops += c.finish_reason == "stop"
    return hits / len(tasks), stops / len(tasks)


def valid_loss(model_dir: Path) -> float:
    return json.loads((model_dir / "train_log.json").read_text())["history"][-1]["valid_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fim", type=Path, required=True)
    ap.add_argument("--l2r", type=Path, required=True)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()

    tasks = single_line_tasks(args.tasks)
    with LocalServer(create_app([str(args.fim), str(args.l2r), DEFAULT_MODEL])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="local", max_retries=0, timeout=600)
        fim, l2r = args.fim.name, args.l2r.name
        rows = [
            ("fim + suffix", *run(client, fim, tasks, True, args.max_tokens), valid_loss(args.fim)),
            ("l2r + suffix (never trained on it)", *run(client, l2r, tasks, True, args.max_tokens),
             valid_loss(args.l2r)),
            ("l2r, prefix only (stop at newline)", *run(client, l2r, tasks, False, args.max_tokens), None),
            ("smollm2-135m, prefix only", *run(client, DEFAULT_MODEL, tasks, False, args.max_tokens), None),
        ]
    print(f"{len(tasks)} single-line infilling tasks from held-out standard-library modules, greedy\n")
    print(f"{'model':38s} {'exact match':>11s} {'stopped':>8s} {'valid loss':>10s}")
    for name, em, stop, loss in rows:
        print(f"{name:38s} {em:11.1%} {stop:8.1%} {'' if loss is None else f'{loss:10.3f}'}")
    print("\n'stopped' = finish_reason 'stop': end-of-text with suffix, the newline stop without")
    print(f"\n{'middle loss, nats/token':38s} {'with suffix':>11s} {'prefix only':>11s}")
    for path in (args.fim, args.l2r):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        with_suffix, prefix_only = (middle_loss(model, tok, tasks, s) for s in (True, False))
        print(f"{path.name:38s} {with_suffix:11.3f} {prefix_only:11.3f}")


if __name__ == "__main__":
    main()
