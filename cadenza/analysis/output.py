"""A `Transcription` as a `MidiOutput` with its provenance, the shape every other output has (so it
saves with a sidecar, renders, continues and shows in the web studio like generated MIDI)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cadenza.analysis.options import TranscribeOptions
from cadenza.analysis.transcription import Transcription
from cadenza.outputs import MidiOutput, Provenance


def transcription_output(result: Transcription, source: str | os.PathLike | None, options: TranscribeOptions,
                         model: dict) -> MidiOutput:
    """``result.to_score()`` with a provenance: family ``"transcription"``, ``model`` the model's name
    (``model["model"]``) and ``checkpoint_sha256`` its weights' sha256, ``conditioning`` the source audio,
    ``notes`` the transcription's summary (``Transcription.summary``), the options and the source's sha256."""
    notes = {**result.summary(), "options": options.to_dict()}
    conditioning = {}
    if source is not None:
        path = Path(source)
        conditioning["source_audio"] = str(path)
        notes["source_sha256"] = _sha256(path)
    provenance = Provenance(model=model["model"], family="transcription", checkpoint_sha256=model.get("sha256"),
                            conditioning=conditioning, sampling={}, seed=None, timings_s=dict(result.timings_s),
                            notes=notes)
    return MidiOutput(result.to_score(), provenance)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
