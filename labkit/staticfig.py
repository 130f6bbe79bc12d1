"""A static PNG of a plotly figure, drawn with matplotlib from the figure's own dict: offline, no browser.

Plotly's own static export (kaleido) drives a Chrome it downloads, which a lesson cannot count on. This module
redraws what the lessons use from `fig.to_dict()`: Bar (grouped, stacked, horizontal, with text), Scatter
(lines, markers, text, dash, fill, error bars), Histogram, Heatmap; titles, axis titles, ranges, log and category
axes, tick formats, subplots and secondary y axes, legends, shapes (add_hline/add_vline) and annotations. A trace
type it does not know is named in a note on the image rather than drawn wrong.

`viz` registers `StaticPngRenderer` as the plotly renderer "labkit_png" and makes the default
"plotly_mimetype+labkit_png": every figure goes out as ONE display bundle holding the plotly JSON (JupyterLab and
VS Code draw it, interactive) and this PNG (what GitHub, nbviewer and nbconvert exports show).
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
from plotly.io._base_renderers import MimetypeRenderer

DPI = 100
PT = 72 / DPI  # points per pixel: plotly sizes are in pixels
DEFAULT_WIDTH, DEFAULT_HEIGHT = 700, 450  # plotly.js's defaults
PLOTLY_COLORWAY = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880",
                   "#FF97FF", "#FECB52"]
DASHES = {"solid": "-", "dot": ":", "dash": "--", "dashdot": "-.", "longdash": (0, (8, 3)),
          "longdashdot": (0, (8, 3, 2, 3))}
SYMBOLS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P", "x": "X", "triangle-up": "^",
           "triangle-down": "v", "triangle-left": "<", "triangle-right": ">", "pentagon": "p", "hexagon": "h",
           "star": "*", "hexagram": "*", "hourglass": "d", "line-ns": "|", "line-ew": "_"}
CMAPS = {"viridis": "viridis", "plasma": "plasma", "inferno": "inferno", "magma": "magma", "cividis": "cividis",
         "blues": "Blues", "reds": "Reds", "greens": "Greens", "greys": "Greys", "purples": "Purples",
         "oranges": "Oranges", "rdbu": "RdBu", "rdylbu": "RdYlBu", "ylgnbu": "YlGnBu", "ylorrd": "YlOrRd",
         "bluered": "bwr", "picnic": "seismic", "hot": "hot", "jet": "jet", "electric": "inferno",
         "portland": "coolwarm", "earth": "gist_earth", "rainbow": "rainbow", "blackbody": "hot"}
BAR_TYPES = {"bar", "histogram"}
# Chinese titles and tokens: DejaVu first, then a subset of Noto Sans CJK SC shipped with labkit (notebooks/zh/font.py)
CJK_FONT = Path(__file__).resolve().parent / "data" / "fonts" / "NotoSansSC-labkit-subset.otf"
FONTS = {"font.family": ["DejaVu Sans", "Noto Sans SC labkit subset"]}  # a list: matplotlib falls back glyph by glyph


def to_png(fig, width: int | None = None, height: int | None = None) -> bytes:
    """PNG bytes of a plotly Figure or figure dict, `width` x `height` pixels (the layout's, else 700 x 450)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig_dict = fig if isinstance(fig, Mapping) else fig.to_dict()
    _register_cjk_font()
    # a glyph neither font has (an emoji in a token) must not print a warning into the lesson
    with warnings.catch_warnings(), matplotlib.rc_context(FONTS):
        warnings.simplefilter("ignore")
        figure = draw(fig_dict, width, height)
        canvas = FigureCanvasAgg(figure)
        raw = io.BytesIO()
        canvas.print_png(raw)
    # a 256-colour palette keeps antialiased text and lines, at about a third of the bytes of RGBA
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB").quantize(colors=256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


class StaticPngRenderer(MimetypeRenderer):
    """A plotly renderer that adds image/png, drawn by `to_png`. Never fails a display: a figure it cannot
    draw goes out without the image, with a warning naming why."""

    def __init__(self, width: int | None = None, height: int | None = None):
        self.width, self.height = width, height

    def to_mimebundle(self, fig_dict):
        try:
            png = to_png(fig_dict, self.width, self.height)
        except Exception as e:  # noqa: BLE001 - the interactive figure must still show
            warnings.warn(f"labkit: no static image for this figure ({type(e).__name__}: {e})", stacklevel=2)
            return {}
        return {"image/png": base64.b64encode(png).decode("ascii")}


# ---------------------------------------------------------------------------------------------------------------
# drawing


@cache
def _register_cjk_font() -> None:
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(CJK_FONT))


