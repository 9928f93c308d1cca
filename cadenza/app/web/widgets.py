"""The Gradio widgets for every conditioning field and sampling setting, built once; a model change
only shows or hides them (see ``controls.visible_widgets``)."""

from __future__ import annotations

import gradio as gr

from cadenza import ModelInfo, Sampling
from cadenza.app.web.controls import (AUDIO_TYPES, CONDITIONING_WIDGETS, FAMILY_CHOICE_WIDGETS, MIDI_TYPES,
                                      RESULT_WIDGETS, SAMPLING_WIDGETS, prompt_file_types, visible_widgets,
                                      widget_choices)
from cadenza.music.instruments import GM_PROGRAMS
from cadenza.music.theory import ALL_KEYS

METERS = ("4/4", "3/4", "2/4", "2/2", "6/8", "9/8", "12/8", "3/8", "5/4", "7/8")


def build_conditioning_widgets(info: ModelInfo | None) -> dict[str, gr.components.Component]:
    """The "what to make" and "start from" widgets, visible as ``info`` supports them."""
    shown = visible_widgets(info.capabilities, info.sampling) if info else set()
    choices = info.choices if info else {}

    def vis(name: str) -> bool:
        return name in shown

    w: dict[str, gr.components.Component] = {}
    w["text"] = gr.Textbox(label="Describe the music", placeholder="a lively irish reel in D major", lines=2,
                           visible=vis("text"), elem_id="text")
    w["negative_text"] = gr.Textbox(label="Avoid", placeholder="drums, distortion", visible=vis("negative_text"),
                                    elem_id="negative_text")
    with gr.Row():
        w["style"] = gr.Dropdown(label="Style", choices=widget_choices("style", choices), value="",
                                 allow_custom_value=True, visible=vis("style"), elem_id="style")
        w["key"] = gr.Dropdown(label="Key", choices=[("any", "")] + [(k.name, k.name) for k in ALL_KEYS], value="",
                               visible=vis("key"), elem_id="key")
        w["time_signature"] = gr.Dropdown(label="Meter", choices=[("any", "")] + [(m, m) for m in METERS], value="",
                                          allow_custom_value=True, visible=vis("time_signature"), elem_id="meter")
    with gr.Row():
        w["tempo_bpm"] = gr.Textbox(label="Tempo (BPM, 20-300)", placeholder="auto",
                                   visible=vis("tempo_bpm"), elem_id="tempo")
        w["bars"] = gr.Textbox(label="Bars (1-256)", placeholder="auto",
                              visible=vis("bars"), elem_id="bars")
        w["duration_s"] = gr.Textbox(label="Length (seconds)", placeholder="auto", visible=vis("duration_s"),
                                     elem_id="duration")
    w["form"] = gr.Textbox(label="Form (sections by letter)",
                           placeholder="AABB, AABA, A8 B8, A A' B B' (empty: the style's usual form)",
                           visible=vis("form"), elem_id="form")
    w["instruments"] = gr.Dropdown(label="Instruments", choices=sorted(GM_PROGRAMS), value=[], multiselect=True,
                                   allow_custom_value=True, visible=vis("instruments"), elem_id="instruments")
    w["tags"] = gr.Textbox(label="Tags (comma separated)", placeholder="folk, dance", visible=vis("tags"),
                           elem_id="tags")
    w["chords"] = gr.Textbox(label="Chords", placeholder="D G A D", visible=vis("chords"), elem_id="chords")
    w["prompt"] = gr.File(label="Continue this (MIDI or audio to start from)", type="filepath",
                          file_types=prompt_file_types(info.capabilities) if info else list(MIDI_TYPES),
                          visible=vis("prompt"), elem_id="prompt", height=150)
    w["melody_midi"] = gr.File(label="Melody to follow (MIDI)", type="filepath", file_types=list(MIDI_TYPES),
                               height=130,
                               visible=vis("melody_midi"), elem_id="melody_midi")
    w["melody_audio"] = gr.Audio(label="Melody to follow (upload or sing/hum it)", type="filepath",
                                 sources=["upload", "microphone"], visible=vis("melody_audio"), elem_id="melody_audio")
    w["source_audio"] = gr.Audio(label="Source recording (timbre transfer)", type="filepath",
                                 sources=["upload", "microphone"], visible=vis("source_audio"), elem_id="source_audio")
    return w


