"""The Simplified Chinese lessons (notebooks/zh/) stay in step with the English ones: each is what
notebooks/zh/build.py makes now from the English lesson and its translation file, its code cells are the English
lesson's, every markdown cell is translated, and the glossary's rejected renderings appear nowhere.
Fast: nothing is executed here (nbmake runs the Chinese lessons like the English ones)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "notebooks" / "zh"
ENGLISH = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CJK = re.compile(r"[\u4e00-\u9fff]")
FIX = ("run `.venv/bin/python notebooks/zh/build.py`, fill in the \"zh\" of the cells it lists in "
       "notebooks/zh/translations/NN.json (terms from docs/glossary.md), and run it again")


def _build_module():
    spec = importlib.util.spec_from_file_location("zh_build", ZH / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build_module()


def cells(path: Path, kind: str) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == kind]


def test_every_english_lesson_has_a_chinese_one():
    assert ENGLISH, "no English lessons found"
    missing = [p.name for p in ENGLISH if not (ZH / p.name).exists()]
    assert not missing, f"no Chinese lesson for {missing}: {FIX}"
    extra = sorted({p.name for p in ZH.glob("[0-9][0-9]_*.ipynb")} - {p.name for p in ENGLISH})
    assert not extra, f"Chinese lessons without an English one: {extra}"


@pytest.mark.parametrize("lesson", ENGLISH, ids=lambda p: p.name[:2])
def test_the_chinese_lesson_is_what_build_makes_now(lesson):
    result = build.build(lesson)
    assert not result.missing, "English text with no translation:\n" + "\n".join(result.missing) + f"\nTo fix: {FIX}"
    committed = (ZH / lesson.name).read_text(encoding="utf-8")
    assert committed == result.text, f"notebooks/zh/{lesson.name} is out of date with the English lesson: {FIX}"
    assert not result.stale, (f"notebooks/zh/translations/{lesson.name[:2]}.json has entries for English text no "
                              f"longer in the lesson ({result.stale}): run notebooks/zh/build.py to drop them")


@pytest.mark.parametrize("lesson", ENGLISH, ids=lambda p: p.name[:2])
def test_code_cells_are_the_english_ones(lesson):
    zh = ZH / lesson.name
    en_nb, zh_nb = (json.loads(p.read_text(encoding="utf-8")) for p in (lesson, zh))
    assert [c["cell_type"] for c in zh_nb["cells"]] == [c["cell_type"] for c in en_nb["cells"]]
    assert [c.get("id") for c in zh_nb["cells"]] == [c.get("id") for c in en_nb["cells"]], "cell ids kept"
    for en, ours in zip(cells(lesson, "code"), cells(zh, "code")):
        assert ours == en, f"notebooks/zh/{lesson.name}: code cell {en.get('id')} differs from the English one"


@pytest.mark.parametrize("lesson", ENGLISH, ids=lambda p: p.name[:2])
def test_every_markdown_cell_is_in_chinese(lesson):
    untranslated = [c.get("id") for c in cells(ZH / lesson.name, "markdown") if not CJK.search(build.source_of(c))]
    assert not untranslated, f"notebooks/zh/{lesson.name}: markdown cells with no Chinese: {untranslated}"


def glossary() -> list[tuple[str, str, list[str]]]:
    """(English, 中文, renderings to avoid) for each row of docs/glossary.md's table."""
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(parts) == 4 and parts[0] not in ("English", "---"):
            rows.append((parts[0], parts[1], [t for t in re.split(r"[、,，]", parts[2]) if t.strip()]))
    return rows


def test_the_glossary_has_the_terms_the_lessons_need():
    terms = {english for english, _, _ in glossary()}
    for needed in ("token", "prompt", "completion", "chat template", "fine-tuning", "embedding", "few-shot",
                   "fill-in-the-middle (FIM)", "scaling law"):
        assert needed in terms, f"docs/glossary.md has no row for {needed!r}"
    assert any(english.startswith("logprob") for english in terms)


def test_no_translation_uses_a_rendering_the_glossary_rejects():
    texts = {f"notebooks/zh/{p.name}": "\n".join(build.source_of(c) for c in cells(ZH / p.name, "markdown"))
             for p in ENGLISH}
    texts["README.zh-CN.md"] = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    found = [f"{where}: {bad!r} (the glossary says {english} → {chinese})"
             for english, chinese, avoid in glossary() for bad in avoid
             for where, text in texts.items() if bad in text]
    assert not found, "\n".join(found)


def test_the_chinese_readme_gives_the_same_two_commands_and_the_english_one_links_to_it():
    first_screen = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8").split("\n---\n", 1)[0]
    assert len(first_screen.splitlines()) <= 25
    assert re.findall(r"^make (\w+)", first_screen, flags=re.M) == ["lab", "test"]
    english_first_screen = (ROOT / "README.md").read_text(encoding="utf-8").split("\n---\n", 1)[0]
    assert "README.zh-CN.md" in english_first_screen
