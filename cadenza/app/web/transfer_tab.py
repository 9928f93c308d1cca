"""The "Timbre transfer" tab (shown when a DDSP instrument is installed): a recording (upload or
microphone) played back by the chosen instrument, with pitch, loudness and quieting controls."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from cadenza import CadenzaError, Callbacks, Cancelled
from cadenza.app.web.context import AppContext
from cadenza.app.web.controls import AUDIO_TYPES
from cadenza.app.web.results import ResultFiles, save_result
from cadenza.app.web.uploads import public_message


@dataclass(frozen=True)
class TransferRequest:
    """What the tab's widgets ask for. ``pitch_shift`` semitones, ``loudness_shift`` dB, ``quiet_db``: how
    much quieter unvoiced frames (breaths, noise) become."""

    source: str | None
    instrument: str
    pitch_shift: float = 0.0
    loudness_shift: float = 0.0
    quiet_db: float = 20.0


def run_transfer(ctx: AppContext, request: TransferRequest, session: str,
                 callbacks: Callbacks = Callbacks()) -> ResultFiles:
    """Check the upload, transfer it onto ``request.instrument`` and write the result's files.

    Raises:
        CadenzaError: no or a bad recording, an unknown instrument, or options out of range;
            ``Cancelled`` when ``callbacks.should_cancel()`` turns true.
    """
    source = ctx.uploads_for(session).check(request.source, "recording", AUDIO_TYPES)
    instrument = ctx.model(request.instrument)
    output = ctx.studio.transfer(source, instrument.name, callbacks=callbacks, pitch_shift=float(request.pitch_shift),
                                 loudness_shift=float(request.loudness_shift), quiet_db=float(request.quiet_db))
    return save_result(ctx.studio, output, ctx.workspace.new_job(session), 0)


def build_transfer_tab(ctx: AppContext) -> None:
    instruments = [m.name for m in ctx.ddsp_models()]
    gr.Markdown("Sing, hum, whistle or play one line, and hear it played by an instrument. One voice at a time "
                "works best (a melody, not chords).")
    with gr.Row():
        with gr.Column():
            source = gr.Audio(label="Your recording (upload or record)", type="filepath",
                              sources=["upload", "microphone"], elem_id="transfer-source")
            instrument = gr.Dropdown(label="Instrument", choices=instruments, value=instruments[0],
                                     elem_id="transfer-instrument")
            pitch = gr.Slider(label="Pitch shift (semitones, after moving to the instrument's octave)", minimum=-24,
                              maximum=24, step=1, value=0, elem_id="transfer-pitch")
            loudness = gr.Slider(label="Loudness shift (dB)", minimum=-20, maximum=20, step=1, value=0,
                                 elem_id="transfer-loudness")
            quiet = gr.Slider(label="Quiet the breaths and noise between notes (dB)", minimum=0, maximum=60, step=1,
                              value=20, elem_id="transfer-quiet")
            with gr.Row():
                go = gr.Button("Transfer", variant="primary", elem_id="transfer-go", scale=3)
                cancel = gr.Button("Cancel", variant="stop", elem_id="transfer-cancel", scale=1)
            status = gr.Markdown("", elem_id="transfer-status")
        with gr.Column():
            audio = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="transfer-audio")
            image = gr.Image(label="Spectrogram", type="filepath", interactive=False, height=240,
                             elem_id="transfer-image")
            files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="transfer-files")

    def on_go(path: str | None, name: str, shift: float, loud: float, quiet_db: float, request: gr.Request,
              progress=gr.Progress()) -> tuple:
        if not path:
            return "Upload or record something first.", None, None, None
        session = request.session_hash or "anonymous"
        progress(0, desc=f"transferring onto {name}")
        try:
            with ctx.jobs.job(session) as stop:
                def tick(done: int, total: int) -> None:
                    progress((min(done, total), total), desc="transferring", unit="frames")

                with ctx.gates.hold(name, stop.is_set, lambda: progress(0, desc=f"waiting for {name} (busy)")):
                    result = run_transfer(ctx, TransferRequest(path, name, shift, loud, quiet_db), session,
                                          Callbacks(progress=tick, should_cancel=stop.is_set))
        except Cancelled:
            return "Stopped.", None, None, None
        except CadenzaError as exc:
            return f"**Error:** {public_message(exc, ctx.uploads.roots)}", None, None, None
        return (f"Done: {result.summary}", str(result.audio), str(result.image), [str(p) for p in result.downloads])

    def on_cancel(request: gr.Request) -> object:
        reply = ctx.jobs.cancel_reply(request.session_hash or "anonymous")
        return gr.skip() if reply is None else reply

    cancel.click(on_cancel, inputs=None, outputs=status, queue=False, show_progress="hidden")
    go.click(on_go, inputs=[source, instrument, pitch, loudness, quiet], outputs=[status, audio, image, files],
             concurrency_limit=max(1, len(instruments)), concurrency_id="transfer")
