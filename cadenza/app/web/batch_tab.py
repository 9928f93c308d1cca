"""The "Batch render" tab: upload several MIDI files, get one zip of audio files and the render report."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import gradio as gr

from cadenza import CadenzaError
from cadenza.app.web.context import AppContext
from cadenza.app.web.controls import MIDI_TYPES
from cadenza.app.web.uploads import public_message

MAX_BATCH_FILES = 200


def build_batch_tab(ctx: AppContext) -> None:
    gr.Markdown("Turn a set of MIDI files into audio with the General MIDI SoundFont. Broken files are listed "
                "in the report inside the zip and never stop the others.")
    files = gr.File(label="MIDI files", file_count="multiple", file_types=list(MIDI_TYPES), type="filepath",
                    elem_id="batch-files")
    fmt = gr.Radio(label="Format", choices=["wav", "flac"], value="flac", elem_id="batch-format")
    go = gr.Button("Render all", variant="primary", elem_id="batch-go")
    status = gr.Markdown("", elem_id="batch-status")
    result = gr.File(label="Download", interactive=False, elem_id="batch-zip")

    def render_all(paths: list[str] | None, fmt: str, request: gr.Request, progress=gr.Progress()) -> tuple:
        if not paths:
            return "Upload one or more MIDI files first.", None
        if len(paths) > MAX_BATCH_FILES:
            return f"**Error:** at most {MAX_BATCH_FILES} files at once (got {len(paths)}).", None
        session = request.session_hash or "anonymous"
        job = ctx.workspace.new_job(session)
        source, rendered = job / "midi", job / "audio"
        source.mkdir()
        try:
            for i, path in enumerate(paths):
                checked = Path(ctx.uploads_for(session).check(path, "MIDI file", MIDI_TYPES))
                # copy under a safe, unique name: the client's file name never chooses where we write
                shutil.copyfile(checked, source / f"{i + 1:03d}-{_safe_stem(checked.stem)}{checked.suffix.lower()}")
            progress(0, desc=f"rendering {len(paths)} files")
            summary = ctx.studio.render_batch(source, rendered, fmt=fmt, workers=1, progress=False)
        except CadenzaError as exc:
            return f"**Error:** {public_message(exc, ctx.uploads.roots)}", None
        archive = job / "cadenza-render.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:  # audio is compressed already
            for path in sorted(rendered.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(rendered).as_posix())
        failed = f", {summary.failed} failed (see render_report.jsonl in the zip)" if summary.failed else ""
        return (f"Rendered {summary.ok} of {summary.total} files in {summary.seconds:.1f} s{failed}.", str(archive))

    go.click(render_all, inputs=[files, fmt], outputs=[status, result], concurrency_limit=1, concurrency_id="batch")


def _safe_stem(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:60] or "file"
