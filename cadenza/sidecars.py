"""A sidecar read back as what makes its output again: `RemakePlan` (``Studio.remake`` carries it out).

An output's sidecar (``x.wav.json``, see ``outputs.Provenance``) records the model and its sha256, the
conditioning, the call's sampling (seed included), which sample of the call the output is, the input
files with their sha256, the CPU thread count, and, for audio played from a score, how it was rendered
(FluidSynth with the SoundFont's sha256, or a DDSP instrument with its seed). This module checks what
can be checked without loading anything (the inputs are still there and unchanged) and says clearly
why a sidecar cannot be remade; it loads no model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import CorruptInput, InputNotFound, InvalidConditioning
from cadenza.outputs import Provenance

_INPUT_FIELDS = ("prompt", "melody", "source_audio")


@dataclass(frozen=True)
class RenderStep:
    """How a score was played: ``synth`` ('fluidsynth' or 'ddsp:NAME'), its ``options`` (RenderOptions or
    NoteRenderOptions fields), ``seed`` (DDSP), and what pins the sound: ``soundfont`` (``{"path",
    "sha256"}``, FluidSynth) or ``model_sha256`` (the DDSP instrument's weights)."""

    synth: str
    options: dict
    seed: int | None = None
    soundfont: dict | None = None
    model_sha256: str | None = None


@dataclass(frozen=True)
class RemakePlan:
    """What to run to make a sidecar's output again.

    ``model`` (None for a score read from a file, then ``midi`` is that file, or for a transcription, then
    ``audio`` is the recording and ``transcribe_options`` how it is heard) with ``conditioning`` and
    ``sampling`` (the whole call) and ``sample_index`` (the output of that call to keep);
    ``transfer_options`` for a DDSP timbre transfer; ``render`` when the output is audio played from a
    score; ``voice`` when it is one voice (stem) of such a rendering; ``threads`` the CPU thread count
    it was made with. ``output`` is the file the sidecar describes.
    """

    output: Path
    provenance: Provenance
    model: str | None
    checkpoint_sha256: str | None
    conditioning: Conditioning | None = None
    sampling: Sampling | None = None
    sample_index: int = 0
    transfer_options: dict | None = None
    midi: Path | None = None
    render: RenderStep | None = None
    voice: str | None = None
    threads: int | None = None
    inputs: dict = field(default_factory=dict)
    audio: Path | None = None
    transcribe_options: dict | None = None


def sidecar_of(path: str | os.PathLike) -> Path:
    """The sidecar of ``path``: ``path`` itself when it ends in ``.json``, else ``path + ".json"``."""
    path = Path(path)
    return path if path.suffix.lower() == ".json" else Path(f"{os.fspath(path)}.json")


def read_sidecar(path: str | os.PathLike) -> RemakePlan:
    """Read the sidecar at ``path`` (or of the output at ``path``) into a `RemakePlan`.

    Raises:
        InputNotFound: the sidecar, or an input file it names, is not there.
        CorruptInput: the file is not a sidecar, or an input file changed since the output was made.
        InvalidConditioning: the sidecar records a request this version cannot make.
    """
    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        raise InputNotFound(f"no sidecar {sidecar} (outputs are remade from the .json written beside them)")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptInput(f"cannot read {sidecar}: {exc}") from None
    try:
        prov = Provenance.from_json(text)
    except CorruptInput as exc:
        raise CorruptInput(f"{sidecar}: {exc}") from None
    return plan_of(prov, sidecar.with_name(sidecar.name[: -len(".json")]), str(sidecar))


def plan_of(prov: Provenance, output: Path, where: str, base: Path | None = None) -> RemakePlan:
    """What makes ``output`` as ``prov`` describes (a sidecar's, or a batch job's in the same shape).

    ``where`` names the record in messages (the sidecar's path, ``"line 3"``). ``base``: set for a batch
    job, whose input files may be named by path alone (no sha256 recorded): relative paths are taken from
    ``base`` and such files are only checked to be there. A recorded sha256 is always checked.

    Raises:
        InputNotFound: an input file it names is not there.
        CorruptInput: an input file changed since, or the record is not one that can be made.
        InvalidConditioning: it records a request this version cannot make.
    """
    notes = prov.notes if isinstance(prov.notes, dict) else {}
    threads = notes.get("cpu_threads")
    threads = threads if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1 else None
    render = _render_step(notes)
    voice = notes.get("voice") if render is not None and render.synth.startswith("ddsp:") else None
    common = dict(output=output, provenance=prov, checkpoint_sha256=prov.checkpoint_sha256, render=render,
                  voice=voice, threads=threads, inputs=prov.inputs)
    if prov.family == "file":
        recorded = prov.inputs.get("midi") or _legacy_midi(notes)
        midi = _checked_input(where, "midi", recorded, base)
        if render is None:
            raise InvalidConditioning(f"{where} describes a MIDI file as it was read: there is nothing to remake")
        return RemakePlan(model=None, midi=midi, **common)
    if prov.family == "transcription":
        source = prov.conditioning.get("source_audio") if isinstance(prov.conditioning, dict) else None
        recorded = prov.inputs.get("source_audio") or {"path": source, "sha256": notes.get("source_sha256")}
        options = notes.get("options")
        if not isinstance(options, dict):
            raise CorruptInput(f"{where} records a transcription without its options")
        return RemakePlan(model=None, audio=_checked_input(where, "source_audio", recorded, base),
                          transcribe_options=dict(options), **common)
    conditioning = _conditioning(where, prov, base)
    sampling = _sampling(where, prov)
    transfer = notes.get("transfer_options") if "source_audio" in prov.conditioning else None
    if transfer is not None:
        # a transfer seeds each sample on its own (seed + index): that sample alone is the same computation
        sampling = Sampling(**{**sampling.to_dict(), "seed": prov.seed, "num_samples": 1})
    index = 0 if transfer is not None else prov.sample_index
    if not isinstance(index, int) or not 0 <= index < sampling.num_samples:
        raise CorruptInput(f"{where}: sample_index {index!r} is not one of the call's {sampling.num_samples} samples")
    return RemakePlan(model=prov.model, conditioning=conditioning, sampling=sampling, sample_index=index,
                      transfer_options=transfer, **common)


def _conditioning(where: str, prov: Provenance, base: Path | None) -> Conditioning:
    """The recorded conditioning, its input files at their recorded absolute paths once their sha256 match."""
    values = dict(prov.conditioning) if isinstance(prov.conditioning, dict) else {}
    for name in _INPUT_FIELDS:
        if name in values:
            recorded = prov.inputs.get(name) or ({"path": values[name]} if base is not None else None)
            values[name] = os.fspath(_checked_input(where, name, recorded, base))
    try:
        return Conditioning.from_dict(values)
    except (TypeError, InvalidConditioning) as exc:
        raise InvalidConditioning(f"{where}: its conditioning cannot be made again: {exc}") from None


def _sampling(where: str, prov: Provenance) -> Sampling:
    values = dict(prov.sampling) if isinstance(prov.sampling, dict) else {}
    if values.get("seed") is None:  # sidecars before the drawn seed was written into sampling
        values["seed"] = prov.seed
    if values.get("seed") is None:
        raise CorruptInput(f"{where} records no seed: its output cannot be made again")
    try:
        return Sampling(**values)
    except TypeError as exc:
        raise InvalidConditioning(f"{where}: its sampling is not one this version knows: {exc}") from None


def _checked_input(where: str, name: str, entry: dict | None, base: Path | None = None) -> Path:
    """The recorded input file ``name``, after checking it is there with the recorded sha256 (with ``base``,
    a batch job's folder: an entry with a path and no sha256 is taken as it is, relative to ``base``)."""
    from cadenza.fileio.hashes import sha256_of

    if base is not None and isinstance(entry, dict) and isinstance(entry.get("path"), str) and not entry.get("sha256"):
        path = base / entry["path"]
        if not path.is_file():
            raise InputNotFound(f"{where}: the {name} file {path} is not there")
        return path
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("sha256"), str):
        raise CorruptInput(f"{where} does not record the {name} file's path and sha256 (it was written by an older "
                           "Cadenza): its output cannot be checked and made again")
    path = Path(entry["path"])
    if not path.is_file():
        raise InputNotFound(f"the {name} file {path} that {Path(where).name} was made from is missing: put it back to remake")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise CorruptInput(f"the {name} file {path} changed since {Path(where).name} was made (sha256 {actual[:12]}..., "
                           f"recorded {entry['sha256'][:12]}...): the same output needs the same file")
    return path


def _legacy_midi(notes: dict) -> dict | None:
    """A loaded MIDI file as sidecars recorded it before ``inputs`` (an absolute path is needed)."""
    where, digest = notes.get("loaded_from"), notes.get("sha256")
    if isinstance(where, str) and os.path.isabs(where) and isinstance(digest, str):
        return {"path": where, "sha256": digest}
    return None


def _render_step(notes: dict) -> RenderStep | None:
    synth = notes.get("rendered_with")
    if synth is None:
        return None
    options = notes.get("render_options")
    if not isinstance(synth, str) or not isinstance(options, dict):
        raise CorruptInput(f"a rendering without its synth and options ({synth!r}) cannot be made again")
    if synth == "fluidsynth":
        return RenderStep(synth, dict(options), soundfont=notes.get("soundfont"))
    seed = notes.get("render_seed")
    return RenderStep(synth, dict(options), seed=seed if isinstance(seed, int) else 0,
                      model_sha256=notes.get("ddsp_sha256"))
