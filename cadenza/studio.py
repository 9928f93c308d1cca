"""`Studio`: the one facade the Python API, the web app and the CLI all call.

It finds checkpoints, keeps an LRU cache of loaded generators (one lock per model, so two users of
the web app never drive one model at once), validates requests against a model's capabilities, and
renders or batch-renders results.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
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
from cadenza.outputs import AudioOutput, MidiOutput, Provenance
from cadenza.sidecars import RemakePlan, read_sidecar

if TYPE_CHECKING:
    from cadenza.analysis import TranscribeOptions, Transcriber
    from cadenza.render.batch import BatchSummary
    from cadenza.runners import Runner

# Audio given where a model takes notes (a hummed prompt for a symbolic model) is heard like this: one
# line, snapped to a grid in its own tempo and meter, so the model continues whole bars.
HEARD_AS_NOTES = {"mode": "mono", "quantize": True}


@dataclass(frozen=True)
class ModelInfo:
    """What ``cadenza models`` lists. From the model's family: ``output`` ('midi' or 'audio'),
    ``sampling`` (the `Sampling` fields it honours beyond seed and num_samples) and ``choices``
    (suggested values for free-text settings, e.g. ``{"scheduler": ("dpm++", ...)}``)."""

    name: str
    family: str
    output: str
    capabilities: tuple[str, ...]
    license: str
    description: str
    path: str
    sampling: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "output": self.output,
                "capabilities": list(self.capabilities), "sampling": list(self.sampling),
                "choices": {k: list(v) for k, v in self.choices.items()}, "license": self.license,
                "description": self.description, "path": self.path}


class Studio:
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

        from cadenza.compose import performance
        from cadenza.generators.base import resolve_seed

        seed = resolve_seed(sampling)
        scores = self.generate(plan.composer, plan.request, Sampling(seed=seed, num_samples=sampling.num_samples))
        outputs = []
        with tempfile.TemporaryDirectory(prefix="cadenza-score-") as work:
            for index, score in enumerate(scores):
                path = score.save(Path(work) / f"score-{index}.mid", sidecar=False)
                request = performance(conditioning, str(path), score.duration_s, plan.max_s)
                performed = self.generate(model, request, replace(sampling, seed=seed + index, num_samples=1),
                                          callbacks)[0]
                composed = {"composer": plan.composer, "controls": list(plan.why),
                            "composer_request": plan.request.to_dict(), "composer_sample_index": index,
                            "perform_seed": seed + index, "score_seconds": round(score.duration_s, 3)}
                inputs = {k: v for k, v in performed.provenance.inputs.items() if k != "melody"}  # a temporary file
                provenance = replace(performed.provenance, conditioning=conditioning.to_dict(),
                                     sampling=replace(sampling, seed=seed).to_dict(), seed=seed, sample_index=index,
                                     inputs=inputs, notes={**performed.provenance.notes, "composed": composed})
                outputs.append(replace(performed, provenance=provenance, score=score))
        return outputs

    def render(self, source: MidiOutput | AudioOutput | str | os.PathLike, synth: str = "fluidsynth",
               soundfont: str | None = None, *, seed: int | None = None, **options) -> AudioOutput:
        """Audio for ``source``: the one way to turn MIDI into sound.

        ``source``: a ``MidiOutput``, a MIDI file's path (read with ``MidiOutput.load``), or an
        ``AudioOutput`` (returned as it is). ``synth``:

        - ``"fluidsynth"``: a General MIDI SoundFont (``soundfont``: another .sf2/.sf3); ``options`` are
          ``render.fluidsynth.RenderOptions`` fields (sample_rate, gain, reverb, normalize_lufs, ...).
        - ``"ddsp:NAME"``: a learned DDSP instrument, e.g. ``"ddsp:violin"``; ``options`` are
          ``generators.ddsp.midi.NoteRenderOptions`` fields (vibrato_cents, attack_s, ...), ``seed``
          (default 0) seeds the noise part of its sound. Chords are split into monophonic voices, each
          played on its own: the result is their mix, and its ``stems`` hold one AudioOutput per voice.

        Raises:
            UnsupportedConditioning: an unknown synth, an option that synth does not have, a SoundFont
                or a seed given to a synth that does not use it.
            CorruptMidi: the file is not MIDI, cannot be parsed or has no notes (CorruptInput if missing).
            MissingDependency: FluidSynth or a SoundFont is not installed.
        """
        if isinstance(source, AudioOutput):
            return source
        ddsp = synth.startswith("ddsp:")
        self._check_synth(synth, soundfont, seed)
        output = source if isinstance(source, MidiOutput) else MidiOutput.load(source)
        if ddsp:
            return self._render_ddsp(output, synth, 0 if seed is None else seed, options)
        from cadenza.render.fluidsynth import render_output

        return render_output(output, self._fluidsynth_options(synth, soundfont, options))

    def render_to(self, source: MidiOutput | str | os.PathLike, path: str | os.PathLike, synth: str = "fluidsynth",
                  soundfont: str | None = None, *, seed: int | None = None, stems_dir: str | os.PathLike | None = None,
                  sidecar: bool = True, **options) -> Path:
        """``render(source, ...)`` written straight to the audio file ``path`` (with its sidecar), in blocks:
        memory stays bounded whatever the length of the music (``render`` returns the piece whole). The
        output is checked before rendering starts (a folder, a read-only place: ``OutputError`` at once).
        ``stems_dir`` (DDSP synths): also write each voice there as ``NN-voice.<suffix>``. Returns ``path``.

        Raises:
            as ``render``; InputTooLong: the piece is longer than the studio's ``max_duration_s``;
            OutputError: the file cannot be written.
        """
        from cadenza.fileio import check_output_path
        from cadenza.outputs import AUDIO_FORMATS

        target = check_output_path(path)
        if target.suffix.lower() not in AUDIO_FORMATS:
            raise InvalidConditioning(f"cannot save audio as {target.name!r}: use {', '.join(AUDIO_FORMATS)}")
        ddsp = synth.startswith("ddsp:")
        self._check_synth(synth, soundfont, seed)
        if stems_dir is not None and not ddsp:
            raise UnsupportedConditioning("stems are made by 'ddsp:NAME' synths (each voice played apart)")
        output = source if isinstance(source, MidiOutput) else MidiOutput.load(source)
        if ddsp:
            provenance = self._render_ddsp_to(output, synth, 0 if seed is None else seed, options, target, stems_dir)
        else:
            from cadenza.render.fluidsynth import render_output_to

            provenance = render_output_to(output, target, self._fluidsynth_options(synth, soundfont, options))
        if sidecar:
            provenance.write_sidecar(target)
        return target

    def _fluidsynth_options(self, synth: str, soundfont: str | None, options: dict):
        from cadenza.render.fluidsynth import RenderOptions

        return _synth_options(RenderOptions, synth, {"soundfont": soundfont, "max_duration_s": self._max_duration_s,
                                                     **options})

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

    @staticmethod
    def _check_synth(synth: str, soundfont: str | None, seed: int | None) -> None:
        ddsp = synth.startswith("ddsp:")
        if not ddsp and synth != "fluidsynth":
            raise UnsupportedConditioning(f"synth {synth!r} is not available; use 'fluidsynth' or 'ddsp:NAME' "
                                          f"(e.g. ddsp:violin)")
        if ddsp and soundfont is not None:
            raise UnsupportedConditioning(f"a SoundFont is for synth 'fluidsynth'; {synth!r} plays its learned timbre")
        if not ddsp and seed is not None:
            raise UnsupportedConditioning("FluidSynth plays the same every time: a seed is for 'ddsp:NAME' synths")

    def render_batch(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, synth: str = "fluidsynth",
                     soundfont: str | None = None, fmt: str = "wav", workers: int = 2, progress: bool = True,
                     force: bool = False, runner: Runner | None = None, **options) -> BatchSummary:
        """Render every MIDI file under ``input_dir`` into the same tree under ``output_dir`` as ``fmt``
        files, with a progress bar, resume (finished files are skipped unless ``force``) and a JSONL
        report of every file; a broken file is reported, never stops the batch. ``options`` as for
        ``render`` with FluidSynth. ``runner`` runs the renders (default: ``workers`` local processes,
        each keeping one synth loaded). See ``render.batch.render_batch``.

        Raises:
            UnsupportedConditioning: a synth other than 'fluidsynth' (render those files one by one).
            InvalidConditioning: ``input_dir`` is not a folder, or ``fmt`` is unknown.
            MissingDependency: FluidSynth or a SoundFont is not installed.
        """
        if synth != "fluidsynth":
            raise UnsupportedConditioning(f"folders render with synth 'fluidsynth'; {synth!r} renders one MIDI file "
                                          "at a time (give a .mid file)")
        from cadenza.render.batch import render_batch

        render_options = self._fluidsynth_options(synth, soundfont, options)
        return render_batch(input_dir, output_dir, options=render_options, fmt=fmt, workers=workers,
                            progress=progress, force=force, runner=runner)

    def _render_ddsp(self, output: MidiOutput, synth: str, seed: int, options: dict) -> AudioOutput:
        """``output`` played by the DDSP instrument ``synth``: the mix, with one stem per voice."""
        from cadenza.generators.ddsp.midi import NoteRenderOptions

        from cadenza.fileio.limits import WHOLE_PIECE_MAX_S

        key, spec = self._ddsp_spec(synth)
        note_options = _synth_options(NoteRenderOptions, synth, {"max_duration_s": self._max_duration_s, **options})
        if output.duration_s + note_options.tail_s > WHOLE_PIECE_MAX_S:
            return self._ddsp_streamed_in_memory(output, synth, seed, options)
        generator = self.load(key)
        with self._working(key):
            rendered = generator.render_midi(output.score, note_options, seed=seed)
        base = asdict(output.provenance)
        notes = _ddsp_notes(output, spec, note_options, seed, rendered.loudness)
        stems = tuple(AudioOutput(stem, rendered.sample_rate, Provenance(**{**base, "notes": {**notes, "voice": name}}))
                      for stem, name in zip(rendered.stems, rendered.voice_names, strict=True))
        return AudioOutput(rendered.mix, rendered.sample_rate,
                           Provenance(**{**base, "notes": {**notes, "voices": rendered.voice_names}}), stems=stems)

    def _ddsp_streamed_in_memory(self, output: MidiOutput, synth: str, seed: int, options: dict) -> AudioOutput:
        """A long piece played as ``_render_ddsp_to`` streams it (so a file made either way, and its remake,
        are the same bits), through temporary float WAV files: the mix and one stem per voice."""
        import tempfile

        from cadenza.fileio.audio import read_audio

        with tempfile.TemporaryDirectory(prefix="cadenza-ddsp-") as folder:
            made = self._render_ddsp_to(output, synth, seed, options, Path(folder) / "mix.wav", folder, subtype="FLOAT")
            mix, rate = read_audio(Path(folder) / "mix.wav")
            parts = [read_audio(Path(folder) / name)[0] for name in made.notes["stem_files"]]
        notes = {k: v for k, v in made.notes.items() if k not in ("stem_files", "voices")}
        stems = tuple(AudioOutput(part, rate, replace(made, notes={**notes, "voice": voice}))
                      for part, voice in zip(parts, made.notes["voices"], strict=True))
        return AudioOutput(mix, rate, replace(made, notes={**notes, "voices": made.notes["voices"]}), stems=stems)

    def _render_ddsp_to(self, output: MidiOutput, synth: str, seed: int, options: dict, target: Path,
                        stems_dir: str | os.PathLike | None, subtype: str | None = None) -> Provenance:
        """``output`` played by the DDSP instrument ``synth`` into ``target`` (and each voice into
        ``stems_dir``): whole up to ``WHOLE_PIECE_MAX_S``, as ``render`` plays it; longer pieces a chunk at a
        time (bounded memory). Returns the provenance for the sidecar (``notes["stem_files"]``: the stems'
        names)."""
        from cadenza.fileio import check_output_folder
        from cadenza.fileio.audio_stream import check_capacity, write_stream
        from cadenza.fileio.limits import WHOLE_PIECE_MAX_S
        from cadenza.generators.ddsp.midi import NoteRenderOptions

        if stems_dir is not None:
            check_output_folder(stems_dir)
        key, spec = self._ddsp_spec(synth)
        note_options = _synth_options(NoteRenderOptions, synth, {"max_duration_s": self._max_duration_s, **options})
        if output.duration_s + note_options.tail_s <= WHOLE_PIECE_MAX_S:
            audio = self._render_ddsp(output, synth, seed, options)
            audio.save(target, sidecar=False)
            names = [stem.save(Path(stems_dir) / _stem_name(i, stem.provenance.notes["voice"], target.suffix)).name
                     for i, stem in enumerate(audio.stems)] if stems_dir else []
            return replace(audio.provenance, notes={**audio.provenance.notes, **({"stem_files": names} if names else {})})
        generator = self.load(key)
        with self._working(key):
            stream = generator.stream_midi(output.score, note_options, seed=seed)
            check_capacity(target, int(stream.frames * stream.sample_rate / generator.instrument.config.sample_rate), 1,
                           stream.sample_rate, subtype)
            names = [_stem_name(i, name, target.suffix) for i, name in enumerate(stream.voice_names)] if stems_dir else []
            parts = [(Path(stems_dir) / name, slice(1 + i, 2 + i)) for i, name in enumerate(names)]
            loudness = write_stream(target, stream.blocks, stream.sample_rate, 1, note_options.normalize_lufs, subtype,
                                    parts=parts, guard_peaks=True)
        notes = _ddsp_notes(output, spec, note_options, seed, None if loudness is None else loudness.to_dict())
        base = asdict(output.provenance)
        for name, voice in zip(names, stream.voice_names):  # each stem's sidecar, as AudioOutput.save writes it
            Provenance(**{**base, "notes": {**notes, "voice": voice}}).write_sidecar(Path(stems_dir) / name)
        notes |= {"voices": stream.voice_names, **({"stem_files": names} if names else {})}
        return Provenance(**{**base, "notes": notes})

    def _ddsp_spec(self, instrument: str) -> tuple[str, CheckpointSpec]:
        """``(key, spec)`` of the ddsp model ``instrument``: 'ddsp-violin', a short name 'violin' /
        'ddsp:violin', or a checkpoint folder's path; ``key`` is what `load` takes."""
        name = instrument.removeprefix("ddsp:")
        prefix = family("ddsp").name_prefix
        if name not in self.specs() and f"{prefix}{name}" in self.specs():
            name = f"{prefix}{name}"
        spec = self.spec(name)
        if spec.family != "ddsp":
            raise UnsupportedConditioning(f"model {name!r} is a {spec.family} model; this needs a ddsp instrument")
        return name, spec

    def transcribe(self, path: str | os.PathLike, options: TranscribeOptions | None = None,
                   **option_values) -> MidiOutput:
        """The notes of a recording (WAV, FLAC, OGG, MP3, AIFF, M4A) as MIDI, with a provenance sidecar.

        How, as keywords (all optional) or as one ``analysis.TranscribeOptions``: ``mode`` 'poly' (default:
        any number of notes at once, Basic Pitch) or 'mono' (one voice or instrument: f0 from torchfcpe);
        ``onset_threshold``, ``frame_threshold``, ``min_note_ms``, ``pitch_range=(low, high)``,
        ``pitch_bends``; ``quantize=True`` snaps notes to a ``grid`` ('1/16') in the detected (or given
        ``tempo_bpm`` / ``time_signature``) tempo and meter. The provenance's notes hold the tempo, meter,
        key, note count and, when no notes were found or the input is clipped, a ``message``. Any length:
        the file is read and transcribed in chunks.

        Raises:
            UnsupportedConditioning: an unknown option, or options given both ways.
            InvalidConditioning: an option out of range.
            CorruptInput: not a readable audio file, or NaN samples (InputNotFound: no such file).
            MissingDependency: onnxruntime/basic-pitch (poly) or torchfcpe (mono) is not installed.
        """
        from cadenza.analysis import TranscribeOptions
        from cadenza.analysis.output import transcription_output

        if options is not None and option_values:
            raise UnsupportedConditioning("give the transcription options as keywords or as one options object, not both")
        if options is None:
            options = TranscribeOptions.from_dict(option_values)
        self._check_length(path, "the recording to transcribe")
        transcriber = self.transcriber()
        result = transcriber.transcribe_file(path, options)
        return transcription_output(result, path, options, transcriber.model_info(options.mode))

    def transcriber(self) -> Transcriber:
        """This studio's `analysis.Transcriber` (its models load on first use and stay loaded), on
        ``threads`` CPU threads (default 1)."""
        with self._cache_lock:
            if self._transcriber is None:
                from cadenza.analysis import Transcriber

                self._transcriber = Transcriber(threads=self._threads or 1, device=self._device or "cpu")
            return self._transcriber

    def transcribe_batch(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                         options: TranscribeOptions | None = None, *, workers: int = 1, progress: bool = True,
                         force: bool = False, runner: Runner | None = None, **option_values) -> BatchSummary:
        """Transcribe every audio file under ``input_dir`` into the same tree of .mid files (each with its
        sidecar) under ``output_dir``: resume (finished files are skipped unless ``force``), a progress
        bar, and a JSONL report (``transcribe_report.jsonl``) of every file; a broken file is reported and
        never stops the batch. ``options`` as for ``transcribe``. ``workers`` processes (each loads the
        models once) or another ``runner``. See ``analysis.batch.transcribe_batch``.
        """
        from cadenza.analysis import TranscribeOptions
        from cadenza.analysis.batch import transcribe_batch

        if options is not None and option_values:
            raise UnsupportedConditioning("give the transcription options as keywords or as one options object, not both")
        if options is None:
            options = TranscribeOptions.from_dict(option_values)
        return transcribe_batch(input_dir, output_dir, options=options, workers=workers, progress=progress,
                                force=force, runner=runner, threads=self._threads or 1)


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

    def remake(self, sidecar: str | os.PathLike, out: str | os.PathLike | None = None) -> MidiOutput | AudioOutput:
        """Make an output again from its sidecar (``x.wav.json``, or the output's own path): the same model
        (checked by sha256), request, seed, sample, thread count and rendering, so the file comes out the
        same, bit for bit, on the same kind of machine and device. With ``out`` it is also saved there
        (with a new sidecar); the output is returned either way.

        Raises:
            InputNotFound: the sidecar or an input file it names (prompt, melody, recording, MIDI,
                SoundFont) is missing.
            CorruptInput: not a sidecar, or an input file changed since (its sha256 differs).
            CheckpointError: the model is not installed, or its weights are not the ones recorded.
        """
        output = self.make(read_sidecar(sidecar))
        if out is not None:
            output.save(out)
        return output

    def make(self, plan: RemakePlan) -> MidiOutput | AudioOutput:
        """Carry out ``plan`` (a sidecar read by ``sidecars.read_sidecar``, or a batch job): generate,
        transfer, transcribe and/or render as it says, on its recorded thread count."""
        self._remaking.threads = plan.threads
        try:
            return self._remade(plan)
        finally:
            self._remaking.threads = None

    def _remade(self, plan: RemakePlan) -> MidiOutput | AudioOutput:
        if plan.transcribe_options is not None:
            output: MidiOutput | AudioOutput = self.transcribe(plan.audio, **plan.transcribe_options)
        elif plan.model is None:
            output = MidiOutput.load(plan.midi)
        else:
            spec = self.spec(plan.model)
            _same_weights(plan.model, spec.sha256, plan.checkpoint_sha256)
            if plan.transfer_options is not None:
                output = self.transfer(plan.conditioning.source_audio, plan.model, sampling=plan.sampling,
                                       **plan.transfer_options)
            else:
                made = self.generate(plan.model, plan.conditioning, plan.sampling)
                output = next(o for o in made if o.provenance.sample_index == plan.sample_index)
        step = plan.render
        if step is None:
            return output
        options = dict(step.options)
        if step.synth == "fluidsynth":
            soundfont = options.pop("soundfont", None)
            if soundfont is None and step.soundfont is not None:
                soundfont = _same_soundfont(step.soundfont)
            return self.render(output, "fluidsynth", soundfont, **options)
        _same_weights(step.synth, self._ddsp_spec(step.synth)[1].sha256, step.model_sha256)
        audio = self.render(output, step.synth, seed=step.seed, **options)
        if plan.voice is None:
            return audio
        return next(s for s in audio.stems if s.provenance.notes.get("voice") == plan.voice)

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


