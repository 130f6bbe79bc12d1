"""Single-line infilling tasks on held-out code, and how to score a model on them.

A task removes one line from inside a function of a standard-library module that training
never saw (the `eval` split) and keeps some code on either side: the model must write the
missing line given the prefix and the suffix. As in the FIM paper, an answer counts only if
it is exactly the removed line.

The cut falls just before a newline, not after it: the prefix ends with the previous line's
last character and the middle is "\n" + the line. BPE tokenizers merge a newline with the
indentation after it, so a prompt ending in a bare "\n" asks for a token split the model has
rarely seen (SmolLM2 then writes a blank line or a comment); ending on code avoids that.
"""

from __future__ import annotations

import ast
import functools
import random
from dataclasses import dataclass

from labkit.train import corpus


@dataclass(frozen=True)
class InfillTask:
    source: str  # module path
    prefix: str
    middle: str  # "\n" + the removed line (its own newline starts the suffix)
    suffix: str


def single_line_tasks(n: int, seed: int = 0, context_chars: int = 600) -> list[InfillTask]:
    """n tasks from different functions of held-out modules, reproducible by seed."""
    rng = random.Random(seed)
    candidates = []
    for doc in corpus.stdlib_documents("eval"):
        try:
            tree = ast.parse(doc.text)
        except SyntaxError:
            continue
        lines = doc.text.splitlines(keepends=True)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 4:
                statements = node.body[1:] if ast.get_docstring(node) is not None else node.body
                if not statements:
                    continue
                body = [i for i in range(statements[0].lineno - 1, node.end_lineno)
                        if len(lines[i].strip()) > 3 and lines[i - 1].strip()  # the prefix ends on code
                        and not lines[i].strip().startswith(("#", '"', "'"))]
                if body:
                    candidates.append((doc, lines, body))
    rng.shuffle(candidates)
    tasks = []
    for doc, lines, body in candidates[:n]:
        i = rng.choice(body)
        prefix, suffix = "".join(lines[:i])[:-1], "\n" + "".join(lines[i + 1 :])
        middle = "\n" + lines[i].rstrip("\n")
        tasks.append(InfillTask(doc.name, _tail(prefix, context_chars), middle, _head(suffix, context_chars // 2)))
    return tasks


def _tail(text: str, chars: int) -> str:
    """The last lines of text, about `chars` long (starting at a line start)."""
    cut = text[-chars:]
    return cut[cut.index("\n") + 1 :] if len(text) > chars and "\n" in cut else cut


def _head(text: str, chars: int) -> str:
    """The first lines of text, about `chars` long (ending at a line end)."""
    cut = text[:chars]
    return cut[: cut.rindex("\n") + 1] if len(text) > chars and "\n" in cut[1:] else cut


def first_line(text: str) -> str:
    """A left-to-right continuation cut to the task's shape: its leading newline and the line after it."""
    end = text.find("\n", 1)
    return text if end < 0 else text[:end]


def exact(answer: str, task: InfillTask) -> bool:
    """The removed line exactly (trailing spaces forgiven)."""
    return answer.rstrip() == task.middle.rstrip()


def parses(answer: str, task: InfillTask) -> bool:
    """The module still parses with `answer` ("\n" + one non-blank line) in place of the removed line.
    Necessary for a right answer, far from sufficient: it says the insertion joins its surroundings."""
    if not answer.startswith("\n") or not answer.strip() or "\n" in answer[1:]:
        return False
    original = task.prefix + task.middle + task.suffix
    text = _eval_sources()[task.source].replace(original, task.prefix + answer + task.suffix, 1)
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


@functools.cache
def _eval_sources() -> dict[str, str]:
    return {d.name: d.text for d in corpus.stdlib_documents("eval")}


def middle_loss(model, tokenizer, tasks: list[InfillTask], with_suffix: bool) -> float:
    """Mean loss (nats/token) of the true middle's tokens, teacher-forced after the FIM prompt or
    after the prefix alone. The gap is how much the model uses the suffix; it shows FIM being
    learned long before exact matches do."""
    import torch

    from labkit.train.fim import insertion_prompt

    total, count = 0.0, 0
    for t in tasks:
        head = tokenizer(insertion_prompt(t.prefix, t.suffix) if with_suffix else t.prefix,
                         add_special_tokens=False).input_ids
        target = tokenizer(t.middle, add_special_tokens=False).input_ids
        ids = torch.tensor([head + target], device=model.device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(ids).logits[0, len(head) - 1 : -1].float(), dim=-1)
        total -= logprobs.gather(1, ids[0, len(head):, None]).sum().item()
        count += len(target)
    return total / count