def draw(fig_dict: Mapping, width: int | None = None, height: int | None = None):
    """A matplotlib Figure (not pyplot's: nothing global changes) drawn from a plotly figure dict."""
    from matplotlib.figure import Figure

    layout = dict(fig_dict.get("layout") or {})
    template = (layout.get("template") or {}).get("layout") or {}
    traces = [dict(t) for t in fig_dict.get("data") or []]
    width = int(width or layout.get("width") or DEFAULT_WIDTH)
    height = int(height or layout.get("height") or DEFAULT_HEIGHT)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    figure.set_facecolor(_color(_get(layout, "paper_bgcolor") or template.get("paper_bgcolor")) or "white")
    style = {"plot_bgcolor": _color(layout.get("plot_bgcolor") or template.get("plot_bgcolor")) or "#E5ECF6",
             "gridcolor": _color(_get(template, "xaxis", "gridcolor")) or "white",
             "colorway": layout.get("colorway") or template.get("colorway") or PLOTLY_COLORWAY}

    axes = _make_axes(figure, layout, traces, style)
    categories = _categories(layout, traces)
    skipped = []
    stacks: dict = {}
    bars = _bar_slots(traces, layout)
    previous: dict = {}  # last scatter per axes, for fill="tonexty"
    for i, trace in enumerate(traces):
        if trace.get("visible") in (False, "legendonly"):
            continue
        kind = trace.get("type", "scatter")
        ax = axes[_pair(trace)]
        color = _trace_color(trace, style["colorway"][i % len(style["colorway"])])
        label = _text(trace.get("name") or f"trace {i}")
        xcat, ycat = categories.get(_axis_key(trace, "x")), categories.get(_axis_key(trace, "y"))
        if kind in ("scatter", "scattergl"):
            previous[_pair(trace)] = _scatter(ax, trace, color, label, xcat, ycat, previous.get(_pair(trace)))
        elif kind == "bar":
            _bar(ax, trace, color, label, xcat, ycat, bars.get(i, (0, 1)), stacks, layout)
        elif kind == "histogram":
            _histogram(ax, trace, color, label, bars.get(i, (0, 1)), layout, traces)
        elif kind == "heatmap":
            _heatmap(figure, ax, trace, xcat, ycat)
        else:
            skipped.append(kind)
    for key, ax in axes.items():
        _style_axes(ax, layout, key, categories, style)
    _shapes(axes, layout)
    _annotations(figure, axes, layout)
    _title_and_legend(figure, axes, layout, traces)
    if skipped:
        figure.text(0.99, 0.01, f"not drawn here (interactive only): {', '.join(sorted(set(skipped)))}",
                    ha="right", va="bottom", fontsize=7, color="gray")
    return figure


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _text(s) -> str:
    """Plotly's HTML-ish text as plain text, with $ escaped (matplotlib would read $...$ as math)."""
    if s is None:
        return ""
    s = re.sub(r"<br\s*/?>", "\n", str(s), flags=re.I)
    s = re.sub(r"<sup>(.*?)</sup>", r"^\1", s, flags=re.I)
    s = re.sub(r"<[^>]+>", "", s)
    s = s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return s.replace("$", r"\$")


def _title(obj) -> str:
    return _text(obj.get("text") if isinstance(obj, Mapping) else obj)


def _color(c):
    """A plotly colour (#hex, rgb(), rgba(), a CSS name) as something matplotlib takes, else None."""
    from matplotlib.colors import is_color_like

    if c is None or not isinstance(c, str):
        return None
    m = re.fullmatch(r"\s*rgba?\(([^)]*)\)\s*", c)
    if m:
        parts = [float(p) for p in m.group(1).replace("/", ",").split(",") if p.strip()]
        rgb = [p / 255 for p in parts[:3]]
        return (*rgb, parts[3]) if len(parts) > 3 else tuple(rgb)
    return c if is_color_like(c) else None


def _values(v):
    """A plotly data array (list, numpy array or {"dtype", "bdata"} typed array) as a list or ndarray."""
    if v is None:
        return None
    if isinstance(v, Mapping) and "bdata" in v:
        dtype = {"u1c": "u1"}.get(v.get("dtype"), v.get("dtype") or "f8")
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(dtype))
        if v.get("shape"):
            arr = arr.reshape([int(s) for s in str(v["shape"]).split(",")])
        return arr
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _floats(v) -> np.ndarray:
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
        return v.astype(float)
    return np.array([np.nan if x is None or isinstance(x, str) and not _is_number(x) else float(x) for x in v],
                    dtype=float)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_categorical(values) -> bool:
    return values is not None and not isinstance(values, np.ndarray) and any(
        isinstance(x, str) and not _is_number(x) for x in values)


