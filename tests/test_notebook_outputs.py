"""Lessons a student can read anywhere: every plotly figure goes out as one bundle with a static PNG beside its
JSON (GitHub, nbviewer and exports show the PNG, JupyterLab draws the JSON), progress bars leave their final
line as text, and every lesson file stays small.

The tests named `test_saved_*` read the committed notebooks: they pass once each lesson has been re-executed
with this labkit (outputs saved before the static images existed carry plotly JSON only and "0%" bars)."""

from __future__ import annotations

import base64
import io
import json
import re
import types
import warnings
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image

from labkit import progress, staticfig, viz

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [*sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
           *sorted((ROOT / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb"))]  # the Chinese lessons' own runs
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
STATIC = ("image/png", "image/svg+xml")
MAX_LESSON_BYTES = 400 * 1024
RERUN = ("re-execute the lesson with this labkit and commit its outputs "
         "(jupyter nbconvert --to notebook --execute --inplace {name})")


def _png(bundle: dict) -> Image.Image:
    raw = base64.b64decode(bundle["image/png"])
    assert raw.startswith(b"\x89PNG"), "image/png is a base64 PNG"
    assert len(raw) < 60_000, f"a figure's PNG is {len(raw):,} bytes: lessons must stay under 400 KB"
    return Image.open(io.BytesIO(raw))


def _token(text, logprob, alternatives):
    alt = [types.SimpleNamespace(token=t, logprob=lp) for t, lp in alternatives]
    return types.SimpleNamespace(token=text, logprob=logprob, top_logprobs=alt)


def _viz_figures() -> dict[str, go.Figure]:
    """Each of viz's figure functions on small made-up data."""
    from labkit.scaling import fit_power_law

    content = [_token(t, -0.2 * i, [(t, -0.2 * i), ("$5", -2.0)]) for i, t in enumerate(["Hi", "!", " How", "?"])]
    metrics = [{"step": s, "train_loss": 2 / s, "valid_loss": 2.1 / s if s % 5 == 0 else None, "total_steps": 20}
               for s in range(1, 21)]
    rng = np.random.default_rng(0)
    flops = np.logspace(12, 14, 6)
    law = fit_power_law(flops, 2.0 * flops ** -0.05 + 0.8)
    predicted = float(law.predict(1e15))
    return {
        "token_logprobs": viz.token_logprobs(content),
        "loss_curve": viz.loss_curve(metrics),
        "embedding_map": viz.embedding_map(rng.normal(size=(40, 2)).round(2), ["a", "b"] * 20,
                                           [f"doc {i}" for i in range(40)]),
        "scaling_chart": viz.scaling_chart(flops, 2.0 * flops ** -0.05 + 0.8, law, 1e15,
                                           (predicted * 0.97, predicted * 1.03), measured=predicted * 1.01),
    }


@pytest.mark.parametrize("name", list(_viz_figures()))
def test_every_viz_figure_is_one_bundle_with_plotly_json_and_a_png(name):
    fig = _viz_figures()[name]
    bundle = viz.mimebundle(fig)
    assert PLOTLY in bundle and bundle[PLOTLY]["data"], "JupyterLab still gets the interactive figure"
    image = _png(bundle)
    assert image.size == (700, fig.layout.height), "drawn at the figure's own size, 100 dpi"
    json.dumps(bundle)  # a notebook can save it


def test_the_default_renderer_gives_fig_show_and_a_bare_fig_both_mimetypes(monkeypatch):
    """The two ways a lesson displays a figure: `fig.show()` and `fig` as a cell's last expression."""
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)
    monkeypatch.setattr(pio.renderers, "default", viz.RENDERER)
    fig = go.Figure(go.Scatter(x=[1, 2, 4, 8], y=[0.1, 0.2, 0.2, 0.4], mode="lines+markers", name="exact"))
    fig.update_layout(title="insertion vs candidates", xaxis_type="log", yaxis_tickformat=".0%", height=360)
    assert {PLOTLY, "image/png"} <= set(fig._repr_mimebundle_())

    shown = []
    import plotly.io._renderers as renderers

    monkeypatch.setattr(renderers.ipython_display, "display", lambda obj, raw=False: shown.append(obj))
    fig.show()
    assert len(shown) == 1 and {PLOTLY, "image/png"} <= set(shown[0]), "fig.show() sends ONE bundle with both"


def test_the_lessons_inline_figures_draw_without_a_warning():
    """What the lessons build with go.Figure: log axes, error bars, dashes, percent ticks, ranges, bars, a
    histogram, a heatmap, subplots with an hline, and text that matplotlib would misread ($, HTML)."""
    from plotly.subplots import make_subplots

    shots = [0, 1, 2, 4, 8]
    figures = [
        go.Figure([go.Scatter(x=shots, y=[0.6, 0.7, 0.5, 0.5, 0.5], error_y={"type": "data", "array": [0, .1, 0, 0, 0]},
                              mode="lines+markers", name="model"),
                   go.Scatter(x=shots, y=[0.5] * 5, mode="lines", line={"dash": "dot"}, name="chance")]
                  ).update_layout(title="accuracy vs shots", yaxis_tickformat=".0%", height=360),
        go.Figure(go.Scatter(x=[32, 64, 384], y=[0.5, 0.6, 0.7], mode="lines+markers", name="MRR")).update_layout(
            title="Retrieval vs dimensions", xaxis_type="log", yaxis_range=[0, 1], height=340),
        go.Figure([go.Bar(x=["positive", "negative"], y=[18, 2], text=[18, 2], name="answers"),
                   go.Bar(x=["positive", "negative"], y=[10, 10], name="truth")]).update_layout(
            title="$0.15 per 1M input tokens<br><b>vs</b> $0.60 output", barmode="group"),
        go.Figure([go.Histogram(x=np.random.default_rng(0).normal(size=200), name="a"),
                   go.Histogram(x=np.random.default_rng(1).normal(size=200), name="b")]).update_layout(
            barmode="overlay", title="histogram"),
        go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x=["a", "b"], y=["c", "d"], texttemplate="%{z}")),
        make_subplots(rows=1, cols=2, subplot_titles=("left", "right")).add_bar(
            x=["a", "b"], y=[1, 2], row=1, col=1).add_scatter(x=[0, 1], y=[0, 1], row=1, col=2).add_hline(
            y=0.5, line_dash="dot", row=1, col=2),
    ]
    for fig in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _png(viz.mimebundle(fig))


