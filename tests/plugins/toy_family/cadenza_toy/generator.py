"""A real, trivial generator: a scale in the requested key, ``bars`` bars of eighth notes in 4/4.

``style`` is the direction ('up', 'down', 'up-down'); a ``temperature`` above 1 (the default) lets the
line wander (a random step of one or two scale degrees, more often the hotter), seeded per call.
"""

from __future__ import annotations

import json
import random

import symusic

from cadenza import (Callbacks, Cancelled, Capability, Conditioning, InvalidConditioning, MidiOutput, Provenance,
                     Sampling)
from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import require_supported
from cadenza.music.theory import parse_key
from cadenza_toy.family import DIRECTIONS

CAPABILITIES = frozenset({Capability.BARS, Capability.KEY, Capability.STYLE, Capability.TEMPO})
TPQ = 480


class ScaleGenerator:
    def __init__(self, spec: CheckpointSpec, settings: dict) -> None:
        self.spec = spec
        self.settings = settings

    @classmethod
    def from_checkpoint(cls, spec: CheckpointSpec, device: str | None = None) -> ScaleGenerator:
        spec.verify()
        return cls(spec, json.loads(spec.path("weights").read_text()))

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def generate(self, conditioning: Conditioning, sampling: Sampling = Sampling(),
                 callbacks: Callbacks = Callbacks()) -> list[MidiOutput]:
        require_supported(conditioning, CAPABILITIES, self.spec.name)
        direction = conditioning.style or "up"
        if direction not in DIRECTIONS:
            raise InvalidConditioning(f"unknown style {direction!r}; the toy plays: {', '.join(DIRECTIONS)}")
        seed = sampling.seed if sampling.seed is not None else random.SystemRandom().randrange(2**31)
        key = parse_key(conditioning.key or "C major")
        bars = conditioning.bars or self.settings["bars"]
        tempo = conditioning.tempo_bpm or self.settings["tempo_bpm"]
        rng = random.Random(seed)
        outputs = []
        for index in range(sampling.num_samples):
            score = symusic.Score(TPQ)
            score.tempos.append(symusic.Tempo(0, qpm=tempo))
            score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
            track = symusic.Track(program=self.settings["program"])
            degrees = self._degrees(direction, bars * 8, sampling.temperature, rng)
            for bar in range(bars):
                if callbacks.should_cancel is not None and callbacks.should_cancel():
                    raise Cancelled(f"{self.spec.name}: cancelled")
                for step in range(8):
                    pitch = self._pitch(key, degrees[bar * 8 + step])
                    track.notes.append(symusic.Note(bar * 4 * TPQ + step * TPQ // 2, TPQ // 2, pitch,
                                                    self.settings["velocity"]))
                if callbacks.progress is not None:
                    callbacks.progress(bar + 1, bars)
            score.tracks.append(track)
            provenance = Provenance(model=self.spec.name, family="toy", checkpoint_sha256=self.spec.sha256,
                                    conditioning=conditioning.to_dict(), sampling=sampling.with_seed(seed).to_dict(),
                                    seed=seed, sample_index=index,
                                    notes={"key": key.name, "bars": bars, "tempo_bpm": tempo, "style": direction})
            outputs.append(MidiOutput(score, provenance))
        return outputs

    @staticmethod
    def _degrees(direction: str, count: int, temperature: float, rng: random.Random) -> list[int]:
        step = -1 if direction == "down" else 1
        degree, out = 0, []
        for i in range(count):
            out.append(degree)
            if direction == "up-down" and i % 8 == 7:
                step = -step
            wander = rng.random() < (temperature - 1) / 2  # drawn always, so the stream never shifts
            degree += rng.choice((-2, -1, 1, 2)) if wander else step
        return out

    def _pitch(self, key, degree: int) -> int:
        scale = key.scale_pitch_classes()[:7]
        octave, position = divmod(degree, len(scale))
        base = 12 * (self.settings["octave"] + 1) + key.tonic
        return max(0, min(127, base + (scale[position] - key.tonic) % 12 + 12 * octave))
