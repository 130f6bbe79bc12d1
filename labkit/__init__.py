"""labkit: learn how GPT models and their APIs work, on a local model or the OpenAI API."""

from pathlib import Path

from labkit.errors import (
    BudgetExceededError,
    ConfirmationRequiredError,
    ContextLengthExceededError,
    EncodingUnavailableError,
    FineTuningUnavailableError,
    FollowTimeoutError,
    InvalidRequestError,
    LabkitError,
    ModelNotAvailableError,
    RetiredModelError,
    UnknownModelError,
)
from labkit.i18n import set_language

__version__ = "0.1.0"
DATA = Path(__file__).resolve().parent / "data"  # datasets written for labkit, installed with it (a README each)

__all__ = [
    "BudgetExceededError", "ConfirmationRequiredError", "ContextLengthExceededError", "EncodingUnavailableError",
    "FineTuningUnavailableError", "FollowTimeoutError", "InvalidRequestError", "Lab", "LabkitError",
    "ModelNotAvailableError", "RetiredModelError", "UnknownModelError", "set_language",
]


_SUBMODULES = {"catalog", "embeddings", "engine", "evals", "fewshot", "finetune", "server", "tokens", "train", "usage",
               "viz", "widgets"}


def __getattr__(name):  # import lazily: `import labkit` stays fast and torch-free
    if name == "Lab":
        from labkit.lab import Lab

        return Lab
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
