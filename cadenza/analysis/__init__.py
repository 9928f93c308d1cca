"""The ear: audio -> notes (transcription), key and tempo, and note-level scores.

Used by ``Studio.transcribe``, by audio prompts of symbolic models (hum to tune) and by the benchmarks.
Everything here takes plain arrays and returns plain dataclasses; nothing is loaded at import.

Transcribe::

    from cadenza.analysis import TranscribeOptions, Transcriber, transcribe

    result = transcribe(samples, 44100, TranscribeOptions(mode="poly"))   # samples [T] or [C, T] float32
    result.notes          # [N, 4] float64: onset_s, offset_s, midi_pitch, velocity (1-127), sorted
    result.tempo_bpm, result.time_signature, result.key, result.message
    result.to_score()     # symusic.Score (MIDI); quantised when TranscribeOptions(quantize=True)

    ear = Transcriber(threads=1)                        # keeps the models loaded between calls
    ear.transcribe_file("take.flac", TranscribeOptions(mode="mono", quantize=True))

``mode="poly"`` runs Basic Pitch's ONNX model (from the basic-pitch wheel, through onnxruntime) with its
onset/frame thresholds, minimum note length, pitch range and optional pitch bends; ``mode="mono"``
segments the f0 of torchfcpe (the DDSP family's tracker) into notes, for one voice or instrument. Input
of any length is processed in chunks (``TranscribeOptions.chunk_s``) in bounded memory. Silence, noise and
too-short input give an empty transcription with a ``message``; NaN samples raise ``CorruptInput``.

Compare generated audio with the score it should play (note F1, mir_eval, onsets within 50 ms)::

    from cadenza.analysis import note_f1, score_notes
    heard = transcribe(audio.samples, audio.sample_rate)
    note_f1(score_notes(midi.score), heard.notes)                 # {"precision", "recall", "f1", ...}
    note_f1(score_notes(midi.score), heard.notes, offsets=True)   # offsets within 20 % of the length too

Key and tempo straight from audio: ``estimate_key_from_audio(samples, sr) -> Key | None`` (chroma +
Krumhansl-Schmuckler) and ``estimate_tempo(samples, sr) -> float`` (BPM, librosa's beat tracker).
"""

from cadenza.analysis.evaluate import note_f1
from cadenza.analysis.key_tempo import estimate_key_from_audio, estimate_tempo, key_from_notes
from cadenza.analysis.options import TranscribeOptions
from cadenza.analysis.quantize import Grid
from cadenza.analysis.transcriber import Transcriber, transcribe, transcribe_file
from cadenza.analysis.transcription import Note, Transcription, score_notes

__all__ = ["Grid", "Note", "TranscribeOptions", "Transcriber", "Transcription", "estimate_key_from_audio",
           "estimate_tempo", "key_from_notes", "note_f1", "score_notes", "transcribe", "transcribe_file"]
