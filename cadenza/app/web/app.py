"""`build_app(studio)`: the web studio as a Gradio Blocks over one `Studio` (no module-level state)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from cadenza import Studio
from cadenza.app.web.batch_tab import build_batch_tab
from cadenza.app.web.context import AppContext, AppSettings
from cadenza.app.web.generate_tab import build_generate_tab
from cadenza.app.web.transcribe_tab import build_transcribe_tab
from cadenza.app.web.uploads import UploadPolicy
from cadenza.app.web.workspace import Workspace

INTRO = ("Pick a model, say what you want (only the settings that model understands are shown), press "
         "**Generate**, listen, then download it or press **Continue this** to write more.")


@dataclass
class StudioApp:
    """The Blocks and the folder its work files live in; ``close()`` stops the server and deletes them."""

    blocks: gr.Blocks
    context: AppContext
    gradio_temp_dir: str | None = field(default=None, repr=False)  # GRADIO_TEMP_DIR before build_app

    def close(self) -> None:
        try:
            self.blocks.close()
        finally:
            self.context.workspace.close()
            if os.environ.get("GRADIO_TEMP_DIR") == str(self.context.workspace.served):
                _restore_env("GRADIO_TEMP_DIR", self.gradio_temp_dir)


def build_app(studio: Studio, settings: AppSettings = AppSettings()) -> StudioApp:
    """The studio page for every model ``studio`` lists; widgets follow each model's capabilities.

    Gradio's own copies of uploads and results go into the app's workspace (``GRADIO_TEMP_DIR``, read by
    Gradio when each component is made; restored by ``close()``), so they leave with it."""
    workspace = Workspace(max_sessions=settings.max_sessions)
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.served)
    context = AppContext(studio=studio, settings=settings, models=studio.models(), workspace=workspace,
                         uploads=UploadPolicy(roots=(workspace.served, workspace.root),
                                              max_bytes=settings.max_upload_bytes))
    # delete_cache: Gradio's own copies of uploads and results older than an hour go every 10 minutes
    with gr.Blocks(title=settings.title, delete_cache=(600, 3600), analytics_enabled=False) as blocks:
        gr.Markdown(f"# {settings.title}\n{INTRO}")
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                generate = build_generate_tab(context)
            with gr.Tab("Transcribe", id="transcribe"):
                build_transcribe_tab(context, {**generate, "tabs": tabs})
            if context.ddsp_models():
                from cadenza.app.web.transfer_tab import build_transfer_tab

                with gr.Tab("Timbre transfer", id="transfer"):
                    build_transfer_tab(context)
            with gr.Tab("Batch render", id="batch"):
                build_batch_tab(context)

        def forget_session(request: gr.Request) -> None:
            """The visitor left (the page's heartbeat closed): its files, and the page state Gradio keeps
            per session (a copy of every component's settings, ~0.2 MB), go now rather than in an hour."""
            session = request.session_hash or "anonymous"
            workspace.drop_session(session)
            holder = getattr(blocks, "state_holder", None)
            if holder is not None:
                with holder.lock:
                    holder.session_data.pop(session, None)
                    holder.time_last_used.pop(session, None)

        blocks.unload(forget_session)
    workspace.copies_of = _served_copies(workspace.served)
    workspace.on_removed = lambda paths: _forget(blocks, paths)
    return StudioApp(blocks, context, before)


def _served_copies(folder: Path):
    """Where Gradio keeps its copy of a file it serves: ``folder/<hash of the content>/<name>``."""
    from gradio.processing_utils import hash_file
    from gradio_client.utils import strip_invalid_filename_characters

    def copies(path: Path) -> list[Path]:
        return [folder / hash_file(path) / strip_invalid_filename_characters(path.name)]

    return copies


def _forget(blocks: gr.Blocks, paths: list[Path]) -> None:
    """Drop deleted files from Gradio's lists of files it made (they would otherwise grow forever)."""
    names = {str(p) for p in paths}
    for files in blocks.temp_file_sets:
        files.difference_update(names)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
