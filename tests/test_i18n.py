"""labkit's own messages in Chinese: every `_("...")` template in the package has an entry in
labkit/data/i18n/zh.json with the same placeholders, no entry is stale, and set_language switches them."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

import labkit
from labkit import i18n

PACKAGE = Path(labkit.__file__).resolve().parent


def templates() -> dict[str, list[str]]:
    """{template: ["module.py:line", ...]} for every call of `_` with a literal first argument in labkit."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
                first = node.args[0] if node.args else None
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{where}: _() takes a plain string literal (a template for str.format), not an f-string")
                found.setdefault(first.value, []).append(where)
    return found


def fields(template: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


def test_the_package_has_messages_to_translate():
    assert len(templates()) >= 20


def test_every_message_has_a_chinese_entry_with_the_same_placeholders():
    zh = i18n.catalog("zh")
    missing = [f"{where[0]}: {t!r}" for t, where in templates().items() if not zh.get(t, "").strip()]
    assert not missing, "no Chinese in labkit/data/i18n/zh.json for:\n" + "\n".join(missing)
    differ = [f"{t!r}: {fields(t)} vs {fields(zh[t])}" for t in templates() if fields(t) != fields(zh[t])]
    assert not differ, "placeholders differ:\n" + "\n".join(differ)


def test_no_entry_is_stale():
    stale = sorted(set(i18n.catalog("zh")) - set(templates()))
    assert not stale, f"labkit/data/i18n/zh.json has entries no code uses: {stale}"


def test_set_language_switches_the_messages(monkeypatch):
    template, chinese = next(iter(i18n.catalog("zh").items()))
    values = {name: 1 for name in fields(template)}
    try:
        labkit.set_language("zh")
        assert i18n._(template, **values) == (chinese.format(**values) if values else chinese)
        labkit.set_language("en")
        assert i18n._(template, **values) == (template.format(**values) if values else template)
    finally:
        i18n._chosen = None
    monkeypatch.setenv("LABKIT_LANG", "zh")
    assert i18n.language() == "zh"


def test_an_unknown_language_is_refused_by_name(monkeypatch):
    with pytest.raises(ValueError, match="'fr'"):
        labkit.set_language("fr")
    monkeypatch.setenv("LABKIT_LANG", "klingon")
    with pytest.raises(ValueError, match="LABKIT_LANG"):
        i18n.language()
