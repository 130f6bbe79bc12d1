"""Fine-tuning: data preparation checks (`checks`), uploaded files (`store`)."""

from labkit.finetune.checks import TOKEN_LIMITS, Problem, Report, default_epochs, validate

__all__ = ["TOKEN_LIMITS", "Problem", "Report", "default_epochs", "validate"]
