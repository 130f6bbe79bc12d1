"""Per-student API keys with token quotas, for a teacher who serves a class from one machine.

    key,name,tokens_per_minute,total_tokens,role
    s3cret-ada,ada,2000,50000,
    s3cret-me,teacher,,,teacher

`read_keys` reads such a file; a `Ledger` admits each request on what its key has used so far and is
charged with the usage the response reports. Secrets never appear in a repr, a message or a log line.
"""

from __future__ import annotations

import csv
import json
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from labkit.server.errors import APIError, error_response

METERED = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")  # POSTs that spend tokens
COLUMNS = ("key", "name", "tokens_per_minute", "total_tokens", "role")
ROLES = ("student", "teacher")
RESPONSES_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta")
RESPONSES_ENDS = ("response.completed", "response.incomplete", "response.failed")  # a Responses stream's last event
WINDOW_S = 60.0  # tokens_per_minute counts what was used in the last minute


@dataclass(frozen=True)
class Key:
    secret: str = field(repr=False)  # so that logging a Key cannot leak it
    name: str
    tokens_per_minute: int | None
    total_tokens: int | None
    teacher: bool


def read_keys(path: str | Path) -> list[Key]:
    """The keys of a CSV file with a header row (see the module's docstring). `#` lines are comments.
    A mistake raises ValueError naming the file, the line and the column, so the teacher can fix it
    before the class starts rather than when a student's request fails."""
    rows = [(n, line) for n, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{path}: no header row and no keys; expected the columns {', '.join(COLUMNS)}")
    header_line, header = rows[0][0], [c.strip() for c in _fields(rows[0][1])]
    for column in header:
        if column not in COLUMNS:
            raise ValueError(f"{path}, line {header_line}, column {column!r}: unknown column; the columns are "
                             f"{', '.join(COLUMNS)}")
    if "key" not in header:
        raise ValueError(f"{path}, line {header_line}, column 'key': the header has no key column")
    keys: list[Key] = []
    first_line: dict[str, dict[str, int]] = {"key": {}, "name": {}}  # column -> value -> line
    for n, line in rows[1:]:
        values = [v.strip() for v in _fields(line)]
        if len(values) > len(header):
            raise ValueError(f"{path}, line {n}: {len(values)} values for {len(header)} columns")
        try:
            key = _key(dict(zip(header, values)), len(keys) + 1)
        except CellError as e:
            raise ValueError(f"{path}, line {n}, column {e.column!r}: {e.problem}") from None
        for column, value in (("key", key.secret), ("name", key.name)):
            if value in first_line[column]:  # the value itself is not repeated: it may be a secret
                raise ValueError(f"{path}, line {n}, column {column!r}: duplicate {column} (first on line "
                                 f"{first_line[column][value]})")
            first_line[column][value] = n
        keys.append(key)
    if not keys:
        raise ValueError(f"{path}: no keys (a header row and at least one key are required)")
    return keys


def _fields(line: str) -> list[str]:
    return next(csv.reader([line]))


class CellError(Exception):
    """What is wrong with one value of a row; read_keys adds the file and the line."""

    def __init__(self, column: str, problem: str):
        super().__init__(column, problem)
        self.column, self.problem = column, problem


def _key(row: dict[str, str], number: int) -> Key:
    secret = row.get("key", "")
    if not secret:
        raise CellError("key", "empty key")
    role = row.get("role", "").lower() or "student"
    if role not in ROLES:
        raise CellError("role", f"unknown role {role!r}; use student or teacher")
    return Key(secret=secret, name=row.get("name") or f"student-{number}",
               tokens_per_minute=_limit(row, "tokens_per_minute"), total_tokens=_limit(row, "total_tokens"),
               teacher=role == "teacher")


def _limit(row: dict[str, str], column: str) -> int | None:
    """A positive whole number of tokens; blank means unlimited."""
    text = row.get(column, "")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CellError(column, f"{text!r} is not a whole number of tokens (leave it blank for no limit)") from None
    if value <= 0:
        raise CellError(column, f"{value} is not a positive number of tokens (leave it blank for no limit)")
    return value


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (time.monotonic(), tokens) in the window

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Ledger:
    """What each key has used, shared by the server's threads.

    `admit` is checked before a request runs, on what was already used: the size of an answer is not
    known until it is generated, so a request that starts under a limit may end over it. The next
    request of that key is then refused until the minute (or the quota) allows it again."""

    def __init__(self, keys: list[Key]):
        self._usage = {key: Usage() for key in keys}
        self._lock = threading.Lock()

    def admit(self, key: Key) -> None:
        """Raise OpenAI's 429 if KEY has used its total tokens, or its tokens per minute in the last minute."""
        with self._lock:
            usage = self._usage[key]
            if key.total_tokens is not None and usage.total_tokens >= key.total_tokens:
                raise APIError(429, f"{key.name} has used {usage.total_tokens:,} of its {key.total_tokens:,} total "
                               "tokens: this key's quota is spent; ask your teacher for more.",
                               type="insufficient_quota", code="insufficient_quota")
            if key.tokens_per_minute is not None:
                self._check_minute(key, usage)

    def _check_minute(self, key: Key, usage: Usage) -> None:
        now = time.monotonic()
        while usage.recent and usage.recent[0][0] <= now - WINDOW_S:
            usage.recent.popleft()
        used = sum(tokens for _, tokens in usage.recent)
        if used < key.tokens_per_minute:
            return
        over, wait = used - key.tokens_per_minute, 0.0
        for when, tokens in usage.recent:  # the oldest charges leave the window first
            wait = when + WINDOW_S - now
            over -= tokens
            if over < 0:
                break
        raise APIError(429, f"Rate limit reached for {key.name} on tokens per min (TPM): Limit "
                       f"{key.tokens_per_minute:,}, Used {used:,}. Please try again in {wait:.1f}s.",
                       type="tokens", code="rate_limit_exceeded",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def charge(self, key: Key, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            usage = self._usage[key]
            usage.requests += 1
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
            usage.recent.append((time.monotonic(), prompt_tokens + completion_tokens))

    def report(self) -> list[dict]:
        """One row per key, by name (never the secret), with its limits (None: unlimited).
        Requests count the answers charged, not the ones refused."""
        with self._lock:
            return [{"name": key.name, "role": "teacher" if key.teacher else "student", "requests": u.requests,
                     "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                     "total_tokens": u.total_tokens,
                     "limits": {"tokens_per_minute": key.tokens_per_minute, "total_tokens": key.total_tokens}}
                    for key, u in self._usage.items()]


class KeyAuth:
    """ASGI middleware: a request needs one of KEYS (401 otherwise, as OpenAI answers it); a metered POST is
    admitted by the ledger (429) and charged with what its answer reports. Plain ASGI rather than
    starlette's BaseHTTPMiddleware, which hides a client's disconnect from a streaming answer: here the
    engine loop still learns at once that a student left, and drops their rows."""

    def __init__(self, app, keys: list[Key], ledger: Ledger | None):
        self.app, self.keys, self.ledger = app, keys, ledger

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _bearer(scope)
        # as bytes: compare_digest refuses str that is not ASCII; the key itself is never logged or echoed
        key = next((k for k in self.keys if secrets.compare_digest(given.encode(), k.secret.encode())), None)
        if key is None:
            message = "You didn't provide an API key." if not given else "Incorrect API key provided."
            return await error_response(401, message, code="invalid_api_key")(scope, receive, send)
        scope.setdefault("state", {})["key"] = key  # request.state.key in the routes
        if self.ledger is None or scope["method"] != "POST" or scope["path"] not in METERED:
            return await self.app(scope, receive, send)
        try:
            self.ledger.admit(key)
        except APIError as e:
            return await e.response()(scope, receive, send)
        meter = Meter(self.ledger, key)

        async def metered_send(message) -> None:
            meter.observe(message)
            await send(message)

        try:
            await self.app(scope, receive, metered_send)
        finally:
            meter.close()


def _bearer(scope) -> str:
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


class Meter:
    """Charges one answer as it is sent: a JSON answer's `usage` when its body is complete, a stream's as its
    events pass (once, before `data: [DONE]` or a Responses stream's response.completed goes out, so a client
    that has read the whole stream sees the charge; or when the stream stops early). Only 200s are charged.

    A stream's final `usage` event (sent when the client asked for stream_options.include_usage; a Responses
    stream always ends with its usage) gives the exact figures. Without it, each streamed choice delta counts
    as one completion token, since labkit's engine streams one token per step; its prompt tokens are then not
    counted."""

    def __init__(self, ledger: Ledger, key: Key):
        self.ledger, self.key = ledger, key
        self.status, self.stream, self.charged = 0, False, False
        self.body, self.usage, self.deltas = b"", None, 0

    def observe(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            self.stream = content_type.startswith(b"text/event-stream")
        elif message["type"] == "http.response.body" and self.status == 200 and not self.charged:
            self.body += message.get("body", b"")
            if self.stream:
                *events, self.body = self.body.split(b"\n\n")
                for data in map(_data, events):
                    self._event(data)
            elif not message.get("more_body", False):
                self._charge(*_tokens(json.loads(self.body).get("usage") or {}))

    def _event(self, data: bytes) -> None:
        if data == b"[DONE]":
            self.close()
        elif data.startswith(b"{"):
            parsed = json.loads(data)
            # a Responses stream's usage is in its last event's response; each text or arguments delta is a token
            self.usage = parsed.get("usage") or (parsed.get("response") or {}).get("usage") or self.usage
            self.deltas += sum("role" not in c.get("delta", {}) for c in parsed.get("choices") or [])
            self.deltas += parsed.get("type") in RESPONSES_DELTAS
            if parsed.get("type") in RESPONSES_ENDS:
                self.close()

    def close(self) -> None:
        """The answer ended (or its client left): charge a stream for what went out."""
        if self.stream and self.status == 200 and not self.charged:
            if self.usage:
                self._charge(*_tokens(self.usage))
            else:
                self._charge(0, self.deltas)

    def _charge(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.charged = True
        self.ledger.charge(self.key, prompt_tokens, completion_tokens)


def _tokens(usage: dict) -> tuple[int, int]:
    """(prompt, completion) tokens of a usage object: Chat Completions' names, or Responses' (input, output);
    embeddings have no completion tokens."""
    return (usage.get("prompt_tokens", usage.get("input_tokens", 0)),
            usage.get("completion_tokens", usage.get("output_tokens", 0)))


def _data(event: bytes) -> bytes:
    """The payload of one server-sent event: its `data:` lines (other fields, such as `event:`, are skipped)."""
    return b"".join(line[5:].strip() for line in event.splitlines() if line.startswith(b"data:"))
