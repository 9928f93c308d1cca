"""`Studio`: the one facade the Python API, the web app and the CLI all call.

It finds checkpoints, keeps an LRU cache of loaded generators (one lock per model, so two users of
the web app never drive one model at once), validates requests against a model's capabilities, and
renders or batch-renders results.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cadenza.checkpoints import CheckpointSpec, discover, read_manifest
from cadenza.checkpoints import model_dirs as default_model_dirs
from cadenza.conditioning import Conditioning, Sampling, require_sampling_supported, require_supported
from cadenza.errors import CheckpointError, UnsupportedConditioning
from cadenza.generators.base import Callbacks, Generator, load_generator
from cadenza.outputs import AudioOutput, MidiOutput, Provenance


@dataclass(frozen=True)
class ModelInfo:
    """What ``cadenza models`` lists."""

    name: str
    family: str
    output: str
    capabilities: tuple[str, ...]
    license: str
    description: str
    path: str
    sampling: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "output": self.output,
                "capabilities": list(self.capabilities), "sampling": list(self.sampling), "license": self.license,
                "description": self.description, "path": self.path}


class Studio:
    """Find, load and run models.

    ``model_dirs``: extra folders holding ``<name>/manifest.json`` (searched before ``$CADENZA_MODELS``,
    the repository's ``checkpoints/`` and ``~/.cache/cadenza``). ``cache_size``: loaded models kept.
    """

    def __init__(self, model_dirs: list[str | os.PathLike] | None = None, cache_size: int = 2,
                 device: str | None = None) -> None:
        if device is not None:
            from cadenza.engine.device import pick_device

            device = str(pick_device(device))  # an absent GPU or a bad name fails here, not at the first load
        self._dirs = default_model_dirs(model_dirs)
        self._cache_size = max(1, cache_size)
        self._device = device
        self._loaded: OrderedDict[str, Generator] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}

    # ---- discovery ------------------------------------------------------------------------------
    def specs(self) -> dict[str, CheckpointSpec]:
        return discover(self._dirs)

    def models(self) -> list[ModelInfo]:
        """Every installed model, sorted by family then name."""
        infos = [ModelInfo(s.name, s.family, s.output, tuple(sorted(c.value for c in s.capabilities)), s.license,
                           s.description, str(s.directory), tuple(sorted(s.sampling))) for s in self.specs().values()]
        return sorted(infos, key=lambda m: (m.family, m.name))

    def spec(self, name: str) -> CheckpointSpec:
        specs = self.specs()
        if name in specs:
            return specs[name]
        for root in self._dirs:  # a folder that exists but did not parse: say why
            if (root / name / "manifest.json").exists():
                return read_manifest(root / name)
        if Path(name, "manifest.json").exists():  # a path to a checkpoint folder
            return read_manifest(name)
        from cadenza.generators.codec_lm.release_dir import find_release, spec_for_release

        release = find_release(name)  # a bare audiocraft MusicGen folder, HF-cache snapshot, or cached hub id
        if release is not None:
            return spec_for_release(release, name=name)
        from cadenza.generators.diffusion.pipeline_dir import find_pipeline, spec_for_folder

        pipeline = find_pipeline(name)  # a bare diffusers folder, HF-cache snapshot, or cached hub id
        if pipeline is not None:
            return spec_for_folder(pipeline, name=name)
        known = ", ".join(sorted(specs)) or "none installed"
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

    # ---- work -----------------------------------------------------------------------------------
    def generate(self, model: str, conditioning: Conditioning = Conditioning(), sampling: Sampling = Sampling(),
                 callbacks: Callbacks = Callbacks()) -> list[MidiOutput | AudioOutput]:
        """Make ``sampling.num_samples`` outputs with ``model``; raises UnsupportedConditioning for
        any set field the model cannot honour."""
        spec = self.spec(model)
        require_supported(conditioning, spec.capabilities, spec.name)
        require_sampling_supported(sampling, spec.sampling, spec.name)
        generator = self.load(model)  # by what was asked for: a name here, or a checkpoint folder's path
        with self._lock(model):
            return generator.generate(conditioning, sampling, callbacks)

    def render(self, output: MidiOutput | AudioOutput, synth: str = "fluidsynth", soundfont: str | None = None,
               **options) -> AudioOutput:
        """Audio for ``output``: MIDI is rendered with ``synth``: 'fluidsynth' (``options``: RenderOptions
        fields) or 'ddsp:NAME', a DDSP instrument such as 'ddsp:violin' (``options``: NoteRenderOptions
        fields; polyphony is split into voices, see ``render_voices``); audio passes through."""
        if isinstance(output, AudioOutput):
            return output
        if synth.startswith("ddsp:"):
            if soundfont is not None:
                raise UnsupportedConditioning(f"a SoundFont is for synth 'fluidsynth'; {synth!r} plays its learned timbre")
            return self.render_voices(output, synth, **options)[0]
        if synth != "fluidsynth":
            raise UnsupportedConditioning(f"synth {synth!r} is not available; use 'fluidsynth' or 'ddsp:NAME' "
                                          f"(e.g. ddsp:violin)")
        from cadenza.render.fluidsynth import RenderOptions

        return output.render(RenderOptions(soundfont=soundfont, **options))

    def render_batch(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, fmt: str = "wav",
                     workers: int = 2, soundfont: str | None = None, progress: bool = True, force: bool = False,
                     **options):
        """Render every MIDI file under ``input_dir`` into ``output_dir``; see ``render.batch.render_batch``."""
        from cadenza.render.batch import render_batch
        from cadenza.render.fluidsynth import RenderOptions

        return render_batch(input_dir, output_dir, options=RenderOptions(soundfont=soundfont, **options), fmt=fmt,
                            workers=workers, progress=progress, force=force)

    def _ddsp_spec(self, instrument: str) -> tuple[str, CheckpointSpec]:
        """``(key, spec)`` of the ddsp model ``instrument``: 'ddsp-violin', a short name 'violin' /
        'ddsp:violin', or a checkpoint folder's path; ``key`` is what `load` takes."""
        name = instrument.removeprefix("ddsp:")
        if name not in self.specs() and f"ddsp-{name}" in self.specs():
            name = f"ddsp-{name}"
        spec = self.spec(name)
        if spec.family != "ddsp":
            raise UnsupportedConditioning(f"model {name!r} is a {spec.family} model; this needs a ddsp instrument")
        return name, spec

    def transfer(self, source_audio: str | os.PathLike, instrument: str, options=None, sampling: Sampling = Sampling(),
                 callbacks: Callbacks = Callbacks()) -> AudioOutput:
        """Timbre transfer of a monophonic recording onto a DDSP instrument ('ddsp-violin' or 'violin');
        ``options``: a ``generators.ddsp.transfer.TransferOptions`` (pitch/loudness shift, autotune, ...)."""
        key, spec = self._ddsp_spec(instrument)
        conditioning = Conditioning(source_audio=os.fspath(source_audio))
        require_supported(conditioning, spec.capabilities, spec.name)
        require_sampling_supported(sampling, spec.sampling, spec.name)
        generator = self.load(key)
        with self._lock(key):
            return generator.generate(conditioning, sampling, callbacks, options=options)[0]

    def render_voices(self, output: MidiOutput, synth: str, seed: int = 0, **options) -> tuple[AudioOutput, list[AudioOutput]]:
        """MIDI played by a DDSP instrument (``synth`` 'ddsp:NAME'): ``(mix, one stem per voice)``;
        ``options`` are ``generators.ddsp.midi.NoteRenderOptions`` fields."""
        from dataclasses import asdict

        from cadenza.generators.ddsp.midi import NoteRenderOptions

        key, spec = self._ddsp_spec(synth)
        note_options = NoteRenderOptions(**options)
        generator = self.load(key)
        with self._lock(key):
            rendered = generator.render_midi(output.score, note_options, seed=seed)
        base = asdict(output.provenance)
        notes = {**output.provenance.notes, "rendered_with": f"ddsp:{spec.name}", "ddsp_sha256": spec.sha256,
                 "render_options": note_options.to_dict(), "render_seed": seed}
        mix = AudioOutput(rendered.mix, rendered.sample_rate, Provenance(**{**base, "notes": {**notes, "voices": rendered.voice_names}}))
        stems = [AudioOutput(stem, rendered.sample_rate, Provenance(**{**base, "notes": {**notes, "voice": name}}))
                 for stem, name in zip(rendered.stems, rendered.voice_names, strict=True)]
        return mix, stems
