"""The "Generate" tab: model picker, the widgets the model supports, Generate/Cancel, and one result
slot per sample (player, picture, downloads, provenance, "continue this", "regenerate with this seed",
and "regenerate bars" for a MIDI result of a model that can write chosen bars anew).

Every run, a Generate or a result's "Regenerate bars", goes through ``generate_results``: one job of
the session (Cancel stops it), queued behind the model's gate, its results saved in a new job folder.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import gradio as gr

from cadenza import CadenzaError, Callbacks, Cancelled, Conditioning, ModelInfo, Sampling
from cadenza.app.web.context import MAX_SAMPLES, AppContext
from cadenza.app.web.controls import can_regenerate, prompt_file_types
from cadenza.app.web.form import conditioning_from_form, regenerate_conditioning, sampling_from_form
from cadenza.app.web.results import ResultFiles, reload_midi_output, save_result
from cadenza.app.web.uploads import public_message
from cadenza.app.web.widgets import build_conditioning_widgets, build_sampling_widgets, visibility_updates


@dataclass
class ResultSlot:
    group: gr.Group
    summary: gr.Markdown
    audio: gr.Audio
    image: gr.Image
    files: gr.File
    provenance: gr.Code
    continue_button: gr.Button
    reseed_button: gr.Button
    regen_row: gr.Row
    regen_bars: gr.Textbox
    regen_button: gr.Button

    def components(self) -> list:
        return [self.group, self.summary, self.audio, self.image, self.files, self.provenance, self.reseed_button,
                self.regen_row]

    def show(self, result: ResultFiles, regenerable: bool) -> dict:
        """Fill the slot with ``result``; "Regenerate bars" shows when ``regenerable``, "Regenerate with
        this seed" unless the result is itself bars rewritten (its seed alone does not make it again)."""
        return {self.group: gr.update(visible=True), self.summary: result.summary, self.audio: str(result.audio),
                self.image: str(result.image), self.files: [str(p) for p in result.downloads],
                self.provenance: result.provenance_json, self.reseed_button: gr.update(visible=not result.regenerated),
                self.regen_row: gr.update(visible=regenerable)}

    def hide(self) -> dict:
        return {self.group: gr.update(visible=False), self.summary: "", self.audio: None, self.image: None,
                self.files: None, self.provenance: "", self.reseed_button: gr.update(visible=True),
                self.regen_row: gr.update(visible=False)}


@dataclass(frozen=True)
class RegenerateOutcome:
    """What a "Regenerate bars" click did: the status line, the session's records afterwards, and the
    new result with the slot it goes to (None when nothing new was made)."""

    status: str
    records: list[dict]
    slot: int | None = None
    result: ResultFiles | None = None


def _quiet(*args, **kwargs) -> None:
    """A progress callback that shows nothing (tests, callers without a page)."""


def generate_results(ctx: AppContext, session: str, info: ModelInfo, conditioning: Conditioning, sampling: Sampling,
                     render: dict, progress: Callable = _quiet, first_index: int = 0,
                     keep: Iterable[str] = ()) -> list[ResultFiles]:
    """Generate with ``info``'s model as one job of ``session`` and save the outputs in a new job folder.

    Cancel (``ctx.jobs.cancel(session)``) stops it, also while it waits for the model's gate. ``render``:
    ``ctx.render_args(...)`` for MIDI. Outputs are numbered from ``first_index`` (their result slot).
    ``keep``: files of earlier results still on the page, whose job folders are not removed.

    Raises:
        CadenzaError: the request is refused or fails; ``Cancelled`` when stopped.
    """
    with ctx.jobs.job(session) as stop:
        tick = _Throttle(progress)
        callbacks = Callbacks(progress=tick, should_cancel=stop.is_set)
        busy = f"waiting for {info.name} (busy with another job)"
        with ctx.gates.hold(info.name, stop.is_set, lambda: progress(0, desc=busy)):
            progress(0, desc=f"loading {info.name}")
            outputs = ctx.studio.generate(info.name, conditioning, sampling, callbacks)
        progress(1.0, desc="rendering")
        folder = ctx.workspace.new_job(session, keep=keep)
        return [save_result(ctx.studio, out, folder, first_index + i, **render) for i, out in enumerate(outputs)]


