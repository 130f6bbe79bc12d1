"""From token ids to text: raw bytes of a token, and incremental text with stop strings."""

from __future__ import annotations

from functools import cache


@cache
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE maps each byte to a printable character; this inverts it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The exact bytes a token stands for (a token may hold part of a UTF-8 character)."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    table = byte_decoder()
    if piece is not None and all(ch in table for ch in piece):
        return bytes(table[ch] for ch in piece)
    return tokenizer.decode([token_id]).encode()


def token_str(tokenizer, token_id: int) -> str:
    """A token as OpenAI's legacy logprobs show it: text, or 'bytes:\\xNN' for partial UTF-8."""
    raw = token_bytes(tokenizer, token_id)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


class TextStream:
    """Turns a growing list of token ids into text deltas, honouring stop strings.

    Text that might be the start of a stop string, or half a UTF-8 character, is held
    back until the next token decides it, so a stream never shows what the final text
    will not contain.
    """

    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.byte_ends: list[int] = []  # bytes of text after each token (decoded text can hold half a character)
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add a token; return the newly safe text ('' if none). Sets `stopped` on a stop string."""
        self.ids.append(token_id)
        self.byte_ends.append((self.byte_ends[-1] if self.byte_ends else 0)
                              + len(token_bytes(self.tokenizer, token_id)))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        start = max(0, self.emitted - max((len(s) for s in self.stop), default=0))
        hits = [i for s in self.stop if (i := text.find(s, start)) >= 0]
        if hits:
            self.text, self.stopped = text[: min(hits)], True
            return self.flush()
        self.text = text
        safe = len(text) - self._holdback(text)
        delta = text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return delta

    def flush(self) -> str:
        """Release everything held back (the sequence has ended)."""
        delta = self.text[self.emitted :]
        self.emitted = len(self.text)
        return delta

    def n_visible_tokens(self) -> int:
        """How many tokens contributed to the released text (for logprobs): those starting inside it."""
        released = len(self.text[: self.emitted].encode())
        starts = [0, *self.byte_ends[:-1]]
        return sum(1 for start in starts if start < released)

    def _holdback(self, text: str) -> int:
        if text.endswith("\ufffd"):
            return len(text) - len(text.rstrip("\ufffd"))
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best
