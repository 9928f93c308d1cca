"""`Studio`: the one facade the Python API, the web app and the CLI all call.

It finds checkpoints, keeps an LRU cache of loaded generators (one lock per model, so two users of
the web app never drive one model at once), validates requests against a model's capabilities, and
generates, composes then performs, transfers and runs batches. Rendering, transcription and remaking
are its mixins (`rendering`, `transcribing`, `remaking`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cadenza.checkpoints import CheckpointSpec, discover, read_manifest
from cadenza.checkpoints import model_dirs as default_model_dirs
from cadenza.conditioning import (AUDIO_SUFFIXES, Capability, Conditioning, Sampling, require_sampling_supported,
                                  require_supported)
from cadenza.errors import CheckpointError, InvalidConditioning, UnsupportedConditioning
from cadenza.fileio.limits import DEFAULT_MAX_DURATION_S, check_duration, check_max_duration
from cadenza.generators.base import Callbacks, Generator, chosen_threads
from cadenza.generators.families import families, family, find_folder, load_generator, pullable, train_recipes
from cadenza.generators.family import Family, Recipe
from cadenza.outputs import AudioOutput, MidiOutput
from cadenza.studio.model_info import ModelInfo
from cadenza.studio.remaking import RemakingMixin
from cadenza.studio.rendering import RenderingMixin
from cadenza.studio.transcribing import TranscribingMixin

if TYPE_CHECKING:
    from cadenza.analysis import Transcriber
    from cadenza.render.batch import BatchSummary
    from cadenza.runners import Runner

# Audio given where a model takes notes (a hummed prompt for a symbolic model) is heard like this: one
# line, snapped to a grid in its own tempo and meter, so the model continues whole bars.
HEARD_AS_NOTES = {"mode": "mono", "quantize": True}


class Studio(RenderingMixin, TranscribingMixin, RemakingMixin):
    """Find, load and run models.

    ``model_dirs``: extra folders holding ``<name>/manifest.json`` (searched before ``$CADENZA_MODELS``,
    the repository's ``checkpoints/`` and ``~/.cache/cadenza``). ``cache_size``: loaded models kept.
    """

    def __init__(self, model_dirs: list[str | os.PathLike] | None = None, cache_size: int = 2,
                 device: str | None = None, threads: int | None = None,
                 max_duration_s: float | None = DEFAULT_MAX_DURATION_S) -> None:
        """``threads``: the CPU threads models run on (default ``$CADENZA_THREADS``, else each model's own
        choice by its size: one for a small model such as the built-in ones, the physical cores for a
        big one; on a shared machine more threads make small models slower, not faster).
        ``max_duration_s``: the longest input this studio takes, in seconds (None: no limit): a MIDI file
        to render, a prompt or melody to continue, a recording to transfer or transcribe. A longer one is
        refused with ``InputTooLong`` before any work starts."""
        check_max_duration(max_duration_s)
        self._max_duration_s = max_duration_s
        if threads is None and os.environ.get("CADENZA_THREADS"):
            try:
                threads = int(os.environ["CADENZA_THREADS"])
            except ValueError:
                raise InvalidConditioning(f"CADENZA_THREADS={os.environ['CADENZA_THREADS']!r} is not a number") from None
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidConditioning(f"threads must be a whole number >= 1, got {threads!r}")
        self._threads = threads
        if device is not None:
            from cadenza.engine.device import pick_device

            device = str(pick_device(device))  # an absent GPU or a bad name fails here, not at the first load
        self._dirs = default_model_dirs(model_dirs)
        # how to make this studio again in a batch worker (another process or machine finds its own defaults)
        self._args = ([os.fspath(d) for d in model_dirs or []], cache_size, device, threads)
        self._cache_size = max(1, cache_size)
        self._device = device
        self._loaded: OrderedDict[str, Generator] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._transcriber: Transcriber | None = None
        self._remaking = threading.local()  # a remake's thread count, for this thread's calls only

    # ---- discovery ------------------------------------------------------------------------------
    def specs(self) -> dict[str, CheckpointSpec]:
        """Every installed model of a known family, by name (a model of a family this installation does not
        have is left out here and explained by ``spec(name)``)."""
        known = families()
        return {name: s for name, s in discover(self._dirs).items() if s.family in known}

    def models(self) -> list[ModelInfo]:
        """Every installed model, sorted by family then name."""
        return sorted((self.info(s) for s in self.specs().values()), key=lambda m: (m.family, m.name))

    def info(self, model: str | CheckpointSpec) -> ModelInfo:
        """What ``cadenza models`` says about one model (a name, a path, or a spec)."""
        spec = model if isinstance(model, CheckpointSpec) else self.spec(model)
        fam = family(spec.family)
        return ModelInfo(spec.name, spec.family, fam.output, tuple(sorted(c.value for c in spec.capabilities)),
                         spec.license, spec.description, str(spec.directory), tuple(sorted(fam.sampling)),
                         dict(fam.choices))

    @staticmethod
    def families() -> Mapping[str, Family]:
        """The generator families this installation has (the built-in four and any plugins), by name."""
        return families()

    @staticmethod
    def train_recipes() -> dict[str, Recipe]:
        """``cadenza train`` recipes by name: each has ``help``, ``description``, ``add_arguments(parser)``
        and ``run(args)`` (its module is imported by the first of those calls)."""
        return train_recipes()

    @staticmethod
    def pullable() -> dict[str, str]:
        """The pretrained models ``pull`` can download: name -> one line."""
        return pullable()

    def pull(self, name: str, root: str | os.PathLike | None = None,
             log: Callable[[str], None] = print) -> CheckpointSpec:
        """Download the pretrained model ``name`` (see ``pullable``) at its pinned revision into the Hugging
        Face cache and write ``root/name`` (default ``~/.cache/cadenza``): a manifest pinning every file by
        sha256 and links to the cached files. The only call that downloads; without network it raises
        CheckpointError at once."""
        from cadenza.generators.families import pull

        return pull(name, root=None if root is None else os.fspath(root), log=log)

    @staticmethod
    def soundfonts() -> dict[str, Path]:
        """SoundFonts on this machine by name, the one FluidSynth uses by default first."""
        from cadenza.render.soundfonts import installed_soundfonts

        return installed_soundfonts()

    def spec(self, name: str) -> CheckpointSpec:
        specs = self.specs()
        if name in specs:
            return specs[name]
        for root in self._dirs:  # a folder that exists but did not parse, or is of an unknown family: say why
            if (root / name / "manifest.json").exists():
                return _known_family(read_manifest(root / name))
        if Path(name, "manifest.json").exists():  # a path to a checkpoint folder
            return _known_family(read_manifest(name))
        found = find_folder(name)  # a bare pretrained folder, HF-cache snapshot or cached hub id some family reads
        if found is not None:
            return found
        known = ", ".join(sorted(specs)) or "none installed"
        if name in pullable():  # a pretrained model that is not downloaded yet: say how to get it
            raise CheckpointError(f"no model named {name!r} here yet: run `cadenza pull {name}` to download it "
                                  f"(installed: {known})")
        raise CheckpointError(f"no model named {name!r} (installed: {known})")

    # ---- loading --------------------------------------------------------------------------------
    def load(self, name: str) -> Generator:
        """The loaded generator for ``name`` (from the LRU cache, or loaded and verified now)."""
        with self._cache_lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
        spec = self.spec(name)
        generator = load_generator(spec, device=self._device)
        with self._cache_lock:
            self._loaded[name] = generator
            self._model_locks.setdefault(name, threading.Lock())
            while len(self._loaded) > self._cache_size:
                self._loaded.popitem(last=False)
        return generator

    def _lock(self, name: str) -> threading.Lock:
        with self._cache_lock:
            return self._model_locks.setdefault(name, threading.Lock())

    @contextlib.contextmanager
    def _working(self, name: str) -> Iterator[None]:
        """Hold model ``name``'s lock, on this studio's thread count when one was chosen (else each model
        runs on its own choice: one thread for a small model, the physical cores for a big one)."""
        threads = getattr(self._remaking, "threads", None) or self._threads
        with self._lock(name), chosen_threads(threads):
            yield

    # ---- work -----------------------------------------------------------------------------------
    def generate(self, model: str, conditioning: Conditioning = Conditioning(), sampling: Sampling = Sampling(),
                 callbacks: Callbacks = Callbacks()) -> list[MidiOutput | AudioOutput]:
        """Make ``sampling.num_samples`` outputs with ``model``; raises UnsupportedConditioning for
        any set field the model cannot honour.

        A recording given as ``prompt`` (or ``melody``) to a model that takes that field only as MIDI is
        heard first (``transcribe``, one line, quantised: hum a tune and the symbolic model continues it).
        The provenance keeps the recording's path; each output's ``transcribed["prompt"]`` holds the notes
        heard, which ``save`` writes beside it (``tune.prompt.mid``) and names in the sidecar.
        """
        spec = self.spec(model)
        self.check_inputs(conditioning)
        if family(spec.family).output == "audio" and conditioning.compose is not False:
            plan = self._compose_plan(model, spec, conditioning)
            if plan is not None:
                return self._compose_then_perform(model, plan, conditioning, sampling, callbacks)
        if conditioning.compose and family(spec.family).output != "audio":
            raise UnsupportedConditioning(f"model {spec.name!r} writes MIDI itself: compose is for audio models")
        with contextlib.ExitStack() as stack:
            heard = self._hear_audio_inputs(spec, conditioning, stack)
            asked = conditioning
            if heard:
                paths = {name: stack.enter_context(_temporary_midi(output)) for name, output in heard.items()}
                conditioning = replace(conditioning, **paths)
            require_supported(conditioning, spec.capabilities, spec.name)
            require_sampling_supported(sampling, family(spec.family).sampling, spec.name)
            generator = self.load(model)  # by what was asked for: a name here, or a checkpoint folder's path
            with self._working(model):
                outputs = generator.generate(conditioning, sampling, callbacks)
        if heard:
            outputs = [_as_asked(output, asked, heard) for output in outputs]
        return outputs

    def _hear_audio_inputs(self, spec: CheckpointSpec, conditioning: Conditioning,
                           stack: contextlib.ExitStack) -> dict[str, MidiOutput]:
        """The audio ``prompt`` / ``melody`` that ``spec`` takes only as MIDI, heard as notes, by field."""
        caps = spec.capabilities
        wanted = {"prompt": (Capability.PROMPT_AUDIO, Capability.PROMPT_MIDI),
                  "melody": (Capability.MELODY_AUDIO, Capability.MELODY_MIDI)}
        heard = {}
        for name, (as_audio, as_midi) in wanted.items():
            value = getattr(conditioning, name)
            if value is None or Path(value).suffix.lower() not in AUDIO_SUFFIXES or as_audio in caps or as_midi not in caps:
                continue
            output = self.transcribe(value, **HEARD_AS_NOTES)
            if output.score.note_num() == 0:
                message = output.provenance.notes.get("message") or "no notes were heard"
                raise InvalidConditioning(f"{name}: {value} was heard as notes for {spec.name}, but {message}")
            heard[name] = output
        return heard

    # ---- compose, then perform ------------------------------------------------------------------
    def _compose_plan(self, model: str, spec: CheckpointSpec, conditioning: Conditioning):
        """`cadenza.compose.plan_compose` for ``model`` (None: generate directly)."""
        from cadenza.compose import DEFAULT_COMPOSER, plan_compose

        composer = DEFAULT_COMPOSER if DEFAULT_COMPOSER in self.specs() else None
        performer = self.load(model) if composer is not None else None
        return plan_compose(conditioning, spec.capabilities, spec.family,
                            default_s=float(getattr(performer, "default_duration_s", 10.0)),
                            max_s=getattr(performer, "max_duration_s", None), composer=composer)

    def _compose_then_perform(self, model: str, plan, conditioning: Conditioning, sampling: Sampling,
                              callbacks: Callbacks) -> list[AudioOutput]:
        """The composer writes ``sampling.num_samples`` scores with the plan's exact controls (one random
        stream, seeded by the call's seed); the audio model performs score ``i`` with seed ``seed + i``.
        Each output keeps its score (``AudioOutput.score``; saved beside it as ``.mid``), and its provenance
        holds the request as asked with the call's seed, so the same request makes the same files."""
        import tempfile
        from dataclasses import replace

        from cadenza.compose import in_register, performance
        from cadenza.generators.base import resolve_seed

        seed = resolve_seed(sampling)
        scores = [in_register(score, conditioning.text)  # written for the instrument the text names
                  for score in self.generate(plan.composer, plan.request,
                                             Sampling(seed=seed, num_samples=sampling.num_samples))]
        outputs = []
        with tempfile.TemporaryDirectory(prefix="cadenza-score-") as work:
            for index, score in enumerate(scores):
                path = score.save(Path(work) / f"score-{index}.mid", sidecar=False)
                request = performance(conditioning, str(path), score.duration_s, plan.max_s)
                performed = self.generate(model, request, replace(sampling, seed=seed + index, num_samples=1),
                                          callbacks)[0]
                composed = {"composer": plan.composer, "controls": list(plan.why),
                            "composer_request": plan.request.to_dict(), "composer_sample_index": index,
                            "perform_seed": seed + index, "score_seconds": round(score.duration_s, 3),
                            "register_shift": int(score.provenance.notes.get("register_shift", 0))}
                inputs = {k: v for k, v in performed.provenance.inputs.items() if k != "melody"}  # a temporary file
                provenance = replace(performed.provenance, conditioning=conditioning.to_dict(),
                                     sampling=replace(sampling, seed=seed).to_dict(), seed=seed, sample_index=index,
                                     inputs=inputs, notes={**performed.provenance.notes, "composed": composed})
                outputs.append(replace(performed, provenance=provenance, score=score))
        return outputs

    def check_inputs(self, conditioning: Conditioning) -> None:
        """Refuse (``InputTooLong``) a ``prompt``, ``melody`` or ``source_audio`` longer than this studio's
        ``max_duration_s``: measured from the file (MIDI: its notes' end; audio: its header), before any
        model is loaded or anything is heard, continued or rendered."""
        for name in ("prompt", "melody", "source_audio"):
            value = getattr(conditioning, name)
            if value is not None:
                self._check_length(value, f"the {name.replace('_', ' ')} {Path(value).name}")

    def _check_length(self, path: str | os.PathLike, what: str) -> None:
        if self._max_duration_s is None:
            return
        from cadenza.conditioning import MIDI_SUFFIXES

        if Path(path).suffix.lower() in MIDI_SUFFIXES:
            from cadenza.fileio.midi import load_midi, midi_duration_s

            seconds = midi_duration_s(load_midi(path))
        else:
            from cadenza.fileio.audio import audio_seconds

            seconds = audio_seconds(path)
        check_duration(seconds, self._max_duration_s, what)

    def runner(self, workers: int = 2, ray: str | None = None) -> Runner:
        """What runs a batch: ``workers`` local processes (1: this process), or with ``ray`` Ray actors:
        ``"local"`` starts Ray on this machine, ``"host:port"`` joins a running cluster. On a CUDA studio
        each Ray worker takes one GPU.

        Raises:
            MissingDependency: Ray is asked for and not installed (extra ``distributed``).
        """
        from cadenza.runners import InlineRunner, ProcessPoolRunner, RayRunner
        from cadenza.runners.ray_runner import import_ray

        if ray is None:
            return ProcessPoolRunner(workers) if workers > 1 else InlineRunner()
        import_ray()  # says how to install it now, not at the first job
        gpus = 1.0 if (self._device or "").startswith("cuda") else 0.0
        return RayRunner(None if ray == "local" else ray, gpus_per_worker=gpus)

    def batch(self, jobs_file: str | os.PathLike, output_dir: str | os.PathLike, *, workers: int = 2,
              runner: Runner | None = None, force: bool = False, progress: bool = True) -> BatchSummary:
        """Make every request of ``jobs_file`` (JSON lines: generate, transfer, render or transcribe, each in a
        sidecar's shape plus ``output``; see ``jobs.format``) under ``output_dir``, each file with its sidecar.

        Every line is checked first; a bad one is reported with its line number and the others run. A
        request without a seed gets one derived from its line (recorded in the report and the sidecar), so
        a run and its rerun make the same files. Finished jobs (output and the sidecar it wrote) are
        skipped unless ``force``. ``output_dir/report.jsonl`` gets a line per job (rewritten each run,
        flushed as each finishes); with ``progress`` the lines that cannot run and a progress bar (jobs/s,
        ETA) go to stderr. ``runner`` runs the jobs (see
        ``runner``; default ``workers`` local processes, each with its own Studio keeping its models loaded).

        Raises:
            InputNotFound: ``jobs_file`` is not there.
        """
        import time

        from cadenza.jobs import REPORT_NAME, plan_jobs, run_job
        from cadenza.render.batch import run_batch
        from cadenza.runners import Task

        started = time.perf_counter()
        plan = plan_jobs(jobs_file, output_dir, lambda name: self.info(name).output, force=force)
        if progress:  # the lines that will not run, before the others start
            for entry in plan.settled:
                if entry["status"] == "error":
                    print(f"cadenza: {entry['reason']}", file=sys.stderr)
        report = Path(output_dir) / REPORT_NAME
        report.parent.mkdir(parents=True, exist_ok=True)
        task = Task(setup=Studio, run=run_job, setup_args=self._args)
        runner = runner if runner is not None else self.runner(workers)
        return run_batch(task, plan, report, runner, progress, started, unit="job")

    def transfer(self, source_audio: str | os.PathLike, instrument: str, options=None, sampling: Sampling = Sampling(),
                 callbacks: Callbacks = Callbacks(), **option_values) -> AudioOutput:
        """Timbre transfer of a monophonic recording onto a DDSP instrument ('ddsp-violin' or 'violin').

        How, as keywords (all optional): ``pitch_shift`` (semitones, after the automatic octave shift),
        ``loudness_shift`` (dB), ``quiet_db`` (how much softer unpitched parts are played),
        ``autotune_key`` ('D major') and ``autotune_amount`` (0-1), ``auto_adjust`` (False keeps the
        recording's octave and loudness), ...: the instrument family's options (for DDSP,
        ``TransferOptions`` fields); or the options object itself as ``options``.

        Raises:
            UnsupportedConditioning: ``instrument`` is not a DDSP model, or an option it does not have.
        """
        key, spec = self._ddsp_spec(instrument)
        fam = family(spec.family)
        if options is not None and option_values:
            raise UnsupportedConditioning("give the transfer options as keywords or as one options object, not both")
        if options is None:
            options = fam.make_options(option_values)
        conditioning = Conditioning(source_audio=os.fspath(source_audio))
        self.check_inputs(conditioning)
        require_supported(conditioning, spec.capabilities, spec.name)
        require_sampling_supported(sampling, fam.sampling, spec.name)
        generator = self.load(key)
        with self._working(key):
            return generator.generate(conditioning, sampling, callbacks, options=options)[0]


@contextlib.contextmanager
def _temporary_midi(output: MidiOutput) -> Iterator[str]:
    """``output`` written to a temporary .mid file for the length of the block."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cadenza-heard-") as folder:
        path = Path(folder) / "heard.mid"
        output.save(path, sidecar=False)
        yield str(path)


def _as_asked(output: MidiOutput | AudioOutput, asked: Conditioning,
              heard: dict[str, MidiOutput]) -> MidiOutput | AudioOutput:
    """``output`` with the conditioning as asked (the recordings' paths, not the temporary MIDI files), the
    notes heard in them as ``transcribed`` and what was heard in ``provenance.notes["heard"]``."""
    prov = output.provenance
    summary = {name: {"from": getattr(asked, name), **{k: h.provenance.notes.get(k) for k in
                                                       ("notes", "tempo_bpm", "time_signature", "key", "mode")}}
               for name, h in heard.items()}
    provenance = replace(prov, conditioning={**prov.conditioning, **{name: getattr(asked, name) for name in heard}},
                         notes={**prov.notes, "heard": summary})
    return replace(output, provenance=provenance, transcribed={**output.transcribed, **heard})


def _known_family(spec: CheckpointSpec) -> CheckpointSpec:
    """``spec``, or CheckpointError saying its family is not one this installation has."""
    try:
        family(spec.family)
    except CheckpointError as exc:
        raise CheckpointError(f"{spec.directory}: {exc}") from None
    return spec
