"""Fixtures for the render tests: tiny MIDI files written with symusic into tmp dirs, and a skip when
FluidSynth or a SoundFont is missing (here both are installed and the tests run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from symusic import ControlChange, Note, Score, Tempo, Track

from cadenza.errors import MissingDependency

# (start tick, duration in ticks, MIDI pitch, velocity)
NoteSpec = tuple[int, int, int, int]


def build_score(
    notes: Sequence[NoteSpec] = ((0, 480, 60, 100),),
    *,
    tpq: int = 480,
    qpm: float | None = None,
    program: int = 0,
    drum: bool = False,
    controls: Sequence[tuple[int, int, int]] = (),
) -> Score:
    """A one-track score; ``qpm=None`` writes no tempo event at all (the file then plays at 120 BPM)."""
    score = Score(tpq)
    if qpm is not None:
        score.tempos.append(Tempo(0, qpm=qpm))
    track = Track(program=program, is_drum=drum)
    for start, duration, pitch, velocity in notes:
        track.notes.append(Note(start, duration, pitch, velocity))
    for time, number, value in controls:
        track.controls.append(ControlChange(time, number, value))
    score.tracks.append(track)
    return score


@pytest.fixture
def write_midi(tmp_path: Path) -> Callable[..., Path]:
    """``write_midi("a/b.mid", notes=..., qpm=...)`` writes a small MIDI file under tmp_path."""

    def write(name: str = "song.mid", **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        build_score(**kwargs).dump_midi(str(path))
        return path

    return write


@pytest.fixture(scope="session")
def fast_options():
    """Options that keep renders quick (22.05 kHz, short tail, no effects, no normalisation); skips the
    test when libfluidsynth, pyfluidsynth or a SoundFont is missing."""
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    from cadenza.render.fluidsynth import RenderOptions, check_available

    try:
        soundfont = check_available()
    except MissingDependency as e:
        pytest.skip(str(e))
    return RenderOptions(sample_rate=22050, reverb=False, chorus=False, normalize_lufs=None, tail_s=0.3,
                         soundfont=str(soundfont))


@pytest.fixture(scope="session")
def renderer(fast_options):
    """One renderer shared by the tests of a session, as a batch worker shares it between files."""
    from cadenza.render.fluidsynth import FluidSynthRenderer

    with FluidSynthRenderer(fast_options) as r:
        yield r


@pytest.fixture
def make_score() -> Callable[..., Score]:
    """``make_score(notes=..., qpm=..., program=..., drum=..., controls=...)``: see ``build_score``."""
    return build_score
