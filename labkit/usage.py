"""Tokens and dollars spent through a Lab's client, and the optional budget cap.

The client's HTTP layer reports every response's `usage` here, and asks before each
request whether it could push spending past the cap. A stream carries usage only with
`stream_options={"include_usage": True}`; without it labkit counts one token per streamed
piece of text (how OpenAI and labkit stream) and marks the request as estimated.
A fine-tuning job is counted once, when a response first shows it `succeeded`: its
`trained_tokens` at the catalog's training price of its base model.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass

from labkit import catalog, tokens
from labkit.errors import BudgetExceededError, LabkitError


@dataclass
class ModelUsage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # requests and training together
    estimated: int = 0  # requests whose counts are labkit's estimate (streams without usage)
    jobs: int = 0  # fine-tuning jobs that finished on this base model
    training_tokens: int = 0  # their trained tokens (tokens x epochs)
    training_cost_usd: float = 0.0
    unpriced_jobs: int = 0  # jobs whose base model has no training price in the catalog


class Usage:
    """Per-model token counts and estimated cost so far (prices from labkit.catalog)."""

    def __init__(self, budget_usd: float | None = None):
        self.budget_usd = budget_usd
        self.by_model: dict[str, ModelUsage] = {}
        self._jobs_seen: set[str] = set()
        self._lock = threading.Lock()

    @property
    def cost_usd(self) -> float:
        with self._lock:
            return sum(u.cost_usd for u in self.by_model.values())

    @property
    def total_tokens(self) -> int:
        with self._lock:
            return sum(u.prompt_tokens + u.completion_tokens for u in self.by_model.values())

    def record(self, model: str, prompt_tokens: int, completion_tokens: int, estimated: bool = False) -> None:
        with self._lock:
            u = self.by_model.setdefault(model, ModelUsage())
            u.requests += 1
            u.estimated += estimated
            u.prompt_tokens += prompt_tokens
            u.completion_tokens += completion_tokens
            u.cost_usd += catalog.cost(model, prompt_tokens, completion_tokens)

    @property
    def training_tokens(self) -> int:
        with self._lock:
            return sum(u.training_tokens for u in self.by_model.values())

    def record_training(self, job_id: str, model: str, trained_tokens: int) -> bool:
        """Count a finished fine-tuning job once (by id): its trained tokens at `model`'s training price."""
        price = catalog.training_cost(model, trained_tokens)
        with self._lock:
            if job_id in self._jobs_seen:
                return False
            self._jobs_seen.add(job_id)
            u = self.by_model.setdefault(model, ModelUsage())
            u.jobs += 1
            u.training_tokens += trained_tokens
            u.unpriced_jobs += price is None
            u.training_cost_usd += price or 0.0
            u.cost_usd += price or 0.0
            return True

    def check_budget(self, body: dict) -> None:
        """Refuse a request whose prompt plus max_tokens could pass the budget (before it is sent)."""
        if self.budget_usd is None or "model" not in body:
            return
        estimate = catalog.cost(body["model"], _prompt_tokens(body), _max_tokens(body))
        if self.cost_usd + estimate > self.budget_usd:
            raise BudgetExceededError(
                f"this request could cost up to ${estimate:.4f} ({body['model']}: prompt plus max_tokens); "
                f"${self.cost_usd:.4f} of the ${self.budget_usd:.2f} budget is spent. "
                "Raise Lab(budget_usd=...) or lower max_tokens.")

    def reset(self) -> None:
        with self._lock:
            self.by_model.clear()
            self._jobs_seen.clear()

    def __repr__(self) -> str:
        if not self.by_model:
            return "Usage(no requests yet)"
        rows = [f"{'model':32s} {'requests':>8s} {'prompt':>8s} {'completion':>10s} {'cost $':>10s}"]
        for name, u in self.by_model.items():
            note = f"  ({u.estimated} streamed without usage: estimated)" if u.estimated else ""
            if u.jobs:
                unpriced = f", {u.unpriced_jobs} without a training price" if u.unpriced_jobs else ""
                note += (f"  (+{u.training_tokens:,} trained tokens in {u.jobs} job(s): "
                         f"${u.training_cost_usd:.6f}{unpriced})")
            rows.append(f"{name:32s} {u.requests:8d} {u.prompt_tokens:8d} {u.completion_tokens:10d} "
                        f"{u.cost_usd:10.6f}{note}")
        budget = f" of ${self.budget_usd:.2f} budget" if self.budget_usd is not None else ""
        rows.append(f"{'total':32s} {'':8s} {'':8s} {self.total_tokens:>10d} {self.cost_usd:10.6f}{budget}")
        return "\n".join(rows)


