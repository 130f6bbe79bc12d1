"""/v1/completions and /v1/chat/completions over the engine, in OpenAI's response shapes.

Both endpoints build their answer from the engine's deltas; the streamed and the whole
answer are the same generator consumed two ways.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator

from jinja2 import TemplateError

from labkit import __version__
from labkit.engine import Delta, Generation, LocalModel, SamplingParams, Sequence, TokenLogprob
from labkit.engine.loop import EngineLoop
from labkit.engine.ranking import CANDIDATES, cut_points, suffix_logprobs
from labkit.engine.text import token_bytes, token_str
from labkit.errors import ContextLengthExceededError, InvalidRequestError
from labkit.server.schemas import ChatRequest, CompletionRequest
from labkit.server.structured import CALL_CLOSE, may_open_call, output_grammar, read_reply, render_messages
from labkit.train.fim import SENTINELS, insertion_prompt


def fingerprint(lm: LocalModel) -> str:
    return f"labkit-{__version__}-{lm.device.type}-{str(lm.dtype).removeprefix('torch.')}"


def sse(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _sampling(req, lm: LocalModel, max_tokens: int, stop: list[str], logprobs: int | None,
              n: int, prompt_logprobs: bool = False) -> SamplingParams:
    vocab = lm.model.config.vocab_size
    bias = {}
    for key, value in (req.logit_bias or {}).items():
        if not (key.isascii() and key.isdigit() and int(key) < vocab):
            raise InvalidRequestError(f"logit_bias key {key!r} is not a token id of {lm.name} (0..{vocab - 1})",
                                      "logit_bias")
        bias[int(key)] = float(value)
    if lm.can_insert:  # a FIM sentinel is never part of a text: the model must not write one
        vocab_ids = lm.tokenizer.get_vocab()
        bias.update({vocab_ids[s]: -100.0 for s in SENTINELS})
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else float(req.temperature),
        top_p=1.0 if req.top_p is None else float(req.top_p),
        n=n, stop=stop, seed=req.seed,
        presence_penalty=float(req.presence_penalty or 0), frequency_penalty=float(req.frequency_penalty or 0),
        logit_bias=bias, logprobs=logprobs, prompt_logprobs=prompt_logprobs,
    )


def _check_window(lm: LocalModel, prompt_len: int, max_tokens: int, param: str) -> None:
    if prompt_len + max_tokens > lm.context_window:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {lm.context_window} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the {param}, {max_tokens} in the completion). "
            f"Please reduce the length of the {param} or completion.", param=param)


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ---------------------------------------------------------------- completions


def completion_prompts(req: CompletionRequest, lm: LocalModel) -> list[list[int]]:
    """Token ids of each prompt; with `suffix`, the fill-in-the-middle prompt where the model was trained on one."""
    p, tok = req.prompt, lm.tokenizer
    if req.suffix is not None:
        return _insertion_prompts(req, lm)
    if isinstance(p, str):
        prompts = [p]
    elif all(isinstance(x, str) for x in p):
        prompts = p
    elif all(isinstance(x, int) for x in p):
        prompts = [p]
    else:
        prompts = p
    out = []
    vocab = lm.model.config.vocab_size
    for x in prompts:
        ids = tok(x).input_ids if isinstance(x, str) else list(x)
        if not ids:  # an empty prompt starts a new document, as OpenAI's does
            ids = [tok.get_vocab().get("<|endoftext|>", tok.bos_token_id if tok.bos_token_id is not None
                                       else tok.eos_token_id)]
        if any(not 0 <= t < vocab for t in ids):
            raise InvalidRequestError(f"prompt holds a token id outside {lm.name}'s vocabulary (0..{vocab - 1})",
                                      "prompt")
        out.append(ids)
    return out


def _insertion_prompts(req: CompletionRequest, lm: LocalModel) -> list[list[int]]:
    """FIM models read the rearranged prompt; others read the prefix and are ranked by the suffix later."""
    texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError("suffix needs the prompt as text, not token ids", "prompt")
    if req.echo and req.logprobs is not None:
        raise InvalidRequestError("echo with logprobs cannot be combined with suffix: the echoed prompt's "
                                  "logprobs would not account for the suffix", "echo")
    if not lm.can_insert:
        if req.stream:
            raise InvalidRequestError(f"{lm.name} was not trained with fill-in-the-middle: it inserts by ranking "
                                      "whole candidates by the suffix, so the answer cannot be streamed", "stream")
        return [lm.tokenizer(t).input_ids for t in texts]
    return [lm.tokenizer(insertion_prompt(t, req.suffix), add_special_tokens=False).input_ids for t in texts]


def _legacy_logprobs(lm: LocalModel, pairs: list[tuple[int, TokenLogprob | None]], base: int,
                     before: list[int]) -> dict:
    """OpenAI's legacy logprobs object for `pairs` (token id, logprob), which follow the tokens `before`
    in a stretch of text starting at character `base` of prompt + completion (OpenAI's text_offset)."""
    tok = lm.tokenizer
    ids = list(before)
    tokens, lps, tops, offsets = [], [], [], []
    for tid, lp in pairs:
        offsets.append(base + len(tok.decode(ids)))
        ids.append(tid)
        tokens.append(token_str(tok, tid))
        lps.append(None if lp is None else lp.logprob)
        tops.append(None if lp is None else {token_str(tok, t): v for t, v in lp.top})
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


class CompletionRun:
    """One /v1/completions request: prompts x best_of sequences, of which n are returned per prompt.
    Its generations run, one prompt after the other, in the model's engine loop."""

    def __init__(self, req: CompletionRequest, lm: LocalModel, engine: EngineLoop):
        req.check()
        self.req, self.lm, self.engine = req, lm, engine
        self.n = req.n or 1
        # without FIM, a suffix is honoured by ranking candidates (labkit.engine.ranking)
        self.suffix_ids = (lm.tokenizer(req.suffix, add_special_tokens=False).input_ids
                           if req.suffix is not None and not lm.can_insert else None)
        self.best_of = req.best_of or (max(self.n, CANDIDATES) if self.suffix_ids is not None else self.n)
        self.max_tokens = 16 if req.max_tokens is None else req.max_tokens
        self.prompts = completion_prompts(req, lm)
        for ids in self.prompts:
            _check_window(lm, len(ids) + len(self.suffix_ids or []), self.max_tokens, "prompt")
        want = req.logprobs
        rank = self.best_of > self.n and self.suffix_ids is None  # best_of ranks by logprob even when none are returned
        self.params = _sampling(req, lm, self.max_tokens, req.stop_list(),
                                want if want is not None else (0 if rank else None), self.best_of,
                                prompt_logprobs=bool(req.echo and want is not None))
        self.id, self.created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        self.generations: list[Generation] = []
        self.cancelled = False

    def _generations(self) -> Iterator[tuple[int, Generation]]:
        generator = None
        for i, ids in enumerate(self.prompts):
            if self.cancelled:
                return
            g = Generation(self.lm, ids, self.params, generator)
            generator = g.generator  # one seeded stream of randomness across the prompts
            self.generations.append(g)
            yield i, g

    def _prompt_text(self, i: int) -> str:
        p = self.req.prompt
        if isinstance(p, str):
            return p
        return p[i] if isinstance(p[i], str) else self.lm.tokenizer.decode(self.prompts[i])

    def usage(self) -> dict:
        return _usage(sum(len(x) for x in self.prompts), sum(g.completion_tokens for g in self.generations))

    def response(self) -> dict:
        choices = []
        for i, g in self._generations():
            seqs = self.engine.run(g)
            if self.suffix_ids is not None:
                seqs = self._rank_by_suffix(self.prompts[i], seqs)[: self.n]
            elif self.best_of > self.n:
                seqs = sorted(seqs, key=lambda s: s.mean_logprob, reverse=True)[: self.n]
            prompt_text = self._prompt_text(i)
            for j, s in enumerate(seqs):
                text, lps = (prompt_text + s.text if self.req.echo else s.text), None
                if self.req.logprobs is not None:
                    lps = _legacy_logprobs(self.lm, [(t.token_id, t) for t in s.logprobs], len(prompt_text), [])
                    if self.req.echo:
                        echoed = self._echo_logprobs(i, g)
                        lps = {k: echoed[k] + lps[k] for k in lps}
                choices.append({"text": text, "index": i * self.n + j, "logprobs": lps,
                                "finish_reason": s.finish_reason})
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.lm.name,
                "system_fingerprint": fingerprint(self.lm), "choices": choices, "usage": self.usage()}

    def _rank_by_suffix(self, prompt: list[int], seqs: list[Sequence]) -> list[Sequence]:
        """Each candidate at its best cut, best first by log p(suffix | prompt + middle).
        A middle cut before its end finishes with "stop": it was ended where the suffix fits."""
        tok = self.lm.tokenizer
        cuts = [(s, c) for s in seqs for c in cut_points(s.text)]
        middles = [tok(s.text[:c], add_special_tokens=False).input_ids for s, c in cuts]
        scores = self.engine.call(lambda: suffix_logprobs(self.lm, prompt, middles, self.suffix_ids))
        best: dict[int, tuple[float, Sequence]] = {}
        for (s, c), score in zip(cuts, scores):
            if s.index not in best or score > best[s.index][0]:
                best[s.index] = (score, s if c == len(s.text) else self._cut(s, c))
        return [s for _, s in sorted(best.values(), key=lambda x: x[0], reverse=True)]

    def _cut(self, s: Sequence, chars: int) -> Sequence:
        kept = 0
        while kept < len(s.token_ids) and len(self.lm.tokenizer.decode(s.token_ids[: kept + 1])) <= chars:
            kept += 1
        return dataclasses.replace(s, token_ids=s.token_ids[:kept], text=s.text[:chars],
                                   logprobs=s.logprobs[:kept], finish_reason="stop")

    def _echo_logprobs(self, i: int, g: Generation) -> dict:
        ids = self.prompts[i]
        return _legacy_logprobs(self.lm, list(zip(ids, g.prompt_logprobs or [None] * len(ids))), 0, [])

    def cancel(self) -> None:
        self.cancelled = True
        for g in self.generations:
            g.cancelled = True

    def stream(self) -> Iterator[str]:
        include_usage = bool(self.req.stream_options and self.req.stream_options.include_usage)
        for i, g in self._generations():
            base = len(self._prompt_text(i))
            sent: list[list[int]] = [[] for _ in range(self.n)]  # tokens whose logprobs were sent
            echo_pending = bool(self.req.echo)
            for deltas in self.engine.steps(g):
                if echo_pending:  # after the prompt has run, so its logprobs exist
                    lps = self._echo_logprobs(i, g) if self.req.logprobs is not None else None
                    yield self._chunk([{"text": self._prompt_text(i), "index": i * self.n + j, "logprobs": lps,
                                        "finish_reason": None} for j in range(self.n)], include_usage)
                    echo_pending = False
                choices = []
                for d in deltas:
                    lps = None
                    if self.req.logprobs is not None:
                        lps = _legacy_logprobs(self.lm, [(t.token_id, t) for t in d.logprobs], base,
                                               sent[d.index])
                        sent[d.index] += [t.token_id for t in d.logprobs]
                    choices.append({"text": d.text, "index": i * self.n + d.index, "logprobs": lps,
                                    "finish_reason": d.finish_reason})
                yield self._chunk(choices, include_usage)
        if include_usage:
            yield sse({**self._head(), "choices": [], "usage": self.usage()})
        yield "data: [DONE]\n\n"

    def _head(self) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.lm.name,
                "system_fingerprint": fingerprint(self.lm)}

    def _chunk(self, choices: list[dict], include_usage: bool) -> str:
        return sse({**self._head(), "choices": choices, **({"usage": None} if include_usage else {})})