def regenerate_bars(ctx: AppContext, session: str, records: list[dict], index: int, span: object,
                    form: dict, synth: str, progress: Callable = _quiet) -> RegenerateOutcome:
    """"Regenerate bars" on result ``index``: bars ``span`` ('5-8') of its MIDI file written anew by the
    model that made it, keeping every other note. The new result takes the next free slot (the page
    shows ``MAX_SAMPLES``; when all are full it takes the last one other than ``index``); the original
    and the other results stay. ``form``: the sampling widgets (their seed and settings; one sample).
    An error leaves the records and the files as they were."""
    if index >= len(records):
        return RegenerateOutcome("That result is gone; generate again.", records)
    record = records[index]
    started = time.perf_counter()
    try:
        info = ctx.model(record.get("model"))
        conditioning = regenerate_conditioning(info, record["source"], span, ctx.uploads)
        if record.get("style") and "style" in info.capabilities:  # the new bars keep the piece's style
            conditioning = dataclasses.replace(conditioning, style=record["style"])
        sampling = dataclasses.replace(sampling_from_form(info, form), num_samples=1)
        render = ctx.render_args(synth)
        slot = len(records) if len(records) < MAX_SAMPLES else (MAX_SAMPLES - 1 if index != MAX_SAMPLES - 1
                                                                 else MAX_SAMPLES - 2)
        keep = [r["source"] for k, r in enumerate(records) if k != slot]
        [result] = generate_results(ctx, session, info, conditioning, sampling, render, progress, slot, keep)
    except Cancelled:
        return RegenerateOutcome("Stopped. Nothing was kept from that run.", records)
    except CadenzaError as exc:
        return RegenerateOutcome(_error(exc, ctx), records)
    seconds = time.perf_counter() - started
    first, last = conditioning.regenerate
    bars = f"bar {first}" if first == last else f"bars {first}-{last}"
    replaced = slot < len(records)
    updated = [*records[:slot], _record(result), *records[slot + 1:]]
    note = (f" It took the place of sample {slot + 1}: the page shows {MAX_SAMPLES} results at most."
            if replaced else "")
    return RegenerateOutcome(f"Done: {bars} of sample {index + 1} written anew as sample {slot + 1} in "
                             f"{seconds:.1f} s; sample {index + 1} is kept as it was.{note}", updated, slot, result)


def describe(info: ModelInfo) -> str:
    writes = "MIDI (played here with a synth)" if info.output == "midi" else "audio"
    return f"**{info.name}** · {info.family} model · writes {writes}. {info.description}"


