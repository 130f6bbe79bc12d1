"""labkit: learn how GPT models and their APIs work, on a local model or the OpenAI API."""

from labkit.errors import (
    BudgetExceededError,
    ContextLengthExceededError,
    EncodingUnavailableError,
    InvalidRequestError,
    LabkitError,
    ModelNotAvailableError,
    RetiredModelError,
    UnknownModelError,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetExceededError", "ContextLengthExceededError", "EncodingUnavailableError", "InvalidRequestError",
    "Lab", "LabkitError", "ModelNotAvailableError", "RetiredModelError", "UnknownModelError",
]


def __getattr__(name):  # import Lab lazily: `import labkit` stays fast and torch-free
    if name == "Lab":
        from labkit.lab import Lab

        return Lab
    raise AttributeError(name)
