"""labkit's exceptions. Each names what was wrong; the server maps them to OpenAI error objects."""

from __future__ import annotations

import openai


class LabkitError(Exception):
    """Base class of every error labkit raises on purpose."""


class InvalidRequestError(LabkitError, ValueError):
    """A request the engine cannot honour; `param` names the field (served as a 400)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class ContextLengthExceededError(InvalidRequestError):
    def __init__(self, message: str, param: str | None = "messages"):
        super().__init__(message, param=param, code="context_length_exceeded")


class UnknownModelError(LabkitError, LookupError):
    def __init__(self, message: str, model: str):
        super().__init__(message)
        self.model = model


class RetiredModelError(UnknownModelError):
    def __init__(self, message: str, model: str, replacement: str):
        super().__init__(message, model)
        self.replacement = replacement


class NotFoundError(LabkitError, LookupError):
    """A stored object (an uploaded file, a job) with this id does not exist (served as a 404)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class ModelNotAvailableError(LabkitError):
    """A local model's files are not on this machine (labkit never downloads at run time)."""


class EncodingUnavailableError(LabkitError):
    """A tiktoken encoding whose data file is not available offline."""


class BudgetExceededError(LabkitError, openai.OpenAIError):
    """Raised before sending a request that would push spending past `Lab(budget_usd=...)`.

    It is an `openai.OpenAIError` too, so the SDK passes it through without retrying."""


class ConfirmationRequiredError(LabkitError, openai.OpenAIError):
    """A request that spends money (a fine-tuning job on a billed backend) was not confirmed: nothing was sent.

    An `openai.OpenAIError` too, so the SDK passes it through without retrying."""

    def __init__(self, message: str, estimate_usd: float | None = None):
        super().__init__(message)
        self.estimate_usd = estimate_usd


class FineTuningUnavailableError(LabkitError):
    """The backend refused to create a fine-tuning job (OpenAI's self-serve fine-tuning is closing)."""


class FollowTimeoutError(LabkitError, TimeoutError):
    """`follow(..., timeout=...)` ran out of time while the job was still going; the job itself keeps running."""

    def __init__(self, message: str, job_id: str, status: str):
        super().__init__(message)
        self.job_id, self.status = job_id, status
