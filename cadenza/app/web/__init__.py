"""The web studio (`cadenza app`): a Gradio page over a `Studio`.

``build_app(studio)`` builds the page; ``launch(studio, host, port, share)`` serves it. Widgets follow
each model's capabilities and sampling lists, so a new model needs no change here. Modules: ``controls``
(which widget serves which capability), ``form`` (widget values -> Conditioning/Sampling), ``uploads``
(checks on client paths), ``workspace``/``jobs`` (temp files, cancel, per-model limits), ``results``
(files for one output), ``auth`` (who must log in), ``limits`` (per-request limits in front of Gradio),
``memory`` (keeping the server's size flat), and the tabs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Gradio is imported only when the app is built
    from cadenza.app.web.app import StudioApp
    from cadenza.app.web.context import AppSettings
    from cadenza import Studio


def build_app(studio: Studio, settings: AppSettings | None = None) -> StudioApp:
    from cadenza.app.web.app import build_app as build
    from cadenza.app.web.context import AppSettings

    return build(studio, settings or AppSettings())


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs) -> StudioApp:
    from cadenza.app.web.server import launch as serve

    return serve(studio, host=host, port=port, share=share, **kwargs)


__all__ = ["build_app", "launch"]