def _axis_key(trace, letter: str) -> str:
    ref = trace.get(f"{letter}axis") or letter
    return f"{letter}axis{ref[1:]}"


def _pair(trace) -> tuple[str, str]:
    return _axis_key(trace, "x"), _axis_key(trace, "y")


def _trace_color(trace, default):
    kind = trace.get("type", "scatter")
    marker, line = trace.get("marker") or {}, trace.get("line") or {}
    for c in ((line.get("color"), marker.get("color")) if kind.startswith("scatter") else
              (marker.get("color"), line.get("color"))):
        if _color(c):
            return _color(c)
    return default


def _categories(layout, traces) -> dict[str, list]:
    """Category lists per axis key: an axis of type "category", or one whose values are strings."""
    found: dict[str, list] = {}
    for trace in traces:
        if trace.get("type", "scatter") == "heatmap":
            continue
        for letter in "xy":
            key = _axis_key(trace, letter)
            values = _values(trace.get(letter))
            axis = layout.get(key) or {}
            if values is None or not (axis.get("type") == "category" or _is_categorical(values)):
                continue
            cats = found.setdefault(key, [str(c) for c in axis.get("categoryarray") or []])
            for v in values:
                if str(v) not in cats:
                    cats.append(str(v))
    return found


def _positions(values, cats):
    if cats is None:
        return _floats(values)
    return np.array([cats.index(str(v)) if str(v) in cats else np.nan for v in values], dtype=float)


def _make_axes(figure, layout, traces, style) -> dict:
    """One matplotlib Axes per (x axis, y axis) pair the traces use, placed on a grid built from the axes'
    domains (make_subplots); a y axis overlaying another becomes a twin."""
    pairs = list(dict.fromkeys(_pair(t) for t in traces)) or [("xaxis", "yaxis")]
    base = {}
    for xk, yk in pairs:
        over = _get(layout, yk, "overlaying")
        base[(xk, yk)] = (xk, f"yaxis{over[1:]}") if over and over != "free" else (xk, yk)
    bases = list(dict.fromkeys(base.values()))

    def domain(key):
        d = _get(layout, key, "domain") or [0, 1]
        return float(d[0]), float(d[1])

    xs = sorted({domain(x)[0] for x, _ in bases})
    ys = sorted({domain(y)[0] for _, y in bases}, reverse=True)
    grid = figure.add_gridspec(len(ys), len(xs))
    made: dict = {}
    for xk, yk in bases:
        (x0, x1), (y0, y1) = domain(xk), domain(yk)
        cols = [i for i, s in enumerate(xs) if x0 <= s < x1] or [0]
        rows = [i for i, s in enumerate(ys) if y0 <= s < y1] or [0]
        ax = figure.add_subplot(grid[min(rows):max(rows) + 1, min(cols):max(cols) + 1])
        ax.set_facecolor(style["plot_bgcolor"])
        ax.set_axisbelow(True)
        ax.grid(True, color=style["gridcolor"], linewidth=0.8)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(length=0, labelsize=12 * PT, colors="#2a3f5f")
        made[(xk, yk)] = ax
    axes = {}
    for pair in pairs:
        if base[pair] == pair:
            axes[pair] = made[pair]
        else:
            twin = made[base[pair]].twinx()
            twin.tick_params(length=0, labelsize=12 * PT, colors="#2a3f5f")
            for spine in twin.spines.values():
                spine.set_visible(False)
            axes[pair] = twin
    return axes