def test_a_trace_type_it_cannot_draw_is_named_and_a_failure_never_hides_the_figure(monkeypatch):
    pie = go.Figure(go.Pie(labels=["a", "b"], values=[1, 2]))
    assert _png(viz.mimebundle(pie)), "still an image, with a note naming the trace type"

    def broken(*_, **__):
        raise RuntimeError("boom")

    monkeypatch.setattr(staticfig, "draw", broken)
    with pytest.warns(UserWarning, match="no static image"):
        bundle = viz.mimebundle(pie)
    assert PLOTLY in bundle and "image/png" not in bundle


class _Handle:
    def __init__(self, shown, obj):
        self.shown = shown
        shown.append(("display", obj))

    def update(self, obj, raw=False):
        self.shown.append(("update", obj))


@pytest.mark.parametrize("leave", [True, False])
def test_a_notebook_bar_leaves_its_final_line_as_text(monkeypatch, leave):
    shown = []
    monkeypatch.setattr(progress, "display", lambda obj, display_id=None: _Handle(shown, obj))
    for _ in progress.NotebookBar(range(7), desc="training", unit="step", leave=leave):
        pass
    assert [kind for kind, _ in shown] == ["display", "update"], "displayed once, updated once when closed"
    final = shown[-1][1]
    if leave:
        assert "training: 100%" in final["text/plain"] and "7/7" in final["text/plain"], final
        assert WIDGET in final, "JupyterLab keeps drawing the widget"
    else:
        assert final == {"text/plain": ""}, "leave=False leaves nothing, as in a terminal"


def test_an_unfinished_notebook_bar_keeps_where_it_stopped(monkeypatch):
    shown = []
    monkeypatch.setattr(progress, "display", lambda obj, display_id=None: _Handle(shown, obj))
    bar = progress.NotebookBar(total=10, desc="job", leave=False)
    bar.update(3)
    bar.close()
    assert "3/10" in shown[-1][1]["text/plain"]


# --- the committed lessons --------------------------------------------------------------------------------------


def _outputs(path: Path):
    nb = json.loads(path.read_text())
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            yield index, output


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_saved_lesson_is_under_400_kb(path):
    assert path.stat().st_size < MAX_LESSON_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_saved_figures_carry_a_static_image(path):
    """Needs the lessons re-executed with labkit.viz's renderer (plotly_mimetype+labkit_png)."""
    missing = [index for index, output in _outputs(path)
               if PLOTLY in output.get("data", {}) and not any(m in output["data"] for m in STATIC)]
    assert not missing, (f"{path.name}: the figures in cells {missing} have plotly JSON only, which GitHub, "
                         f"nbviewer and exports cannot show; " + RERUN.format(name=f"notebooks/{path.name}"))


UNSTARTED_BAR = re.compile(r"\?\s?[^\s\]]*/s\]")  # tqdm's "[00:00<?, ?step/s]": the text from before it ran


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_saved_progress_bars_show_their_final_state(path):
    """Needs the lessons re-executed with labkit.progress's bars."""
    stale = [(index, output["data"]["text/plain"]) for index, output in _outputs(path)
             if WIDGET in output.get("data", {}) and UNSTARTED_BAR.search(str(output["data"].get("text/plain", "")))]
    assert not stale, (f"{path.name}: progress bars saved as they were before they ran: {stale}; "
                       + RERUN.format(name=f"notebooks/{path.name}"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_saved_widgets_have_their_saved_state(path):
    """A widget output whose model is not in the notebook's widget state is an error box in JupyterLab."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    views = [(index, output["data"][WIDGET]["model_id"]) for index, output in _outputs(path)
             if WIDGET in output.get("data", {})]
    orphans = [index for index, model in views if model not in state]
    assert not orphans, f"{path.name}: widget outputs in cells {orphans} have no saved state; " + RERUN.format(
        name=f"notebooks/{path.relative_to(ROOT / 'notebooks')}")
