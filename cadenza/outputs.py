"""What generators return: `MidiOutput` or `AudioOutput`, each with its `Provenance`.

``save(path)`` picks the format from the suffix and writes ``<path>.json`` beside it: the model, the
checkpoint's sha256, the conditioning and sampling (seed included), the input files with their sha256,
package versions and timings, i.e. everything needed to make the same file again
(``Studio.remake(sidecar)``, ``cadenza remake OUT.json``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import dataclasses
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import symusic

from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.fileio import atomic_path, atomic_write_text

_VERSIONED_PACKAGES = ("cadenza", "torch", "numpy", "miditok", "symusic", "transformers", "diffusers", "audiocraft")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Provenance:
    """How an output was made.

    ``sampling`` is the call's sampling with its ``seed`` always set (a drawn seed is filled in), and
    ``sample_index`` says which of that call's ``sampling["num_samples"]`` outputs this is: the same
    model, conditioning and sampling give this output back as that sample (what ``Studio.remake``
    does). ``seed`` is this sample's own seed: where a family seeds each sample on its own (diffusion
    candidates and DDSP transfers: the call's seed + sample_index) a call with that seed alone makes a
    close copy; where samples share one random stream (symbolic, codec LM) it is the call's seed.
    ``inputs``: the files the output was made from (``prompt``, ``melody``, ``source_audio``, a loaded
    ``midi``), each ``{"path": absolute path, "sha256": ...}``, so a remake can tell they changed.
    """

    model: str
    family: str
    checkpoint_sha256: str | None
    conditioning: dict
    sampling: dict
    seed: int | None
    sample_index: int = 0
    timings_s: dict = field(default_factory=dict)
    versions: dict = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    notes: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """A sidecar's provenance (fields this version does not know are left out).

        Raises:
            CorruptInput: the text is not a sidecar's JSON.
        """
        from dataclasses import fields

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CorruptInput(f"not a sidecar (JSON): {exc}") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not {"model", "family", "conditioning", "sampling"} <= set(data):
            raise CorruptInput("not a sidecar: it needs model, family, conditioning and sampling")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise CorruptInput(f"not a sidecar: {exc}") from None

    def write_sidecar(self, output_path: str | os.PathLike) -> Path:
        sidecar = Path(f"{os.fspath(output_path)}.json")
        atomic_write_text(sidecar, self.to_json())
        return sidecar


AUDIO_FORMATS = (".wav", ".flac", ".ogg")


def transcribed_path(target: str | os.PathLike, name: str) -> Path:
    """Where ``save`` writes the score of an input heard from audio: ``tune.mid`` -> ``tune.prompt.mid``."""
    target = Path(target)
    return target.with_name(f"{target.stem}.{name}.mid")


def _save_with_transcribed(output: MidiOutput | AudioOutput, target: Path, sidecar: bool,
                           provenance: Provenance | None = None) -> None:
    """Write ``output.transcribed`` beside ``target`` and the sidecar naming them (``notes["transcribed"]``:
    input field -> its MIDI file's name). ``provenance``: what to write (default the output's own)."""
    provenance = provenance or output.provenance
    if output.transcribed:
        names = {}
        for name, heard in output.transcribed.items():
            path = heard.save(transcribed_path(target, name), sidecar=sidecar)
            names[name] = path.name
        provenance = dataclasses.replace(provenance, notes={**provenance.notes, "transcribed": names})
    if sidecar:
        provenance.write_sidecar(target)


@dataclass
class MidiOutput:
    """A score: generated, read from a file with ``MidiOutput.load`` or heard with ``Studio.transcribe``.
    ``save('x.mid')`` writes MIDI; ``Studio.render(output)`` turns it into an ``AudioOutput`` (then
    ``.save('x.wav')``).

    ``transcribed``: inputs that were audio and were heard as notes to make this (a hummed ``prompt`` a
    symbolic model continued), by conditioning field; ``save`` writes each beside the output
    (``x.prompt.mid``) and names it in the sidecar.
    """

    score: symusic.Score
    provenance: Provenance
    transcribed: dict[str, MidiOutput] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MidiOutput:
        """Read a Standard MIDI File, to render it, continue it or use it as a melody.

        The provenance says where it came from: family ``"file"``, ``model`` the path, and
        ``notes["loaded_from"]`` (absolute) / ``notes["sha256"]`` (of the file's bytes), also as
        ``inputs["midi"]``.

        Raises:
            CorruptMidi: the file is empty, not MIDI, cannot be parsed, or has no notes.
            CorruptInput: the file does not exist (an ``InputNotFound``).
        """
        from cadenza.fileio.midi import load_midi

        source = Path(path)
        score = load_midi(source)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        where = os.path.abspath(source)
        notes = {"loaded_from": where, "sha256": digest}
        return cls(score, Provenance(model=str(source), family="file", checkpoint_sha256=None, conditioning={},
                                     sampling={}, seed=None, notes=notes,
                                     inputs={"midi": {"path": where, "sha256": digest}}))

    def save(self, path: str | os.PathLike, sidecar: bool = True) -> Path:
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix in (".mid", ".midi"):
            with atomic_path(target) as tmp:
                self.score.dump_midi(tmp)
        elif suffix in AUDIO_FORMATS:
            raise InvalidConditioning(f"cannot save MIDI as {target.name!r}: render it first, "
                                      f"studio.render(output).save({target.name!r}), or save it as .mid")
        else:
            raise InvalidConditioning(f"cannot save MIDI as {target.name!r}: use .mid (or render it to audio with "
                                      "Studio.render)")
        _save_with_transcribed(self, target, sidecar)
        return target

    def piano_roll(self, path: str | os.PathLike) -> Path:
        """Write a piano-roll PNG of the score."""
        from cadenza.fileio.images import piano_roll_png

        piano_roll_png(self.score, path)
        return Path(path)

    @property
    def duration_s(self) -> float:
        from cadenza.fileio.midi import midi_duration_s

        return midi_duration_s(self.score)


@dataclass
class AudioOutput:
    """Generated audio ``samples [C, N] float32`` in [-1, 1] at ``sample_rate`` Hz.

    ``score``: the score it performs, when the composer wrote one for it (compose, then perform).
    ``stems``: the parts it was mixed from, when the renderer made them (a DDSP instrument plays each
    voice of a score separately: one mono stem per voice, named by ``provenance.notes["voice"]``, that
    sum to the mix); empty otherwise. ``transcribed``: as for `MidiOutput` (a hummed ``melody``).
    """

    samples: np.ndarray
    sample_rate: int
    provenance: Provenance
    stems: tuple[AudioOutput, ...] = ()
    score: MidiOutput | None = None
    transcribed: dict[str, MidiOutput] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, sidecar: bool = True) -> Path:
        """Write the audio (format by suffix) and its sidecar; an output performed from a composed score
        also writes the score beside it (``x.wav`` -> ``x.mid``), named in the sidecar (``notes.score_file``)."""
        from dataclasses import replace

        from cadenza.fileio.audio import write_audio

        target = Path(path)
        if target.suffix.lower() not in AUDIO_FORMATS:
            raise InvalidConditioning(f"cannot save audio as {target.name!r}: use {', '.join(AUDIO_FORMATS)}")
        provenance = self.provenance
        if self.score is not None:
            score_path = self.score.save(target.with_suffix(".mid"), sidecar=sidecar)
            provenance = replace(provenance, notes={**provenance.notes, "score_file": score_path.name})
        write_audio(target, self.samples, self.sample_rate)
        _save_with_transcribed(self, target, sidecar, provenance)
        return target

    def spectrogram(self, path: str | os.PathLike) -> Path:
        """Write a spectrogram PNG; an output performed from a composed score shows the score's piano roll
        above it, on the same time axis."""
        from cadenza.fileio.images import score_and_spectrogram_png, spectrogram_png

        if self.score is not None:
            score_and_spectrogram_png(self.score.score, self.samples, self.sample_rate, path)
        else:
            spectrogram_png(self.samples, self.sample_rate, path)
        return Path(path)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate
