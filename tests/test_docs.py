"""The README a newcomer reads: its first screen gives the two commands, its lessons table renders as one
table listing every lesson, and the documents and files it points to are in the project."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_first_screen_gives_the_two_commands():
    first_screen = README.split("\n---\n", 1)[0]
    assert len(first_screen.splitlines()) <= 25
    commands = re.findall(r"^make (\w+)", first_screen, flags=re.M)
    assert commands == ["lab", "test"], commands
    assert "make test" in (ROOT / ".ci" / "run").read_text(), ".ci/run runs the README's test command"


def test_the_lessons_table_is_one_table_with_every_lesson():
    """A blank line inside a Markdown table ends it: the rows after it render as plain text."""
    section = README.split("## Lessons", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    table = [line for line in section if line.strip()]
    assert all(line.startswith("|") for line in table), "only table rows under ## Lessons"
    first, last = section.index(table[0]), section.index(table[-1])
    assert all(line.startswith("|") for line in section[first:last + 1]), "no blank line inside the table"
    listed = re.findall(r"`notebooks/(\d\d_\w+\.ipynb)`", "\n".join(table))
    assert listed == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), listed


def test_what_the_readme_points_to_is_in_the_project():
    for path in re.findall(r"`((?:docs|tests|labkit|bench|notebooks)/[\w./-]+\.(?:md|py|ipynb|yaml))`", README):
        assert (ROOT / path).exists(), f"README names {path}, which is not in the project"
    assert "docs/architecture.md" in README
    assert "../shared" not in README and "steering repo" not in README