def _scatter(ax, trace, color, label, xcat, ycat, previous):
    y = _values(trace.get("y"))
    x = _values(trace.get("x"))
    if y is None and x is None:
        return previous
    if y is None:
        y, x = x, None
    n = len(y)
    xs = np.arange(n, dtype=float) if x is None else _positions(x, xcat)
    ys = _positions(y, ycat)
    mode = trace.get("mode") or ("lines+markers" if n < 20 else "lines")
    line, marker = trace.get("line") or {}, trace.get("marker") or {}
    opacity = trace.get("opacity", 1.0)
    show_label = label if trace.get("showlegend", True) else "_nolegend_"
    size = marker.get("size", 6)
    sizes = _values(size) if isinstance(size, (list, tuple, np.ndarray, Mapping)) else None
    mcolors = _values(marker.get("color")) if isinstance(marker.get("color"), (list, tuple, np.ndarray, Mapping)) \
        else None
    symbol = str(marker.get("symbol", "circle")).replace("-open", "").replace("-dot", "")
    mk = SYMBOLS.get(symbol, "o")
    ls = DASHES.get(line.get("dash", "solid"), "-")
    lw = float(line.get("width", 2)) * PT * 1.3
    drawstyle = {"hv": "steps-post", "vh": "steps-pre", "hvh": "steps-mid"}.get(line.get("shape"), "default")
    drew_label = False
    if "lines" in mode:
        ax.plot(xs, ys, linestyle=ls, linewidth=lw, color=color, alpha=opacity, drawstyle=drawstyle,
                marker=mk if "markers" in mode and sizes is None and mcolors is None else None,
                markersize=float(size) * PT * 1.4 if sizes is None else None, label=show_label)
        drew_label = True
    if "markers" in mode and ("lines" not in mode or sizes is not None or mcolors is not None):
        s = (np.asarray(_floats(sizes)) if sizes is not None else np.full(n, float(size))) * PT * 1.4
        kwargs = {"color": color}
        if mcolors is not None:
            if _is_categorical(mcolors) or isinstance(mcolors[0], str):
                kwargs = {"color": [_color(c) or color for c in mcolors]}
            else:
                kwargs = {"c": _floats(mcolors), "cmap": _cmap(marker.get("colorscale"), marker.get("reversescale"))}
        ax.scatter(xs, ys, s=s ** 2, marker=mk, alpha=marker.get("opacity", opacity), linewidths=0,
                   label=show_label if not drew_label else "_nolegend_", **kwargs)
    for axis_letter, err in (("y", trace.get("error_y")), ("x", trace.get("error_x"))):
        if not err or err.get("visible") is False or err.get("array") is None and err.get("value") is None:
            continue
        plus = _floats(_values(err["array"])) if err.get("array") is not None else np.full(n, float(err["value"]))
        if err.get("type") == "percent":
            plus = np.abs(ys if axis_letter == "y" else xs) * plus / 100
        minus = plus if err.get("symmetric", True) is not False or err.get("arrayminus") is None else \
            _floats(_values(err["arrayminus"]))
        e = np.vstack([minus[:n], plus[:n]])
        ax.errorbar(xs, ys, **({"yerr": e} if axis_letter == "y" else {"xerr": e}), fmt="none", ecolor=color,
                    elinewidth=1, capsize=3, alpha=opacity)
    fill = trace.get("fill")
    if fill and fill != "none":
        fillcolor = _color(trace.get("fillcolor")) or color
        alpha = None if trace.get("fillcolor") else 0.35
        if fill == "tozeroy":
            ax.fill_between(xs, 0, ys, color=fillcolor, alpha=alpha, linewidth=0)
        elif fill == "tozerox":
            ax.fill_betweenx(ys, 0, xs, color=fillcolor, alpha=alpha, linewidth=0)
        elif fill == "tonexty" and previous is not None:
            px, py = previous
            order = np.argsort(px)
            ax.fill_between(xs, np.interp(xs, px[order], py[order]), ys, color=fillcolor, alpha=alpha, linewidth=0)
        elif fill in ("toself", "tonext"):
            ax.fill(xs, ys, color=fillcolor, alpha=alpha, linewidth=0)
    if "text" in mode and trace.get("text") is not None:
        texts = _values(trace.get("text"))
        texts = texts * n if len(texts) == 1 else texts
        pos = str(trace.get("textposition", "middle center"))
        dy = 5 if "top" in pos else -5 if "bottom" in pos else 0
        dx = 5 if "right" in pos else -5 if "left" in pos else 0
        for xv, yv, t in zip(xs, ys, texts):
            ax.annotate(_text(t), (xv, yv), xytext=(dx, dy), textcoords="offset points", fontsize=10 * PT,
                        ha="left" if dx > 0 else "right" if dx < 0 else "center",
                        va="bottom" if dy > 0 else "top" if dy < 0 else "center")
    return xs, ys


def _bar_slots(traces, layout) -> dict:
    """For grouped bars: each bar/histogram trace's slot among those sharing its axes."""
    slots: dict = {}
    for i, t in enumerate(traces):
        if t.get("type", "scatter") in BAR_TYPES and t.get("visible") not in (False, "legendonly"):
            slots.setdefault(_pair(t), []).append(i)
    return {i: (members.index(i), len(members)) for members in slots.values() for i in members}


