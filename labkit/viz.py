"""Plotly figures the lessons share."""

from __future__ import annotations

import math
import os

import plotly.graph_objects as go
import plotly.io as pio

# JSON in the notebook, drawn by JupyterLab itself: no 3 MB plotly.js bundle in every saved lesson
if "PLOTLY_RENDERER" not in os.environ:
    pio.renderers.default = "plotly_mimetype"


def token_logprobs(content, title: str = "How sure was the model of each token?") -> go.Figure:
    """Bar per generated token: the probability of the chosen token, and of the best alternative.

    `content` is `choice.logprobs.content` from a chat completion with logprobs=True."""
    labels = [f"{i}:{t.token!r}" for i, t in enumerate(content)]
    chosen = [math.exp(t.logprob) for t in content]
    runner_up = [max((math.exp(a.logprob) for a in t.top_logprobs if a.token != t.token), default=0.0)
                 for t in content]
    fig = go.Figure([
        go.Bar(x=labels, y=chosen, name="chosen token", hovertext=[t.token for t in content]),
        go.Bar(x=labels, y=runner_up, name="best other token",
               hovertext=[next((a.token for a in t.top_logprobs if a.token != t.token), "") for t in content]),
    ])
    fig.update_layout(title=title, barmode="group", yaxis_title="probability", yaxis_range=[0, 1],
                      xaxis_tickangle=-45, height=380, margin={"t": 50, "b": 120})
    return fig
