"""Build the Simplified Chinese lessons from the English ones and their translation files.

    .venv/bin/python notebooks/zh/build.py           # write notebooks/zh/NN_*.ipynb, tidy the translation files
    .venv/bin/python notebooks/zh/build.py --check   # write nothing; exit 1 listing what is missing or stale

The English lesson `notebooks/NN_*.ipynb` is the one source of truth. `notebooks/zh/translations/NN.json` holds
the Chinese for its words, each entry found by a hash of the exact English text:

    {"<hash>": {"id": "<cell id>", "en": "<English>", "zh": "<Chinese>"}, ...}

* A markdown cell is replaced by its translation.
* A code cell keeps its code; only the words in it change: a string literal or a comment with an entry of kind
  "code" is replaced by its "zh" (an f-string keeps its {placeholders}; `skeleton` is what stays equal, and the
  tests check it). Every comment and every string with a word and a space or colon gets an entry: "zh" null keeps the
  English on purpose (a prompt the model reads, a column a later cell looks up). The lesson's
  `labkit.set_language("en")` has the entry "en" -> "zh", so labkit's own messages follow.
* A code cell's outputs come from running the Chinese lesson: a cell whose Chinese source is what the last run
  ran keeps that run's outputs; a changed one is left without outputs until the lesson runs again:

      cd notebooks/zh && ../../.venv/bin/jupyter nbconvert --to notebook --execute --inplace NN_*.ipynb
      cd ../.. && .venv/bin/python notebooks/zh/build.py

An English text with no translation (new, or changed by one character) is an error naming the lesson, the cell
and its first line; the build then adds an entry with an empty "zh" for it (with the old text and its
translation under "was" when the cell id matches a stale entry), so a translator fills in "zh" and runs the
build again. Entries whose English text no longer occurs are stale: --check reports them, a build removes them.
The Chinese lesson is written only when every one of its texts is translated.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import io
import json
import re
import sys
import tokenize
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGLISH = HERE.parent
TRANSLATIONS = HERE / "translations"
LESSON = re.compile(r"^(\d\d)_\w+\.ipynb$")

# Put at the top of each Chinese lesson's first markdown cell (after its title).
NOTE = (
    "> **中文版说明**：本课由英文原版 [`{name}`](../{name}) 自动生成：代码与英文版相同，只有字符串和注释译成了中文，"
    "`labkit.set_language(\"zh\")` 让 labkit 的图表标题和练习提示也用中文。输出来自运行本中文版。"
    "术语译法见 [术语表](../../docs/glossary.md)。\n"
)
RUN = "cd notebooks/zh && ../../.venv/bin/jupyter nbconvert --to notebook --execute --inplace {name}"
WORD = re.compile(r"[A-Za-z]{2,}")
FSTRING = ("FSTRING_START", "FSTRING_END")  # Python 3.12+ splits an f-string into tokens


def key(source: str) -> str:
    """The translation key of a markdown cell: sha256 of its exact source, first 16 hex digits."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def code_key(text: str) -> str:
    """The translation key of a string literal or comment in a code cell."""
    return key("code\0" + text)


def words(source: str) -> list[tuple[int, int, str, str]]:
    """The string literals and comments of a code cell's source: (start, end, "string"|"comment", text), by
    character offsets. Implicitly concatenated strings are one literal each."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    found, depth, begin = [], 0, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[tok.type]
        if name == FSTRING[0]:
            depth, begin = depth + 1, begin if depth else tok.start
        elif name == FSTRING[1]:
            depth -= 1
            if not depth:
                found.append((offset(begin), offset(tok.end), "string"))
        elif depth:
            continue
        elif tok.type == tokenize.STRING:
            found.append((offset(tok.start), offset(tok.end), "string"))
        elif tok.type == tokenize.COMMENT:
            found.append((offset(tok.start), offset(tok.end), "comment"))
    return [(a, b, kind, source[a:b]) for a, b, kind in found]


def is_prose(text: str, kind: str) -> bool:
    """A text a translator must decide on: every comment, and every string with a word and a space or a colon
    outside its {placeholders} (a label, a sentence, a prompt; not a bare key such as "answer")."""
    if kind == "comment":
        return True
    body = re.sub(r"\{[^{}]*\}", " ", text).lstrip("rRfFbBuU")[1:-1]
    return bool(WORD.search(body)) and re.search(r"[\s:]", body) is not None


def translate_code(source: str, entries: dict[str, dict]) -> str:
    """`source` with each string literal and comment that has a Chinese entry replaced by it."""
    out = source
    for start, end, _, text in reversed(words(source)):
        zh = entries.get(code_key(text), {}).get("zh")
        if zh:
            out = out[:start] + zh + out[end:]
    return out


def placeholders(literal: str) -> list[str]:
    """An f-string's replacement fields (expression, conversion, format spec), sorted: what its translation keeps."""
    node = ast.parse(literal.strip(), mode="eval").body
    fields = [n for n in ast.walk(node) if isinstance(n, ast.FormattedValue)]
    return sorted(ast.dump(n) for n in fields)


def prefix(literal: str) -> str:
    """A string literal's prefix (f, r, b, rb ...), lower-cased: a translation keeps it."""
    return re.match(r"[A-Za-z]*", literal).group().lower()