def build_sampling_widgets(info: ModelInfo | None) -> tuple[dict[str, gr.components.Component], gr.Button]:
    """The "how to sample" widgets and the seed's re-roll button. Every widget starts at the
    `Sampling` default (or empty where the default is None), so an untouched widget changes nothing."""
    shown = visible_widgets(info.capabilities, info.sampling) if info else set()
    choices = info.choices if info else {}
    d = Sampling()

    def vis(name: str) -> bool:
        return name in shown

    w: dict[str, gr.components.Component] = {}
    with gr.Row(equal_height=True):
        w["seed"] = gr.Textbox(label="Seed", placeholder="empty: a new one each time", elem_id="seed", scale=3)
        reroll = gr.Button("New seed", elem_id="reroll", scale=1)
        w["num_samples"] = gr.Slider(label="Samples", minimum=1, maximum=4, step=1, value=d.num_samples,
                                     elem_id="num_samples", scale=3)
    w["temperature"] = gr.Slider(label="Temperature (lower: safer, higher: wilder)", minimum=0.0, maximum=2.0,
                                 step=0.05, value=d.temperature, visible=vis("temperature"), elem_id="temperature")
    with gr.Row():
        w["top_k"] = gr.Slider(label="Top-k (0: off)", minimum=0, maximum=500, step=1, value=d.top_k,
                               visible=vis("top_k"), elem_id="top_k")
        w["top_p"] = gr.Slider(label="Top-p (1: off)", minimum=0.05, maximum=1.0, step=0.01, value=d.top_p,
                               visible=vis("top_p"), elem_id="top_p")
    w["repetition_penalty"] = gr.Slider(label="Repetition penalty (1: off)", minimum=0.5, maximum=3.0, step=0.05,
                                        value=d.repetition_penalty, visible=vis("repetition_penalty"),
                                        elem_id="repetition_penalty")
    w["cfg_scale"] = gr.Slider(label="Follow the text (guidance; 1: off)", minimum=0.0, maximum=15.0, step=0.5,
                               value=d.cfg_scale, visible=vis("cfg_scale"), elem_id="cfg_scale")
    with gr.Row():
        w["steps"] = gr.Textbox(label="Steps (1-1000)", placeholder="the model's default", visible=vis("steps"),
                                elem_id="steps")
        w["scheduler"] = gr.Dropdown(label="Scheduler", choices=widget_choices("scheduler", choices), value="",
                                     allow_custom_value=True, visible=vis("scheduler"), elem_id="scheduler")
    with gr.Row():
        w["strength"] = gr.Textbox(label="Strength: how far from the prompt audio or the melody's sketch (0-1)",
                                   placeholder="the model's default", visible=vis("strength"), elem_id="strength")
        w["key_bias"] = gr.Textbox(label="Key bias (0: off, 10: strict)", placeholder="the model's default",
                                   visible=vis("key_bias"), elem_id="key_bias")
        w["max_tokens"] = gr.Textbox(label="Max tokens", placeholder="no cap", visible=vis("max_tokens"),
                                     elem_id="max_tokens")
    missing = set(SAMPLING_WIDGETS) - set(w)
    if missing:  # a new Sampling field needs a widget here (and a test says so)
        raise RuntimeError(f"web studio has no widget for sampling fields {sorted(missing)}")
    return w, reroll


def visibility_updates(widgets: dict[str, gr.components.Component], info: ModelInfo) -> dict:
    """Show exactly the widgets ``info`` supports; the prompt upload takes the suffixes it continues, and
    the style and scheduler lists offer what ``info``'s family suggests."""
    shown = visible_widgets(info.capabilities, info.sampling)
    updates = {comp: gr.update(visible=name in shown) for name, comp in widgets.items()}
    for name in FAMILY_CHOICE_WIDGETS:
        if name in widgets:
            updates[widgets[name]] = gr.update(visible=name in shown, choices=widget_choices(name, info.choices))
    updates[widgets["prompt"]] = gr.update(visible="prompt" in shown, file_types=prompt_file_types(info.capabilities)
                                           or list(MIDI_TYPES + AUDIO_TYPES))
    return updates
