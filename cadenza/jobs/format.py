"""One line of a jobs file read into a `Job`: what to make, and the file to write it to.

A line is a request in the shape of a sidecar (``outputs.Provenance``), so any sidecar is a valid job,
plus ``output``, the file to write under the batch's output folder. Hand-written lines may use short
forms that stand for the sidecar's fields:

- generate: ``{"model": "remi-folk-small", "conditioning": {"key": "D major", "bars": 8},
  "sampling": {"seed": 1}, "output": "reel.mid"}`` (an audio output of a MIDI model is rendered with
  FluidSynth, or ``"synth": "ddsp:violin"``, with ``"render_options"``);
- transfer: a DDSP model with ``"conditioning": {"source_audio": "hum.wav"}`` and ``"transfer_options"``;
- render: ``{"render": "song.mid", "synth": "fluidsynth", "render_options": {...}, "output": "song.wav"}``;
- transcribe: ``{"transcribe": "take.wav", "transcribe_options": {"mode": "mono"}, "output": "take.mid"}``.

A request without a seed gets one derived from the line itself (see `Job.key`): the same line makes the
same file in every run, on every worker, and two lines that differ only in their output name are two
different pieces. Paths of input files are taken relative to the jobs file's folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from cadenza.conditioning import AUDIO_SUFFIXES, MIDI_SUFFIXES
from cadenza.errors import CadenzaError, InvalidConditioning
from cadenza.outputs import AUDIO_FORMATS, Provenance
from cadenza.sidecars import RemakePlan, plan_of

KINDS = ("generate", "transfer", "render", "transcribe")
# Sidecar fields that do not change what is made: left out of a job's key.
_RECORD_ONLY = ("versions", "created", "timings_s")
_SHORT = ("output", "render", "transcribe", "synth", "render_options", "transfer_options", "transcribe_options")
_KNOWN = tuple(f.name for f in fields(Provenance)) + _SHORT


@dataclass(frozen=True)
class Job:
    """One line's request. ``kind``: one of ``KINDS``; ``input``: what it is made from (the model, or the
    input file); ``output``: the absolute path it is written to (with its sidecar beside it); ``plan``:
    what ``Studio.make`` carries out; ``key``: the sha256 of the request as written (seed left out when
    it was missing) and the output's name, recorded in the sidecar so a later run knows the file is done;
    ``seed``: the call's seed (``seed_derived``: taken from ``key`` because the line gave none)."""

    line: int
    kind: str
    input: str
    output: str
    plan: RemakePlan
    key: str
    seed: int | None = None
    seed_derived: bool = False


