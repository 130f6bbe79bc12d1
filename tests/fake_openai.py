"""A test server that answers like OpenAI's API as of late 2026, built on labkit's own server app.

`FakeOpenAI(create_app([...]))` is a thin ASGI layer over labkit's app:

- GET /v1/models lists OpenAI's current model names (with OpenAI's optional `shutdown_date`), not labkit's;
- chat, Responses and embedding requests naming one of them are renamed to the local model that stands in for
  it, and the answer carries the OpenAI name back (so usage is counted, and priced, under the name the client sent);
- POST /v1/completions serves nothing: every completions model is shut down (2026-09-28), so a request naming
  one is OpenAI's 404 `model_not_found`, and a chat model there is OpenAI's 404 "This is a chat model ...";
- POST /v1/fine_tuning/jobs is refused as OpenAI refuses organisations since self-serve fine-tuning closed.
  ASSUMPTION: a 403 with OpenAI's error object. The status is reported by users (github.com/ed-donner/
  llm_engineering/issues/3258: "permission denied"); the message below is labkit's wording, not OpenAI's;
- a model past its shutdown date, or unknown, is OpenAI's 404 `model_not_found`;
- labkit's own routes (/labkit/roles, /labkit/usage) are OpenAI's 404 "Invalid URL";
- everything else (files, jobs listing, models deletion) is labkit's app unchanged.

Lessons can run against it: LABKIT_BACKEND=openai OPENAI_BASE_URL=<its base_url>.
"""

from __future__ import annotations

import json
import re

from labkit import catalog

CHAT_STANDIN = "smollm2-135m-instruct"
LISTED = {  # what the fake lists -> the labkit model that answers for it
    "gpt-4o-mini": CHAT_STANDIN, "gpt-4o-mini-2024-07-18": CHAT_STANDIN,
    "gpt-4.1-mini": CHAT_STANDIN, "gpt-4.1-mini-2025-04-14": CHAT_STANDIN,
    "gpt-4o": CHAT_STANDIN, "gpt-4.1": CHAT_STANDIN,
    "gpt-5.4-mini": CHAT_STANDIN, "gpt-5.4-nano": CHAT_STANDIN, "gpt-6-luna": CHAT_STANDIN,
    "text-embedding-3-small": "all-minilm-l6-v2", "text-embedding-3-large": "all-minilm-l6-v2",
    "text-embedding-ada-002": "all-minilm-l6-v2",
}
FINE_TUNING_REFUSED = ("Creating fine-tuning jobs is not available for this organization: OpenAI's self-serve "
                       "fine-tuning is closed to new organizations. (labkit's fake OpenAI; the wording is assumed.)")


def not_found(model: str) -> tuple[int, dict]:
    return 404, {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                           "type": "invalid_request_error", "param": None, "code": "model_not_found"}}


class FakeOpenAI:
    """ASGI app: OpenAI's current face over labkit's app. `listed` may be changed by a test (names -> stand-ins)."""

    def __init__(self, app, listed: dict[str, str] | None = None):
        self.app = app
        self.listed = dict(LISTED if listed is None else listed)
        self.refused_jobs = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"].rstrip("/")
        if not path.startswith("/v1/"):  # labkit's own routes (/labkit/roles) are not OpenAI's
            return await _json(send, 404, {"error": {"message": f"Invalid URL ({method} {scope['path']})",
                                                     "type": "invalid_request_error", "param": None, "code": None}})
        if method == "GET" and path == "/v1/models":
            return await _json(send, 200, {"object": "list", "data": [self._card(n) for n in self.listed]})
        if method == "GET" and path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if name in self.listed:
                return await _json(send, 200, self._card(name))
        if method == "POST" and path == "/v1/fine_tuning/jobs":
            await _drain(receive)
            self.refused_jobs += 1
            return await _json(send, 403, {"error": {"message": FINE_TUNING_REFUSED, "type": "invalid_request_error",
                                                     "param": None, "code": None}})
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses"):
            body = await _drain(receive)
            try:
                request = json.loads(body)
                model = request["model"]
            except (ValueError, KeyError, TypeError):
                return await self.app(scope, _replay(body, receive), send)  # labkit's own 400s
            if path == "/v1/completions":
                if model in self.listed and not self.listed[model].startswith("all-minilm"):
                    return await _json(send, 404, {"error": {
                        "message": "This is a chat model and not supported in the v1/completions endpoint. "
                                   "Did you mean to use v1/chat/completions?",
                        "type": "invalid_request_error", "param": "model", "code": None}})
                return await _json(send, *not_found(model))
            standin = self._standin(model)
            if standin is None:
                return await _json(send, *not_found(model))
            request["model"] = standin
            renamed = _replay(json.dumps(request).encode(), receive)
            return await self.app(scope, renamed, _renaming(send, standin, model))
        return await self.app(scope, receive, send)

    def _standin(self, model: str) -> str | None:
        base = model.split(":")[1] if model.startswith("ft:") else model
        if base not in self.listed or catalog.info(base).is_shut_down():
            return None
        return model if model.startswith("ft:") else self.listed[base]

    def _card(self, name: str) -> dict:
        ends = catalog.shutdown(name) if name in catalog.MODELS else None
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "system",
                "shutdown_date": ends.isoformat() if ends else None}


async def _json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _drain(receive) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def _replay(body: bytes, receive):
    """The request body again (it was read to rename the model), then the client's own messages (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _renaming(send, standin: str, name: str):
    """Put the OpenAI name back where the stand-in's name appears as "model" (whole bodies and stream events)."""
    pattern = re.compile(rb'("model"\s*:\s*")' + re.escape(standin.encode()) + rb'"')
    replacement = rb"\g<1>" + name.encode().replace(b"\\", b"\\\\") + b'"'
    start, buffered = None, b""

    async def wrapped(message):
        nonlocal start, buffered
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers") or [])
            if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                await send(message)  # events pass one by one, renamed below
            else:
                start = message  # a whole body: held until complete, since its length changes
            return
        if message["type"] == "http.response.body" and start is not None:
            buffered += message.get("body", b"")
            if message.get("more_body", False):
                return
            body = pattern.sub(replacement, buffered)
            headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if message["type"] == "http.response.body":
            message = {**message, "body": pattern.sub(replacement, message.get("body", b""))}
        await send(message)

    return wrapped