def build_generate_tab(ctx: AppContext) -> dict:
    """Lay out the tab and wire its events (call inside a ``gr.Blocks``). Returns the widgets other tabs
    send work to: ``model``, ``prompt`` and ``status``."""
    default = ctx.default_model()
    with gr.Row():
        with gr.Column(scale=2, min_width=380):
            choices = [(f"{m.name} ({m.family} → {m.output})", m.name) for m in ctx.models]
            model = gr.Dropdown(label="Model", choices=choices, value=default.name if default else None,
                                elem_id="model")
            about = gr.Markdown(describe(default) if default else "No models are installed.", elem_id="model-about")
            with gr.Group():
                cond = build_conditioning_widgets(default)
            synth = gr.Dropdown(label="Play MIDI with", choices=ctx.synth_choices(), value="fluidsynth",
                                visible=bool(default) and default.output == "midi", elem_id="synth")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=3)
                cancel = gr.Button("Cancel", variant="stop", elem_id="cancel", scale=1)
            status = gr.Markdown("", elem_id="status")
            with gr.Accordion("How to sample", open=False, elem_id="sampling"):
                samp, reroll = build_sampling_widgets(default)
        with gr.Column(scale=3, min_width=420):
            gr.Markdown("### Results\nWhat you generate appears here: play it, look at it, download it.",
                        elem_id="results-intro")
            slots = [_build_slot(i) for i in range(MAX_SAMPLES)]
    records = gr.State([])  # per session: one _record(result) per result shown
    widgets = {**cond, **samp}

    def on_model(name: str) -> dict:
        info = ctx.model(name)
        return {**visibility_updates(widgets, info), about: describe(info),
                synth: gr.update(visible=info.output == "midi")}

    model.change(on_model, inputs=model, outputs=[*widgets.values(), about, synth], show_progress="hidden")

    def on_upload(path: str | None, name: str, request: gr.Request) -> str:
        """Check a prompt as soon as it is uploaded, so a broken file is reported before Generate."""
        if not path:
            return ""
        info = ctx.model(name)
        try:
            checked = ctx.uploads_for(request.session_hash or "anonymous").check(
                path, "prompt", prompt_file_types(info.capabilities))
            Conditioning(prompt=checked)
        except CadenzaError as exc:
            gr.Warning(public_message(exc, ctx.uploads.roots))
            return _error(exc, ctx)
        return "Prompt loaded: press **Generate** to continue it."

    cond["prompt"].upload(on_upload, inputs=[cond["prompt"], model], outputs=status, show_progress="hidden")

    def run(data: dict, request: gr.Request, progress=gr.Progress()) -> dict:
        session = request.session_hash or "anonymous"
        form = {name: data[comp] for name, comp in widgets.items()}
        try:
            info = ctx.model(data[model])
            conditioning = conditioning_from_form(info, form, ctx.uploads_for(session))
            sampling = sampling_from_form(info, form)
            started = time.perf_counter()
            results = generate_results(ctx, session, info, conditioning, sampling, ctx.render_args(data[synth]),
                                       progress)
        except Cancelled:
            return {status: "Stopped. Nothing was kept from that run."}
        except CadenzaError as exc:
            return {status: _error(exc, ctx)}
        seconds = time.perf_counter() - started
        rewrite = (" or **Regenerate bars** to rewrite some of its bars"
                   if any(_regenerable(ctx, r) for r in results) else "")
        updates: dict = {status: f"Done: {len(results)} sample{'s' * (len(results) > 1)} in {seconds:.1f} s. "
                                 f"Play it, download it, press **Continue this** to extend it{rewrite}.",
                         records: [_record(r) for r in results]}
        for i, slot in enumerate(slots):
            updates.update(slot.show(results[i], _regenerable(ctx, results[i])) if i < len(results) else slot.hide())
        return updates

    outputs = [status, records] + [c for s in slots for c in s.components()]
    run_inputs = {model, synth, *widgets.values()}
    limit = max(1, len(ctx.models))  # different models run side by side; the per-model gate queues the rest
    generate.click(run, inputs=run_inputs, outputs=outputs, concurrency_limit=limit, concurrency_id="generate")

    def on_cancel(request: gr.Request) -> object:
        reply = ctx.jobs.cancel_reply(request.session_hash or "anonymous")
        return gr.skip() if reply is None else reply

    def on_synth(recs: list, chosen: str, request: gr.Request, progress=gr.Progress()) -> dict:
        """Play the MIDI results already on the page with the newly chosen synth."""
        if not recs or any(r["kind"] != "midi" for r in recs):
            return {}
        progress(0, desc=f"rendering with {chosen}")
        try:
            scores = [reload_midi_output(r["source"]) for r in recs]
            folder = ctx.workspace.new_job(request.session_hash or "anonymous")
            results = [save_result(ctx.studio, out, folder, i, **ctx.render_args(chosen))
                       for i, out in enumerate(scores)]
        except CadenzaError as exc:
            return {status: _error(exc, ctx)}
        label = dict((value, label) for label, value in ctx.synth_choices()).get(chosen, chosen)
        updates: dict = {status: f"Now playing with {label}.",
                         records: [_record(r) for r in results]}
        for i, result in enumerate(results):
            updates.update(slots[i].show(result, _regenerable(ctx, result)))
        return updates

    synth.change(on_synth, inputs=[records, synth], outputs=outputs, concurrency_limit=limit,
                 concurrency_id="generate")
    cancel.click(on_cancel, inputs=None, outputs=status, queue=False, show_progress="hidden")
    reroll.click(lambda: str(secrets.randbelow(2**31)), inputs=None, outputs=samp["seed"], show_progress="hidden")

    for i, slot in enumerate(slots):
        def use_as_prompt(recs: list, name: str, i: int = i) -> dict:
            if i >= len(recs):
                return {status: "That result is gone; generate again."}
            info = ctx.model(name)
            source = recs[i]["source"]
            if not any(source.endswith(t) for t in prompt_file_types(info.capabilities)):
                return {status: _error(f"{info.name} cannot continue {recs[i]['kind']}; pick a model that can", ctx)}
            return {cond["prompt"]: source, status: f"Sample {i + 1} is the prompt now: set how much to add "
                                                    f"(bars or length) and press **Generate**."}

        slot.continue_button.click(use_as_prompt, inputs=[records, model], outputs=[cond["prompt"], status],
                                   show_progress="hidden")

        def reseed(recs: list, i: int = i) -> dict:
            if i >= len(recs):
                return {status: "That result is gone; generate again."}
            # samples of one seed may be drawn together: the same seed and number make sample i again
            return {samp["seed"]: str(recs[i]["seed"]), samp["num_samples"]: recs[i]["batch_size"],
                    status: f"Making sample {i + 1} again (seed {recs[i]['seed']}, {recs[i]['batch_size']} "
                            f"sample{'s' * (recs[i]['batch_size'] > 1)} as before)..."}

        slot.reseed_button.click(reseed, inputs=records, outputs=[samp["seed"], samp["num_samples"], status],
                                 show_progress="hidden").then(
            run, inputs=run_inputs, outputs=outputs, concurrency_limit=limit, concurrency_id="generate")

        slot.regen_button.click(_regenerate_handler(ctx, i, slot, slots, records, status, synth, samp),
                                inputs={records, synth, slot.regen_bars, *samp.values()}, outputs=outputs,
                                concurrency_limit=limit, concurrency_id="generate")
    return {"model": model, "prompt": cond["prompt"], "status": status}


