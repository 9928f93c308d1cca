"""`build_app(studio)`: the web studio as a Gradio Blocks over one `Studio` (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

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

    def close(self) -> None:
        try:
            self.blocks.close()
        finally:
            self.context.workspace.close()


def build_app(studio: Studio, settings: AppSettings = AppSettings()) -> StudioApp:
    """The studio page for every model ``studio`` lists; widgets follow each model's capabilities."""
    from gradio.utils import get_upload_folder

    workspace = Workspace()
    context = AppContext(studio=studio, settings=settings, models=studio.models(), workspace=workspace,
                         uploads=UploadPolicy(roots=(get_upload_folder(), workspace.root),
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
            workspace.drop_session(request.session_hash or "anonymous")

        blocks.unload(forget_session)
    return StudioApp(blocks, context)