def parse_job(text: str, line: int, out_dir: Path, base: Path, model_output: Callable[[str], str]) -> Job:
    """Read line number ``line`` (``text``) of a jobs file in folder ``base``; ``model_output(name)`` says
    whether a model makes ``"midi"`` or ``"audio"`` (and raises for one that is not installed).

    Raises:
        CadenzaError: the line is not a request that can be made; the message starts with ``line N:``.
    """
    where = f"line {line}"
    try:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidConditioning(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidConditioning("a job is a JSON object, e.g. {\"model\": ..., \"output\": \"tune.mid\"}")
        unknown = sorted(set(data) - set(_KNOWN))
        if unknown:
            raise InvalidConditioning(f"unknown field {', '.join(map(repr, unknown))}; a job has "
                                      f"{', '.join(_KNOWN)}")
        return _job(data, line, out_dir, base, model_output)
    except CadenzaError as exc:
        message = str(exc)
        raise type(exc)(message if message.startswith(where) else f"{where}: {message}") from None


def _job(data: dict, line: int, out_dir: Path, base: Path, model_output: Callable[[str], str]) -> Job:
    record = {k: v for k, v in data.items() if k not in _SHORT}
    notes = dict(_object(record.get("notes", {}), "notes"))
    inputs = dict(_object(record.get("inputs", {}), "inputs"))
    conditioning = dict(_object(record.get("conditioning", {}), "conditioning"))
    sampling = dict(_object(record.get("sampling", {}), "sampling"))
    synth, render_options = data.get("synth"), data.get("render_options")
    if "render" in data or record.get("family") == "file":
        kind, made = "render", "audio"
        path = data.get("render") or (inputs.get("midi") or {}).get("path") or notes.get("loaded_from")
        _path_field(path, "render")
        inputs["midi"] = inputs.get("midi") or {"path": path}
        notes.setdefault("rendered_with", synth or "fluidsynth")
        notes.setdefault("render_options", _object(render_options or {}, "render_options"))
        record.update(model=record.get("model") or path, family="file")
    elif "transcribe" in data or record.get("family") == "transcription":
        kind, made = "transcribe", "midi"
        path = data.get("transcribe") or conditioning.get("source_audio")
        _path_field(path, "transcribe")
        conditioning = {"source_audio": path}
        notes.setdefault("options", _object(data.get("transcribe_options") or {}, "transcribe_options"))
        _check_transcribe_options(notes["options"])
        record.update(model=record.get("model") or "transcriber", family="transcription")
    else:
        model = record.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidConditioning("say what to make: \"model\" (generate, transfer), \"render\" or \"transcribe\"")
        made = model_output(model)
        kind = "transfer" if "source_audio" in conditioning else "generate"
        if kind == "transfer":
            notes.setdefault("transfer_options", _object(data.get("transfer_options") or {}, "transfer_options"))
        elif "transfer_options" in data:
            raise InvalidConditioning("transfer_options are for a transfer: give conditioning.source_audio")
        record.setdefault("family", "job")
    output = _output(data.get("output"), line, kind, made)
    if kind in ("generate", "transfer"):
        wants_audio = output.suffix.lower() in AUDIO_FORMATS
        if made == "midi" and wants_audio and "rendered_with" not in notes:
            notes["rendered_with"] = synth or "fluidsynth"
            notes["render_options"] = _object(render_options or {}, "render_options")
        elif (synth or render_options) and not (made == "midi" and wants_audio):
            raise InvalidConditioning("synth and render_options play a MIDI model's output: give an audio output name")
    record.update(notes=notes, inputs=inputs, conditioning=conditioning, sampling=sampling)
    record.setdefault("checkpoint_sha256", None)
    key = _key(record, output.as_posix())
    seed, derived = sampling.get("seed", record.get("seed")), False
    if kind in ("generate", "transfer") and seed is None:
        seed, derived = int(key[:8], 16) % 2**31, True
        record["sampling"] = {**sampling, "seed": seed}
    if record.get("seed") is None:  # a transfer's sample is seeded by it
        record["seed"] = seed
    provenance = Provenance(**{k: v for k, v in record.items() if k in {f.name for f in fields(Provenance)}})
    plan = plan_of(provenance, out_dir / output, f"line {line}", base)
    source = record["model"] if kind in ("generate", "transfer") else str(plan.midi or plan.audio)
    return Job(line, kind, source, str(out_dir / output), plan, key, seed, derived)


def _key(record: dict, output: str) -> str:
    shown = {k: v for k, v in record.items() if k not in _RECORD_ONLY}
    text = json.dumps({"request": shown, "output": output}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _output(value: object, line: int, kind: str, made: str) -> PurePosixPath:
    """The output's path under the output folder (default ``job-000042`` + the suffix of what is made)."""
    if value is None:
        return PurePosixPath(f"job-{line:06d}{'.mid' if made == 'midi' else '.wav'}")
    if not isinstance(value, str) or not value.strip():
        raise InvalidConditioning(f"output must be a file name, got {value!r}")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise InvalidConditioning(f"output {value!r} must stay inside the output folder (a relative path, no '..')")
    suffix = path.suffix.lower()
    if suffix not in AUDIO_FORMATS + MIDI_SUFFIXES:
        raise InvalidConditioning(f"output {value!r}: name a .mid, .wav, .flac or .ogg file")
    if made == "audio" and suffix in MIDI_SUFFIXES:
        raise InvalidConditioning(f"output {value!r}: a {kind} makes audio; name a .wav, .flac or .ogg file")
    if kind == "transcribe" and suffix not in MIDI_SUFFIXES:
        raise InvalidConditioning(f"output {value!r}: a transcription is MIDI; name a .mid file")
    return path


def _object(value: object, name: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidConditioning(f"{name} must be a JSON object, got {value!r}")
    return value


def _path_field(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidConditioning(f"{name} must name a file, got {value!r}")
    if name == "render" and Path(value).suffix.lower() not in MIDI_SUFFIXES:
        raise InvalidConditioning(f"render {value!r}: name a .mid file")
    if name == "transcribe" and Path(value).suffix.lower() not in AUDIO_SUFFIXES:
        raise InvalidConditioning(f"transcribe {value!r}: name a recording ({', '.join(AUDIO_SUFFIXES)})")


def _check_transcribe_options(options: dict) -> None:
    from cadenza.analysis.options import TranscribeOptions

    TranscribeOptions.from_dict(options)