def _bar(ax, trace, color, label, xcat, ycat, slot_count, stacks, layout):
    horizontal = trace.get("orientation") == "h"
    pos_values, len_values = (trace.get("y"), trace.get("x")) if horizontal else (trace.get("x"), trace.get("y"))
    pos_values, len_values = _values(pos_values), _values(len_values)
    if len_values is None:
        return
    if pos_values is None:
        pos_values = list(range(len(len_values)))
    pos = _positions(pos_values, ycat if horizontal else xcat)
    lengths = _floats(len_values)
    mode = layout.get("barmode", "group")
    slot, count = slot_count
    unit = np.min(np.diff(np.unique(pos))) if len(np.unique(pos)) > 1 else 1.0
    full = unit * (1 - float(layout.get("bargap", 0.2)))
    width = trace.get("width")
    if mode == "group" and count > 1:
        w = full / count
        pos = pos - full / 2 + w * (slot + 0.5)
    else:
        w = full
    if width is not None:
        w = float(width) if not isinstance(width, (list, tuple)) else _floats(width)
    base = np.zeros(len(lengths))
    if mode in ("stack", "relative"):
        key = (_pair(trace), "h" if horizontal else "v")
        totals = stacks.setdefault(key, {})
        base = np.array([totals.get((p, v >= 0), 0.0) for p, v in zip(pos, lengths)])
        for p, v, b in zip(pos, lengths, base):
            totals[(p, v >= 0)] = b + (0 if np.isnan(v) else v)
    marker = trace.get("marker") or {}
    colors = _values(marker.get("color")) if isinstance(marker.get("color"), (list, tuple, np.ndarray)) else None
    facecolor = [_color(c) or color for c in colors] if colors is not None and isinstance(colors[0], str) else color
    alpha = trace.get("opacity", marker.get("opacity", 0.6 if mode == "overlay" else 1.0))
    show_label = label if trace.get("showlegend", True) else "_nolegend_"
    if horizontal:
        container = ax.barh(pos, lengths, height=w, left=base, color=facecolor, alpha=alpha, label=show_label)
    else:
        container = ax.bar(pos, lengths, width=w, bottom=base, color=facecolor, alpha=alpha, label=show_label)
    texts = _bar_texts(trace, pos_values, len_values)
    if texts is not None and trace.get("textposition") != "none":
        ax.bar_label(container, labels=texts, fontsize=10 * PT,
                     label_type="center" if trace.get("textposition") == "inside" or mode == "stack" else "edge")


def _bar_texts(trace, xs, ys):
    template, text = trace.get("texttemplate"), _values(trace.get("text"))
    if template is None and text is None:
        return None
    n = len(ys)
    if text is not None and len(text) == 1:
        text = text * n
    if template is None:
        return [_text(t) for t in text]
    horizontal = trace.get("orientation") == "h"

    def fill(i):
        values = {"x": ys[i] if horizontal else xs[i], "y": xs[i] if horizontal else ys[i],
                  "text": text[i] if text is not None else "", "value": ys[i]}

        def one(m):
            name, fmt = m.group(1), m.group(2)
            v = values.get(name, "")
            try:
                return format(v, fmt) if fmt else str(v)
            except (ValueError, TypeError):
                return str(v)
        return _text(re.sub(r"%\{(\w+)(?::([^}]*))?\}", one, str(template)))
    return [fill(i) for i in range(n)]


