"""Solutions to lesson 01's exercises, computed the way the lesson does."""

from __future__ import annotations

import math

from labkit import catalog, tokens


def finish_reason_when_cut(client, model: str, messages: list[dict]) -> str:
    """Exercise 1: send the messages with max_tokens=3 and read the reply's finish_reason ('length')."""
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=3, temperature=0)
    return r.choices[0].finish_reason


def reply_probability(content) -> float:
    """Exercise 2: a reply's probability is the product of its tokens' probabilities, so add the logprobs."""
    return math.exp(sum(t.logprob for t in content))


def chinese_token_counts(sentence: str = "我们今天下午在图书馆里一起学习机器学习。") -> tuple[str, int, int]:
    """Exercise 3: (sentence, cl100k_base tokens, o200k_base tokens), counted with labkit.tokens and one chat
    model of each encoding from the catalog."""
    model = {catalog.info(n).encoding: n for n in catalog.names(catalog.CHAT)}
    return sentence, tokens.count(sentence, model["cl100k_base"]), tokens.count(sentence, model["o200k_base"])


def cheapest_served(costs: dict[str, float]) -> str:
    """Exercise 4: among the models priced in section 8, the cheapest one that is not shut down."""
    served = {name: cost for name, cost in costs.items() if not catalog.info(name).is_shut_down()}
    return min(served, key=served.get)
