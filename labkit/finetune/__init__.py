"""Fine-tuning: data preparation checks (`checks`), uploaded files (`store`), jobs and their events
(`jobs`), the trainer (`sft`) and the worker that runs jobs (`worker`), and `follow` to watch a job
from any OpenAI-compatible client."""

from labkit.finetune.checks import TOKEN_LIMITS, Problem, Report, default_epochs, validate

__all__ = ["TOKEN_LIMITS", "Problem", "Report", "default_epochs", "validate"]
