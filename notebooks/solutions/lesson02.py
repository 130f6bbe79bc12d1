"""Solutions to lesson 02's exercises, computed the way the lesson taught."""

from __future__ import annotations

import re


def solution_1() -> int:
    """n=3, best_of=8: the server draws best_of candidates in all and returns the best n of them."""
    n, best_of = 3, 8
    return max(n, best_of)


def solution_2(prefix: str, suffix: str) -> str:
    """PSM: prefix sentinel + prefix, suffix sentinel + suffix, then the middle sentinel the model writes after."""
    return "<|fim_prefix|>" + prefix + "<|fim_suffix|>" + suffix + "<|fim_middle|>"


def solution_3(rows: list[dict]) -> float:
    """Good middles among the answers whose finish_reason is "stop"."""
    stopped = [r for r in rows if r["finish_reason"] == "stop"]
    return sum(r["good"] for r in stopped) / len(stopped)


def solution_4(text: str) -> list[int]:
    """After a sentence end followed by whitespace, and before each newline (not at 0): the first 4, and the end."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)|(?=\n)", text)][:4]
    return sorted({c for c in ends if 0 < c < len(text)} | {len(text)})
