"""ipywidgets playgrounds. They only react to clicks, so a headless run never waits on them."""

from __future__ import annotations

import ipywidgets as w


def sampling_playground(lab, messages: list[dict]) -> w.VBox:
    """Sliders for temperature, top_p and max_tokens, a seed box and a Generate button."""
    temperature = w.FloatSlider(value=0.7, min=0.0, max=2.0, step=0.1, description="temperature")
    top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top_p")
    max_tokens = w.IntSlider(value=40, min=1, max=200, description="max_tokens")
    seed = w.IntText(value=0, description="seed")
    button = w.Button(description="Generate", button_style="primary")
    out = w.Output()

    def generate(_=None):
        r = lab.client.chat.completions.create(
            model=lab.models.chat, messages=messages, temperature=temperature.value, top_p=top_p.value,
            max_tokens=max_tokens.value, seed=seed.value)
        with out:
            out.clear_output()
            c = r.choices[0]
            print(f"[finish_reason={c.finish_reason}, {r.usage.completion_tokens} tokens]\n{c.message.content}")

    button.on_click(generate)
    return w.VBox([w.HBox([temperature, top_p]), w.HBox([max_tokens, seed, button]), out])