# ---------------------------------------------------------------- chat


def chat_prompt(req: ChatRequest, lm: LocalModel) -> list[int]:
    """Render messages with the model's own chat template (developer messages act as system; tools and tool
    calls as labkit.server.structured writes them)."""
    for i, m in enumerate(req.messages):
        if getattr(m, "name", None) is not None:
            raise InvalidRequestError(f"`name` is not supported locally: {lm.name}'s chat template has no place "
                                      "for it", f"messages.[{i}].name", code="unsupported_parameter")
    if lm.tokenizer.chat_template is None:
        raise InvalidRequestError(f"{lm.name} has no chat template; use /v1/completions", "model")
    try:
        ids = lm.tokenizer.apply_chat_template(render_messages(req), add_generation_prompt=True, tokenize=True)
    except (TemplateError, ValueError) as e:  # templates may refuse, e.g. roles out of order
        raise InvalidRequestError(f"{lm.name}'s chat template refused these messages: {e}", "messages") from None
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _chat_logprobs(lm: LocalModel, lps: list[TokenLogprob]) -> dict:
    tok = lm.tokenizer

    def entry(tid: int, lp: float) -> dict:
        raw = token_bytes(tok, tid)
        return {"token": raw.decode(errors="replace"), "logprob": lp, "bytes": list(raw)}

    return {"content": [{**entry(t.token_id, t.logprob), "top_logprobs": [entry(a, v) for a, v in t.top]}
                        for t in lps], "refusal": None}


