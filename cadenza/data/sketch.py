"""A score's sketch: the score rendered the way the audio families' training clips were.

The audio models that perform a score (``--melody``, or compose-then-perform) start from this sketch,
as a diffusion model starts from init audio (SDEdit) and a codec LM from given codes, and move away from
it as far as ``Sampling.strength`` lets them. The clips (`cadenza.data.audio_corpus`) were rendered by
FluidSynth with FluidR3_GM, mono, FluidSynth's reverb, master gain 0.5 (`clip_render_options`), then
normalised to ``CLIP_LUFS``; a solo on its instrument's General MIDI program, part music on an ensemble's
programs from the top voice down. The sketch plays the score on what the text names in the same way.

The sketch a model performs (`sketch_melody`) also marks where each note begins: an accent at every
onset of the score (``SKETCH_ACCENT_DB``, or the model's own ``sketch_accent_db`` default), decaying over
``ACCENT_DECAY_S`` (`accent_onsets`), as a player articulates. The shared codec smooths the start of a
note that follows another without a gap (a legato change of pitch barely moves its latent), so from a
plain sketch both models played the notes in time but with their starts blurred, and a listener or a
beat tracker lost the pulse: through the codec alone, 8 of 80 FluidSynth renderings lost their tempo to
the beat tracker. Accented, the sketch keeps it through the codec and the models
(`benchmarks/RESULTS.md`, "the articulated sketch"). The training clips and the benchmark's reference
are the plain rendering (``render_sketch``'s default).
"""

from __future__ import annotations

import numpy as np

#: Integrated loudness of every training clip and every sketch (LUFS).
CLIP_LUFS = -20.0
#: The accent at each note onset of the sketch a model performs (dB at the onset; 0: the plain rendering).
SKETCH_ACCENT_DB = 6.0
#: How fast the accent fades (the time constant of its exponential decay, in seconds).
ACCENT_DECAY_S = 0.06


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


def accent_onsets(audio: np.ndarray, onsets_s: np.ndarray, sample_rate: int, accent_db: float,
                  decay_s: float = ACCENT_DECAY_S) -> np.ndarray:
    """``[T]`` float32: ``audio [T]`` with a gain of ``accent_db`` at each onset of ``onsets_s [N]`` (seconds)
    that fades exponentially (time constant ``decay_s``) until the next onset takes over:
    ``gain(t) = 1 + (10^(accent_db / 20) - 1) * exp(-(t - latest onset) / decay_s)``, 1 before the first.
    ``accent_db`` 0 returns the audio unchanged.

    Raises:
        ValueError: a negative or non-finite ``accent_db``, ``decay_s`` not positive, or audio not ``[T]``.
    """
    if not np.isfinite(accent_db) or accent_db < 0:
        raise ValueError(f"accent_db must be a finite number >= 0, got {accent_db!r}")
    if not np.isfinite(decay_s) or decay_s <= 0:
        raise ValueError(f"decay_s must be > 0, got {decay_s!r}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be [T], got shape {audio.shape}")
    onsets = np.unique(np.asarray(onsets_s, dtype=np.float64).reshape(-1))
    if accent_db == 0 or onsets.size == 0:
        return audio
    t = np.arange(audio.shape[0]) / float(sample_rate)
    latest = np.searchsorted(onsets, t, side="right") - 1  # [T]: the index of the onset at or before t
    since = t - onsets[np.maximum(latest, 0)]
    fade = np.where(latest >= 0, np.exp(-np.maximum(since, 0.0) / decay_s), 0.0)
    return (audio * (1.0 + (10.0 ** (accent_db / 20.0) - 1.0) * fade)).astype(np.float32)


def render_sketch(score, programs: tuple[int, ...], sample_rate: int, seconds: float,
                  accent_db: float = 0.0) -> np.ndarray:
    """``[T]`` float32, ``T = round(seconds * sample_rate)``: ``score`` (a symusic Score) with its pitched
    tracks, top voice first, on ``programs`` (the last repeats; empty: each track's own), cut or padded with
    silence to ``seconds``, its onsets accented by ``accent_db`` (`accent_onsets`; 0, the default: as the
    training clips were) and normalised to ``CLIP_LUFS`` (a silent score stays silent)."""
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
    if accent_db:
        from cadenza.music.score_roll import score_notes

        audio = accent_onsets(audio, score_notes(score)[:, 0], sample_rate, accent_db)
    return loudness_normalize(audio[None], sample_rate, CLIP_LUFS)[0].astype(np.float32)


def sketch_melody(melody_path: str, text: str | None, sample_rate: int, seconds: float,
                  accent_db: float = SKETCH_ACCENT_DB) -> tuple[np.ndarray, str | None]:
    """``(audio [T], name)``: the sketch of the MIDI file a model performs, on what the ``text`` names
    (`sketch_programs`; nothing named: each track's own program), its onsets accented by ``accent_db``."""
    from cadenza.fileio.midi import load_midi

    name, programs = sketch_programs(text)
    return render_sketch(load_midi(melody_path), programs, sample_rate, seconds, accent_db), name
