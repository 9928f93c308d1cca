"""`DDSPGenerator`: a DDSP instrument behind the Generator contract (``source_audio`` -> timbre transfer)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling, require_supported
from cadenza.engine.device import DevicePolicy
from cadenza.errors import InvalidConditioning
from cadenza.generators.base import Callbacks
from cadenza.generators.ddsp.export import load_instrument
from cadenza.generators.ddsp.model import Instrument
from cadenza.generators.ddsp.transfer import TransferOptions, raise_if, transfer_audio
from cadenza.outputs import AudioOutput, Provenance


class DDSPGenerator:
    """One instrument. ``generate(Conditioning(source_audio=...))`` transfers the recording's pitch and
    dynamics onto it; ``options`` (a `TransferOptions`) says how."""

    def __init__(self, spec: CheckpointSpec, instrument: Instrument, policy: DevicePolicy) -> None:
        self.spec = spec
        self.instrument = instrument
        self.policy = policy
        self._tracker = None

    @classmethod
    def from_checkpoint(cls, spec: CheckpointSpec, device: str | None = None) -> DDSPGenerator:
        # A GRU over one frame at a time and a few small FFTs: the CPU is the right place for this size,
        # and one thread the fastest under load (see benchmarks/ddsp.py); CUDA only when asked for.
        policy = DevicePolicy(prefer=device or "cpu", threads=1 if device in (None, "cpu") else None)
        return cls(spec, load_instrument(spec, policy.device()), policy)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.spec.capabilities

    @property
    def tracker(self):
        """The pitch tracker, loaded at first use (transfer needs it; MIDI rendering does not)."""
        if self._tracker is None:
            from cadenza.generators.ddsp.features import default_tracker

            self._tracker = default_tracker()
        return self._tracker

    def generate(self, conditioning: Conditioning, sampling: Sampling = Sampling(), callbacks: Callbacks = Callbacks(),
                 options: TransferOptions | None = None) -> list[AudioOutput]:
        from cadenza.render.audio_io import read_audio

        require_supported(conditioning, self.capabilities, self.spec.name)
        if conditioning.source_audio is None:
            raise InvalidConditioning(f"model {self.spec.name!r} transfers timbre: set source_audio to a recording")
        options = options or TransferOptions()
        samples, sr = read_audio(conditioning.source_audio, mono=True)
        with self._threads():
            return self._transfer(conditioning, sampling, callbacks, options, samples, sr)

    def render_midi(self, score, options=None, seed: int = 0, callbacks: Callbacks = Callbacks()):
        """Play a ``symusic.Score`` (any number of voices) on this instrument; see ``midi.render_score``."""
        from cadenza.generators.ddsp.midi import NoteRenderOptions, render_score

        with self._threads():
            return render_score(self.instrument, score, options or NoteRenderOptions(), seed=seed,
                                should_stop=raise_if(callbacks.should_cancel), progress=callbacks.progress)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """The policy's CPU threads for the duration of a call (torch's setting is process-wide)."""
        before = torch.get_num_threads()
        self.policy.apply_threads()
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _transfer(self, conditioning: Conditioning, sampling: Sampling, callbacks: Callbacks,
                  options: TransferOptions, samples: np.ndarray, sr: int) -> list[AudioOutput]:
        outputs = []
        for index in range(sampling.num_samples):
            seed = sampling.seed + index if sampling.seed is not None else random.randrange(2**31)
            started = time.perf_counter()
            audio, controls = transfer_audio(self.instrument, samples[0], sr, self.tracker, options, seed,
                                             should_stop=raise_if(callbacks.should_cancel), progress=callbacks.progress)
            seconds = time.perf_counter() - started
            notes = {"transfer_options": options.to_dict(), "octave_shift": controls.octave_shift,
                     "loudness_offset_db": round(controls.loudness_offset_db, 2),
                     "voiced_fraction": round(controls.voiced_fraction, 3),
                     "source_seconds": round(samples.shape[1] / sr, 3)}
            provenance = Provenance(model=self.spec.name, family="ddsp", checkpoint_sha256=self.spec.sha256,
                                    conditioning=conditioning.to_dict(), sampling=asdict(sampling), seed=seed,
                                    sample_index=index, timings_s={"transfer": round(seconds, 3)}, notes=notes)
            outputs.append(AudioOutput(audio[None, :].astype(np.float32), self.instrument.config.sample_rate, provenance))
        return outputs
