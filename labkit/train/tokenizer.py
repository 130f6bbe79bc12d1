"""A byte-level BPE tokenizer trained with Hugging Face `tokenizers`, saved so transformers loads it."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from labkit.train.fim import EOT, MID, PRE, SUF

CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
SPECIAL_TOKENS = [EOT, PRE, MID, SUF, *CHAT_MARKERS]  # ids 0..5, in this order


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Learn `vocab_size` byte-level BPE tokens from texts; the special tokens are single tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=EOT,
                                   additional_special_tokens=[PRE, MID, SUF, *CHAT_MARKERS])
