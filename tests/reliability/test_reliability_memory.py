"""Why 1 (issue 19): memory must not grow with the length of the music.

Long pieces are rendered and written in blocks: the blocks must add up to exactly what rendering the
piece whole gives, loudness set in blocks must match loudness set on the whole, and the memory a render
takes must not depend on how long the piece is. Inputs longer than the limit are refused before work.
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

from cadenza import InputTooLong, Studio
from cadenza.app.cli import main
from cadenza.errors import InvalidConditioning
from cadenza.fileio.audio import integrated_loudness, normalize_loudness, peak_gain, read_audio, write_audio
from cadenza.fileio.audio_stream import LoudnessMeter, PeakLimiter, write_stream
from cadenza.fileio.limits import parse_duration
from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

FAST = dict(sample_rate=22050, reverb=False, tail_s=0.3)


def spread_score(seconds: float, notes_per_s: float = 2.0) -> symusic.Score:
    """Piano notes every 1 / notes_per_s seconds for ``seconds`` (120 BPM, 480 ticks a quarter = 960 a s)."""
    score = symusic.Score(480)
    track = symusic.Track(program=0)
    step = int(960 / notes_per_s)
    for i, tick in enumerate(range(0, int(seconds * 960), step)):
        track.notes.append(symusic.Note(tick, step, 48 + (i * 7) % 36, 60 + (i * 13) % 60))
    score.tracks.append(track)
    return score


@pytest.mark.parametrize("stereo", [True, False])
@pytest.mark.parametrize("block", [1000, 4410, 65536])
def test_fluidsynth_blocks_are_the_whole_render_bit_for_bit(stereo, block):
    # FluidSynth renders in 64-sample steps whatever the size of each write, and events fall on the same
    # samples: split at any block size, the piece is the same, sample for sample (no tolerance needed).
    score = spread_score(4.0, notes_per_s=5)
    with FluidSynthRenderer(RenderOptions(normalize_lufs=None, stereo=stereo, **FAST)) as renderer:
        whole = renderer.render(score)
        parts = list(renderer.blocks(score, block))
    assert all(p.shape[1] <= block for p in parts)  # never more than a block at a time
    assert np.array_equal(np.concatenate(parts, axis=1), whole)


def test_streamed_loudness_meter_matches_the_whole_piece():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 8000 * 6 + 77)) * 0.2).astype(np.float32)
    x[:, 30000:40000] *= 4
    for block in (97, 4000, 10**6):
        meter = LoudnessMeter(8000, 2)
        for i in range(0, x.shape[1], block):
            meter.add(x[:, i:i + block])
        # the same gating and block bounds; only the order of float additions differs
        assert meter.loudness() == pytest.approx(integrated_loudness(x, 8000), abs=1e-9)
        assert meter.peak == pytest.approx(float(np.abs(x).max()))


def test_streamed_limiter_matches_the_whole_piece():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 20000)) * 0.3).astype(np.float32)
    x[:, :4] = 2.0  # peaks at both ends and inside: the look-ahead must see across blocks
    x[:, 9995:10010] = 3.0
    x[:, -3:] = -2.5
    limiter = PeakLimiter(8000, 0.9)
    out = np.concatenate([limiter.process(x[:, i:i + 333]) for i in range(0, x.shape[1], 333)] + [limiter.finish()], axis=1)
    expected = x * peak_gain(x, 8000, 0.9)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)  # float rounding of the running average only
    assert np.abs(out).max() <= 0.9 + 1e-6


@pytest.mark.parametrize("target", [-30.0, -14.0, -6.0])
def test_write_stream_sets_loudness_like_the_whole_piece(tmp_path, target):
    # -30: gain alone (the same samples as the whole-piece path); -14 and -6: peaks need limiting, and the
    # streamed path corrects its gain once where the whole one may iterate: within a quarter of a LU.
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 8000 * 7)) * 0.3).astype(np.float32)
    x[:, 5000:5010] = 3.0
    record = write_stream(tmp_path / "s.wav", lambda: (x[:, i:i + 999] for i in range(0, x.shape[1], 999)), 8000, 2,
                          target, subtype="FLOAT")
    written, _ = read_audio(tmp_path / "s.wav")
    whole, whole_record = normalize_loudness(x, 8000, target)
    assert record.method is not None and "streamed" in record.method
    assert record.measured_lufs == pytest.approx(whole_record.measured_lufs, abs=0.25)
    np.testing.assert_allclose(written, whole, atol=1e-3)
    if target == -30.0:
        assert np.array_equal(written, whole)
    assert np.abs(written).max() <= 10 ** (-1 / 20) + 1e-6


@pytest.mark.parametrize("target", [-30.0, -10.0])
def test_long_piece_file_equals_whole_piece_file(tmp_path, target):
    # A piece past the whole-piece limit is written in blocks: where no limiting is needed (-30 LUFS) the
    # very same file; where the limiter works (-10), the same up to a 16-bit step or two.
    score = spread_score(6.0, notes_per_s=3)
    with FluidSynthRenderer(RenderOptions(normalize_lufs=target, **FAST)) as renderer:
        whole_record = renderer.render_to_file(score, tmp_path / "whole.wav")
        record = renderer.render_to_file(score, tmp_path / "blocks.wav", block_s=0.7, whole_max_s=1.0)
    assert whole_record.method is None and "streamed" in record.method
    a, _ = read_audio(tmp_path / "whole.wav")
    b, _ = read_audio(tmp_path / "blocks.wav")
    if target == -30.0:
        assert whole_record.limited_db == 0 and np.array_equal(a, b)
    else:
        assert whole_record.limited_db > 0 and record.limited_db > 0
        assert record.measured_lufs == pytest.approx(whole_record.measured_lufs, abs=0.25)
        np.testing.assert_allclose(a, b, atol=0.02)


def _peak_bytes(seconds: float, tmp_path: Path) -> int:
    score = spread_score(seconds, notes_per_s=1)
    with FluidSynthRenderer(RenderOptions(**FAST)) as renderer:
        tracemalloc.start()
        renderer.render_to_file(score, tmp_path / f"{seconds}.wav", block_s=0.5, whole_max_s=1.0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_streamed_render_memory_does_not_grow_with_length(tmp_path):
    # numpy reports its buffers to tracemalloc: a piece 4x longer must not take 4x the memory. Whole, the
    # 40 s piece would need 40 * 22050 * 2 * 4 = 7 MB for its samples alone.
    short, long = _peak_bytes(10.0, tmp_path), _peak_bytes(40.0, tmp_path)
    assert long < 1.5 * short + 200_000
    assert long < 40 * 22050 * 2 * 4 / 2


def years_midi() -> bytes:
    """45 bytes: one note whose note-off comes 0x0FFFFFFF ticks later at the slowest tempo, division 1
    (~140 years, terabytes of audio)."""
    track = (b"\x00\xff\x51\x03\xff\xff\xff" + b"\x00\x90\x3c\x40" + b"\xff\xff\xff\x7f\x80\x3c\x40" + b"\x00\xff\x2f\x00")
    return b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01\x00\x01" + b"MTrk" + len(track).to_bytes(4, "big") + track


def test_45_byte_midi_asking_for_terabytes_is_refused_at_once(tmp_path, capsys):
    data = years_midi()
    assert len(data) <= 45
    path = tmp_path / "tiny.mid"
    path.write_bytes(data)
    with FluidSynthRenderer(RenderOptions(**FAST)) as renderer, pytest.raises(InputTooLong, match="years"):
        renderer.render_to_file(path, tmp_path / "out.wav")
    assert main(["render", str(path), "-o", str(tmp_path / "out.wav")]) == 2
    assert "longer than the limit" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()


def test_in_a_batch_the_huge_file_is_reported_and_the_others_render(tmp_path, midi_file):
    # The issue: in a batch such a file killed a worker. Now it is one line of the report.
    midi_file("in/fine.mid")
    (tmp_path / "in" / "years.mid").write_bytes(years_midi())
    summary = Studio(model_dirs=[]).render_batch(tmp_path / "in", tmp_path / "out", workers=1, progress=False,
                                                 sample_rate=22050, reverb=False, tail_s=0.2)
    assert (summary.ok, summary.failed) == (1, 1)
    report = [line for line in summary.report_path.read_text().splitlines() if "years.mid" in line]
    assert "InputTooLong" in report[0] and "years" in report[0]


def test_max_duration_flag_refuses_and_allows(tmp_path, midi_file, capsys):
    song = midi_file(notes=[(0, 480, 60, 100), (9600, 480, 64, 100)])  # ends at 10.5 s
    out = tmp_path / "song.wav"
    assert main(["render", str(song), "-o", str(out), "--max-duration", "5s"]) == 2
    assert "--max-duration" in capsys.readouterr().err and not out.exists()
    assert main(["render", str(song), "-o", str(out), "--max-duration", "1m", "--sample-rate", "22050"]) == 0
    assert out.is_file()


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("7h", 25200.0),
                                               ("1h30m", 5400.0), ("1:30:00", 5400.0), ("none", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["nan", "-5", "0", "1e999", "abc", "5 parsecs"])
def test_parse_duration_refuses(text):
    with pytest.raises(InvalidConditioning):
        parse_duration(text)


def test_long_prompt_melody_and_recordings_are_refused_before_work(tmp_path, midi_file, tiny_root):
    from cadenza import Conditioning

    long_midi = midi_file("long.mid", notes=[(0, 480, 60, 100), (960 * 130, 480, 62, 100)])  # 131 s at 120 BPM
    long_wav = tmp_path / "long.wav"
    write_audio(long_wav, np.zeros((1, 8000 * 5), np.float32), 8000)
    strict = Studio(model_dirs=[], max_duration_s=4.0)
    with pytest.raises(InputTooLong, match="prompt"):
        strict.check_inputs(Conditioning(prompt=str(long_midi)))
    with pytest.raises(InputTooLong, match="source audio"):
        strict.check_inputs(Conditioning(source_audio=str(long_wav)))
    with pytest.raises(InputTooLong, match="transcribe"):
        strict.transcribe(long_wav)
    # generate checks before any model is loaded: the tiny model's own studio, with a 1-minute limit
    limited = Studio(model_dirs=[tiny_root], max_duration_s=60.0)
    with pytest.raises(InputTooLong):
        limited.generate("tiny-remi", Conditioning(prompt=str(long_midi)))
    assert "tiny-remi" not in limited._loaded


def test_ddsp_streamed_score_matches_the_whole_render(tmp_path):
    from cadenza.generators.ddsp.export import load_instrument, save_instrument
    from cadenza.generators.ddsp.midi import NoteRenderOptions, render_score, stream_score
    from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, InstrumentStats

    torch.manual_seed(0)
    spec = save_instrument(DDSPDecoder(DecoderConfig(n_harmonics=8, n_noise=9, hidden=16, gru=16, mlp_layers=1)),
                           InstrumentStats(), tmp_path / "ddsp-tiny", "ddsp-tiny", license="test", description="tiny",
                           made_by={"recipe": "test"}, metrics={})
    instrument = load_instrument(spec, torch.device("cpu"))
    score = spread_score(3.0, notes_per_s=3)
    score.tracks[0].notes.append(symusic.Note(100, 900, 40, 90))  # a second voice
    options = NoteRenderOptions(normalize_lufs=None)
    whole = render_score(instrument, score, options, seed=3, chunk_s=0.5)
    stream = stream_score(instrument, score, options, seed=3, chunk_s=0.5)
    blocks = list(stream.blocks())
    assert max(b.shape[1] for b in blocks) <= math.ceil(0.5 * 16000) + 2 * instrument.config.hop
    played = np.concatenate(blocks, axis=1)
    peak = float(np.abs(played[0]).max())
    gain = 10 ** (-1 / 20) / peak if peak > 10 ** (-1 / 20) else 1.0  # render_score's own peak guard
    np.testing.assert_array_equal((played[0:1] * gain).astype(np.float32), whole.mix)
    np.testing.assert_array_equal((played[1:] * gain).astype(np.float32), np.concatenate(whole.stems))


def test_a_wav_too_long_for_its_format_is_refused_before_rendering(tmp_path):
    from cadenza import OutputError

    score = symusic.Score(480)
    track = symusic.Track(program=0)
    track.notes.append(symusic.Note(0, 480, 60, 100))
    track.notes.append(symusic.Note(7 * 3600 * 960, 480, 60, 100))  # 7 hours: more than 4 GiB of 16-bit stereo
    score.tracks.append(track)
    with FluidSynthRenderer(RenderOptions(max_duration_s=None)) as renderer:
        with pytest.raises(OutputError, match="flac"):
            renderer.render_to_file(score, tmp_path / "long.wav")
    assert list(tmp_path.iterdir()) == []


def test_a_streamed_render_is_remade_bit_for_bit(tmp_path, capsys, monkeypatch):
    # Pieces past the whole-piece limit are written in blocks by `cadenza render`; `Studio.render` (what a remake
    # plays) must give the same bits, limiter included (-8 LUFS needs it), for FluidSynth and for DDSP.
    import cadenza.fileio.limits
    import cadenza.render.fluidsynth
    from cadenza.generators.ddsp.export import save_instrument
    from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, InstrumentStats

    monkeypatch.setattr(cadenza.fileio.limits, "WHOLE_PIECE_MAX_S", 2.0)
    monkeypatch.setattr(cadenza.render.fluidsynth, "WHOLE_PIECE_MAX_S", 2.0)
    torch.manual_seed(0)
    save_instrument(DDSPDecoder(DecoderConfig(n_harmonics=8, n_noise=9, hidden=16, gru=16, mlp_layers=1)),
                    InstrumentStats(), tmp_path / "models" / "ddsp-tiny", "ddsp-tiny", license="test",
                    description="tiny", made_by={"recipe": "test"}, metrics={})
    monkeypatch.setenv("CADENZA_MODELS", str(tmp_path / "models"))
    spread_score(5.0, notes_per_s=3).dump_midi(str(tmp_path / "song.mid"))
    for synth, extra in (("fluidsynth", ["--no-reverb"]), ("ddsp:tiny", [])):
        out = tmp_path / f"{synth.replace(':', '-')}.wav"
        assert main(["render", str(tmp_path / "song.mid"), "-o", str(out), "--synth", synth, "--sample-rate", "22050",
                     "--loudness=-8", *extra]) == 0
        sidecar = Path(f"{out}.json").read_text()
        assert "streamed" in sidecar
        capsys.readouterr()
        assert main(["remake", f"{out}.json"]) == 0, capsys.readouterr()
        assert "identical" in capsys.readouterr().out
