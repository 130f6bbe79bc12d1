"""`Lab`: one OpenAI client for the local model or a remote API, with model roles, capabilities and usage.

    lab = Lab()                       # LABKIT_BACKEND, else openai if OPENAI_API_KEY is set, else local
    lab.client.chat.completions.create(model=lab.models.chat, messages=[...])
    lab.capabilities.completions      # what the backend can do (never ask which backend it is)
    writer = lab.for_role("completion")   # (client, model); falls back to the local model with one printed line
    lab.usage                         # tokens, trained tokens and estimated dollars so far
    lab.cleanup()                     # delete the files this Lab uploaded

Roles on a remote backend: a labkit server says which of its models plays each role (GET /labkit/roles); any
other server is asked for its models (GET /v1/models) and each role takes the first model of labkit's catalog
preference (`catalog.preference(role)`) that it lists and that is not past its shutdown date. LABKIT_MODEL_<ROLE>
(LABKIT_MODEL_CHAT, ..._COMPLETION, ..._INSERTION, ..._EMBEDDING, ..._FINE_TUNE) overrides a remote role, `local`
as its value sends that role to the local model; Lab(models={...}) overrides both.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path

import openai

from labkit import catalog, tokens
from labkit.errors import BudgetExceededError, ConfirmationRequiredError, FineTuningUnavailableError, LabkitError
from labkit.i18n import _
from labkit.usage import Usage, UsageHooks

BACKENDS = ("local", "openai")
LOCAL_KEY = "labkit-local"  # the in-process server needs no key; the SDK wants one
ROLES = catalog.ROLES
ROLE_NEEDS = {"chat": "chat", "completion": "completions", "insertion": "suffix", "embedding": "embeddings",
              "fine_tune": "fine_tuning"}  # the capability a role is for
_ROLE_WORDS = {"chat": "chat", "completion": "completions", "insertion": "`suffix` (insertion)",
               "embedding": "embedding", "fine_tune": "fine-tuning base"}


@dataclass(frozen=True)
class Models:
    """The model name for each role on the active backend (None: the backend has none). Notebooks use these,
    or `lab.for_role(role)`, never literals."""

    chat: str | None
    completion: str | None
    insertion: str | None = None  # a model that accepts `suffix`
    embedding: str | None = None
    fine_tune: str | None = None  # the base model fine-tuning jobs start from


@dataclass(frozen=True)
class Capabilities:
    """What the active backend can do. A lesson asks these, never which backend it is.

    chat, completions (legacy /v1/completions), suffix (insertion), echo (the prompt's tokens back, on
    completions), logprobs (on chat), embeddings, pooled_embeddings (NAME-mean: a chat model's hidden states
    averaged, labkit's), fine_tuning (creating jobs), responses (/v1/responses),
    structured_outputs (response_format with a JSON schema), local_weights (the model's weights are in this
    process: its chat template, token pieces, losses of given text), billed (requests cost money).
    `why[name]` says why a capability is missing."""

    chat: bool = False
    completions: bool = False
    suffix: bool = False
    echo: bool = False
    logprobs: bool = False
    embeddings: bool = False
    pooled_embeddings: bool = False
    fine_tuning: bool = False
    responses: bool = False
    structured_outputs: bool = False
    local_weights: bool = False
    billed: bool = False
    why: dict = field(default_factory=dict, compare=False)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "why"]

    def why_not(self, name: str) -> str | None:
        """Why `name` is missing (None when the backend has it)."""
        if name not in self.names():
            raise ValueError(f"unknown capability {name!r}; known: {', '.join(self.names())}")
        return None if getattr(self, name) else self.why.get(name, f"this backend has no {name}")

    def __repr__(self) -> str:
        has = [n for n in self.names() if getattr(self, n)]
        lacks = [n for n in self.names() if not getattr(self, n)]
        return f"Capabilities(yes: {', '.join(has) or '-'}; no: {', '.join(lacks) or '-'})"


@dataclass(frozen=True)
class Served:
    """Where a role runs: `client.….create(model=model, ...)`; `lab` for helpers that take a Lab (evals.run).
    local: this machine's engine serves it; why: why the backend's own model could not (None if it did).
    Unpacks as (client, model)."""

    client: openai.OpenAI
    model: str
    lab: Lab
    local: bool
    why: str | None = None

    def __iter__(self):
        return iter((self.client, self.model))

    def __repr__(self) -> str:
        where = "the local model" if self.local else self.lab.base_url
        return f"Served(model={self.model!r}, on {where}" + (f", because: {self.why}" if self.why else "") + ")"


_servers: dict[str, object] = {}  # one in-process server per local model, shared by every Lab
_servers_lock = threading.Lock()


def _local_server(model: str):
    from labkit.engine.registry import served_by_default
    from labkit.server import LocalServer, create_app

    with _servers_lock:
        server = _servers.get(model)
        if server is None or not server.thread.is_alive():  # first use, or stopped since
            server = _servers[model] = LocalServer(create_app(served_by_default(model)))
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
    models: override role -> model names, e.g. Lab(models={"chat": "gpt-4o"}); None sends a role to the
        local model.
    usage: a Usage to count into (a fallback Lab shares its parent's).

    lab.models: the model of each role; lab.capabilities: what the backend can do; lab.for_role(role): the
    client and model for a role, the local model's (with one printed line saying why) where the backend has
    none; lab.fine_tune(...): upload and start a job, confirmed before it spends; lab.cleanup(): delete what
    this Lab uploaded.
    """

    def __init__(self, backend: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 local_model: str | None = None, budget_usd: float | None = None,
                 models: dict[str, str | None] | None = None, timeout: float = 600.0, usage: Usage | None = None):
        self.backend = choose_backend(backend)
        self.usage = usage if usage is not None else Usage(budget_usd)
        if usage is not None and budget_usd is not None:
            self.usage.budget_usd = budget_usd
        self._timeout = timeout
        self._local: Lab | None = None
        self._files: list[str] = []  # ids of files this Lab uploaded
        self._jobs: list[str] = []  # ids of fine-tuning jobs it created
        self._confirmed = threading.local()  # set while lab.fine_tune sends a confirmed job
        hooks = UsageHooks(self.usage)
        http = openai.DefaultHttpxClient(
            event_hooks={"request": [hooks.on_request, self._on_request],
                         "response": [hooks.on_response, self._on_response]},
            trust_env=self.backend != "local")  # a campus proxy must not see requests to 127.0.0.1
        why: dict[str, str] = {}
        if self.backend == "local":
            from labkit.engine import DEFAULT_MODEL
            from labkit.server.app import local_roles

            self.local_model = local_model or os.environ.get("LABKIT_LOCAL_MODEL") or DEFAULT_MODEL
            self.server = _local_server(self.local_model)
            self.base_url = self.server.base_url
            self.client = openai.OpenAI(base_url=self.base_url, api_key=LOCAL_KEY, http_client=http,
                                        timeout=timeout)
            roles, kind = local_roles(self.server.app.state.models), "local"
        else:
            self.server, self.local_model = None, None
            self.client = openai.OpenAI(base_url=base_url, api_key=api_key, http_client=http, timeout=timeout)
            self.base_url = str(self.client.base_url).rstrip("/")
            # a teacher's `labkit serve` says which of its models play which role
            roles = None if "api.openai.com" in self.base_url else _roles(self.base_url, self.client.api_key)
            kind = "labkit"
            if roles is None:
                listed = self._list_models()
                known = listed is None or any(name in catalog.MODELS for name in listed)
                kind = "openai" if known else "other"
                roles, why = (_discover(listed, self.base_url) if known else _discover_other(listed, self.base_url))
            for role in ROLES:
                chosen = os.environ.get(f"LABKIT_MODEL_{role.upper()}")
                if chosen:
                    roles[role] = None if chosen == "local" else chosen
                    why[role] = f"LABKIT_MODEL_{role.upper()}=local"
        for role, chosen in (models or {}).items():
            if role not in ROLES:
                raise ValueError(f"models: unknown role {role!r}; roles are {', '.join(ROLES)}")
            roles[role] = chosen
            why[role] = f"Lab(models={{{role!r}: None}})"
        self._kind = kind
        self.models = Models(**{r: roles.get(r) for r in ROLES})
        served = None
        if kind == "local":
            served = set(self.server.app.openapi()["paths"])  # app.routes hides included routers' routes
        elif kind == "labkit":
            served = _labkit_routes(self.base_url, self.client.api_key)
        self.capabilities = _capabilities(kind, self.models, why, self.base_url, served)

    def __repr__(self) -> str:
        return f"Lab(backend={self.backend!r}, base_url={self.base_url!r}, models={self.models})"

    # --- roles -------------------------------------------------------------------------------------------

    def for_role(self, role: str, needs: tuple[str, ...] | list[str] = (), fallback: str = "local") -> Served | None:
        """The client and model that serve `role` ("chat", "completion", "insertion", "embedding", "fine_tune"),
        with the capabilities in `needs` too (e.g. needs=("echo",), ("logprobs",)).

        Where the active backend cannot, the local model serves it and one line is printed saying so and why
        ("OpenAI shut down its last completions models (...) on 2026-09-28; this cell runs on the local model
        (...)."); with fallback="skip", or where the local model cannot either, the line says the cell is
        skipped and None is returned. Call it once per cell."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if fallback not in ("local", "skip"):
            raise ValueError(f"fallback must be 'local' or 'skip', got {fallback!r}")
        missing = self._missing(role, needs)
        if not missing:
            return Served(self.client, getattr(self.models, role), self, self.backend == "local")
        why = self._why_missing(role, missing)
        if fallback == "local" and self.backend != "local":
            local = self.local_lab()
            if not local._missing(role, needs):
                model = getattr(local.models, role)
                print(_("{why}; this cell runs on the local model ({model}).", why=why, model=model))
                return Served(local.client, model, local, True, why)
            why += "; " + local._why_missing(role, local._missing(role, needs))
        print(_("{why}; this cell is skipped.", why=why))
        return None

    def _why_missing(self, role: str, missing: list[str]) -> str:
        """Why the backend cannot serve `role` with these capabilities: a capability it lacks, or no model it
        serves for the role (a labkit server started without the FIM model has `suffix`, but no insertion model)."""
        return "; ".join(dict.fromkeys(self.capabilities.why_not(c) or self.capabilities.why.get(
            c, f"{self.base_url or 'this backend'} serves no {_ROLE_WORDS[role]} model") for c in missing))

    def _missing(self, role: str, needs) -> list[str]:
        for need in needs:
            self.capabilities.why_not(need)  # unknown names raise
        wanted = [ROLE_NEEDS[role], *needs]
        missing = [c for c in wanted if not getattr(self.capabilities, c)]
        if getattr(self.models, role) is None and ROLE_NEEDS[role] not in missing:
            missing.insert(0, ROLE_NEEDS[role])
        return missing

    def local_lab(self) -> Lab:
        """A Lab on the local model that counts into this Lab's usage (this Lab itself when it is local)."""
        if self.backend == "local":
            return self
        if self._local is None:
            self._local = Lab(backend="local", usage=self.usage, timeout=self._timeout)
        return self._local

    # --- money -------------------------------------------------------------------------------------------

    def estimate_fine_tune(self, training_file: str | Path, model: str | None = None,
                           n_epochs: int | None = None) -> dict:
        """What a fine-tuning job on `training_file` would bill: {"model", "tokens" (per epoch), "epochs",
        "trained_tokens", "usd_per_1m", "usd"} (usd None where the catalog has no price for the model)."""
        from labkit.finetune import TOKEN_LIMITS, validate

        model = model or self.models.fine_tune
        if model is None:
            raise ValueError(f"{self.base_url} has no fine-tuning base model: pass model=..., or estimate on "
                             "lab.for_role('fine_tune').lab")
        limit = TOKEN_LIMITS.get(model) or 65_536
        report = validate(training_file, model=model if model in TOKEN_LIMITS else "gpt-4o-mini-2024-07-18",
                          token_limit=limit, n_epochs=n_epochs)
        trained = report.billed_tokens * report.epochs
        price = catalog.training_price(model) if self.capabilities.billed else 0.0
        return {"model": model, "tokens": report.billed_tokens, "epochs": report.epochs, "trained_tokens": trained,
                "usd_per_1m": price, "usd": None if price is None else trained * price / 1e6}

    def fine_tune(self, training_file: str | Path, *, validation_file: str | Path | None = None,
                  model: str | None = None, confirm_cost_usd: float | None = None,
                  hyperparameters: dict | None = None, **create):
        """Upload a chat JSONL file (and a validation file) and start a fine-tuning job; returns the job.

        The job runs where the fine_tune role does (`for_role("fine_tune")`: the local model, with one printed
        line, where the backend cannot fine-tune). On a backend that bills, nothing is uploaded or started
        unless confirm_cost_usd is given and is at least labkit's estimate of the job's training cost
        (ConfirmationRequiredError, whose message holds the estimate); where the catalog has no price, any
        confirm_cost_usd starts it. Follow it with `labkit.finetune.follow.follow(served.client, job.id)`,
        where served = lab.for_role("fine_tune")."""
        if model is None:
            served = self.for_role("fine_tune")
            if served is None:
                return None
            lab, model = served.lab, served.model
        else:
            lab = self
        if lab is not self:
            return lab.fine_tune(training_file, validation_file=validation_file, model=model,
                                 confirm_cost_usd=confirm_cost_usd, hyperparameters=hyperparameters, **create)
        epochs = (hyperparameters or {}).get("n_epochs")
        if lab.capabilities.billed:
            est = lab.estimate_fine_tune(training_file, model, epochs if isinstance(epochs, int) else None)
            lab._check_confirmed(est, confirm_cost_usd)
        files = {"training_file": training_file, "validation_file": validation_file}
        ids = {}
        for key, path in files.items():
            if path is not None:
                with open(path, "rb") as f:
                    ids[key] = lab.client.files.create(file=f, purpose="fine-tune").id
        if hyperparameters is not None:
            create["hyperparameters"] = hyperparameters
        try:
            with lab._confirm():
                return lab.client.fine_tuning.jobs.create(model=model, **ids, **create)
        except openai.PermissionDeniedError as e:
            status = catalog.fine_tuning_status()
            raise FineTuningUnavailableError(
                f"{lab.base_url} refused to start a fine-tuning job on {model} (403: {_message(e)})."
                + (f" {status}." if status else "") + " Set LABKIT_MODEL_FINE_TUNE=local to fine-tune the local "
                "model instead; lab.cleanup() deletes the files uploaded for it.") from e

    def _check_confirmed(self, est: dict, confirm_cost_usd: float | None) -> None:
        cost = est["usd"]
        what = (f"fine-tuning {est['model']} on {est['tokens']:,} tokens x {est['epochs']} epochs = "
                f"{est['trained_tokens']:,} trained tokens")
        if cost is None:
            priced = f"{what}; labkit's catalog has no training price for {est['model']}"
            if confirm_cost_usd is None:
                raise ConfirmationRequiredError(
                    f"{priced}, so the cost is unknown: nothing was uploaded or started. Pass confirm_cost_usd=<the "
                    "most you accept> to start it, and check your bill.")
            return
        priced = f"{what} at ${est['usd_per_1m']:.2f}/1M = about ${cost:.4f}"
        if confirm_cost_usd is None or confirm_cost_usd < cost:
            given = "" if confirm_cost_usd is None else f" (confirm_cost_usd={confirm_cost_usd} is less)"
            raise ConfirmationRequiredError(
                f"{priced}{given}: nothing was uploaded or started. Pass confirm_cost_usd={_round_up(cost)} (or "
                "more) to accept spending it.", estimate_usd=cost)
        budget = self.usage.budget_usd
        if budget is not None and self.usage.cost_usd + cost > budget:
            raise BudgetExceededError(f"{priced}; ${self.usage.cost_usd:.4f} of the ${budget:.2f} budget is spent. "
                                      "Raise Lab(budget_usd=...) or train on fewer tokens.")

    @contextlib.contextmanager
    def _confirm(self):
        self._confirmed.job = True
        try:
            yield
        finally:
            self._confirmed.job = False

    def _on_request(self, request) -> None:
        """On a billed backend a fine-tuning job starts only through lab.fine_tune(confirm_cost_usd=...)."""
        if (request.method == "POST" and request.url.path.rstrip("/").endswith("/fine_tuning/jobs")
                and self.capabilities.billed and not getattr(self._confirmed, "job", False)):
            raise ConfirmationRequiredError(
                f"a fine-tuning job on {self.base_url} costs money: start it with lab.fine_tune(..., "
                "confirm_cost_usd=...), which estimates the cost first. Nothing was sent.")

    def _on_response(self, response) -> None:
        """Remember the files and jobs this Lab created, for cleanup()."""
        if response.request.method != "POST" or response.status_code >= 400:
            return
        path = response.request.url.path.rstrip("/")
        if not (path.endswith("/files") or path.endswith("/fine_tuning/jobs")):
            return
        response.read()
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("object") == "file":
            self._files.append(body["id"])
        elif isinstance(body, dict) and body.get("object") == "fine_tuning.job":
            self._jobs.append(body["id"])

    def cleanup(self, models: bool = False) -> list[str]:
        """Delete every file this Lab (and its local fallback) uploaded; with models=True also the fine-tuned
        models its jobs made. Returns the ids deleted. Lessons call it at their end."""
        deleted = []
        for file_id in list(self._files):
            with contextlib.suppress(openai.NotFoundError):
                self.client.files.delete(file_id)
                deleted.append(file_id)
            self._files.remove(file_id)
        if models:
            for job_id in list(self._jobs):
                made = self.client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
                if made:
                    with contextlib.suppress(openai.NotFoundError):
                        self.client.models.delete(made)
                        deleted.append(made)
                self._jobs.remove(job_id)
        if self._local is not None:
            deleted += self._local.cleanup(models=models)
        return deleted

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def _list_models(self) -> list[str] | None:
        """Names the server lists (GET /v1/models), those past a shutdown_date it gives left out; None when
        it cannot be asked."""
        try:
            page = self.client.with_options(max_retries=0, timeout=15).models.list()
        except openai.OpenAIError as e:
            print(f"labkit could not list the models at {self.base_url} ({type(e).__name__}: {_message(e)}); "
                  "roles follow labkit's catalog unchecked.")
            return None
        today = catalog.today()
        names = []
        for m in page.data:
            ends = getattr(m, "shutdown_date", None)
            try:
                if ends and catalog._day(str(ends)) <= today:
                    continue
            except ValueError:
                pass
            names.append(m.id)
        return names

    # --- tokens ------------------------------------------------------------------------------------------

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int = 0) -> float:
        """Estimated USD of a request from the catalog's prices (0 for local models)."""
        return catalog.cost(model, prompt_tokens, completion_tokens)

    def count_tokens(self, text_or_messages, model: str | None = None) -> int:
        """Tokens of a prompt string or chat messages as `model` would count them.

        OpenAI models count with tiktoken (offline); local models with their own tokenizer,
        messages rendered through their chat template."""
        model = model or self.models.chat
        try:
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


