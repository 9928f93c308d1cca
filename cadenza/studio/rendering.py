"""`RenderingMixin`: the `Studio` methods that turn MIDI into sound, with FluidSynth (a SoundFont) or a
learned DDSP instrument: one piece in memory, one piece streamed to a file, or a folder of MIDI files."""

from __future__ import annotations

import os
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import InvalidConditioning, UnsupportedConditioning
from cadenza.generators.families import family
from cadenza.outputs import AudioOutput, MidiOutput, Provenance

if TYPE_CHECKING:
    from cadenza.render.batch import BatchSummary
    from cadenza.runners import Runner


class RenderingMixin:
    """Rendering for `Studio`, which gives it ``_max_duration_s`` and the methods ``spec``, ``specs``,
    ``load`` and ``_working``."""

    _max_duration_s: float | None

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


def _ddsp_notes(output: MidiOutput, spec: CheckpointSpec, note_options, seed: int, loudness: dict | None) -> dict:
    """What a DDSP rendering adds to its score's provenance notes."""
    return {**output.provenance.notes, "rendered_with": f"ddsp:{spec.name}", "ddsp_sha256": spec.sha256,
            "render_options": note_options.to_dict(), "render_seed": seed,
            **({"loudness": loudness} if loudness is not None else {})}


def _stem_name(index: int, voice: str, suffix: str) -> str:
    """A stem's file name: ``03-violin-voice2.wav`` (characters a file name may not hold become ``_``)."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in voice)
    return f"{index + 1:02d}-{name}{suffix or '.wav'}"


def _synth_options(cls: type, synth: str, options: dict):
    """``cls(**options)``, or a message naming the options ``synth`` does have."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UnsupportedConditioning(f"synth {synth!r} has no option {', '.join(map(repr, unknown))}; "
                                      f"its options: {', '.join(sorted(known))}")
    return cls(**options)
