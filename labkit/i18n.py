"""The language of what labkit prints for a lesson: exercise messages, figure titles, the one line that says why a
cell runs locally. English, or Simplified Chinese for the lessons in `notebooks/zh/`.

    labkit.set_language("zh")       # a lesson's first cell says which; LABKIT_LANG sets the default

A message is written in English where it is used, as a template for `str.format`:

    from labkit.i18n import _
    raise ExerciseError(_("that is the cost for {epochs} epochs.", epochs=report.epochs))

and looked up, by its exact English text, in `labkit/data/i18n/<language>.json` ({"English": "中文", ...}); a
template with no entry is printed in English. `tests/test_i18n.py` checks that every template in the package has
an entry with the same placeholders, and that no entry is stale. Library errors and reports (validation, job
states, evaluation tables) stay in English, as the API they describe does.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "zh")
CATALOGS = Path(__file__).resolve().parent / "data" / "i18n"
_chosen: str | None = None


def set_language(language: str) -> None:
    """Print labkit's lesson messages in `language`: "en" (English) or "zh" (Simplified Chinese)."""
    global _chosen
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(map(repr, LANGUAGES))}, not {language!r}")
    _chosen = language


def language() -> str:
    """The language chosen with `set_language`, else the environment's LABKIT_LANG, else "en"."""
    if _chosen is not None:
        return _chosen
    env = os.environ.get("LABKIT_LANG", "en")
    if env not in LANGUAGES:
        raise ValueError(f"LABKIT_LANG must be one of {', '.join(LANGUAGES)}, not {env!r}")
    return env


@cache
def catalog(language: str) -> dict[str, str]:
    """{English template: translated template} for `language` ({} for English)."""
    path = CATALOGS / f"{language}.json"
    return json.loads(path.read_text(encoding="utf-8")) if language != "en" else {}


def _(template: str, /, **values) -> str:
    """`template` in the current language, formatted with `values`."""
    text = catalog(language()).get(template) or template
    return text.format(**values) if values else text
