"""The OpenAI-compatible HTTP API over labkit's engine (FastAPI).

    app = create_app(["smollm2-135m-instruct"], api_keys=None)

Models load on first use, so the server answers /v1/models at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from labkit import catalog
from labkit.engine import DEFAULT_MODEL, INSERTION_MODEL, LocalModel, load
from labkit.engine.embeddings import EMBEDDING_MODEL, POOLED_SUFFIX, Embedder, load_embedder, minilm_available
from labkit.engine.loop import engine_loop, stop_loop
from labkit.engine.registry import home, resolve, unload
from labkit.finetune.jobs import ORGANIZATION, JobStore
from labkit.finetune.store import FileStore
from labkit.finetune.worker import Worker
from labkit.server import embeddings, errors, files, jobs, responses
from labkit.server.errors import APIError
from labkit.server.generate import ChatRun, CompletionRun
from labkit.server.keys import Key, KeyAuth, Ledger
from labkit.server.response_store import ResponseStore
from labkit.server.schemas import (
    UNSUPPORTED,
    UNSUPPORTED_WHY,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    parse_body,
)

ROLES_PATH = "/labkit/roles"  # lets a remote Lab find a labkit server's models by role
USAGE_PATH = "/labkit/usage"  # tokens used per key, for the teacher's key


class Models:
    """The models a server offers under their served names, loaded lazily and once: the ones it was
    started with, and those its fine-tuning jobs make (ft:BASE:labkit:SUFFIX:ID)."""

    def __init__(self, names: list[str], jobs: JobStore):
        # a folder or hub id is served under a short name; remember where each one loads from
        self.sources = {resolve(n)[0]: n for n in names}
        self.names = list(self.sources)
        pooled = [n + POOLED_SUFFIX for n in self.names]
        self.embedding_names = [EMBEDDING_MODEL, *pooled] if minilm_available() else pooled
        self.jobs = jobs
        self._loaded: dict[str, LocalModel] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.created = int(time.time())

    def get(self, name: str) -> LocalModel:
        folder = self.jobs.model_folder(name)
        if name not in self.names and folder is None:
            if name in catalog.RETIRED:
                r = catalog.RETIRED[name]
                raise errors.model_not_found(name, f"It was {r.note}; its replacement is {r.replacement}.")
            if name in self.embedding_names:
                raise errors.model_not_found(name, "It is an embedding model: use /v1/embeddings.")
            raise errors.model_not_found(name, f"This labkit server offers: {', '.join(self.listed())}.")
        with self._lock:  # one lock per name: loading one model never holds up requests to another
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            if name not in self._loaded:
                self._loaded[name] = load(str(folder), served=name) if folder else load(self.sources[name])
            return self._loaded[name]

    def evict(self, name: str, folder: Path | None) -> None:
        """A deleted fine-tuned model: drop its weights and stop its engine loop."""
        with self._lock:
            lm = self._loaded.pop(name, None)
        if folder is not None:
            unload(str(folder))
        if lm is not None:
            stop_loop(lm)

    def embedder(self, name: str) -> Embedder:
        if name not in self.embedding_names:
            why = f"Its embedding models are: {', '.join(self.embedding_names)}."
            raise errors.model_not_found(name, ("It generates text, it does not embed. " if name in self.listed()
                                                else "") + why)
        return load_embedder(name, bases=self.sources)

    def listed(self) -> list[str]:
        return self.names + self.embedding_names + [name for name, _ in self.jobs.models()]

    def cards(self) -> list[dict]:
        fine_tuned = [{"id": n, "object": "model", "created": t, "owned_by": ORGANIZATION}
                      for n, t in self.jobs.models()]
        return [self.card(n) for n in self.names + self.embedding_names] + fine_tuned

    def card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "labkit"}

    def base_folder(self, name: str) -> Path | str:
        """The files of a model this server can fine-tune: one it serves (or made), with a chat template."""
        folder = self.jobs.model_folder(name) or (resolve(self.sources[name])[1] if name in self.names else None)
        if folder is None:
            raise APIError(400, f"Model {name} is not available for fine-tuning or does not exist. This labkit "
                           f"server can fine-tune: {', '.join(self.listed())}.", param="model",
                           code="model_not_available")
        from transformers import AutoTokenizer

        if not AutoTokenizer.from_pretrained(folder, local_files_only=True).chat_template:
            raise APIError(400, f"{name} has no chat template, so it cannot learn from chat examples; fine-tune "
                           "a chat model", param="model", code="model_not_available")
        return folder


def local_roles(models: Models) -> dict:
    """Which served model plays each role: the first serves chat and completion, the FIM-trained one
    insertion, all-MiniLM-L6-v2 embeddings."""
    first = models.names[0]
    return {"chat": first, "completion": first, "insertion": INSERTION_MODEL if INSERTION_MODEL in models.names
            else None, "embedding": EMBEDDING_MODEL if EMBEDDING_MODEL in models.embedding_names else None,
            "fine_tune": first}


async def _body(request: Request, endpoint: str) -> dict:
    body = parse_body(await request.body())
    for name in UNSUPPORTED[endpoint]:
        if body.get(name) is not None:
            why = UNSUPPORTED_WHY.get(name, f"`{name}` is not supported by labkit's local engine. Use the OpenAI "
                                            "API (set OPENAI_API_KEY) for this feature.")
            raise APIError(400, why, param=name, code="unsupported_parameter")
    return body


def _threads_for(requests: int) -> None:
    """Each waiting handler holds one threadpool thread (it blocks on its deltas): let the pool hold as many
    as the engine loops admit and queue, so none waits unseen in anyio's own queue."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, requests)


