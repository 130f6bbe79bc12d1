"""Fill-in-the-middle (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in the Middle").

A document is cut at two random character positions into prefix, middle and suffix, and
rearranged so that the middle comes last; a left-to-right model trained on that learns to
write a middle that joins a given prefix and suffix:

    PSM: <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle <|endoftext|>
    SPM: <|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle <|endoftext|>

(SPM is the paper's variant that puts the prefix right before the middle, which suits
key/value caching.) Documents not transformed stay as they are, still ending with
<|endoftext|>, so the model also learns where a document ends: that is what lets an
inserted middle stop on its own.
"""

from __future__ import annotations

import random

EOT, PRE, SUF, MID = "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"
SENTINELS = (PRE, SUF, MID)


def split_spans(text: str, rng: random.Random) -> tuple[str, str, str]:
    """Two uniformly random cut points (character level) -> prefix, middle, suffix."""
    a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
    return text[:a], text[a:b], text[b:]


def psm(prefix: str, middle: str, suffix: str) -> str:
    return f"{PRE}{prefix}{SUF}{suffix}{MID}{middle}{EOT}"


def spm(prefix: str, middle: str, suffix: str) -> str:
    return f"{PRE}{SUF}{suffix}{MID}{prefix}{middle}{EOT}"


def transform(text: str, rng: random.Random, fim_rate: float, spm_rate: float = 0.5) -> str:
    """One training document: FIM-rearranged with probability fim_rate (PSM or SPM), else plain."""
    if rng.random() >= fim_rate:
        return text + EOT
    prefix, middle, suffix = split_spans(text, rng)
    return (spm if rng.random() < spm_rate else psm)(prefix, middle, suffix)


def insertion_prompt(prefix: str, suffix: str) -> str:
    """What a FIM-trained model is given to write the middle (PSM, the order the lessons show)."""
    return f"{PRE}{prefix}{SUF}{suffix}{MID}"
