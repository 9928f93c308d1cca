"""Jobs files written from Python values, and a short MIDI file beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import symusic


def _write_jobs(path: Path, lines: list) -> Path:
    path.write_text("".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in lines))
    return path


@pytest.fixture
def write_jobs():
    """``write_jobs(path, lines)``: a jobs file, each value as one JSON line (strings as they are, to write
    broken lines)."""
    return _write_jobs


@pytest.fixture
def song(tmp_path) -> Path:
    """``tmp_path/song.mid``: four short notes."""
    score = symusic.Score(480)
    track = symusic.Track()
    track.notes.extend(symusic.Note(240 * k, 240, 60 + 2 * k, 100) for k in range(4))
    score.tracks.append(track)
    score.dump_midi(str(tmp_path / "song.mid"))
    return tmp_path / "song.mid"
