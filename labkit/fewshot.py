"""Few-shot prompts: the same examples as chat turns or as one completion prompt, drawn reproducibly.

    asked, pool = fewshot.split(items, 32)          # 32 items to ask, as many of each label; the rest for shots
    shots = fewshot.draw(items, k=4, seed=0, exclude=item)
    fewshot.chat(system, shots, item)     # [system, user, assistant, ..., user]
    fewshot.text(instruction, shots, item)  # "instruction\n\nInput: ...\nOutput: ...\n\nInput: ...\nOutput:"
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def answer(item: dict) -> str:
    """The reference answer a shot shows: the ideal, or the first of several."""
    ideal = item["ideal"]
    return ideal if isinstance(ideal, str) else ideal[0]


def split(items: Sequence[dict], n: int) -> tuple[list[dict], list[dict]]:
    """The items to ask and the pool to draw shots from: n items with as many of each label as possible (the
    first of each in file order, kept in file order), and every other item. With balanced labels, a model that
    gives one label for everything scores exactly chance (1 / number of labels)."""
    if not 0 < n < len(items):
        raise ValueError(f"n must be between 1 and {len(items) - 1} (the pool needs an item), got {n}")
    labels = sorted({answer(it) for it in items})
    quota = {label: n // len(labels) + (i < n % len(labels)) for i, label in enumerate(labels)}
    chosen = set()
    for i, it in enumerate(items):
        if quota.get(answer(it), 0) > 0:
            quota[answer(it)] -= 1
            chosen.add(i)
    if len(chosen) < n:
        raise ValueError(f"cannot take {n} items balanced over {len(labels)} labels: a label has too few items")
    return [it for i, it in enumerate(items) if i in chosen], [it for i, it in enumerate(items) if i not in chosen]


def draw(items: Sequence[dict], k: int, seed: int, exclude: dict | None = None, balanced: bool = False,
         only: str | None = None) -> list[dict]:
    """k shots from items (never `exclude`, the item being asked), in random order.

    balanced: as many of each label as possible (labels taken from `answer`), interleaved at random.
    only: every shot has this label (the unbalanced extreme)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    rng = random.Random(seed)
    pool = [it for it in items if it is not exclude and (only is None or answer(it) == only)]
    if k > len(pool):
        raise ValueError(f"asked for {k} shots but only {len(pool)} items are available")
    if not balanced:
        return rng.sample(pool, k)
    by_label: dict[str, list[dict]] = {}
    for it in pool:
        by_label.setdefault(answer(it), []).append(it)
    labels = sorted(by_label)
    shots = []
    for i in range(k):
        group = by_label[labels[i % len(labels)]]
        shots.append(group.pop(rng.randrange(len(group))))
    rng.shuffle(shots)
    return shots


def chat(system: str | None, shots: Sequence[dict], item: dict) -> list[dict]:
    """Shots as alternating user/assistant turns, then the item as the last user message (the seed's form)."""
    messages = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages += [{"role": "user", "content": shot["input"]}, {"role": "assistant", "content": answer(shot)}]
    return messages + [{"role": "user", "content": item["input"]}]


def text(instruction: str | None, shots: Sequence[dict], item: dict, input_label: str = "Input",
         output_label: str = "Output") -> str:
    """Shots written out in one completion prompt, ending where the model should write the answer."""
    blocks = [instruction] if instruction else []
    blocks += [f"{input_label}: {s['input']}\n{output_label}: {answer(s)}" for s in shots]
    blocks.append(f"{input_label}: {item['input']}\n{output_label}:")
    return "\n\n".join(blocks)
