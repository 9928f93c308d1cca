"""Start the web studio: localhost by default, no share link unless asked, no telemetry."""

from __future__ import annotations

import os

from cadenza.app.web.context import AppSettings
from cadenza.studio import Studio


def quiet_gradio_env() -> None:
    """Gradio phones home for analytics and version checks unless told not to; we never want that."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           settings: AppSettings = AppSettings(), block: bool = True):
    """Serve the studio at ``http://host:port``; returns the ``StudioApp`` (call ``close()`` when done)
    when ``block`` is False, else serves until interrupted and cleans up."""
    quiet_gradio_env()
    from cadenza.app.web.app import build_app

    app = build_app(studio, settings)
    app.blocks.queue(default_concurrency_limit=1)
    try:
        app.blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                          max_file_size=settings.max_upload_bytes, allowed_paths=[], ssr_mode=False,
                          show_error=True, inbrowser=False, quiet=not block)
    except BaseException:
        app.close()
        raise
    if not block:
        return app
    app.close()  # launch() returned: the server was stopped (Ctrl+C)
    return app