async def _cancel_when_closed(run):
    """The run's server-sent events; a client that leaves (the response task is cancelled) cancels the run,
    so the engine loop drops its rows at the next step."""
    try:
        async for chunk in iterate_in_threadpool(run.stream()):
            yield chunk
    finally:
        run.cancel()


def create_app(model_names: list[str] | None = None, api_keys: list[str] | None = None,
               data_dir: Path | None = None, keys: list[Key] | None = None, max_running: int | None = None,
               max_waiting: int | None = None, fine_tune_threads: int | None = None) -> FastAPI:
    """data_dir keeps uploaded files, fine-tuning jobs and the models they make (default LABKIT_HOME/server).
    Jobs a stopped server left waiting start again here.

    keys (labkit.server.keys.read_keys) have names, quotas and roles, and their usage is counted; api_keys
    are plain secrets, counted as unlimited student keys when keys are given too. max_running and max_waiting
    set each model's engine loop: sequences decoded together, and requests that may wait before a 429.
    fine_tune_threads: torch threads of each fine-tuning job's process (default: half the cores)."""
    root = data_dir or home() / "server"
    file_store, job_store = FileStore(root), JobStore(root)
    models = Models(model_names or [DEFAULT_MODEL], job_store)
    worker = Worker(job_store, file_store, models.base_folder, fine_tune_threads)
    app = FastAPI(title="labkit", description="OpenAI-compatible API over local models")
    app.state.models = models
    errors.install(app)
    app.include_router(files.router(file_store))
    app.include_router(jobs.router(job_store, file_store, worker, models.base_folder))
    app.include_router(responses.router(ResponseStore(root), models, max_running, max_waiting))
    if job_store.pending():
        worker.wake()

    known = [*(keys or []), *(Key(k, f"api-key-{i}", None, None, False) for i, k in enumerate(api_keys or [], 1))]
    ledger = Ledger(known) if keys else None
    if known:
        app.add_middleware(KeyAuth, keys=known, ledger=ledger)

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": models.cards()}

    @app.get("/v1/models/{model:path}")
    def get_model(model: str):
        card = next((c for c in models.cards() if c["id"] == model), None)
        if card is None:
            raise errors.model_not_found(model)
        return card

    @app.delete("/v1/models/{model:path}")
    def delete_model(model: str):
        if model in models.names:
            raise APIError(403, f"{model} is a base model of this server; only fine-tuned models can be deleted",
                           param="model", code="model_not_deletable")
        folder = models.jobs.model_folder(model)
        models.jobs.delete_model(model)
        models.evict(model, folder)
        return {"id": model, "object": "model", "deleted": True}

    @app.get(ROLES_PATH)
    def roles():
        return local_roles(models)

    @app.get(USAGE_PATH)
    def usage(request: Request):
        if ledger is None:
            raise APIError(404, f"{USAGE_PATH} counts tokens per key, and this labkit server has no keys file: "
                           "start it with `labkit serve --keys FILE`.", code="not_found")
        if not request.state.key.teacher:
            raise APIError(403, f"Only a teacher's key may read {USAGE_PATH}.", code="insufficient_permissions")
        return {"object": "list", "data": ledger.report()}

    async def generate(request: Request, endpoint: str, schema, run_class):
        """Validate, load the model, then answer whole or as server-sent events. The model's engine loop does
        the work; a handler's thread only waits for its deltas."""
        req = schema.model_validate(await _body(request, endpoint))
        lm = await run_in_threadpool(models.get, req.model)
        engine = engine_loop(lm, max_running, max_waiting)
        _threads_for(len(models.names) * (engine.max_running + engine.max_waiting) + 16)
        run = await run_in_threadpool(run_class, req, lm, engine)
        engine.check_capacity()  # a 429 before a stream's first byte, not in the middle of it
        if req.stream:
            return StreamingResponse(_cancel_when_closed(run), media_type="text/event-stream")
        work = asyncio.ensure_future(run_in_threadpool(run.response))
        while not (await asyncio.wait({work}, timeout=0.25))[0]:
            if await request.is_disconnected():  # e.g. a notebook cell interrupted: stop decoding
                run.cancel()
        return JSONResponse(work.result())

    @app.post("/v1/embeddings")
    async def create_embeddings(request: Request):
        body = await _body(request, "embeddings")
        if body.get("input") in ([], ""):  # say it plainly rather than which union branch failed
            raise APIError(400, "input must not be empty: give a string, a list of strings, token ids or lists "
                           "of token ids", param="input", code="invalid_value")
        req = EmbeddingRequest.model_validate(body)
        embedder = await run_in_threadpool(models.embedder, req.model)
        return await run_in_threadpool(embeddings.respond, req, embedder)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await generate(request, "completions", CompletionRequest, CompletionRun)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await generate(request, "chat", ChatRequest, ChatRun)

    return app
