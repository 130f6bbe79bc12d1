"""Solutions to lesson 04's exercises, computed the way the lesson does."""

from __future__ import annotations

import json
from pathlib import Path

from labkit import finetune
from labkit.finetune.checks import ROLES  # the roles validate knows


def cost_for_epochs(report, price, epochs: int = 5) -> float:
    """Exercise 1: the file is billed once per epoch, at the training price per 1K tokens."""
    return price.training_cost(report.billed_tokens, epochs)


def auto_epochs(examples: int = 20) -> int:
    """Exercise 2: 'auto' is 3 epochs, raised for a small file until examples x epochs reaches 100."""
    return finetune.default_epochs(examples)


def fix_bad_role(path, line: int = 3) -> dict:
    """Exercise 3: validate names the message with the unknown role (messages[1], 'narrator'); drop it."""
    example = json.loads(Path(path).read_text().splitlines()[line - 1])
    example["messages"] = [m for m in example["messages"] if m["role"] in ROLES]
    return example


def fact_shares(side_by_side) -> tuple[float, float]:
    """Exercise 4: over the questions with an expected answer, the share of replies that contain it, for the
    base model and the fine-tuned one."""
    rows = side_by_side[side_by_side.ideal.astype(bool)]

    def share(column):
        return sum(i.lower() in a.lower() for i, a in zip(rows.ideal, rows[column])) / len(rows)

    return share("base"), share("fine_tuned")
