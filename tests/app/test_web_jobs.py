"""The web studio's plumbing without a browser: cancel flags, per-model gates, the workspace, result
files, and the page built over a Studio with a widget for every setting."""

from __future__ import annotations

import threading
import time

import pytest

from cadenza.app.web.jobs import JobBoard, ModelGates
from cadenza.app.web.results import save_result
from cadenza.app.web.workspace import Workspace
from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import Cancelled
from cadenza.generators.base import Callbacks


def test_cancel_reaches_only_the_running_job_of_that_session():
    board = JobBoard(grace_s=0.0)
    assert board.cancel("a") is False
    with board.job("a") as a, board.job("b") as b:
        assert board.cancel("a") is True
        assert a.is_set() and not b.is_set()
    assert board.cancel("a") is False


def test_a_cancel_just_before_the_job_starts_still_stops_it(monkeypatch):
    board = JobBoard(grace_s=2.0)
    assert board.cancel("a") is False
    with board.job("a") as a:
        assert a.is_set()
    with board.job("a") as again:  # the early cancel is used once
        assert not again.is_set()
    assert board.cancel("b") is False
    clock = time.monotonic() + 10
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    with board.job("b") as late:  # too long ago: a stale click does not stop a new job
        assert not late.is_set()


def test_cancel_reply_leaves_the_status_line_to_the_job_that_stopped():
    """Cancel writes nothing once the job has stopped (its handler writes "Stopped."): a "Stopping..."
    answer could reach the page after that and stay there."""
    board = JobBoard(grace_s=0.0)
    assert board.cancel_reply("a", wait_s=0.0) == "Nothing is running."
    started, replies = threading.Event(), []

    def job() -> None:
        with board.job("a") as stop:
            started.set()
            stop.wait(timeout=30)
            time.sleep(0.05)  # the engine notices at its next step

    worker = threading.Thread(target=job)
    worker.start()
    started.wait(timeout=30)
    replies.append(board.cancel_reply("a", wait_s=30.0))
    worker.join()
    assert replies == [None]


def test_cancel_reply_says_stopping_while_the_job_runs_on():
    board = JobBoard(grace_s=0.0)
    with board.job("a") as stop:
        assert board.cancel_reply("a", wait_s=0.01) == "Stopping..."
        assert stop.is_set()
    assert board.wait_idle("a", timeout_s=0.0)


def test_cancel_really_stops_the_engine(studio):
    board = JobBoard()
    with board.job("s") as stop:
        steps = []

        def progress(done, total):
            steps.append(done)
            if done == 5:
                board.cancel("s")

        with pytest.raises(Cancelled):
            studio.generate("tiny-remi", Conditioning(bars=64), Sampling(seed=1), Callbacks(progress, stop.is_set))
    assert max(steps) == 5


def test_model_gate_limits_and_can_be_cancelled_while_waiting():
    gates = ModelGates(limit=1)
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with gates.hold("m", lambda: False):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert inside.wait(5)
    told = []
    started = time.monotonic()
    with pytest.raises(Cancelled, match="waiting"):
        with gates.hold("m", lambda: time.monotonic() - started > 0.5, lambda: told.append(True)):
            pass
    assert told == [True]
    with gates.hold("other", lambda: False):  # another model is not blocked
        pass
    release.set()
    worker.join()
    with gates.hold("m", lambda: False):
        pass


def test_workspace_keeps_the_latest_job_and_cleans_up(tmp_path):
    ws = Workspace(parent=str(tmp_path))
    first = ws.new_job("abc")
    (first / "x.mid").write_bytes(b"x")
    second = ws.new_job("abc")
    assert not first.exists() and second.is_dir() and ws.latest_job("abc") == second
    evil = ws.new_job("../../etc")
    assert ws.root in evil.parents
    ws.drop_session("abc")
    assert not second.exists()
    ws.close()
    assert not ws.root.exists()


def test_result_files_for_midi(studio, tmp_path):
    out = studio.generate("tiny-remi", Conditioning(bars=2, key="G major"), Sampling(seed=3))[0]
    result = save_result(studio, out, tmp_path, 0)
    assert result.kind == "midi" and result.seed == 3
    assert sorted(p.suffix for p in result.downloads) == [".flac", ".json", ".mid", ".wav"]
    assert all(p.is_file() and p.parent == tmp_path for p in result.downloads)
    assert result.image.read_bytes()[:4] == b"\x89PNG"
    assert '"seed": 3' in result.provenance_json and "G major" in result.summary


