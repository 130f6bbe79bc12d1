"""`Lab`: one OpenAI client for the local model or the OpenAI API, with model roles and usage.

    lab = Lab()                       # LABKIT_BACKEND, else openai if OPENAI_API_KEY is set, else local
    lab.client.chat.completions.create(model=lab.models.chat, messages=[...])
    lab.usage                         # tokens and estimated dollars so far
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

import openai

from labkit import catalog, tokens
from labkit.errors import LabkitError
from labkit.usage import Usage, UsageHooks

BACKENDS = ("local", "openai")
LOCAL_KEY = "labkit-local"  # the in-process server needs no key; the SDK wants one


@dataclass(frozen=True)
class Models:
    """The model name for each role on the active backend. Notebooks use these, never literals."""

    chat: str
    completion: str
    insertion: str | None  # a model that accepts `suffix`; None where the backend has none
    embedding: str | None  # None where the backend serves no embedding model yet
    fine_tune: str | None = None  # the base model fine-tuning jobs start from


OPENAI_MODELS = Models(chat="gpt-4o-mini", completion="gpt-3.5-turbo-instruct", insertion="gpt-3.5-turbo-instruct",
                       embedding="text-embedding-3-small", fine_tune="gpt-4o-mini-2024-07-18")

_servers: dict[str, object] = {}  # one in-process server per local model, shared by every Lab
_servers_lock = threading.Lock()


def _local_server(model: str):
    from labkit.engine.registry import INSERTION_MODEL, resolve
    from labkit.errors import ModelNotAvailableError
    from labkit.server import LocalServer, create_app

    with _servers_lock:
        server = _servers.get(model)
        if server is None or not server.thread.is_alive():  # first use, or stopped since
            names = [model]
            try:
                resolve(INSERTION_MODEL)
                names.append(INSERTION_MODEL)
            except ModelNotAvailableError:  # not built: lessons that insert say how to build it
                pass
            server = _servers[model] = LocalServer(create_app(names))
        return server


def choose_backend(backend: str | None = None) -> str:
    backend = backend or os.environ.get("LABKIT_BACKEND") or ("openai" if os.environ.get("OPENAI_API_KEY")
                                                              else "local")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r} (check LABKIT_BACKEND)")
    return backend


class Lab:
    """The one interface the lessons use.

    backend: "local" (labkit's server in this process) or "openai" (OpenAI, or any compatible
        endpoint through base_url / OPENAI_BASE_URL). Default: LABKIT_BACKEND, else "openai" when
        OPENAI_API_KEY is set, else "local".
    local_model: for the local backend, a model name, folder or Hugging Face id already on disk.
    budget_usd: refuse (before sending) any request that could take spending past this.
    models: override role -> model names, e.g. Lab(models={"chat": "gpt-4o"}).
    """

    def __init__(self, backend: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 local_model: str | None = None, budget_usd: float | None = None,
                 models: dict[str, str] | None = None, timeout: float = 600.0):
        self.backend = choose_backend(backend)
        self.usage = Usage(budget_usd)
        hooks = UsageHooks(self.usage)
        http = openai.DefaultHttpxClient(
            event_hooks={"request": [hooks.on_request], "response": [hooks.on_response]},
            trust_env=self.backend != "local")  # a campus proxy must not see requests to 127.0.0.1
        if self.backend == "local":
            from labkit.engine import DEFAULT_MODEL
            from labkit.server.app import local_roles

            self.local_model = local_model or os.environ.get("LABKIT_LOCAL_MODEL") or DEFAULT_MODEL
            self.server = _local_server(self.local_model)
            self.base_url = self.server.base_url
            self.client = openai.OpenAI(base_url=self.base_url, api_key=LOCAL_KEY, http_client=http,
                                        timeout=timeout)
            roles = local_roles(self.server.app.state.models)
        else:
            self.server, self.local_model = None, None
            self.client = openai.OpenAI(base_url=base_url, api_key=api_key, http_client=http, timeout=timeout)
            self.base_url = str(self.client.base_url).rstrip("/")
            # a teacher's `labkit serve` says which of its models play which role
            roles = None if "api.openai.com" in self.base_url else _roles(self.base_url, self.client.api_key)
        base = Models(**roles) if roles else OPENAI_MODELS
        self.models = Models(**{**base.__dict__, **(models or {})})

    def __repr__(self) -> str:
        return f"Lab(backend={self.backend!r}, base_url={self.base_url!r}, models={self.models})"

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int = 0) -> float:
        """Estimated USD of a request from the catalog's prices (0 for local models)."""
        return catalog.cost(model, prompt_tokens, completion_tokens)

    def count_tokens(self, text_or_messages, model: str | None = None) -> int:
        """Tokens of a prompt string or chat messages as `model` would count them.

        OpenAI models count with tiktoken (offline); local models with their own tokenizer,
        messages rendered through their chat template."""
        model = model or self.models.chat
        try:
            catalog.info(model)
            is_openai = catalog.info(model).encoding is not None
        except LabkitError:
            is_openai = False
        if is_openai:
            if isinstance(text_or_messages, str):
                return tokens.count(text_or_messages, model)
            return tokens.count_messages(text_or_messages, model)
        return len(self.local_tokens(text_or_messages, model))

    def local_tokens(self, text_or_messages, model: str | None = None) -> list[int]:
        """Token ids the local model sees (messages go through its chat template)."""
        tok = self._local_tokenizer(model)
        if isinstance(text_or_messages, str):
            return tok(text_or_messages).input_ids
        ids = tok.apply_chat_template(list(text_or_messages), add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def token_pieces(self, text_or_messages, model: str | None = None) -> list[tuple[int, str]]:
        """(id, text) of each token the local model sees, to look at how text is cut up."""
        tok = self._local_tokenizer(model)
        return [(i, tok.decode([i])) for i in self.local_tokens(text_or_messages, model)]

    def _local_tokenizer(self, model: str | None):
        from labkit.engine import load

        return load(model or self.local_model or self.models.chat).tokenizer

    def render_chat(self, messages, model: str | None = None) -> str:
        """The exact prompt text a local model's chat template makes of `messages`."""
        tok = self._local_tokenizer(model)
        return tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)


def _roles(base_url: str, api_key: str | None) -> dict | None:
    """Ask a labkit server which model plays each role; None for other servers."""
    from labkit.server.app import ROLES_PATH

    root = base_url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(root + ROLES_PATH, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):  # not a labkit server (404), unreachable, or not JSON
        return None
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("chat", "completion", "insertion", "embedding", "fine_tune")}
