"""Does a CPU fine-tune change behaviour? SmolLM2-135M before and after supervised fine-tuning on
data/finetune/json_train.jsonl, scored on the held-out JSON prompts (valid reply = a JSON object with
a string "answer" and a "confidence" from 0 to 1). Prints the rates and the fine-tune's wall time.

    python bench/finetune_json.py [--epochs 2] [--out /tmp/ft-json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import openai
from tqdm.auto import tqdm

from labkit import DATA
from labkit.engine import DEFAULT_MODEL
from labkit.engine.registry import convert_smollm2
from labkit.finetune.sft import Hyper, sft
from labkit.server import LocalServer, create_app


def valid_reply(text: str) -> bool:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return False
    return (isinstance(obj, dict) and set(obj) == {"answer", "confidence"} and isinstance(obj["answer"], str)
            and isinstance(obj["confidence"], int | float) and 0 <= obj["confidence"] <= 1)


def rate(model: str, prompts: list[list[dict]]) -> tuple[float, str]:
    with LocalServer(create_app([model])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=600)
        name = client.models.list().data[0].id
        replies = [client.chat.completions.create(model=name, messages=p, max_tokens=48, temperature=0)
                   .choices[0].message.content for p in tqdm(prompts, desc=name, leave=False)]
    return sum(map(valid_reply, replies)) / len(replies), replies[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ft-json"))
    args = ap.parse_args()
    lines = [json.loads(x) for x in (DATA / "finetune" / "heldout_prompts.jsonl").read_text().splitlines() if x]
    prompts = [x["messages"] for x in lines if x["task"] == "json"]
    before, example_before = rate(DEFAULT_MODEL, prompts)
    started = time.perf_counter()
    bar = tqdm(desc="fine-tuning", unit="step")

    def progress(event: dict) -> None:
        if "step" in event:
            bar.total = event["total_steps"]
            bar.update(1)
            bar.set_postfix(loss=f"{event['train_loss']:.3f}")

    sft(convert_smollm2(), DATA / "finetune" / "json_train.jsonl", args.out, Hyper(n_epochs=args.epochs),
        valid_file=DATA / "finetune" / "json_valid.jsonl", on_event=progress)
    bar.close()
    seconds = time.perf_counter() - started
    after, example_after = rate(str(args.out), prompts)
    print(f"{len(prompts)} held-out prompts; valid JSON replies: base {before:.0%}, fine-tuned {after:.0%}")
    print(f"fine-tune: 60 examples x {args.epochs} epochs in {seconds:.0f} s on this machine")
    print(f"first prompt, base:       {example_before!r}\nfirst prompt, fine-tuned: {example_after!r}")


if __name__ == "__main__":
    main()