def test_page_builds_over_a_studio(studio):
    gr = pytest.importorskip("gradio")
    from cadenza.app.web import build_app

    app = build_app(studio)
    try:
        assert isinstance(app.blocks, gr.Blocks)
        ids = {getattr(b, "elem_id", None) for b in app.blocks.blocks.values()}
        assert {"model", "key", "bars", "form", "generate", "cancel", "status", "result-audio-0", "result-files-0",
                "regen-bars-0", "regen-0", "batch-files"} <= ids
        has_ddsp = any(m.family == "ddsp" for m in studio.models())
        assert ("transfer-source" in ids) == has_ddsp  # the timbre-transfer tab only with a DDSP instrument
    finally:
        app.close()
    assert not app.context.workspace.root.exists()


def _audio_output(seconds: float = 0.5, sr: int = 16000):
    import numpy as np

    from cadenza.outputs import AudioOutput, Provenance

    t = np.arange(int(sr * seconds)) / sr
    samples = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None, :]
    return AudioOutput(samples, sr, Provenance(model="fake-violin", family="ddsp", checkpoint_sha256=None,
                                              conditioning={}, sampling={}, seed=9))


def test_result_files_for_audio(studio, tmp_path):
    result = save_result(studio, _audio_output(), tmp_path, 1)
    assert result.kind == "audio" and result.source == result.audio and result.audio.suffix == ".wav"
    assert sorted(p.suffix for p in result.downloads) == [".flac", ".json", ".wav"]
    assert result.image.read_bytes()[:4] == b"\x89PNG" and "Sample 2" in result.summary


def test_transfer_runs_on_a_checked_upload(studio, tmp_path, monkeypatch):
    pytest.importorskip("cadenza.generators.ddsp.transfer")
    import soundfile

    from cadenza.app.web.context import AppContext, AppSettings
    from cadenza.app.web.transfer_tab import TransferRequest, run_transfer
    from cadenza.app.web.uploads import UploadPolicy
    from cadenza.errors import InvalidConditioning
    from cadenza.studio import ModelInfo

    calls = []

    from cadenza.generators.ddsp.transfer import TransferOptions

    class FakeStudio:
        def transfer(self, source, instrument, callbacks=None, **options):
            calls.append((source, instrument, TransferOptions(**options)))  # checks the values as Studio does
            return _audio_output()

        def render(self, output, synth="fluidsynth"):
            return output

    uploads_dir = tmp_path / "uploads"
    uploads_dir.mkdir()
    hum = uploads_dir / "hum.wav"
    soundfile.write(hum, _audio_output().samples[0], 16000)
    violin = ModelInfo("fake-violin", "ddsp", "audio", ("source_audio",), "", "", "")
    ctx = AppContext(studio=FakeStudio(), settings=AppSettings(), models=[violin], workspace=Workspace(str(tmp_path)),
                     uploads=UploadPolicy(roots=(uploads_dir,)))
    result = run_transfer(ctx, TransferRequest(str(hum), "fake-violin", pitch_shift=-12, quiet_db=30), "s1")
    assert result.kind == "audio" and result.audio.is_file()
    source, instrument, options = calls[0]
    assert source == str(hum.resolve()) and instrument == "fake-violin"
    assert options.pitch_shift == -12 and options.quiet_db == 30 and options.loudness_shift == 0
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        run_transfer(ctx, TransferRequest(__file__.replace(".py", ".wav"), "fake-violin"), "s1")
    with pytest.raises(InvalidConditioning, match="pitch_shift"):
        run_transfer(ctx, TransferRequest(str(hum), "fake-violin", pitch_shift=99), "s1")
    ctx.workspace.close()


def test_midi_result_reloads_for_another_synth(studio, tmp_path):
    from cadenza.app.web.results import reload_midi_output

    out = studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=5))[0]
    first = save_result(studio, out, tmp_path / "a", 0)
    again = reload_midi_output(first.source)
    assert again.provenance == out.provenance and again.score.note_num() == out.score.note_num()
    second = save_result(studio, again, tmp_path / "b", 0)
    assert second.audio.is_file() and second.provenance_json == first.provenance_json


