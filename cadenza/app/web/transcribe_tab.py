"""The "Transcribe" tab: a recording (upload or microphone) heard as MIDI notes, shown as a piano roll,
offered as a download, and sent on as the prompt of a model on the Generate tab ("Continue this")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from cadenza import CadenzaError
from cadenza.app.web.context import AppContext
from cadenza.app.web.controls import AUDIO_TYPES, MIDI_TYPES, prompt_file_types
from cadenza.app.web.uploads import public_message


@dataclass(frozen=True)
class TranscribeRequest:
    """What the tab's widgets ask for (see ``Studio.transcribe``)."""

    source: str | None
    mono: bool = False
    quantize: bool = True
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_note_ms: float | None = None


@dataclass(frozen=True)
class TranscribeResult:
    """``midi``: the .mid file (its sidecar beside it), ``image``: its piano roll, ``summary``: one line."""

    midi: Path
    image: Path
    downloads: tuple[Path, ...]
    summary: str


def run_transcribe(ctx: AppContext, request: TranscribeRequest, session: str) -> TranscribeResult:
    """Check the upload, transcribe it and write the MIDI file, its sidecar and its piano roll.

    Raises:
        CadenzaError: no or a bad recording, or options out of range.
    """
    source = ctx.uploads_for(session).check(request.source, "recording", AUDIO_TYPES)
    output = ctx.studio.transcribe(source, mode="mono" if request.mono else "poly", quantize=bool(request.quantize),
                                   onset_threshold=float(request.onset_threshold),
                                   frame_threshold=float(request.frame_threshold),
                                   min_note_ms=float(request.min_note_ms) if request.min_note_ms else None)
    folder = ctx.workspace.new_job(session)
    stem = Path(source).stem[:60] or "recording"
    midi = output.save(folder / f"{stem}.mid")
    image = output.piano_roll(folder / f"{stem}.png")
    notes = output.provenance.notes
    summary = (f"**{notes['notes']} notes** · {notes['duration_s']:.1f} s · tempo {notes['tempo_bpm']:g} BPM · "
               f"{notes['time_signature']}" + (f" · {notes['key']}" if notes.get("key") else ""))
    if notes.get("message"):
        summary += f"\n\n_{notes['message']}_"
    return TranscribeResult(midi, image, (midi, Path(f"{midi}.json")), summary)


def build_transcribe_tab(ctx: AppContext, generate: dict) -> None:
    """Lay out the tab; ``generate``: the Generate tab's ``prompt``, ``model`` and ``status`` widgets and the
    ``tabs`` (a result is sent there with "Continue this")."""
    continuers = [m for m in ctx.models if set(MIDI_TYPES) & set(prompt_file_types(m.capabilities))]
    gr.Markdown("Play, sing, hum or whistle something, or upload a recording: hear it back as notes. Tick "
                "**One voice** for a single line (voice, whistle, flute); leave it off for chords and piano.")
    with gr.Row():
        with gr.Column():
            source = gr.Audio(label="Your recording (upload or record)", type="filepath",
                              sources=["upload", "microphone"], elem_id="transcribe-source")
            with gr.Row():
                mono = gr.Checkbox(label="One voice or instrument", value=False, elem_id="transcribe-mono")
                quantize = gr.Checkbox(label="Snap to the beat (quantise)", value=True, elem_id="transcribe-quantize")
            with gr.Accordion("Fine-tune", open=False):
                onset = gr.Slider(label="Note start sensitivity (lower finds more notes)", minimum=0.1, maximum=0.9,
                                  step=0.05, value=0.5, elem_id="transcribe-onset")
                frame = gr.Slider(label="Note length sensitivity (lower: longer notes)", minimum=0.1, maximum=0.9,
                                  step=0.05, value=0.3, elem_id="transcribe-frame")
                shortest = gr.Textbox(label="Shortest note (ms)", placeholder="auto", elem_id="transcribe-min-note")
            go = gr.Button("Transcribe", variant="primary", elem_id="transcribe-go")
            status = gr.Markdown("", elem_id="transcribe-status")
        with gr.Column():
            image = gr.Image(label="Piano roll", type="filepath", interactive=False, height=260,
                             elem_id="transcribe-image")
            files = gr.File(label="Downloads (MIDI and how it was made)", file_count="multiple", interactive=False,
                            elem_id="transcribe-files")
            with gr.Row():
                target = gr.Dropdown(label="Continue it with", choices=[m.name for m in continuers],
                                     value=continuers[0].name if continuers else None, elem_id="transcribe-target",
                                     scale=3)
                send = gr.Button("Continue this", elem_id="transcribe-send", scale=1)
    heard = gr.State(None)

    def on_go(path, is_mono, snap, onset_value, frame_value, min_ms, request: gr.Request, progress=gr.Progress()):
        if not path:
            return "Upload or record something first.", None, None, None
        progress(0, desc="listening")
        try:
            shortest_ms = float(min_ms) if str(min_ms or "").strip() else None
            result = run_transcribe(ctx, TranscribeRequest(path, is_mono, snap, onset_value, frame_value, shortest_ms),
                                    request.session_hash or "anonymous")
        except ValueError as exc:
            if isinstance(exc, CadenzaError):
                return f"**Error:** {public_message(exc, ctx.uploads.roots)}", None, None, None
            return "**Error:** the shortest note must be a number of milliseconds", None, None, None
        return result.summary, str(result.image), [str(p) for p in result.downloads], str(result.midi)

    go.click(on_go, inputs=[source, mono, quantize, onset, frame, shortest], outputs=[status, image, files, heard],
             concurrency_limit=1, concurrency_id="transcribe")

    def on_send(midi: str | None, name: str | None) -> dict:
        if not midi or not name:
            return {status: "Transcribe something first."}
        return {generate["model"]: name, generate["prompt"]: midi, generate["tabs"]: gr.Tabs(selected="generate"),
                generate["status"]: "The notes you recorded are the prompt now: set how many bars to add and press "
                                     "**Generate**."}

    send.click(on_send, inputs=[heard, target],
               outputs=[status, generate["model"], generate["prompt"], generate["tabs"], generate["status"]],
               show_progress="hidden")
