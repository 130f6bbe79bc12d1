"""Short gaps whose ending makes the middle obvious, and how often a model fills them (lesson 02).

Each `Gap` is a prefix and a suffix with one missing word or phrase that the suffix gives away ("Monday,
Tuesday," ... " Thursday, Friday."), and a pattern a good middle matches. They are the kind of insertion the
original post's clues are about: a constrained gap with a natural place to stop. `sweep` asks a served model
(`lab.for_role(...)`) for each gap's middle under several seeds and records whether it was good and how it
finished, so a lesson can compare settings (`best_of`, `max_tokens`, suffix or none) and `finish_reason`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labkit import evals
from labkit.engine.ranking import cut_points


@dataclass(frozen=True)
class Gap:
    name: str
    prefix: str
    suffix: str
    answer: str  # a regular expression a good middle contains


GAPS: tuple[Gap, ...] = (  # each suffix starts a new line or sentence: where the server tries to end a middle
    Gap("weekdays", "The week:\n1. Monday\n2. Tuesday\n3.", "\n4. Thursday\n5. Friday", r"Wednesday"),
    Gap("months", "The year:\n1. January\n2. February\n3.", "\n4. April\n5. May", r"March"),
    Gap("animals", "- Dogs are loyal animals.\n- Lions are ferocious animals.\n- Dolphins",
        "\n- Horses are majestic animals.", r"^ are \w+ animals\.$"),
    Gap("hot chocolate", "How to make a delicious hot chocolate:\n1.",
        "\n2. Put hot chocolate in a cup\n3. Add boiling water to the cup\n4. Enjoy the hot chocolate", r"(?i)boil"),
    Gap("violets", "Roses are red,\nViolets are", "\nSugar is sweet,\nAnd so are you.", r"(?i)blue"),
    Gap("area", "def area(width, height):\n    return", "\n\nprint(area(3, 4))  # prints 12",
        r"width \* height|height \* width"),
    Gap("umbrella", "She opened her umbrella because it was", " The streets stayed wet for hours.", r"(?i)rain"),
    Gap("fruit", "My favourite fruit is the", " It is long, yellow and curved, and monkeys love it.", r"(?i)banana"),
    Gap("thirsty", "I was thirsty, so I drank a glass of", " It was cold and clear, straight from the tap.",
        r"(?i)water"),
    Gap("capital", "The capital of France is", " The Eiffel Tower stands in this city.", r"Paris"),
    Gap("opposite", "The opposite of hot is", " Ice and snow feel that way.", r"(?i)cold"),
    Gap("sky", "On a clear day the sky is", " The sea looks the same colour.", r"(?i)blue"),
)


# The same gaps with the examples around them taken out (the original post's "clues"): same answer, fewer hints.
FEWER_CLUES: tuple[Gap, ...] = (
    Gap("weekdays", "The week:\n3.", "\n4. Thursday", r"Wednesday"),
    Gap("months", "The year:\n3.", "\n4. April", r"March"),
    Gap("animals", "- Dolphins", "\n- Horses are majestic animals.", r"^ are \w+ animals\.$"),
    Gap("hot chocolate", "How to make a delicious hot chocolate:\n1.", "\n2. Enjoy the hot chocolate", r"(?i)boil"),
    Gap("violets", "Violets are", "\nAnd so are you.", r"(?i)blue"),
)


def good(text: str, gap: Gap) -> bool:
    """The middle holds what the gap asks for and ends where the suffix begins: one line, and where the suffix
    starts a new sentence, one sentence ending in . ! or ? (a middle that runs on into the suffix's text is not
    good, even if it holds the answer)."""
    middle = text.rstrip(" ")
    if not middle.strip() or "\n" in middle or re.search(gap.answer, middle) is None:
        return False
    if not gap.suffix.startswith("\n"):  # the suffix starts a sentence: the middle ends one, and only one
        return middle[-1] in ".!?" and len(re.findall(r"[.!?](\s|$)", middle)) == 1
    return True


def first_cut(text: str) -> str:
    """A continuation cut at its first sentence or line end, as the server would first try to end a middle: what
    a prefix-only continuation gives as a middle."""
    return text[: cut_points(text)[0]]


def sweep(served, gaps=GAPS, seeds=range(3), suffix: bool = True, concurrency: int = 8, **kw) -> list[dict]:
    """One /v1/completions request per gap and seed on `served` (from `lab.for_role`), `concurrency` at a time:
    with the gap's suffix, or (suffix=False) the prefix alone, as a plain continuation. `kw` goes to the request
    (max_tokens, best_of, temperature, ...). One row per request: gap, seed, text, finish_reason, good. A
    prefix-only continuation is cut at its first sentence or line end (`first_cut`) before it is judged."""
    jobs = [(g, s) for g in gaps for s in seeds]

    def ask(job):
        g, seed = job
        extra = {"suffix": g.suffix} if suffix else {}
        return served.client.completions.create(model=served.model, prompt=g.prefix, seed=seed, **extra,
                                                **kw).choices[0]

    choices = evals.concurrently(ask, jobs, concurrency=concurrency)
    rows = []
    for (g, s), c in zip(jobs, choices):
        text = c.text if suffix else first_cut(c.text)  # prefix only: cut where the server would first try
        rows.append({"gap": g.name, "seed": s, "text": text, "finish_reason": c.finish_reason, "good": good(text, g)})
    return rows


def rate(rows: list[dict]) -> float:
    """The share of rows with a good middle."""
    if not rows:
        raise ValueError("no rows")
    return sum(r["good"] for r in rows) / len(rows)


def by_finish(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """finish_reason -> (good middles, answers) over rows: does "stop" predict a better middle?"""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        g, n = out.get(r["finish_reason"], (0, 0))
        out[r["finish_reason"]] = (g + r["good"], n + 1)
    return out
