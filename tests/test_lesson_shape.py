"""What every lesson promises a student, read from the committed notebooks: it opens with its running time
(the saved run's own cell timings), ends with a summary its cells computed and then 3-5 exercises, each checked
by labkit.exercises; and it names "the original posts", never an undefined "seed document"."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUNNING = re.compile(r"Running time: about (\d+) minutes? on a 2-core laptop CPU \(default profile\)\.")


def cells(path: Path) -> list[dict]:
    return [{**c, "source": "".join(c["source"]) if isinstance(c["source"], list) else c["source"]}
            for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def seconds(cell: dict) -> float:
    e = cell.get("metadata", {}).get("execution", {})
    if "shell.execute_reply" not in e or "iopub.execute_input" not in e:
        return 0.0
    t = [datetime.fromisoformat(e[k].replace("Z", "+00:00")) for k in ("iopub.execute_input", "shell.execute_reply")]
    return (t[1] - t[0]).total_seconds()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_a_lesson_opens_with_the_running_time_of_its_saved_run(path):
    nb = cells(path)
    first = next(c for c in nb if c["cell_type"] == "markdown")
    found = RUNNING.search(first["source"])
    assert found, f"{path.name}: the first markdown cell states 'Running time: about N minutes on a 2-core laptop " \
                  f"CPU (default profile).'"
    stated = int(found.group(1))
    timed = [seconds(c) for c in nb if c["cell_type"] == "code"]
    assert all(timed), f"{path.name}: every code cell of the saved run carries its timing (re-execute the lesson)"
    measured = sum(timed) / 60
    assert math.ceil(measured) - 1 <= stated <= math.ceil(measured) + 1, \
        f"{path.name} says about {stated} minutes; its saved run's cells took {measured:.1f}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_a_lesson_ends_with_a_computed_summary_then_three_to_five_checked_exercises(path):
    nb = cells(path)
    heads = [i for i, c in enumerate(nb)
             if c["cell_type"] == "markdown" and re.match(r"##\s*(\d+\s*·\s*)?Summary", c["source"].lstrip())]
    assert len(heads) == 1, f"{path.name}: one '## Summary' section"
    after = nb[heads[0] + 1:]
    assert after and after[0]["cell_type"] == "code" and "print" in after[0]["source"], \
        f"{path.name}: the summary is printed by a code cell from the lesson's own variables"
    module = f"lesson{path.name[:2]}"
    checks = [c for c in after if c["cell_type"] == "code" and re.search(rf"\b{module}\.check_\d", c["source"])]
    assert 3 <= len(checks) <= 5, f"{path.name}: 3-5 exercises after the summary, each calling {module}.check_k"
    printed = "".join("".join(o.get("text", "")) for c in checks for o in c.get("outputs", []))
    assert printed.count("not answered yet") == len(checks), \
        f"{path.name}: the saved lesson leaves its exercises to the student (each check says 'not answered yet')"
    assert (ROOT / "notebooks" / "solutions" / f"{module}.py").is_file(), f"solutions for {path.name}"
    assert (ROOT / "tests" / f"test_exercises_{path.name[:2]}.py").is_file(), f"tests of {path.name}'s checks"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_a_lesson_credits_the_original_posts_not_a_seed_document(path):
    prose = "\n".join(c["source"] for c in cells(path) if c["cell_type"] == "markdown")
    assert not re.search(r"seed document|the seed's|the seed (post|says|asks|shows)", prose, re.I), \
        f"{path.name}: say 'the original posts' (credited in the README), not 'the seed document'"