def _ddsp_notes(output: MidiOutput, spec: CheckpointSpec, note_options, seed: int, loudness: dict | None) -> dict:
    """What a DDSP rendering adds to its score's provenance notes."""
    return {**output.provenance.notes, "rendered_with": f"ddsp:{spec.name}", "ddsp_sha256": spec.sha256,
            "render_options": note_options.to_dict(), "render_seed": seed,
            **({"loudness": loudness} if loudness is not None else {})}


def _stem_name(index: int, voice: str, suffix: str) -> str:
    """A stem's file name: ``03-violin-voice2.wav`` (characters a file name may not hold become ``_``)."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in voice)
    return f"{index + 1:02d}-{name}{suffix or '.wav'}"


def _same_weights(model: str, installed: str, recorded: str | None) -> None:
    if recorded and installed != recorded:
        raise CheckpointError(f"model {model!r} is not the one this output was made with (its weights have sha256 "
                              f"{installed[:12]}..., the sidecar records {recorded[:12]}...)")


def _same_soundfont(recorded: dict) -> str:
    """The recorded SoundFont's path, once it is there with the recorded sha256."""
    from cadenza.errors import InputNotFound
    from cadenza.fileio.hashes import cached_sha256

    path = Path(str(recorded.get("path")))
    if not path.is_file():
        raise InputNotFound(f"the SoundFont {path} this output was played with is missing")
    if cached_sha256(path) != recorded.get("sha256"):
        raise CheckpointError(f"the SoundFont {path} changed since this output was played (its sha256 differs)")
    return str(path)


def _known_family(spec: CheckpointSpec) -> CheckpointSpec:
    """``spec``, or CheckpointError saying its family is not one this installation has."""
    try:
        family(spec.family)
    except CheckpointError as exc:
        raise CheckpointError(f"{spec.directory}: {exc}") from None
    return spec


def _synth_options(cls: type, synth: str, options: dict):
    """``cls(**options)``, or a message naming the options ``synth`` does have."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UnsupportedConditioning(f"synth {synth!r} has no option {', '.join(map(repr, unknown))}; "
                                      f"its options: {', '.join(sorted(known))}")
    return cls(**options)