def _regenerate_handler(ctx: AppContext, i: int, slot: ResultSlot, slots: list[ResultSlot], records: gr.State,
                        status: gr.Markdown, synth: gr.Dropdown, samp: dict) -> Callable:
    """The click of result ``i``'s "Regenerate bars": the new result fills its slot, the others stay."""

    def regen(data: dict, request: gr.Request, progress=gr.Progress()) -> dict:
        form = {name: data[comp] for name, comp in samp.items()}
        outcome = regenerate_bars(ctx, request.session_hash or "anonymous", data[records], i, data[slot.regen_bars],
                                  form, data[synth], progress)
        updates: dict = {status: outcome.status, records: outcome.records}
        if outcome.result is not None:
            updates.update(slots[outcome.slot].show(outcome.result, _regenerable(ctx, outcome.result)))
        return updates

    return regen


def _build_slot(i: int) -> ResultSlot:
    with gr.Group(visible=False, elem_id=f"result-{i}") as group:
        summary = gr.Markdown("", elem_id=f"result-summary-{i}")
        audio = gr.Audio(label=f"Sample {i + 1}", type="filepath", interactive=False, elem_id=f"result-audio-{i}")
        image = gr.Image(label="Piano roll / spectrogram", type="filepath", interactive=False, height=240,
                         elem_id=f"result-image-{i}")
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id=f"result-files-{i}")
        with gr.Row():
            continue_button = gr.Button("Continue this", size="sm", elem_id=f"continue-{i}")
            reseed_button = gr.Button("Regenerate with this seed", size="sm", elem_id=f"reseed-{i}")
        with gr.Row(equal_height=True, visible=False, elem_id=f"regen-row-{i}") as regen_row:
            regen_bars = gr.Textbox(label="Bars to write anew (the rest stays as it is)", placeholder="5-8",
                                    max_lines=1, scale=3, elem_id=f"regen-bars-{i}")
            regen_button = gr.Button("Regenerate bars", size="sm", scale=1, elem_id=f"regen-{i}")
        with gr.Accordion("Provenance (how this was made)", open=False):
            provenance = gr.Code(language="json", interactive=False, elem_id=f"result-provenance-{i}")
    return ResultSlot(group, summary, audio, image, files, provenance, continue_button, reseed_button, regen_row,
                      regen_bars, regen_button)


def _record(result: ResultFiles) -> dict:
    """What a session keeps about a shown result (plain data: ``gr.State`` copies it per session)."""
    style = json.loads(result.provenance_json).get("notes", {}).get("style") if result.provenance_json else None
    return {"source": str(result.source), "kind": result.kind, "seed": result.seed, "batch_size": result.batch_size,
            "model": result.model, "regenerated": result.regenerated is not None, "style": style}


def _regenerable(ctx: AppContext, result: ResultFiles) -> bool:
    """Whether ``result`` offers "Regenerate bars": MIDI from a listed model that can write chosen bars anew."""
    info = next((m for m in ctx.models if m.name == result.model), None)
    return info is not None and can_regenerate(info.capabilities, result.kind)


def _error(exc: Exception | str, ctx: AppContext) -> str:
    return f"**Error:** {public_message(exc, ctx.uploads.roots)}"


class _Throttle:
    """Forward engine progress to the page at most ~10 times a second."""

    def __init__(self, progress: gr.Progress) -> None:
        self.progress = progress
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.1 or done >= total:
            self.last = now
            self.progress((min(done, total), total), desc="writing", unit="steps")