def _message(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _round_up(usd: float) -> float:
    """A round confirmation figure at or above `usd`."""
    import math

    for step in (0.01, 0.1, 1.0, 10.0, 100.0):
        if usd <= step * 10:
            return round(math.ceil(usd / step) * step, 2) or step
    return float(math.ceil(usd))


def _discover(listed: list[str] | None, base_url: str) -> tuple[dict, dict]:
    """Each role's first catalog preference that the server lists and that is not past its shutdown; and why
    each empty role is empty. listed None: the server could not be asked, so presence is not checked."""
    today = catalog.today()
    roles, why = {}, {}
    closed = catalog.fine_tuning_status(today)
    for role in ROLES:
        wanted = catalog.preference(role)
        live = [n for n in wanted if not catalog.info(n).is_shut_down(today)]
        present = [n for n in live if listed is None or n in listed]
        if role == "fine_tune" and closed:
            roles[role], why[role] = None, closed
        elif present:
            roles[role] = present[0]
        elif not live:
            ends = max(catalog.info(n).shutdown for n in wanted)
            roles[role] = None
            why[role] = (f"OpenAI shut down its last {_ROLE_WORDS[role]} model{'s' if len(wanted) > 1 else ''} "
                         f"({', '.join(wanted)}) on {ends.isoformat()}")
        else:
            roles[role] = None
            why[role] = f"{base_url} lists none of the {_ROLE_WORDS[role]} models labkit knows ({', '.join(live)})"
    return roles, why


def _discover_other(listed: list[str], base_url: str) -> tuple[dict, dict]:
    """A server that is neither labkit's nor lists OpenAI's models (vLLM, a gateway): its first model chats and
    completes; a model whose name says `embed` embeds; no insertion and no fine-tuning can be counted on."""
    first = next((n for n in listed if "embed" not in n.lower()), None)
    embedder = next((n for n in listed if "embed" in n.lower()), None)
    roles = {"chat": first, "completion": first, "insertion": None, "embedding": embedder, "fine_tune": None}
    why = {r: f"{base_url} lists no model labkit knows for {_ROLE_WORDS[r]}" for r, m in roles.items() if m is None}
    return roles, why


def _labkit_routes(base_url: str, api_key: str | None) -> set[str]:
    """The optional routes a remote labkit server has: /v1/responses answers a bad body with a 400 where it is
    served, a 404 where it is not."""
    request = urllib.request.Request(base_url.rstrip("/") + "/responses", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {api_key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5):
            return {"/v1/responses"}
    except urllib.error.HTTPError as e:
        return set() if e.code in (404, 405) else {"/v1/responses"}
    except OSError:
        return set()


def _structured_outputs() -> bool:
    """Whether labkit's engine takes response_format (it refuses what it cannot honour by name)."""
    from labkit.server.schemas import UNSUPPORTED

    return "response_format" not in UNSUPPORTED.get("chat", [])


def _capabilities(kind: str, models: Models, why: dict, base_url: str,
                  labkit_routes: set[str] | None = None) -> Capabilities:
    """What a backend of this kind can do with these role models; `why` carries each role's reason.
    labkit_routes: the routes of a labkit server (local or remote), for the optional ones."""
    reasons = {ROLE_NEEDS[r]: w for r, w in why.items()}
    has = {ROLE_NEEDS[r]: getattr(models, r) is not None for r in ROLES}
    if kind in ("local", "labkit"):
        where = "this process" if kind == "local" else f"the labkit server at {base_url}"
        caps = {**has, "suffix": has["completions"], "echo": has["completions"], "logprobs": has["chat"],
                "pooled_embeddings": has["chat"], "responses": "/v1/responses" in (labkit_routes or set()),
                "structured_outputs": has["chat"] and _structured_outputs(), "local_weights": kind == "local",
                "billed": False}
        reasons.update(responses=f"labkit's server ({where}) has no /v1/responses",
                       structured_outputs=f"labkit's engine ({where}) refuses response_format",
                       local_weights=f"the model runs on {base_url}, not in this process")
    elif kind == "openai":
        def feature(model, name):
            try:
                m = catalog.info(model)
            except LabkitError:
                return True  # a model the user named that the catalog does not know: trust them
            return bool(m.features.get(name))

        def endpoint(model, name):
            try:
                return name in catalog.info(model).endpoints
            except LabkitError:
                return True

        chat, completion, insertion = models.chat, models.completion, models.insertion
        caps = {**has,
                "suffix": has["suffix"] and feature(insertion, "suffix"),
                "echo": has["completions"] and feature(completion, "echo"),
                "logprobs": has["chat"] and feature(chat, "logprobs"),
                "responses": has["chat"] and endpoint(chat, catalog.RESPONSES),
                "structured_outputs": has["chat"] and feature(chat, "structured_outputs"),
                "pooled_embeddings": False, "local_weights": False, "billed": True}
        reasons.setdefault("echo", reasons.get("completions", f"{completion} does not echo"))
        reasons.setdefault("logprobs", f"labkit's catalog does not say that {chat} returns logprobs")
        reasons.setdefault("responses", f"{chat} is not served on /v1/responses")
        reasons.setdefault("structured_outputs", f"labkit's catalog does not say that {chat} takes a JSON schema")
        reasons["local_weights"] = "OpenAI does not publish its models' weights or chat templates"
        reasons["pooled_embeddings"] = "OpenAI serves no embeddings pooled from a chat model's hidden states"
    else:
        caps = {**has, "echo": has["completions"], "logprobs": has["chat"], "responses": False,
                "structured_outputs": False, "pooled_embeddings": False, "local_weights": False, "billed": True}
        for name in ("responses", "structured_outputs", "pooled_embeddings"):
            reasons[name] = f"labkit cannot tell whether {base_url} offers {name}"
        reasons["local_weights"] = f"the model runs on {base_url}, not in this process"
    reasons.setdefault("billed", "this backend is free to use")
    reasons.setdefault("chat", "no chat model")
    return Capabilities(**caps, why={k: v for k, v in reasons.items() if not caps.get(k)})


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
    return {k: data.get(k) for k in ROLES}
