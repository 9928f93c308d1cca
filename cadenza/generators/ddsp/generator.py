"""`DDSPGenerator`: a DDSP instrument behind the Generator contract (``source_audio`` -> timbre transfer)."""

from __future__ import annotations

import time

import numpy as np

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.engine.device import DevicePolicy
from cadenza.errors import InvalidConditioning
from cadenza.generators.base import Callbacks, begin_call, cpu_threads, provenance
from cadenza.generators.ddsp.export import load_instrument
from cadenza.generators.ddsp.model import Instrument
from cadenza.generators.ddsp.transfer import TransferOptions, raise_if, transfer_audio
from cadenza.outputs import AudioOutput


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
        from cadenza.fileio.audio import read_audio

        seed = begin_call(self.spec, conditioning, sampling)
        if conditioning.source_audio is None:
            raise InvalidConditioning(f"model {self.spec.name!r} transfers timbre: set source_audio to a recording")
        options = options or TransferOptions()
        samples, sr = read_audio(conditioning.source_audio, mono=True)
        with cpu_threads(self.policy.threads):
            return self._transfer(conditioning, sampling, seed, callbacks, options, samples, sr)

    def render_midi(self, score, options=None, seed: int = 0, callbacks: Callbacks = Callbacks()):
        """Play a ``symusic.Score`` (any number of voices) on this instrument; see ``midi.render_score``."""
        from cadenza.generators.ddsp.midi import NoteRenderOptions, render_score

        with cpu_threads(self.policy.threads):
            return render_score(self.instrument, score, options or NoteRenderOptions(), seed=seed,
                                should_stop=raise_if(callbacks.should_cancel), progress=callbacks.progress)

    def stream_midi(self, score, options=None, seed: int = 0, callbacks: Callbacks = Callbacks()):
        """``render_midi`` as a `midi.ScoreStream`: the score played a chunk at a time (bounded memory), on
        this instrument's CPU threads while its blocks are drawn."""
        from cadenza.generators.ddsp.midi import NoteRenderOptions, ScoreStream, stream_score

        stream = stream_score(self.instrument, score, options or NoteRenderOptions(), seed=seed,
                              should_stop=raise_if(callbacks.should_cancel))

        def blocks():
            source = stream.blocks()
            while True:
                with cpu_threads(self.policy.threads):  # per block: never left set in the caller between blocks
                    block = next(source, None)
                if block is None:
                    return
                yield block

        return ScoreStream(stream.voice_names, stream.sample_rate, stream.frames, blocks)

    def _transfer(self, conditioning: Conditioning, sampling: Sampling, seed: int, callbacks: Callbacks,
                  options: TransferOptions, samples: np.ndarray, sr: int) -> list[AudioOutput]:
        """Sample ``index`` is seeded ``seed + index``."""
        outputs = []
        for index in range(sampling.num_samples):
            started = time.perf_counter()
            audio, controls = transfer_audio(self.instrument, samples[0], sr, self.tracker, options, seed + index,
                                             should_stop=raise_if(callbacks.should_cancel), progress=callbacks.progress)
            seconds = time.perf_counter() - started
            notes = {"transfer_options": options.to_dict(), "octave_shift": controls.octave_shift,
                     "loudness_offset_db": round(controls.loudness_offset_db, 2),
                     "voiced_fraction": round(controls.voiced_fraction, 3),
                     "source_seconds": round(samples.shape[1] / sr, 3)}
            made = provenance(self.spec, conditioning, sampling, seed=seed + index, sample_index=index, call_seed=seed,
                              timings_s={"transfer": round(seconds, 3)}, notes=notes)
            outputs.append(AudioOutput(audio[None, :].astype(np.float32), self.instrument.config.sample_rate, made))
        return outputs
