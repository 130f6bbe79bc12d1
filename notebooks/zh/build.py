"""Build the Simplified Chinese lessons from the English ones and their translation files.

    .venv/bin/python notebooks/zh/build.py           # write notebooks/zh/NN_*.ipynb, tidy the translation files
    .venv/bin/python notebooks/zh/build.py --check   # write nothing; exit 1 listing what is missing or stale

The English lesson `notebooks/NN_*.ipynb` is the one source of truth. Its code cells are copied byte for byte,
outputs and execution counts included (the code is identical, so the English run is a truthful record of it).
Each markdown cell is replaced by its translation in `notebooks/zh/translations/NN.json`, found by a hash of the
exact English source:

    {"<hash>": {"id": "<cell id>", "en": "<English source>", "zh": "<Chinese source>"}, ...}

An English cell with no translation (new, or changed by one character) is an error naming the lesson, the cell
index and its first line; the build then adds an entry with an empty "zh" for it to the translation file (with
the old text and its translation under "was" when the cell id matches a stale entry), so a translator fills in
"zh" and runs the build again. Entries whose English text no longer occurs are stale: --check reports them, a
build removes them. The Chinese lesson is written only when every one of its cells is translated.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGLISH = HERE.parent
TRANSLATIONS = HERE / "translations"
LESSON = re.compile(r"^(\d\d)_\w+\.ipynb$")

# Put at the top of each Chinese lesson's first markdown cell (after its title).
NOTE = (
    "> **中文版说明**：本课由英文原版 [`{name}`](../{name}) 自动生成，代码单元与英文版逐字相同。"
    "代码的输出取自英文版的运行记录，因此打印的输出、图表标题和练习提示都来自代码，在本版中保持英文。"
    "术语译法见 [术语表](../../docs/glossary.md)。\n"
)


def key(source: str) -> str:
    """The translation key of a markdown cell: sha256 of its exact source, first 16 hex digits."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def source_of(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def as_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def english_lessons() -> list[Path]:
    return sorted(p for p in ENGLISH.glob("[0-9][0-9]_*.ipynb") if LESSON.match(p.name))


def translation_path(lesson: Path) -> Path:
    return TRANSLATIONS / f"{lesson.name[:2]}.json"


def load_translations(lesson: Path) -> dict[str, dict]:
    path = translation_path(lesson)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def dumps(obj) -> str:
    """Notebook and translation files as Jupyter writes notebooks: one-space indent, UTF-8 kept as is."""
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def with_note(zh: str, name: str) -> str:
    note = NOTE.format(name=name)
    lines = as_lines(zh)
    if lines and lines[0].startswith("# "):
        title = lines[0] if lines[0].endswith("\n") else lines[0] + "\n"
        rest = "".join(lines[1:]).lstrip("\n")
        return title + "\n" + note + ("\n" + rest if rest else "")
    return note + "\n" + zh


class Result:
    """What building one lesson gives: the Chinese notebook's text (None while cells are missing), the errors,
    the tidied translation entries (in cell order, stale ones dropped, empty ones added) and the stale keys."""

    def __init__(self, lesson: Path):
        self.lesson = lesson
        self.text: str | None = None
        self.missing: list[str] = []
        self.stale: list[str] = []
        self.entries: dict[str, dict] = {}

    @property
    def target(self) -> Path:
        return HERE / self.lesson.name


def build(lesson: Path) -> Result:
    """The Chinese lesson for one English lesson, from its translation file; writes nothing."""
    result = Result(lesson)
    nb = json.loads(lesson.read_text(encoding="utf-8"))
    old = load_translations(lesson)
    used: set[str] = set()
    cells = []
    first_markdown = True
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            cells.append(copy.deepcopy(cell))
            continue
        en = source_of(cell)
        h = key(en)
        entry = old.get(h)
        if entry is None or entry.get("en") != en:
            entry = {"id": cell.get("id"), "en": en, "zh": ""}
        used.add(h)
        result.entries[h] = entry
        zh = entry.get("zh", "")
        if not zh.strip():
            first = next((line for line in en.splitlines() if line.strip()), "")
            result.missing.append(f"{lesson.name}: cell {index} (id {cell.get('id')}) has no translation: {first!r}")
            zh = en
        if first_markdown:
            zh = with_note(zh, lesson.name)
            first_markdown = False
        out = copy.deepcopy(cell)
        out["source"] = as_lines(zh)
        cells.append(out)
    result.stale = [h for h in old if h not in used]
    # a changed cell keeps its old text and translation beside it, found by cell id, until it is translated anew
    stale_by_id = {old[h].get("id"): old[h] for h in result.stale if old[h].get("id")}
    for entry in result.entries.values():
        if not entry.get("zh", "").strip():
            was = stale_by_id.get(entry.get("id")) or entry.get("was")
            if was:
                entry["was"] = {"en": was["en"], "zh": was.get("zh", "")}
    if not result.missing:
        zh_nb = copy.deepcopy(nb)
        zh_nb["cells"] = cells
        result.text = dumps(zh_nb)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is missing or stale")
    args = parser.parse_args(argv)

    problems: list[str] = []
    results = [build(lesson) for lesson in english_lessons()]
    for r in results:
        problems += r.missing
        if args.check:
            problems += [f"{translation_path(r.lesson).relative_to(ENGLISH.parent)}: stale entry {h} "
                         f"(its English text is no longer in {r.lesson.name}): "
                         f"{next(iter(load_translations(r.lesson)[h]['en'].splitlines()), '')!r}" for h in r.stale]
            if r.text is not None:
                current = r.target.read_text(encoding="utf-8") if r.target.exists() else None
                if current != r.text:
                    what = "is missing" if current is None else "is out of date"
                    problems.append(f"{r.target.relative_to(ENGLISH.parent)} {what}: run notebooks/zh/build.py")
            continue
        TRANSLATIONS.mkdir(parents=True, exist_ok=True)
        path = translation_path(r.lesson)
        tidy = dumps(r.entries)
        if not path.exists() or path.read_text(encoding="utf-8") != tidy:
            path.write_text(tidy, encoding="utf-8")
        if r.text is not None and (not r.target.exists() or r.target.read_text(encoding="utf-8") != r.text):
            r.target.write_text(r.text, encoding="utf-8")
            print(f"wrote {r.target.relative_to(ENGLISH.parent)}")
    known = {f"{lesson.name[:2]}.json" for lesson in english_lessons()}
    for orphan in sorted(p for p in TRANSLATIONS.glob("*.json") if p.name not in known):
        problems.append(f"{orphan.relative_to(ENGLISH.parent)}: no English lesson {orphan.stem}_*.ipynb")
    for orphan in sorted(p for p in HERE.glob("[0-9][0-9]_*.ipynb") if not (ENGLISH / p.name).exists()):
        problems.append(f"{orphan.relative_to(ENGLISH.parent)}: no English lesson of that name")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        if any("has no translation" in p for p in problems):
            print("Translate the cells listed above: fill in their \"zh\" in notebooks/zh/translations/NN.json "
                  "(see docs/glossary.md), then run notebooks/zh/build.py again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
