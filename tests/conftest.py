"""Shared fixtures: one in-process labkit server for the session, the official SDK against it,
and validators for OpenAI's published response schemas."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from labkit.engine import DEFAULT_MODEL, load, replay
from labkit.server import LocalServer, create_app

SPEC = Path(__file__).resolve().parent / "openapi" / "openapi.yaml"  # OpenAI's, carried in the project (README there)
MODEL = DEFAULT_MODEL


def solutions(lesson: str):
    """notebooks/solutions/lessonNN.py as a module (the solutions live beside the lessons, not in the package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / f"lesson{lesson}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_lesson{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPLAY = os.environ.get(replay.ENV)  # `make test` sets it for the lessons (labkit.engine.replay)


@pytest.fixture(autouse=True)
def fresh_generations(monkeypatch):
    """Unit tests always run the model: the seeded-generation cache `make test` turns on is for the lessons.
    A test that runs a lesson turns it back on with `lesson_replay`."""
    monkeypatch.delenv(replay.ENV, raising=False)


def lesson_replay(monkeypatch) -> None:
    """Share seeded generations with the suite's other runs of the lessons, as nbmake's kernels do."""
    if REPLAY is not None:
        monkeypatch.setenv(replay.ENV, REPLAY)


@pytest.fixture(scope="session")
def lm():
    return load(MODEL)


@pytest.fixture(scope="session")
def server(lm, tmp_path_factory):
    with LocalServer(create_app([MODEL], data_dir=tmp_path_factory.mktemp("store"))) as srv:
        yield srv


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def ci_model(tmp_path_factory):
    """A FIM model trained with the CI profile: the same code path as the lesson's model, in seconds."""
    from labkit.train import PROFILES, train

    return train(PROFILES["ci"], tmp_path_factory.mktemp("fim-ci"), progress=False)


@pytest.fixture(scope="session")
def raw(server):
    """POST raw bytes (for bodies the SDK would never send); returns (status, parsed JSON)."""
    import urllib.error
    import urllib.request

    def post(path: str, body: bytes | str | dict, headers: dict | None = None):
        data = json.dumps(body).encode() if isinstance(body, dict) else (
            body.encode() if isinstance(body, str) else body)
        req = urllib.request.Request(server.base_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    return post


@pytest.fixture(scope="session")
def raw_stream(server):
    """POST a streaming request; returns the parsed `data:` events up to (not including) [DONE]."""
    import urllib.request

    def post(path: str, body: dict) -> list[dict]:
        req = urllib.request.Request(server.base_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [ln[5:].strip() for ln in r.read().decode().splitlines() if ln.startswith("data:")]
        assert lines[-1] == "[DONE]", "a stream ends with data: [DONE]"
        return [json.loads(x) for x in lines[:-1]]

    return post


def _load_spec(cache_dir: Path) -> dict:
    import yaml

    cached = cache_dir / f"openapi-v2-{SPEC.stat().st_mtime_ns}.pickle"  # v2: bump when the conversion changes
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec = _nullable_to_31(spec)
    cached.write_bytes(pickle.dumps(spec))
    return spec


def _nullable_to_31(node):
    """The description is OpenAPI 3.1 but still writes OpenAPI 3.0's `nullable: true` in places
    (stream chunks' finish_reason, for one) and boolean `exclusiveMinimum` (fine-tuning's
    learning_rate_multiplier); JSON Schema reads both differently, so spell them as 3.1 does."""
    if isinstance(node, list):
        return [_nullable_to_31(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_to_31(v) for k, v in node.items()}
    if node.get("exclusiveMinimum") is True:
        node["exclusiveMinimum"] = node.pop("minimum")
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="session")
def openapi(request):
    """validate(obj, "CreateCompletionResponse") against tests/openapi/openapi.yaml."""
    from jsonschema import Draft202012Validator

    spec = _load_spec(Path(request.config.cache.mkdir("labkit")))

    def validate(obj: dict, schema: str) -> None:
        root = {"components": spec["components"], "$ref": f"#/components/schemas/{schema}"}
        errors = sorted(Draft202012Validator(root).iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{schema}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate


# Which schema of OpenAI's answers each route of the files, jobs and models APIs (method, path under /v1).
WIRE_SCHEMAS = [
    ("POST", r"/files", "OpenAIFile"),
    ("GET", r"/files", "ListFilesResponse"),
    ("GET", r"/files/[^/]+", "OpenAIFile"),
    ("DELETE", r"/files/[^/]+", "DeleteFileResponse"),
    ("GET", r"/files/[^/]+/content", None),  # the file's own bytes
    ("POST", r"/fine_tuning/jobs", "FineTuningJob"),
    ("GET", r"/fine_tuning/jobs", "ListPaginatedFineTuningJobsResponse"),
    ("GET", r"/fine_tuning/jobs/[^/]+", "FineTuningJob"),
    ("POST", r"/fine_tuning/jobs/[^/]+/cancel", "FineTuningJob"),
    ("GET", r"/fine_tuning/jobs/[^/]+/events", "ListFineTuningJobEventsResponse"),
    ("GET", r"/fine_tuning/jobs/[^/]+/checkpoints", "ListFineTuningJobCheckpointsResponse"),
    ("GET", r"/models", "ListModelsResponse"),
    ("GET", r"/models/[^/]+", "Model"),
    ("DELETE", r"/models/[^/]+", "DeleteModelResponse"),
    ("POST", r"/chat/completions", "CreateChatCompletionResponse"),
    ("POST", r"/completions", "CreateCompletionResponse"),
    ("POST", r"/embeddings", "CreateEmbeddingResponse"),
    ("POST", r"/responses", "Response"),  # streams are checked event by event in tests/test_responses.py
    ("GET", r"/responses/[^/]+", "Response"),
    ("DELETE", r"/responses/[^/]+", None),  # the spec gives no schema; tests/test_responses.py checks the body
    ("GET", r"/responses/[^/]+/input_items", "ResponseItemList"),
]


def wire_schema(method: str, path: str) -> str | None:
    import re

    route = path.split("/v1", 1)[-1]
    for m, pattern, schema in WIRE_SCHEMAS:
        if m == method and re.fullmatch(pattern, route):
            return schema
    raise KeyError(f"no schema known for {method} {route}: add it to WIRE_SCHEMAS")


def _empty_list_cursors(body):
    """ListFilesResponse types first_id and last_id as required strings, which an empty list cannot have;
    labkit answers null there, as the spec's own checkpoints list allows. Only that case is let through."""
    if isinstance(body, dict) and body.get("data") == [] and body.get("first_id") is None is body.get("last_id"):
        return {**body, "first_id": "", "last_id": ""}
    return body


@pytest.fixture()
def spec_client(openapi):
    """spec_client(base_url) -> an openai.OpenAI whose every response body, as it came over the wire (not as the
    SDK's models re-dump it), is validated against OpenAI's schema for its route; errors against ErrorResponse.
    A mismatch fails the test at teardown, naming the route; `checked` counts the bodies validated."""
    import httpx

    failures: list[str] = []
    checked: list[str] = []

    def check(response: httpx.Response) -> None:
        request = response.request
        route = f"{request.method} {request.url.path}"
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return  # a stream's events are checked where streams are tested
        try:
            schema = "ErrorResponse" if response.status_code >= 400 else wire_schema(request.method, request.url.path)
            if schema is not None:
                response.read()
                openapi(_empty_list_cursors(response.json()), schema)
                checked.append(route)
        except (AssertionError, KeyError) as e:
            failures.append(f"{route}: {e}")

    clients = []

    def make(base_url: str, **kwargs) -> openai.OpenAI:
        http = httpx.Client(event_hooks={"response": [check]}, timeout=kwargs.pop("timeout", 120))
        clients.append(http)
        return openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=http, **kwargs)

    make.checked = checked
    yield make
    for http in clients:
        http.close()
    assert not failures, "responses that are not in OpenAI's shapes:\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory, lm) -> Path:
    """A 2-layer chat model with random weights and SmolLM2's tokenizer and chat template: fine-tuning
    jobs run through every stage in seconds. Served under its folder name, tiny-chat."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("models") / "tiny-chat"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(lm.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=lm.tokenizer.bos_token_id,
                         eos_token_id=lm.tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def labkit_serve(args: list[str], log: Path, env: dict | None = None, timeout: float = 120):
    """`labkit serve ARGS` in a subprocess on a free port; yields (process, base_url) once it listens
    (it loads its models first), and stops it afterwards unless a test has killed it already."""
    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "labkit", "serve", "--port", str(port), *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"labkit serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:  # not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(f"labkit serve did not listen within {timeout:.0f} s:\n{log.read_text()}")
                time.sleep(0.25)
        yield proc, f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def fake_openai(lm, tmp_path_factory):
    """A server that answers like OpenAI today (tests/fake_openai.py: current model names on /v1/models, nothing
    on /v1/completions, fine-tuning jobs refused) over labkit's own app; `.fake` is the layer, whose `listed`
    a test may change (and must restore)."""
    from tests.fake_openai import FakeOpenAI

    fake = FakeOpenAI(create_app([MODEL], data_dir=tmp_path_factory.mktemp("fake-openai")))
    with LocalServer(fake) as srv:
        srv.fake = fake
        yield srv