class ChatRun:
    """One /v1/chat/completions request: n sequences of one rendered prompt, run in the model's engine loop."""

    def __init__(self, req: ChatRequest, lm: LocalModel, engine: EngineLoop):
        req.check()
        self.req, self.lm, self.engine = req, lm, engine
        self.prompt = chat_prompt(req, lm)
        asked = req.max_completion_tokens or req.max_tokens
        max_tokens = asked if asked is not None else lm.context_window - len(self.prompt)
        _check_window(lm, len(self.prompt), max(max_tokens, 1), "messages")
        k = (req.top_logprobs or 0) if req.logprobs else None
        self.params = _sampling(req, lm, max_tokens, req.stop_list(), k, req.n or 1)
        self.params.grammar = output_grammar(req, lm)
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        self.generation = Generation(lm, self.prompt, self.params)

    def cancel(self) -> None:
        self.generation.cancelled = True

    def usage(self) -> dict:
        return _usage(len(self.prompt), self.generation.completion_tokens)

    def _head(self) -> dict:
        return {"id": self.id, "created": self.created, "model": self.lm.name,
                "system_fingerprint": fingerprint(self.lm)}

    def response(self) -> dict:
        choices = []
        for s in self.engine.run(self.generation):
            reply = read_reply(s.text, self.req)
            message = {"role": "assistant", "content": reply.content, "refusal": None}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            choices.append({"index": s.index, "message": message,
                            "logprobs": _chat_logprobs(self.lm, s.logprobs) if self.req.logprobs else None,
                            "finish_reason": "tool_calls" if reply.tool_calls and s.finish_reason == "stop"
                            else s.finish_reason})
        return {**self._head(), "object": "chat.completion", "choices": choices, "usage": self.usage()}

    def stream(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield sse(chunk)
        yield "data: [DONE]\n\n"

    def chunks(self) -> Iterator[dict]:
        """The answer as chat.completion.chunk objects (what stream() sends as server-sent events)."""
        include_usage = bool(self.req.stream_options and self.req.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}
        head = {**self._head(), "object": "chat.completion.chunk"}
        yield {**head, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None} for i in range(self.params.n)], **extra}
        replies = [_StreamedReply(self.req) for _ in range(self.params.n)]
        for deltas in self.engine.steps(self.generation):
            choices = [self._choice_delta(d, replies[d.index]) for d in deltas]
            if choices := [c for c in choices if c is not None]:
                yield {**head, "choices": choices, **extra}
        if include_usage:
            yield {**head, "choices": [], "usage": self.usage()}

    def _choice_delta(self, d: Delta, reply: _StreamedReply) -> dict | None:
        delta = reply.push(d.text, d.finish_reason)
        finish = "tool_calls" if d.finish_reason == "stop" and reply.calls else d.finish_reason
        logprobs = _chat_logprobs(self.lm, d.logprobs) if self.req.logprobs and d.logprobs else None
        if not delta and not finish and logprobs is None:
            return None
        return {"index": d.index, "delta": delta,
                "logprobs": logprobs if self.req.logprobs else None, "finish_reason": finish}


class _StreamedReply:
    """One streamed choice of a request that may call tools: text passes as content deltas once it cannot be
    a call; a call is sent, as one tool_calls delta, once its closing tag has come; what is left at the end
    (a call cut off by max_tokens) as content."""

    def __init__(self, req: ChatRequest):
        self.req, self.text, self.calls = req, "", 0
        self.is_text = not req.tools

    def push(self, text: str, finish_reason: str | None) -> dict:
        if self.is_text:
            return {"content": text} if text else {}
        self.text += text
        if not may_open_call(self.text):  # text after all: release what was held back
            self.is_text = True
            return {"content": self.text}
        if not finish_reason and CALL_CLOSE not in self.text:
            return {}
        reply = read_reply(self.text, self.req)
        new = reply.tool_calls[self.calls:]
        delta = {"tool_calls": [{"index": self.calls + i, **c} for i, c in enumerate(new)]} if new else {}
        self.calls = len(reply.tool_calls)
        if finish_reason and reply.content:
            delta["content"] = reply.content
        return delta