def test_a_sample_is_made_again_by_its_seed_and_batch_size(studio, tmp_path):
    outs = studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=11, num_samples=2))
    second = save_result(studio, outs[1], tmp_path, 1)
    assert second.seed == 11 and second.batch_size == 2
    again = studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=second.seed, num_samples=second.batch_size))
    pitches = [o.score.tracks[0].notes.numpy()["pitch"].tolist() for o in (outs[1], again[1])]
    assert pitches[0] == pitches[1]


def test_synth_choices_resolve_on_the_server(studio, tmp_path):
    from cadenza.app.web.context import AppContext, AppSettings
    from cadenza.app.web.uploads import UploadPolicy
    from cadenza.errors import InvalidConditioning

    ctx = AppContext(studio=studio, settings=AppSettings(), models=studio.models(), workspace=Workspace(str(tmp_path)),
                     uploads=UploadPolicy(roots=(tmp_path,)))
    values = [value for _, value in ctx.synth_choices()]
    assert values[0] == "fluidsynth" and ctx.render_args("fluidsynth") == {"synth": "fluidsynth"}
    fonts = studio.soundfonts()
    for name in list(fonts)[1:]:
        assert f"soundfont:{name}" in values
        assert ctx.render_args(f"soundfont:{name}")["soundfont"] == str(fonts[name])
    for m in ctx.ddsp_models():
        assert ctx.render_args(f"ddsp:{m.name}") == {"synth": f"ddsp:{m.name}"}
    for bad in ("soundfont:/etc/passwd", "soundfont:../x", "ddsp:nope", "timidity"):
        with pytest.raises(InvalidConditioning):
            ctx.render_args(bad)
    ctx.workspace.close()


def test_workspace_keeps_the_jobs_of_results_still_on_the_page(tmp_path):
    ws = Workspace(parent=str(tmp_path))
    first = ws.new_job("abc")
    (first / "a.mid").write_bytes(b"x")
    second = ws.new_job("abc", keep=[first / "a.mid"])
    third = ws.new_job("abc", keep=[first / "a.mid", "/etc/passwd"])  # a path outside keeps nothing else
    assert first.is_dir() and not second.exists() and third.is_dir()
    ws.new_job("abc")
    assert not first.exists() and not third.exists()
    ws.close()


@pytest.fixture
def app_ctx(studio, tmp_path):
    """The generate tab's context over the tiny checkpoint (whose manifest has FORM and REGENERATE)."""
    pytest.importorskip("gradio")
    from cadenza.app.web.context import AppContext, AppSettings
    from cadenza.app.web.uploads import UploadPolicy

    workspace = Workspace(str(tmp_path))
    (tmp_path / "uploads").mkdir()
    ctx = AppContext(studio=studio, settings=AppSettings(), models=studio.models(), workspace=workspace,
                     uploads=UploadPolicy(roots=(tmp_path / "uploads", workspace.root)))
    yield ctx
    workspace.close()


def _files(root) -> set:
    return {p for p in root.rglob("*") if p.is_file()}


def _notes_outside(path, first: int, last: int) -> list[tuple]:
    """(track, time, duration, pitch, velocity) of every note of ``path`` starting outside bars first..last."""
    import symusic

    score = symusic.Score(str(path))
    meter = score.time_signatures[0] if len(score.time_signatures) else None
    bar = score.ticks_per_quarter * 4 * (meter.numerator / meter.denominator if meter else 1)
    start, end = (first - 1) * bar, last * bar
    return [(k, n.time, n.duration, n.pitch, n.velocity) for k, track in enumerate(score.tracks)
            for n in track.notes if not start <= n.time < end]


def _first_result(ctx, session: str = "s1"):
    from cadenza.app.web.form import conditioning_from_form, sampling_from_form
    from cadenza.app.web.generate_tab import _record, generate_results

    info = ctx.model("tiny-remi")
    form = {"bars": "4", "form": "AABB", "seed": "3"}
    conditioning = conditioning_from_form(info, form, ctx.uploads)
    assert conditioning.form == "AABB"  # the Form widget reaches the request
    [result] = generate_results(ctx, session, info, conditioning, sampling_from_form(info, form),
                                ctx.render_args("fluidsynth"))
    return result, _record(result)


