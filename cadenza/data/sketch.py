"""A score's sketch: the score rendered the way the audio families' training clips were.

The audio models that perform a score (``--melody``, or compose-then-perform) start from this sketch,
as a diffusion model starts from init audio (SDEdit) and a codec LM from given codes, and move away from
it as far as ``Sampling.strength`` lets them. The clips (`cadenza.data.audio_corpus`) were rendered by
FluidSynth with FluidR3_GM, mono, FluidSynth's reverb, master gain 0.5 (`clip_render_options`), then
normalised to ``CLIP_LUFS``; a solo on its instrument's General MIDI program, part music on an ensemble's
programs from the top voice down. The sketch plays the score on what the text names in the same way.
"""

from __future__ import annotations

import numpy as np

#: Integrated loudness of every training clip and every sketch (LUFS).
CLIP_LUFS = -20.0


def clip_render_options(sample_rate: int, tail_s: float = 0.0):
    """How a training clip (and a sketch) is rendered at ``sample_rate`` Hz (a `RenderOptions`)."""
    from cadenza.render.fluidsynth import RenderOptions

    return RenderOptions(sample_rate=sample_rate, stereo=False, reverb=True, normalize_lufs=None, tail_s=tail_s,
                         gain=0.5)


def sketch_programs(text: str | None) -> tuple[str | None, tuple[int, ...]]:
    """``(name, programs)``: what the text names, as the training captions name it (an ensemble of
    ``ENSEMBLES``, a solo instrument of ``SOLO_INSTRUMENTS``) or any General MIDI instrument, and the
    programs of its voices from the top down (the last repeats); ``(None, ())`` when it names none."""
    from cadenza.data.audio_corpus import ENSEMBLES, SOLO_INSTRUMENTS
    from cadenza.music.instruments import GM_PROGRAMS, named_instrument

    name = named_instrument(text, set(ENSEMBLES) | set(SOLO_INSTRUMENTS) | set(GM_PROGRAMS))
    if name is None:
        return None, ()
    if name in ENSEMBLES:
        return name, tuple(ENSEMBLES[name])
    if name in SOLO_INSTRUMENTS:
        return name, (SOLO_INSTRUMENTS[name][0],)
    return name, (GM_PROGRAMS[name],)


def render_sketch(score, programs: tuple[int, ...], sample_rate: int, seconds: float) -> np.ndarray:
    """``[T]`` float32, ``T = round(seconds * sample_rate)``: ``score`` (a symusic Score) with its pitched
    tracks, top voice first, on ``programs`` (the last repeats; empty: each track's own), cut or padded with
    silence to ``seconds`` and normalised to ``CLIP_LUFS`` (a silent score stays silent)."""
    from cadenza.fileio.audio import loudness_normalize
    from cadenza.render.fluidsynth import FluidSynthRenderer

    score = score.copy()
    if programs:
        pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
        pitched.sort(key=lambda t: -float(np.mean(t.notes.numpy()["pitch"])))
        for index, track in enumerate(pitched):
            track.program = int(programs[min(index, len(programs) - 1)])
    frames = int(round(seconds * sample_rate))
    with FluidSynthRenderer(clip_render_options(sample_rate, tail_s=1.0)) as renderer:
        audio = renderer.render(score)[0, :frames]
    audio = np.pad(audio, (0, frames - audio.shape[0])).astype(np.float32)
    if float(np.sqrt(np.mean(audio ** 2))) < 1e-5:
        return audio
    return loudness_normalize(audio[None], sample_rate, CLIP_LUFS)[0].astype(np.float32)


def sketch_melody(melody_path: str, text: str | None, sample_rate: int, seconds: float) -> tuple[np.ndarray, str | None]:
    """``(audio [T], name)``: the sketch of the MIDI file a model performs, on what the ``text`` names
    (`sketch_programs`; nothing named: each track's own program)."""
    from cadenza.fileio.midi import load_midi

    name, programs = sketch_programs(text)
    return render_sketch(load_midi(melody_path), programs, sample_rate, seconds), name