def _histogram(ax, trace, color, label, slot_count, layout, traces):
    horizontal = trace.get("orientation") == "h" or (trace.get("x") is None and trace.get("y") is not None)
    values = _values(trace.get("y") if horizontal else trace.get("x"))
    if values is None:
        return
    data = _floats(values)
    data = data[~np.isnan(data)]
    spec = trace.get("ybins" if horizontal else "xbins") or {}
    nbins = trace.get("nbinsy" if horizontal else "nbinsx")
    if spec.get("size"):
        start = float(spec.get("start", data.min() if len(data) else 0))
        end = float(spec.get("end", data.max() if len(data) else 1))
        edges = np.arange(start, end + float(spec["size"]), float(spec["size"]))
    else:  # bins shared by every histogram on these axes, as plotly does
        together = np.concatenate([_floats(_values(t.get("x") if t.get("x") is not None else t.get("y")))
                                   for t in traces if t.get("type") == "histogram" and _pair(t) == _pair(trace)])
        together = together[~np.isnan(together)]
        edges = np.histogram_bin_edges(together if len(together) else data, bins=int(nbins) if nbins else "auto")
    counts, edges = np.histogram(data, bins=edges)
    counts = counts.astype(float)
    norm = trace.get("histnorm") or ""
    if norm in ("percent", "probability") and counts.sum():
        counts = counts / counts.sum() * (100 if norm == "percent" else 1)
    elif norm in ("density", "probability density") and counts.sum():
        counts = counts / np.diff(edges) / (counts.sum() if norm == "probability density" else 1)
    mode = layout.get("barmode", "group")
    slot, count = slot_count
    widths = np.diff(edges) * (1 - float(layout.get("bargap", 0) or 0))
    left = edges[:-1]
    if mode == "group" and count > 1:
        widths = widths / count
        left = left + widths * slot
    alpha = trace.get("opacity", 0.6 if mode == "overlay" else 1.0)
    show_label = label if trace.get("showlegend", True) else "_nolegend_"
    if horizontal:
        ax.barh(left, counts, height=widths, align="edge", color=color, alpha=alpha, label=show_label)
    else:
        ax.bar(left, counts, width=widths, align="edge", color=color, alpha=alpha, label=show_label)


def _cmap(colorscale, reverse=False):
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    if isinstance(colorscale, (list, tuple)) and colorscale:
        stops = [(float(p), _color(c) or "gray") for p, c in colorscale]
        cmap = LinearSegmentedColormap.from_list("plotly", stops)
    else:
        cmap = colormaps[CMAPS.get(str(colorscale or "viridis").lower().removesuffix("_r"), "viridis")]
        if isinstance(colorscale, str) and colorscale.endswith("_r"):
            reverse = not reverse
    return cmap.reversed() if reverse else cmap


