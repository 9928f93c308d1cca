"""Start the web studio: localhost by default, no share link unless asked, no telemetry."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from cadenza import Studio
from cadenza.app.web.context import AppSettings

if TYPE_CHECKING:
    from cadenza.app.web.app import StudioApp


def quiet_gradio_env() -> None:
    """Gradio phones home for analytics and version checks unless told not to; we never want that."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           settings: AppSettings = AppSettings(), block: bool = True) -> StudioApp:
    """Serve the studio at ``http://host:port``; returns the ``StudioApp`` (call ``close()`` when done)
    when ``block`` is False, else serves until interrupted and cleans up."""
    quiet_gradio_env()
    from cadenza.app.web.app import build_app
    from cadenza.app.web.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before the server's threads start: see memory.py

    app = build_app(studio, settings)
    app.blocks.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    try:  # quiet: `cadenza app` prints the address; Gradio's banner would say "set share=True" (ours: --share on)
        app.blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                          max_file_size=settings.max_upload_bytes, allowed_paths=[], ssr_mode=False,
                          show_error=True, inbrowser=False, quiet=True,
                          state_session_capacity=settings.max_sessions, auth=list(settings.logins) or None,
                          auth_message="Log in to the Cadenza studio.", app_kwargs=_limits(app, settings))
    except BaseException:
        app.close()
        raise
    if share and app.blocks.share_url:
        print(f"Cadenza studio: public link {app.blocks.share_url}", file=sys.stderr, flush=True)
    if block:
        _serve_until_stopped()
        app.close()
    return app


def _limits(app: StudioApp, settings: AppSettings) -> dict:
    """Gradio's FastAPI app gets ``RequestLimits`` in front of its routes (see limits.py)."""
    from starlette.middleware import Middleware
    from starlette.requests import Request

    from cadenza.app.web.limits import RequestLimits

    def pending_jobs(session: str) -> int:
        # Gradio's queue keeps the ids of each session's queued and running events until they finish
        queue = getattr(app.blocks, "_queue", None)
        return len(getattr(queue, "pending_event_ids_session", {}).get(session, ()))

    def logged_in(scope: dict) -> bool:
        # Gradio's login sets a cookie named after the server holding a token it keeps (see its /login)
        server = getattr(app.blocks, "server_app", None)
        cookies = Request(scope).cookies
        names = (f"access-token-{getattr(server, 'cookie_id', '')}",
                 f"access-token-unsecure-{getattr(server, 'cookie_id', '')}")
        return any(cookies.get(name) in getattr(server, "tokens", {}) for name in names if cookies.get(name))

    return {"middleware": [Middleware(RequestLimits, max_upload_bytes=settings.max_upload_bytes,
                                      max_jobs=settings.max_jobs_per_visitor, pending_jobs=pending_jobs,
                                      logged_in=logged_in if settings.logins else None)]}


def _serve_until_stopped() -> None:
    """Wait for Ctrl+C or SIGTERM (a service manager's stop), so the temp files are always removed."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
