"""Plotly figures the lessons share, and how every plotly figure in a lesson is saved.

Importing this module makes plotly's default renderer "plotly_mimetype+labkit_png": each figure is displayed as
one bundle holding plotly's JSON (JupyterLab draws it, interactive, without embedding the 3 MB plotly.js) and a
static PNG drawn offline by labkit.staticfig (what GitHub, nbviewer and HTML/PDF exports show)."""

from __future__ import annotations

import math
import os

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from labkit.i18n import _
from labkit.staticfig import StaticPngRenderer

RENDERER = "plotly_mimetype+labkit_png"
pio.renderers["labkit_png"] = StaticPngRenderer()
if "PLOTLY_RENDERER" not in os.environ:
    pio.renderers.default = RENDERER


def mimebundle(fig: go.Figure) -> dict:
    """The display bundle a lesson saves for `fig`: plotly's JSON, the static PNG and a text line."""
    fig_dict = fig.to_dict()
    bundle = dict(pio.renderers["plotly_mimetype"].to_mimebundle(dict(fig_dict)))
    bundle.update(pio.renderers["labkit_png"].to_mimebundle(fig_dict))
    bundle["text/plain"] = f"<Figure: {fig.layout.title.text or 'untitled'}>"
    return bundle


def token_logprobs(content, title: str | None = None) -> go.Figure:
    """Bar per generated token: the probability of the chosen token, and of the best alternative.

    `content` is `choice.logprobs.content` from a chat completion with logprobs=True."""
    title = _("How sure was the model of each token?") if title is None else title
    labels = [f"{i}:{t.token!r}" for i, t in enumerate(content)]
    chosen = [math.exp(t.logprob) for t in content]
    runner_up = [max((math.exp(a.logprob) for a in t.top_logprobs if a.token != t.token), default=0.0)
                 for t in content]
    fig = go.Figure([
        go.Bar(x=labels, y=chosen, name=_("chosen token"), hovertext=[t.token for t in content]),
        go.Bar(x=labels, y=runner_up, name=_("best other token"),
               hovertext=[next((a.token for a in t.top_logprobs if a.token != t.token), "") for t in content]),
    ])
    fig.update_layout(title=title, barmode="group", yaxis_title=_("probability"), yaxis_range=[0, 1],
                      xaxis_tickangle=-45, height=380, margin={"t": 50, "b": 120})
    return fig


def loss_curve(metrics: list[dict], title: str | None = None) -> go.Figure:
    """Training loss at every step and validation loss where it was measured (fine-tuning job metrics)."""
    title = _("Fine-tuning loss") if title is None else title
    valid = [m for m in metrics if m.get("valid_loss") is not None]
    fig = go.Figure([
        go.Scatter(x=[m["step"] for m in metrics], y=[m["train_loss"] for m in metrics], name=_("training loss"),
                   mode="lines", line={"width": 1}),
        go.Scatter(x=[m["step"] for m in valid], y=[m["valid_loss"] for m in valid], name=_("validation loss"),
                   mode="lines+markers"),
    ])
    total = metrics[-1].get("total_steps") if metrics else None
    fig.update_layout(title=title, xaxis_title=_("step"), yaxis_title=_("loss (nats per assistant token)"),
                      height=360, xaxis_range=[0, total] if total else None, margin={"t": 50})
    return fig


def embedding_map(points, labels, texts, title: str | None = None) -> go.Figure:
    """A scatter of 2-D points colored by label, each text on hover."""
    title = _("Documents, embedded and projected to 2-D") if title is None else title
    fig = go.Figure()
    for label in sorted(set(labels)):
        rows = [i for i, x in enumerate(labels) if x == label]
        fig.add_trace(go.Scatter(x=[points[i][0] for i in rows], y=[points[i][1] for i in rows], mode="markers",
                                 name=label, text=[texts[i] for i in rows], hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, height=480, xaxis={"showticklabels": False}, yaxis={"showticklabels": False},
                      margin={"t": 50})
    return fig


def scaling_chart(flops, losses, law, target_flops: float, interval: tuple[float, float],
                  measured: float | None = None, title: str | None = None) -> go.Figure:
    """The GPT-4 report's figure at laptop scale: the ladder's runs, the fitted L(C) = a*C^b + c carried out
    to the target's compute, the prediction with its interval, and (once trained) the measured loss."""
    title = _("Final loss vs training compute") if title is None else title
    grid = np.logspace(np.log10(min(flops)), np.log10(target_flops * 1.5), 60)
    predicted = float(law.predict(target_flops))
    fig = go.Figure([
        go.Scatter(x=list(flops), y=list(losses), mode="markers", name=_("ladder runs"), marker={"size": 8}),
        go.Scatter(x=grid, y=law.predict(grid), mode="lines", line={"dash": "dot"},
                   name=_("fit: {a:.3g}·C^{b:.3f} + {c:.3g}", a=law.a, b=law.b, c=law.c)),
        go.Scatter(x=[target_flops], y=[predicted], mode="markers", name=_("prediction (90% interval)"),
                   marker={"size": 10, "symbol": "diamond"},
                   error_y={"type": "data", "symmetric": False, "array": [interval[1] - predicted],
                            "arrayminus": [predicted - interval[0]]}),
    ])
    if measured is not None:
        fig.add_scatter(x=[target_flops], y=[measured], mode="markers", name=_("measured"),
                        marker={"size": 14, "symbol": "star"})
    fig.update_layout(title=title, xaxis_type="log", yaxis_type="log", xaxis_title=_("training FLOPs"),
                      yaxis_title=_("held-out loss (nats per byte)"), height=420, margin={"t": 50})
    return fig


def reliability_chart(tables, title: str | None = None) -> go.Figure:
    """A reliability diagram: for each named `evals.reliability` table ({name: table}), each confidence bin's mean
    confidence (x) against its accuracy (y), a marker's area growing with its bin's items. A calibrated model's
    points lie on the diagonal; below it the model is overconfident, above it underconfident."""
    from labkit.evals import calibration_error

    title = _("Reliability of the label probabilities") if title is None else title
    start = min(float(t["confidence"].min()) for t in tables.values() if (t["n"] > 0).any())
    lo = max(0.0, math.floor(start * 10) / 10)
    fig = go.Figure(go.Scatter(x=[lo, 1], y=[lo, 1], mode="lines", line={"dash": "dot", "color": "#7f7f7f"},
                               name=_("perfectly calibrated")))
    biggest = max(int(t["n"].max()) for t in tables.values())
    for name, table in tables.items():
        filled = table[table["n"] > 0]
        fig.add_trace(go.Scatter(
            x=filled["confidence"].tolist(), y=filled["accuracy"].tolist(), mode="lines+markers",
            name=f"{name}: ECE {calibration_error(table):.2f}",
            marker={"size": [8 + 16 * math.sqrt(n / biggest) for n in filled["n"]]},
            customdata=filled[["bin", "n"]].values.tolist(),
            hovertemplate="confidence %{customdata[0]}: %{customdata[1]} items<br>mean confidence %{x:.0%}, "
                          "accuracy %{y:.0%}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=_("confidence: the probability of the label answered"),
                      yaxis_title=_("accuracy in the bin"), xaxis_tickformat=".0%", yaxis_tickformat=".0%",
                      xaxis_range=[lo - 0.02, 1.02], yaxis_range=[-0.02, 1.02], height=420, margin={"t": 50})
    return fig