def _heatmap(figure, ax, trace, xcat, ycat):
    z = _values(trace.get("z"))
    if z is None:
        return
    z = np.array([_floats(row) for row in z]) if not isinstance(z, np.ndarray) else z.astype(float)
    cmap = _cmap(trace.get("colorscale"), trace.get("reversescale", False))
    vmin, vmax = trace.get("zmin"), trace.get("zmax")
    if trace.get("zmid") is not None and vmin is None and vmax is None:
        half = np.nanmax(np.abs(z - trace["zmid"]))
        vmin, vmax = trace["zmid"] - half, trace["zmid"] + half
    image = ax.imshow(z, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for letter, n, setter, rot in (("x", z.shape[1], ax.set_xticks, 0), ("y", z.shape[0], ax.set_yticks, 0)):
        labels = _values(trace.get(letter))
        if labels is None:
            continue
        step = max(1, int(np.ceil(n / 20)))
        ticks = list(range(0, n, step))
        setter(ticks, [_text(labels[i]) if i < len(labels) else "" for i in ticks], rotation=rot)
    ax.grid(False)
    if trace.get("showscale", True):
        bar = figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
        bar.ax.tick_params(labelsize=10 * PT, length=0)
        bar.outline.set_visible(False)
    text = _values(trace.get("text"))
    template = trace.get("texttemplate")
    if (template or text is not None) and z.size <= 400:
        for r in range(z.shape[0]):
            for c in range(z.shape[1]):
                if template:
                    s = re.sub(r"%\{z(?::([^}]*))?\}", lambda m, v=z[r, c]: format(v, m.group(1) or "g"),
                               str(template))
                    s = s.replace("%{text}", str(text[r][c]) if text is not None else "")
                else:
                    s = str(text[r][c])
                red, green, blue, _ = image.cmap(image.norm(z[r, c]))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(c, r, _text(s), ha="center", va="center", fontsize=10 * PT,
                        color="white" if dark else "black")


def _formatter(fmt: str, prefix: str, suffix: str):
    from matplotlib.ticker import FuncFormatter

    fmt = fmt.replace("~", "")
    if fmt:
        try:
            format(0.5, fmt)
        except ValueError:
            fmt = ""  # a d3 format Python lacks (SI prefixes): matplotlib's own ticks

    def tick(v, _pos=None):
        body = format(v, fmt) if fmt else f"{v:g}"
        return _text(f"{prefix}{body}{suffix}")
    return FuncFormatter(tick)


def _log_ticks(minor: bool = False):
    """Log-axis labels as plotly writes them: plain numbers (2, 0.5) where they read well, 10^k beyond."""
    from matplotlib.ticker import LogFormatterSciNotation

    class LogTicks(LogFormatterSciNotation):
        def __call__(self, x, pos=None):
            s = super().__call__(x, pos)
            return f"{x:g}" if s and 1e-4 <= abs(x) < 1e5 else s

    return LogTicks(labelOnlyBase=False, minor_thresholds=(1, 0.6)) if minor else LogTicks()


def _style_axes(ax, layout, key, categories, style):
    xk, yk = key
    for letter, axis_key in (("x", xk), ("y", yk)):
        axis = layout.get(axis_key) or {}
        mpl_axis = ax.xaxis if letter == "x" else ax.yaxis
        set_label = ax.set_xlabel if letter == "x" else ax.set_ylabel
        set_scale = ax.set_xscale if letter == "x" else ax.set_yscale
        set_lim = ax.set_xlim if letter == "x" else ax.set_ylim
        log = axis.get("type") == "log"
        if log:
            set_scale("log")
            mpl_axis.set_major_formatter(_log_ticks())
            mpl_axis.set_minor_formatter(_log_ticks(minor=True))
        elif categories.get(axis_key) is None:
            from matplotlib.ticker import MaxNLocator

            mpl_axis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 5, 10]))  # plotly's tick steps
        cats = categories.get(axis_key)
        if cats is not None:
            mpl_axis.set_ticks(range(len(cats)), [_text(c) for c in cats])
        if axis.get("tickvals") is not None:
            vals = _floats(_values(axis["tickvals"]))
            texts = _values(axis.get("ticktext"))
            mpl_axis.set_ticks(vals, [_text(t) for t in texts] if texts is not None else None)
        elif cats is None and (axis.get("tickformat") or axis.get("tickprefix") or axis.get("ticksuffix")):
            mpl_axis.set_major_formatter(_formatter(str(axis.get("tickformat") or ""), axis.get("tickprefix") or "",
                                                    axis.get("ticksuffix") or ""))
        title = _title(axis.get("title"))
        if title:
            set_label(title, fontsize=14 * PT, color="#2a3f5f")
        rng = axis.get("range")
        if rng is not None and len(rng) == 2:
            lo, hi = (None if v is None else (10 ** float(v) if log else float(v)) for v in rng)
            with contextlib.suppress(TypeError, ValueError):  # a range plotly reads and matplotlib cannot
                set_lim(lo, hi)
        if axis.get("autorange") == "reversed":
            (ax.invert_xaxis if letter == "x" else ax.invert_yaxis)()
        if axis.get("showticklabels") is False:
            mpl_axis.set_ticklabels([])
        if axis.get("showgrid") is False:
            mpl_axis.grid(False)
        if axis.get("side") == "right" and letter == "y":
            ax.yaxis.tick_right()
            ax.yaxis.set_label_position("right")
        angle = axis.get("tickangle")
        if angle not in (None, "auto") and float(angle):
            rotation = -float(angle)
            for t in mpl_axis.get_ticklabels():
                t.set_rotation(rotation)
                if letter == "x":
                    t.set_ha("right" if rotation > 0 else "left")
                    t.set_rotation_mode("anchor")
        elif letter == "x" and cats and sum(len(c) for c in cats) > 80:  # plotly turns crowded labels too
            for t in mpl_axis.get_ticklabels():
                t.set_rotation(45)
                t.set_ha("right")
                t.set_rotation_mode("anchor")


def _ref_transform(ax, xref, yref):
    from matplotlib.transforms import blended_transform_factory

    xt = ax.transData if xref and not (xref.endswith("domain") or xref == "paper") else ax.transAxes
    yt = ax.transData if yref and not (yref.endswith("domain") or yref == "paper") else ax.transAxes
    return blended_transform_factory(xt, yt)


def _ax_for(axes, xref, yref):
    xk = "xaxis" + (xref or "x").split()[0][1:] if xref and xref != "paper" else None
    yk = "yaxis" + (yref or "y").split()[0][1:] if yref and yref != "paper" else None
    for (ax_x, ax_y), ax in axes.items():
        if (xk is None or ax_x == xk) and (yk is None or ax_y == yk):
            return ax
    return next(iter(axes.values()))


