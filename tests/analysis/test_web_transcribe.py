"""The web studio's Transcribe tab, without a browser: upload checks, files written, the page builds."""

from __future__ import annotations

import pytest
import soundfile as sf

from cadenza import InvalidConditioning

from made_audio import hum

pytest.importorskip("gradio")


@pytest.fixture
def ctx(studio, tmp_path):
    from cadenza.app.web.context import AppContext, AppSettings
    from cadenza.app.web.uploads import UploadPolicy
    from cadenza.app.web.workspace import Workspace

    context = AppContext(studio=studio, settings=AppSettings(), models=studio.models(),
                         workspace=Workspace(str(tmp_path)), uploads=UploadPolicy(roots=(tmp_path,)))
    yield context
    context.workspace.close()


def test_run_transcribe_writes_midi_sidecar_and_piano_roll(ctx, tmp_path):
    from cadenza.app.web.transcribe_tab import TranscribeRequest, run_transcribe

    path = tmp_path / "hum.wav"
    sf.write(path, hum([60, 62, 64, 65, 67]), 16000)
    result = run_transcribe(ctx, TranscribeRequest(str(path), mono=True, quantize=True), "s1")
    assert result.midi.exists() and result.image.exists() and all(p.exists() for p in result.downloads)
    assert result.summary.startswith("**5 notes**")
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        run_transcribe(ctx, TranscribeRequest("/etc/hostname"), "s1")
    with pytest.raises(InvalidConditioning, match="no file"):
        run_transcribe(ctx, TranscribeRequest(None), "s1")


def test_the_page_has_a_transcribe_tab(studio):
    from cadenza.app.web.app import build_app

    app = build_app(studio)
    try:
        ids = {getattr(block, "elem_id", None) for block in app.blocks.blocks.values()}
        assert {"transcribe-source", "transcribe-go", "transcribe-send", "transcribe-image"} <= ids
    finally:
        app.close()
