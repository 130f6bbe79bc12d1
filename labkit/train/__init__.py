"""Training small GPTs from scratch on text every machine has: corpus, tokenizer, FIM, loop."""

from labkit.train.trainer import PROFILES, TrainConfig, pick_profile, train

__all__ = ["PROFILES", "TrainConfig", "pick_profile", "train"]
