"""Training text that is on every machine: the Python standard library's own source.

Whole files are held out, chosen by a hash of their path, so the split is the same on
every machine and Python version: `train` to learn from, `valid` for the loss during
training, `eval` for the lessons' and scripts' measurements.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "eval")
_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the standard library folder
    text: str


def split_of(name: str) -> str:
    """90% train, 5% valid, 5% eval, fixed by the file's relative path."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "eval"


def stdlib_documents(split: str, root: Path | None = None, max_bytes: int | None = None) -> list[Document]:
    """The standard library's .py files (tests excluded) of one split, sorted by name.

    max_bytes keeps only the first files up to that many bytes (the CI profile's small corpus)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = root or Path(sysconfig.get_paths()["stdlib"])
    docs, size = [], 0
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if _SKIP & set(path.relative_to(root).parts) or split_of(name) != split:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.append(Document(name, text))
        size += len(text.encode())
        if max_bytes is not None and size >= max_bytes:
            break
    return docs


def chunks(text: str, max_chars: int) -> list[str]:
    """Cut a file at line ends into pieces of at most about max_chars (a long line stays whole)."""
    pieces, current = [], ""
    for line in text.splitlines(keepends=True):
        if current and len(current) + len(line) > max_chars:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return pieces