def _prompt_tokens(body: dict) -> int:
    model = body["model"]
    try:
        if "messages" in body:
            return tokens.count_messages(body["messages"], model)
        prompt = body.get("prompt", body.get("input", ""))
        texts = prompt if isinstance(prompt, list) else [prompt]
        return sum(len(t) if isinstance(t, list) else tokens.count(str(t), model) for t in texts)
    except LabkitError:  # a model without a known tokenizer: the catalog prices it at 0 anyway
        return 0


def _max_tokens(body: dict) -> int:
    """The most completion tokens a request may bill: without max_tokens, chat may fill the window."""
    per_choice = body.get("max_completion_tokens") or body.get("max_tokens")
    if per_choice is None:
        if "messages" not in body:
            per_choice = 16  # the completions endpoint's default
        else:
            try:
                m = catalog.info(body["model"])
                window, most = m.context_window or 0, m.max_output_tokens
            except LabkitError:
                window, most = 0, None
            per_choice = max(0, window - _prompt_tokens(body))
            if most is not None:
                per_choice = min(per_choice, most)
    return per_choice * max(body.get("n") or 1, body.get("best_of") or 1)


class UsageHooks:
    """httpx event hooks that feed a Usage from the OpenAI client's traffic."""

    def __init__(self, usage: Usage):
        self.usage = usage

    def on_request(self, request) -> None:
        if request.method == "POST" and self.usage.budget_usd is not None:
            try:
                body = json.loads(request.content or b"{}")
            except ValueError:
                return
            if isinstance(body, dict):
                self.usage.check_budget(body)

    def on_response(self, response) -> None:
        if response.status_code >= 400:
            return
        kind = response.headers.get("content-type", "")
        if "/fine_tuning/jobs" in response.request.url.path and kind.startswith("application/json"):
            response.read()
            self._record_jobs(response.content)
            return
        if response.request.method != "POST":
            return
        if kind.startswith("application/json"):
            response.read()
            self._record(response.content)
        elif kind.startswith("text/event-stream"):
            response.stream = _sse_tap(response, _StreamCount(self.usage, response.request))

    def _record_jobs(self, payload: bytes) -> None:
        """A job, or a page of jobs: count each that has succeeded (once)."""
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        jobs = obj.get("data") if isinstance(obj, dict) and obj.get("object") == "list" else [obj]
        for job in jobs or []:
            if (isinstance(job, dict) and job.get("object") == "fine_tuning.job" and job.get("status") == "succeeded"
                    and job.get("trained_tokens")):
                self.usage.record_training(job["id"], job["model"], int(job["trained_tokens"]))

    def _record(self, payload: bytes) -> None:
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if isinstance(usage, dict) and "model" in obj:
            self.usage.record(obj["model"], int(usage.get("prompt_tokens") or 0),
                              int(usage.get("completion_tokens") or 0))


class _StreamCount:
    """Follows one stream's events: its usage chunk if it sends one, else an estimate at [DONE]."""

    def __init__(self, usage: Usage, request):
        self.usage, self.request = usage, request
        self.model, self.pieces, self.done = None, 0, False

    def __call__(self, payload: bytes) -> None:
        if self.done:
            return
        if payload == b"[DONE]":
            self._estimate()
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        self.model = obj.get("model", self.model)
        if isinstance(obj.get("usage"), dict):
            u = obj["usage"]
            self.usage.record(self.model, int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
            self.done = True
            return
        for choice in obj.get("choices") or []:
            piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
            self.pieces += bool(piece)

    def _estimate(self) -> None:
        self.done = True
        try:
            body = json.loads(self.request.content or b"{}")
        except ValueError:
            body = {}
        if self.model and isinstance(body, dict):
            self.usage.record(self.model, _prompt_tokens({**body, "model": self.model}), self.pieces, estimated=True)


def _sse_tap(response, on_event):
    """Wrap a response's byte stream so each `data:` payload is reported as it passes.

    The wrapper subclasses the HTTP library's own SyncByteStream (httpx, or httpx2 for newer
    openai releases), which is how that library tells a sync stream from an async one."""
    library = sys.modules[type(response).__module__.split(".")[0]]

    class SSETap(library.SyncByteStream):
        def __init__(self, inner):
            self.inner, self.buffer = inner, b""

        def __iter__(self):
            for chunk in self.inner:
                self.buffer += chunk
                *lines, self.buffer = self.buffer.split(b"\n")
                for line in lines:
                    if line.startswith(b"data:"):
                        on_event(line[5:].strip())
                yield chunk

        def close(self):
            self.inner.close()

    return SSETap(response.stream)
