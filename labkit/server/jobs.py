"""/v1/fine_tuning/jobs in OpenAI's shapes: create, list, retrieve, cancel, events, checkpoints.

Storage is labkit.finetune.jobs; the training runs in labkit.finetune.worker, off the request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from labkit.errors import NotFoundError
from labkit.finetune.jobs import JobStore
from labkit.finetune.store import FileStore
from labkit.finetune.worker import Worker
from labkit.server.errors import APIError

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | Annotated[StrictInt, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[StrictInt, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[StrictInt | StrictFloat, Field(gt=0)] = "auto"


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters = Hyperparameters()


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised"]  # dpo and reinforcement need what the local trainer does not do
    supervised: Supervised = Supervised()


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    training_file: StrictStr
    validation_file: StrictStr | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    # the suffix becomes part of a model name whose parts are split on ':'
    suffix: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=2_147_483_647)] | None = None
    integrations: None = None  # Weights & Biases reporting: not offered locally
    metadata: dict[StrictStr, StrictStr] | None = None


def router(jobs: JobStore, files: FileStore, worker: Worker, base_folder: Callable[[str], Path]) -> APIRouter:
    """base_folder(name) is the folder of a model this server may fine-tune; it raises for others."""
    r = APIRouter()

    @r.post("/v1/fine_tuning/jobs")
    async def create(request: Request):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise APIError(400, f"We could not parse the JSON body of your request ({e}).") from None
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        req = JobRequest.model_validate(body)
        if req.hyperparameters and req.method:
            raise APIError(400, "Give hyperparameters either at the top level (deprecated) or in "
                           "method.supervised.hyperparameters, not both.", param="hyperparameters")
        for param in ("training_file", "validation_file"):
            file_id = getattr(req, param)
            if file_id is None:
                continue
            try:
                card = files.get(file_id)
            except NotFoundError:
                raise APIError(400, f"invalid {param}: no file {file_id!r} on this server; upload it with "
                               "client.files.create(file=..., purpose='fine-tune')", param=param,
                               code="file_not_found") from None
            if card["purpose"] != "fine-tune":
                raise APIError(400, f"{param} {file_id} has purpose {card['purpose']!r}; fine-tuning needs a file "
                               "uploaded with purpose 'fine-tune'", param=param, code="invalid_file_purpose")
        await run_in_threadpool(base_folder, req.model)
        hyper = (req.method.supervised.hyperparameters if req.method else req.hyperparameters) or Hyperparameters()
        job = jobs.create(req.model, req.training_file, req.validation_file, hyper.model_dump(), req.suffix,
                          req.seed if req.seed is not None else secrets.randbelow(2**31), req.metadata)
        worker.wake()
        return job

    @r.get("/v1/fine_tuning/jobs")
    def list_jobs(after: str | None = None, limit: int = 20):
        return jobs.list(after, _limit(limit))

    @r.get("/v1/fine_tuning/jobs/{job_id}")
    def retrieve(job_id: str):
        return jobs.get(job_id)

    @r.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        return jobs.cancel(job_id)

    @r.get("/v1/fine_tuning/jobs/{job_id}/events")
    def events(job_id: str, after: str | None = None, limit: int = 20):
        return jobs.events(job_id, after, _limit(limit))

    @r.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def checkpoints(job_id: str, after: str | None = None, limit: int = 10):
        return jobs.checkpoints(job_id, after, _limit(limit))

    return r


def _limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise APIError(400, f"limit must be between 1 and 100, got {limit}", param="limit")
    return limit