def _shapes(axes, layout):
    for shape in layout.get("shapes") or []:
        kind = shape.get("type", "rect" if "x1" in shape else "line")
        xref, yref = shape.get("xref", "x"), shape.get("yref", "y")
        ax = _ax_for(axes, xref, yref)
        try:
            x0, x1, y0, y1 = (float(shape[k]) for k in ("x0", "x1", "y0", "y1"))
        except (KeyError, TypeError, ValueError):
            continue
        line = shape.get("line") or {}
        color = _color(line.get("color")) or "#444"
        transform = _ref_transform(ax, xref, yref)
        if kind == "line":
            ax.plot([x0, x1], [y0, y1], transform=transform, color=color,
                    linewidth=float(line.get("width", 2)) * PT * 1.3, linestyle=DASHES.get(line.get("dash"), "-"),
                    alpha=shape.get("opacity", 1))
        elif kind in ("rect", "circle"):
            from matplotlib.patches import Ellipse, Rectangle

            fill = _color(shape.get("fillcolor"))
            kw = {"transform": transform, "facecolor": fill or "none", "edgecolor": color if line.get("width", 1)
                  else "none", "alpha": shape.get("opacity", 1), "linewidth": float(line.get("width", 1)) * PT}
            patch = Rectangle((x0, y0), x1 - x0, y1 - y0, **kw) if kind == "rect" else \
                Ellipse(((x0 + x1) / 2, (y0 + y1) / 2), x1 - x0, y1 - y0, **kw)
            ax.add_patch(patch)


def _annotations(figure, axes, layout):
    for note in layout.get("annotations") or []:
        text = _text(note.get("text"))
        if not text:
            continue
        xref, yref = note.get("xref", "x"), note.get("yref", "y")
        x, y = note.get("x", 0.5), note.get("y", 0.5)
        if xref == "paper" and yref == "paper":
            subplot = _subplot_title_axes(axes, layout, note)
            if subplot is not None:
                subplot.set_title(text, fontsize=14 * PT, color="#2a3f5f")
            else:
                figure.text(float(x), float(y), text, fontsize=12 * PT, color="#2a3f5f",
                            ha={"left": "left", "right": "right"}.get(note.get("xanchor"), "center"),
                            va={"top": "top", "bottom": "bottom"}.get(note.get("yanchor"), "center"))
            continue
        ax = _ax_for(axes, xref, yref)
        try:
            xy = (float(x), float(y))
        except (TypeError, ValueError):
            continue
        arrow = note.get("showarrow", True)
        offset = (float(note.get("ax", -10)) * PT, -float(note.get("ay", -30)) * PT) if arrow else (0, 0)
        ax.annotate(text, xy, xycoords=_ref_transform(ax, xref, yref), xytext=offset, textcoords="offset points",
                    fontsize=12 * PT, ha="center", va="center", color="#2a3f5f",
                    arrowprops={"arrowstyle": "->", "color": "#444"} if arrow else None)


def _subplot_title_axes(axes, layout, note):
    """make_subplots writes subplot titles as paper annotations at the top centre of each subplot's domain."""
    if note.get("yanchor") != "bottom" or note.get("showarrow", True):
        return None
    for (xk, yk), ax in axes.items():
        xd = _get(layout, xk, "domain") or [0, 1]
        yd = _get(layout, yk, "domain") or [0, 1]
        if abs(float(note["x"]) - (xd[0] + xd[1]) / 2) < 1e-6 and abs(float(note["y"]) - yd[1]) < 1e-6:
            return ax
    return None


def _title_and_legend(figure, axes, layout, traces):
    title = _title(layout.get("title"))
    first = next(iter(axes.values()))
    if title:
        if len({id(a) for a in axes.values()}) == 1 or len(axes) == 1:
            first.set_title(title, loc="left", fontsize=17 * PT, color="#2a3f5f")
        else:
            figure.suptitle(title, x=0.02, ha="left", fontsize=17 * PT, color="#2a3f5f")
    handles, labels = [], []
    for ax in axes.values():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    shown = [t for t in traces if t.get("showlegend", True) is not False and t.get("visible") is not False]
    show = layout.get("showlegend")
    if not handles or show is False or (show is None and len(shown) < 2):
        return
    legend = layout.get("legend") or {}
    heading = _title(legend.get("title"))
    kw = {"fontsize": 12 * PT, "frameon": False, "title": heading or None, "title_fontsize": 12 * PT}
    x, y = legend.get("x"), legend.get("y")
    if legend.get("orientation") == "h":
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), **kw)
    elif x is not None and y is not None and 0 <= float(x) <= 1 and 0 <= float(y) <= 1:
        loc = ("upper " if float(y) > 0.5 else "lower ") + ("left" if float(x) < 0.5 else "right")
        first.legend(handles, labels, loc=loc, **{**kw, "frameon": True, "framealpha": 0.8})
    else:
        figure.legend(handles, labels, loc="outside right upper", **kw)