def skeleton(source: str) -> list[tuple]:
    """A code cell's tokens with the words taken out: equal for an English cell and its translation."""
    shape, depth = [], 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[tok.type]
        if name in FSTRING or depth:
            if name == FSTRING[0] and not depth:
                shape.append(("string", prefix(tok.string)))
            depth += (name == FSTRING[0]) - (name == FSTRING[1])
            continue
        if tok.type == tokenize.COMMENT:
            shape.append(("comment",))
        elif tok.type == tokenize.STRING:
            shape.append(("string", prefix(tok.string)))
        else:
            shape.append((name, tok.string))
    for _, _, kind, text in words(source):
        if kind == "string":
            shape.append(("fields", placeholders(text)))
    return shape


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
        self.unrun: list[str] = []  # ids of code cells with outputs in English and none yet in Chinese

    @property
    def target(self) -> Path:
        return HERE / self.lesson.name


def build(lesson: Path) -> Result:
    """The Chinese lesson for one English lesson, from its translation file and the last run of the Chinese
    lesson (for outputs); writes nothing."""
    result = Result(lesson)
    nb = json.loads(lesson.read_text(encoding="utf-8"))
    old = load_translations(lesson)
    previous = last_run(result.target)
    ran = {c.get("id"): c for c in previous["cells"] if c["cell_type"] == "code"}
    cells = []
    first_markdown = True
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            cells.append(code_cell(cell, index, old, ran, result))
            continue
        en = source_of(cell)
        zh = lookup(result, old, key(en), {"id": cell.get("id"), "en": en}, f"cell {index} (id {cell.get('id')})")
        if first_markdown:
            zh = with_note(zh, lesson.name)
            first_markdown = False
        out = copy.deepcopy(cell)
        out["source"] = as_lines(zh)
        cells.append(out)
    result.stale = [h for h in old if h not in result.entries]
    # a changed cell keeps its old text and translation beside it, found by cell id, until it is translated anew
    stale_by_id = {old[h].get("id"): old[h] for h in result.stale if old[h].get("id") and "kind" not in old[h]}
    for entry in result.entries.values():
        if entry.get("zh") == "" and "kind" not in entry:
            was = stale_by_id.get(entry.get("id")) or entry.get("was")
            if was:
                entry["was"] = {"en": was["en"], "zh": was.get("zh", "")}
    if not result.missing:
        zh_nb = copy.deepcopy(nb)
        zh_nb["cells"] = cells
        zh_nb["metadata"].pop("widgets", None)  # the English run's widgets are not the Chinese run's
        if "widgets" in previous["metadata"]:
            zh_nb["metadata"]["widgets"] = previous["metadata"]["widgets"]
        drop_orphan_widget_views(zh_nb)
        result.text = dumps(zh_nb)
    return result


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_orphan_widget_views(nb: dict) -> None:
    """A widget output whose model the notebook's saved widget state lacks shows as its text (a progress bar's
    last line) rather than as an error in JupyterLab."""
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None and view.get("model_id") not in state:
                del output["data"][WIDGET_VIEW]


def lookup(result: Result, old: dict[str, dict], h: str, fresh: dict, where: str) -> str:
    """The Chinese for one English text (the English itself while it has none, which is recorded as missing, or
    when a code entry keeps it on purpose with "zh": null)."""
    entry = old.get(h)
    if entry is None or entry.get("en") != fresh["en"]:
        entry = {**fresh, "zh": ""}
    result.entries[h] = entry
    zh = entry.get("zh")
    if zh is None:
        return fresh["en"]
    if not zh.strip():
        first = next((line for line in fresh["en"].splitlines() if line.strip()), "")
        result.missing.append(f"{result.lesson.name}: {where} has no translation: {first!r}")
        return fresh["en"]
    return zh


def code_cell(cell: dict, index: int, old: dict[str, dict], ran: dict[str, dict], result: Result) -> dict:
    """The Chinese code cell: the English code with its words translated, and the outputs of the last Chinese
    run where that run ran this very source."""
    en = source_of(cell)
    for _, _, kind, text in words(en):
        h = code_key(text)
        if h in old or is_prose(text, kind):
            lookup(result, old, h, {"id": cell.get("id"), "kind": "code", "en": text},
                   f"code cell {index} (id {cell.get('id')}), {kind} {text[:60]!r}")
    zh = translate_code(en, {h: e for h, e in result.entries.items() if e.get("kind") == "code"})
    try:
        same = skeleton(zh) == skeleton(en)
    except (SyntaxError, tokenize.TokenError) as error:
        same = f"{type(error).__name__}: {error}"
    if same is not True:
        why = same or "its code differs (an f-string's {placeholders}, quotes or prefix changed)"
        result.missing.append(f"{result.lesson.name}: code cell {index} (id {cell.get('id')}), translated, is not "
                              f"the English code with other words: {why}")
    previous = ran.get(cell.get("id"))
    if previous is not None and source_of(previous) == zh:
        out = copy.deepcopy(previous)
    else:
        out = copy.deepcopy(cell)
        out["outputs"], out["execution_count"] = [], None
        out["metadata"] = {k: v for k, v in out.get("metadata", {}).items() if k != "execution"}
        if cell.get("outputs"):
            result.unrun.append(cell.get("id"))
    out["source"] = as_lines(zh)
    return out


def last_run(target: Path) -> dict:
    """The committed Chinese lesson, as its last run left it (cells and widget state)."""
    if not target.exists():
        return {"cells": [], "metadata": {}}
    return json.loads(target.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is missing or stale")
    args = parser.parse_args(argv)

    problems: list[str] = []
    results = [build(lesson) for lesson in english_lessons()]
    for r in results:
        problems += r.missing
        if r.unrun:
            problems.append(f"{r.target.relative_to(ENGLISH.parent)}: {len(r.unrun)} code cell(s) changed since the "
                            f"Chinese lesson last ran ({', '.join(r.unrun[:5])}{', ...' if len(r.unrun) > 5 else ''}):"
                            f" run it, {RUN.format(name=r.lesson.name)}, then notebooks/zh/build.py again")
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
