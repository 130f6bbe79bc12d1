"""Make the Chinese font labkit's static figures use: a subset of Noto Sans CJK SC (SIL OFL 1.1).

    .venv/bin/pip download mplfonts==0.0.11 --no-deps -d /tmp/f && unzip -o /tmp/f/mplfonts-*.whl -d /tmp/f
    .venv/bin/python notebooks/zh/font.py /tmp/f/mplfonts/fonts/NotoSansCJKsc-Regular.otf

Matplotlib draws a lesson's PNG beside each plotly figure (labkit/staticfig.py) and has no CJK font of its own;
the full font is 16 MB. The subset keeps the 3,755 most common characters (GB 2312 level 1), CJK and full-width
punctuation, and every character in the Chinese lessons' translations and labkit's Chinese messages, under a
family name of its own (the licence asks a modified font not to pass as the original). Run it again when a
translation brings a rarer character; tests/test_zh_lessons.py says which.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from fontTools import subset

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "labkit" / "data" / "fonts" / "NotoSansSC-labkit-subset.otf"
FAMILY = "Noto Sans SC labkit subset"


def common_hanzi() -> set[str]:
    """GB 2312 level 1: rows 0xB0-0xD7, the most common 3,755 characters."""
    chars = set()
    for row in range(0xB0, 0xD8):
        for cell in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # the row's unassigned cells
                chars.add(bytes([row, cell]).decode("gb2312"))
    return chars


def translated_text() -> str:
    texts = []
    for path in sorted((ROOT / "notebooks" / "zh" / "translations").glob("*.json")):
        texts += [e.get("zh") or "" for e in json.loads(path.read_text(encoding="utf-8")).values()]
    texts += json.loads((ROOT / "labkit" / "data" / "i18n" / "zh.json").read_text(encoding="utf-8")).values()
    texts.append((ROOT / "docs" / "glossary.md").read_text(encoding="utf-8"))
    return "".join(texts)


def characters() -> set[str]:
    punctuation = {chr(c) for c in range(0x3000, 0x3040)} | {chr(c) for c in range(0xFF01, 0xFF5F)}
    return common_hanzi() | punctuation | {chr(c) for c in range(0x20, 0x7F)} | set(translated_text())


def main(source: str) -> None:
    options = subset.Options()
    options.name_IDs = ["*"]
    options.layout_features = []  # matplotlib shapes no text: no GSUB/GPOS needed
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(characters())))
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 4, 16):
            names.setName(FAMILY, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 6:
            names.setName(FAMILY.replace(" ", ""), record.nameID, record.platformID, record.platEncID, record.langID)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(OUT), options)
    print(f"wrote {OUT.relative_to(ROOT)}: {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
