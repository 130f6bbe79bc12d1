"""The Simplified Chinese lessons (notebooks/zh/) stay in step with the English ones: each is what
notebooks/zh/build.py makes now from the English lesson and its translation file, its code cells are the English
lesson's code with only the words (strings, comments) changed, its outputs come from a run of that code, every
markdown cell is translated, the static figures' font has every character, and the glossary's rejected
renderings appear nowhere. Fast: nothing is executed here (nbmake runs the Chinese lessons like the English
ones)."""

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
def test_code_cells_are_the_english_code_with_chinese_words(lesson):
    zh = ZH / lesson.name
    en_nb, zh_nb = (json.loads(p.read_text(encoding="utf-8")) for p in (lesson, zh))
    assert [c["cell_type"] for c in zh_nb["cells"]] == [c["cell_type"] for c in en_nb["cells"]]
    assert [c.get("id") for c in zh_nb["cells"]] == [c.get("id") for c in en_nb["cells"]], "cell ids kept"
    translated = 0
    for en, ours in zip(cells(lesson, "code"), cells(zh, "code")):
        en_source, zh_source = build.source_of(en), build.source_of(ours)
        assert build.skeleton(zh_source) == build.skeleton(en_source), (
            f"notebooks/zh/{lesson.name}: code cell {en.get('id')} is not the English code with other words")
        translated += CJK.search(zh_source) is not None
    assert translated >= len(cells(lesson, "code")) // 2, "most code cells print or say something in Chinese"
    assert 'labkit.set_language("zh")' in build.source_of(cells(zh, "code")[0])


@pytest.mark.parametrize("lesson", ENGLISH, ids=lambda p: p.name[:2])
def test_the_chinese_outputs_come_from_running_the_chinese_code(lesson):
    unrun = [en.get("id") for en, ours in zip(cells(lesson, "code"), cells(ZH / lesson.name, "code"))
             if en.get("outputs") and not ours.get("outputs")]
    assert not unrun, (f"notebooks/zh/{lesson.name}: code cells {unrun} changed since the Chinese lesson last ran: "
                       f"{build.RUN.format(name=lesson.name)}, then notebooks/zh/build.py")


def test_a_translation_may_change_words_but_not_code():
    en = 'n = 3\nprint(f"{n} epochs of {name!r}: {cost:.2f} dollars")  # the cost\n'
    entries = {build.code_key('f"{n} epochs of {name!r}: {cost:.2f} dollars"'):
               {"kind": "code", "zh": 'f"{name!r} 训练 {n} 轮：{cost:.2f} 美元"'},
               build.code_key("# the cost"): {"kind": "code", "zh": "# 费用"}}
    zh = build.translate_code(en, entries)
    assert zh == 'n = 3\nprint(f"{name!r} 训练 {n} 轮：{cost:.2f} 美元")  # 费用\n'
    assert build.skeleton(zh) == build.skeleton(en)
    for broken in ('n = 3\nprint(f"{n} 轮：{cost:.3f} 美元")\n', 'n = 4\nprint(f"{n} 轮")\n',
                   'n = 3\nprint("{n} 轮")  # 不是 f-string\n'):
        assert build.skeleton(broken) != build.skeleton(en), broken
    assert build.skeleton('print(f"{n} 轮")') == build.skeleton('print(f"{n} epochs")')
    assert build.skeleton('print(rf"{n} 轮")') != build.skeleton('print(f"{n} epochs")'), "the prefix is kept"


def test_the_figure_font_has_every_chinese_character_the_lessons_use():
    from fontTools.ttLib import TTFont

    from labkit.staticfig import CJK_FONT

    has = TTFont(CJK_FONT).getBestCmap()
    texts = [build.source_of(c) for p in ENGLISH for c in json.loads((ZH / p.name).read_text("utf-8"))["cells"]]
    texts += json.loads((ROOT / "labkit" / "data" / "i18n" / "zh.json").read_text("utf-8")).values()
    lacking = sorted({ch for text in texts for ch in CJK.findall(text)} - {chr(c) for c in has})
    assert not lacking, f"{CJK_FONT.name} lacks {''.join(lacking)}: run notebooks/zh/font.py (its docstring says how)"


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
    texts = {f"notebooks/zh/{p.name}": "\n".join(build.source_of(c) for c in json.loads(
        (ZH / p.name).read_text(encoding="utf-8"))["cells"]) for p in ENGLISH}
    texts["labkit/data/i18n/zh.json"] = (ROOT / "labkit" / "data" / "i18n" / "zh.json").read_text(encoding="utf-8")
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
