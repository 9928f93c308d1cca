"""`RemakingMixin`: the `Studio` methods that make an output again from its sidecar (or a batch job's
plan), checking that the model's weights and the SoundFont are the ones recorded."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cadenza.errors import CheckpointError
from cadenza.outputs import AudioOutput, MidiOutput
from cadenza.sidecars import RemakePlan, read_sidecar


class RemakingMixin:
    """Remaking for `Studio`, which gives it ``_remaking`` (a ``threading.local``: the remake's thread
    count, read by ``_working``) and the methods ``spec``, ``generate``, ``transfer``, ``transcribe``,
    ``render`` and ``_ddsp_spec``."""

    _remaking: threading.local

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