def test_generate_with_a_form_and_regenerate_bars_of_the_result(app_ctx):
    from cadenza.app.web.generate_tab import _regenerable, regenerate_bars
    from cadenza.outputs import Provenance

    original, record = _first_result(app_ctx)
    assert Provenance.from_json(original.provenance_json).conditioning["form"] == "AABB"
    assert "form A1 A1 B1 B1" in original.summary and _regenerable(app_ctx, original)
    kept = _notes_outside(original.source, 2, 3)
    assert kept  # the comparison below is not vacuous

    outcome = regenerate_bars(app_ctx, "s1", [record], 0, "2-3", {"seed": "5"}, "fluidsynth")
    assert outcome.status.startswith("Done: bars 2-3 of sample 1 written anew as sample 2"), outcome.status
    new = outcome.result
    assert outcome.slot == 1 and outcome.records[0] == record and outcome.records[1]["source"] == str(new.source)
    assert outcome.records[1]["regenerated"] and outcome.records[1]["model"] == "tiny-remi"
    assert new.source != original.source and new.source.suffix == ".mid" and new.audio.is_file()
    assert app_ctx.workspace.root in new.source.parents and "bars 2-3 written anew" in new.summary
    assert new.regenerated == (2, 3) and _regenerable(app_ctx, new)
    assert original.source.is_file() and original.audio.is_file()  # the first result is kept, files and all
    assert _notes_outside(new.source, 2, 3) == kept  # every note outside the regenerated bars, exactly

    again = regenerate_bars(app_ctx, "s1", outcome.records, 1, "1", {}, "fluidsynth")  # a regenerated one, again
    assert again.slot == 2 and len(again.records) == 3 and all(r.is_file() for r in (original.source, new.source))


def test_a_bad_bar_range_is_reported_and_makes_no_file(app_ctx):
    from cadenza.app.web.generate_tab import regenerate_bars

    _, record = _first_result(app_ctx)
    before = _files(app_ctx.workspace.root)
    for span, message in (("3-99", "the prompt has bars 1-"), ("9", "the prompt has bars 1-"),
                          ("4-2", "not after the last"), ("", "which bars")):
        outcome = regenerate_bars(app_ctx, "s1", [record], 0, span, {}, "fluidsynth")
        assert outcome.status.startswith("**Error:**") and message in outcome.status, outcome.status
        assert outcome.result is None and outcome.slot is None and outcome.records == [record]
        assert str(app_ctx.workspace.root) not in outcome.status  # server folders never reach the page
    assert _files(app_ctx.workspace.root) == before
    gone = regenerate_bars(app_ctx, "s1", [record], 3, "1-2", {}, "fluidsynth")
    assert "gone" in gone.status and gone.result is None


def test_regenerate_is_refused_for_a_model_that_cannot_and_a_file_the_app_did_not_write(app_ctx, midi_file):
    import dataclasses

    from cadenza.app.web.generate_tab import regenerate_bars

    _, record = _first_result(app_ctx)
    tiny = app_ctx.model("tiny-remi")
    app_ctx.models.append(dataclasses.replace(tiny, name="no-infill", capabilities=tuple(
        c for c in tiny.capabilities if c != "regenerate")))
    refused = regenerate_bars(app_ctx, "s1", [{**record, "model": "no-infill"}], 0, "1-2", {}, "fluidsynth")
    assert "cannot regenerate bars" in refused.status and refused.result is None
    outside = regenerate_bars(app_ctx, "s1", [{**record, "source": str(midi_file("mine.mid"))}], 0, "1-2", {},
                              "fluidsynth")
    assert "not uploaded through this page" in outside.status and outside.result is None


def test_regenerate_with_every_slot_full_keeps_the_source(app_ctx):
    from cadenza.app.web.context import MAX_SAMPLES
    from cadenza.app.web.generate_tab import regenerate_bars

    _, record = _first_result(app_ctx)
    records = [{**record, "seed": k} for k in range(MAX_SAMPLES)]
    outcome = regenerate_bars(app_ctx, "s1", records, MAX_SAMPLES - 1, "2", {"seed": "1"}, "fluidsynth")
    assert outcome.slot == MAX_SAMPLES - 2 and len(outcome.records) == MAX_SAMPLES
    assert outcome.records[MAX_SAMPLES - 1] == records[MAX_SAMPLES - 1] and "took the place of sample" in outcome.status
