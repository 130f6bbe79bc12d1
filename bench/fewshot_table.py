"""k-shot accuracy of a model on each few-shot task in labkit/data/fewshot, as one table.

    python bench/fewshot_table.py [--items 24] [--draws 2]     # the local default model
    OPENAI_API_KEY=... python bench/fewshot_table.py          # the same on the OpenAI API

Shots are drawn from the items not being asked (balanced for the labeled tasks, whose asked items
are balanced too: fewshot.split), as chat turns. Templates: topics and sentiment by logprob choice,
dates by exact match, jargon by fuzzy match against the references. Each cell is the mean over draws,
with the Wilson interval of the pooled answers; under each labeled task, the share of the answers
that went to its most frequent answer (100%: one label for everything, and the accuracy is chance).
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import labkit
from labkit import evals, fewshot

TASKS = {
    "topics": ("Classify the topic of the text as sports, food, weather or technology.",
               evals.Choice(["sports", "food", "weather", "technology"]), True),
    "sentiment": ("Classify the sentiment of the review as positive or negative.",
                  evals.Choice(["positive", "negative"]), True),
    "dates": ("Rewrite the date in ISO format, YYYY-MM-DD. Reply with the date only.",
              evals.ExactMatch(max_tokens=12), False),
    "jargon": ("You translate corporate jargon into plain English. Reply with one short sentence.",
               evals.FuzzyMatch(max_tokens=40), False),
}


def prompt(system: str, shots: list[dict]):
    return lambda item: fewshot.chat(system, shots, item)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=24, help="items asked per task (the rest are the shot pool)")
    ap.add_argument("--draws", type=int, default=2, help="random draws of the shots per k")
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    args = ap.parse_args()

    lab = labkit.Lab()
    print(f"{lab.backend} backend, {lab.models.chat}; {args.items} items per task, {args.draws} draws of shots\n")
    print(f"{'task':10s} " + " ".join(f"{f'{k}-shot':>17s}" for k in args.shots))
    for name, (system, template, balanced) in TASKS.items():
        data = evals.load(name)
        items, pool = fewshot.split(data, args.items) if balanced else (data[: args.items], data[args.items :])
        cells, top = [], []
        for k in args.shots:
            runs = [evals.run(lab, items, template, prompt(system, fewshot.draw(pool, k, seed=d, balanced=balanced)),
                              desc=f"{name} {k}-shot") for d in range(args.draws)]
            hits = sum(int(r.df["correct"].sum()) for r in runs)
            lo, hi = evals.wilson(hits, sum(r.n for r in runs))
            cells.append(f"{statistics.mean(r.accuracy for r in runs):5.0%} ({lo:3.0%}-{hi:3.0%})")
            answers = Counter(a for r in runs for a in r.df["answer"])
            label, count = answers.most_common(1)[0]
            top.append(f"{label or '(none)'} {count / answers.total():.0%}")
        print(f"{name:10s} " + " ".join(f"{c:>17s}" for c in cells), flush=True)
        if balanced:
            print(f"{'  answered':10s} " + " ".join(f"{c[:17]:>17s}" for c in top), flush=True)


if __name__ == "__main__":
    main()
