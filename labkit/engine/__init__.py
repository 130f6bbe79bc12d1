"""The local engine: models loaded with transformers, sampled by labkit's own loop."""

from labkit.engine.registry import DEFAULT_MODEL, INSERTION_MODEL, LocalModel, home, load
from labkit.engine.sampling import Delta, Generation, SamplingParams, Sequence, TokenLogprob

__all__ = ["DEFAULT_MODEL", "INSERTION_MODEL", "Delta", "Generation", "LocalModel", "SamplingParams", "Sequence",
           "TokenLogprob", "home", "load"]
