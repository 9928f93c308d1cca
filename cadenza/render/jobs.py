"""What a render worker does: keep one ``FluidSynthRenderer`` and turn MIDI files into audio files.

These are the worker side of a batch (``render.batch`` plans it, a ``cadenza.runners`` runner runs
it): ``render_task`` describes them as a ``Task`` a runner can ship to any worker process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from cadenza.errors import InvalidConditioning
from cadenza.fileio.audio import FORMATS
from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions
from cadenza.runners import Task


@dataclass(frozen=True)
class RenderJob:
    """One file to render: ``input`` MIDI path -> ``output`` audio path (format by suffix)."""

    input: str
    output: str


def render_task(options: RenderOptions) -> Task[RenderJob, dict]:
    """The batch's ``Task``: each worker loads one renderer with ``options``; each job returns its
    report entry (``input``, ``output``, ``status`` ok | error, ``reason``, ``seconds``)."""
    return Task(setup=open_renderer, run=render_job, setup_args=(options,), teardown=close_renderer)


def open_renderer(options: RenderOptions) -> FluidSynthRenderer:
    """A worker's set-up: the SoundFont is loaded here, once per worker.

    Raises:
        MissingDependency: FluidSynth or the SoundFont cannot be loaded (this stops the batch).
    """
    renderer = FluidSynthRenderer(options)
    if options.normalize_lufs is not None:
        import pyloudnorm  # noqa: F401  (imports scipy.signal, ~1.2 s: pay it at start-up, not mid-file)
    return renderer


def close_renderer(renderer: FluidSynthRenderer) -> None:
    renderer.close()


def render_job(renderer: FluidSynthRenderer, job: RenderJob) -> dict:
    """Render one job and describe the outcome; a failure is recorded, never raised, so one bad file
    cannot stop a batch."""
    started = time.perf_counter()
    entry = {"input": job.input, "output": job.output}
    try:
        _render_to(renderer, Path(job.input), Path(job.output))
    except Exception as e:  # noqa: BLE001 -- per-file isolation is the point; the reason goes to the report
        return entry | {"status": "error", "reason": f"{type(e).__name__}: {e}",
                        "seconds": round(time.perf_counter() - started, 4)}
    return entry | {"status": "ok", "reason": "", "seconds": round(time.perf_counter() - started, 4)}


def render_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: RenderOptions = RenderOptions(),
    *,
    renderer: FluidSynthRenderer | None = None,
) -> Path:
    """Render one MIDI file to ``output_path`` (.wav, .flac or .ogg, by suffix), atomically; no
    sidecar (``Studio.render(path).save(out)`` writes one).

    Pass ``renderer`` to reuse a loaded SoundFont across calls; its options then apply.

    Raises:
        CorruptInput: the MIDI file is missing, empty, not MIDI, or has no notes.
        InvalidConditioning: the output suffix is not an audio format we write.
        MissingDependency: FluidSynth or a SoundFont is not installed.
    """
    out = Path(output_path)
    if out.suffix.lower() not in FORMATS:
        raise InvalidConditioning(f"cannot write audio to {out.name!r}; use one of {', '.join(FORMATS)}")
    remove_stale_parts([out])
    if renderer is not None:
        _render_to(renderer, Path(input_path), out)
    else:
        with FluidSynthRenderer(options) as own:
            _render_to(own, Path(input_path), out)
    return out


def _render_to(renderer: FluidSynthRenderer, src: Path, out: Path) -> None:
    renderer.render_to_file(src, out)  # atomic (fileio.atomic_path), in blocks beyond a few minutes


def remove_stale_parts(outputs: list[Path]) -> None:
    """Delete temporary files a killed run left beside ``outputs``. ``fileio.atomic_path`` names them
    ``.<name>.<random>.part<suffix>``; they are never taken for outputs, only clutter. Each folder is
    listed once, however many outputs it holds."""
    wanted: dict[Path, set[str]] = {}
    for out in outputs:
        wanted.setdefault(out.parent, set()).add(out.name)
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(".") and ".part" in name:
                # ".song.wav.k3j_x9.part.wav" -> "song.wav.k3j_x9" -> "song.wav"
                target = name[1:].rsplit(".part", 1)[0].rsplit(".", 1)[0]
                if target in names:
                    Path(entry.path).unlink(missing_ok=True)
