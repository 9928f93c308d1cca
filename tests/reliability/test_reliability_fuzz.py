"""Why 3 (issue 19): fuzzed MIDI and audio, and odd request fields, give a Cadenza error or a valid output.

Property tests (hypothesis) over mutated small MIDI files (byte flips, truncations, header fields such as
division 0, huge delta-times and tempos), mutated or odd audio files (WAV/FLAC headers, NaN samples, one
sample, empty) and the fields of `Conditioning`, `Sampling` and the render/transfer/transcribe options.
Whatever comes in, the only acceptable outcomes are a ``CadenzaError`` or an output that is whole: a
readable file, finite samples, the length asked for. Short limits (``max_duration_s``) keep every case
small, and a memory bound is checked per case with tracemalloc (numpy reports its buffers there).

The budget is fixed and the examples derandomized, so CI is deterministic: ``CADENZA_FUZZ_EXAMPLES``
(default 40 per property) raises it for a longer run, e.g.
``CADENZA_FUZZ_EXAMPLES=2000 pytest tests/reliability/test_reliability_fuzz.py``.
"""

from __future__ import annotations

import io
import math
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.reliability import midi_header_edit
from cadenza import CadenzaError, Conditioning, MidiOutput, Sampling, Studio
from cadenza.fileio.audio import audio_seconds, read_audio, write_audio
from cadenza.fileio.midi import load_midi
from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

EXAMPLES = int(os.environ.get("CADENZA_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
LIMIT_S = 20.0  # nothing longer is played: a case stays small whatever the file claims
MEMORY_BOUND = 64 * 2**20  # bytes numpy may hold at once in one case


def _midi_seeds() -> list[bytes]:
    """Small valid files: one track; format 1 with tempo, control changes, bends and drums; 96 tpq."""
    one = symusic.Score(480)
    track = symusic.Track(program=0)
    for i in range(6):
        track.notes.append(symusic.Note(i * 240, 240, 60 + i, 90))
    one.tracks.append(track)
    two = symusic.Score(96)
    two.tempos.append(symusic.Tempo(0, qpm=90))
    lead = symusic.Track(program=40)
    for i in range(4):
        lead.notes.append(symusic.Note(i * 96, 80, 67 + i, 100))
    lead.controls.append(symusic.ControlChange(0, 64, 127))
    lead.pitch_bends.append(symusic.PitchBend(50, 2000))
    drums = symusic.Track(program=0, is_drum=True)
    drums.notes.append(symusic.Note(0, 10, 36, 100))
    two.tracks.extend([lead, drums])
    return [bytes(one.dumps_midi()), bytes(two.dumps_midi())]


MIDI_SEEDS = _midi_seeds()


def _audio_seeds() -> list[bytes]:
    """Small files: PCM16 mono WAV, float stereo WAV (a NaN in it), FLAC, one sample, a header alone."""
    t = np.arange(800) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = []
    for data, fmt, subtype in ((tone[:, None], "WAV", "PCM_16"), (np.stack([tone, tone], 1), "WAV", "FLOAT"),
                               (tone[:, None], "FLAC", "PCM_16"), (tone[:1, None], "WAV", "PCM_16"),
                               (np.zeros((0, 1), np.float32), "WAV", "PCM_16")):
        buf = io.BytesIO()
        sf.write(buf, data, 8000, format=fmt, subtype=subtype)
        out.append(buf.getvalue())
    nan = np.stack([tone, tone], 1)
    nan[100] = np.nan
    buf = io.BytesIO()
    sf.write(buf, nan, 8000, format="WAV", subtype="FLOAT")
    out.append(buf.getvalue())
    return out


AUDIO_SEEDS = _audio_seeds()


@st.composite
def mutated(draw, seeds: list[bytes], special) -> bytes:
    """A seed file with a few mutations: byte flips and sets, truncation, insertion of 0xFF runs (huge
    variable-length numbers), and ``special`` header edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        # mostly changes that keep chunk lengths right (a parser gets past them and into the music)
        kind = draw(st.sampled_from(["flip", "flip", "flip", "set", "set", "set", "truncate", "insert", "special",
                                     "special"]))
        if not data:
            break
        at = draw(st.integers(min(4, len(data) - 1), len(data) - 1))  # past the magic: hypothesis favours 0
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = b"\xff" * draw(st.integers(1, 6))
        else:
            special(data, draw)
    return bytes(data)


def _midi_header_edit(data: bytearray, draw) -> None:
    midi_header_edit(data, lambda options: draw(st.sampled_from(options)))


def _audio_header_edit(data: bytearray, draw) -> None:
    if data[:4] == b"RIFF" and len(data) >= 44:
        field = draw(st.sampled_from([(22, 2), (24, 4), (34, 2), (40, 4), (4, 4)]))  # channels, rate, bits, sizes
        at, size = field
        data[at:at + size] = draw(st.sampled_from([0, 1, 3, 2**(8 * size) - 1])).to_bytes(size, "little")
    elif data[:4] == b"fLaC" and len(data) >= 30:
        data[18:22] = draw(st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"]))  # rate/channels/bits


@pytest.fixture(scope="module")
def renderer():
    with FluidSynthRenderer(RenderOptions(sample_rate=8000, reverb=False, tail_s=0.2, max_duration_s=LIMIT_S)) as r:
        yield r


def _whole_audio(path: Path, frames: int | None = None) -> None:
    """The file at ``path`` is a finished audio file: readable, finite, of ``frames`` frames when given."""
    samples, _ = read_audio(path)
    assert np.isfinite(samples).all()
    assert np.abs(samples).max() <= 1.0
    if frames is not None:
        assert samples.shape[1] == frames


@FUZZ
@given(data=mutated(MIDI_SEEDS, _midi_header_edit))
def test_fuzzed_midi_renders_or_is_refused(renderer, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("midi")
    path, out = folder / "in.mid", folder / "out.wav"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        renderer.render_to_file(path, out, block_s=1.0, whole_max_s=2.0)  # long ones go through the streamed path
    except CadenzaError:
        assert not out.exists()
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
    _whole_audio(out)


@FUZZ
@given(data=mutated(MIDI_SEEDS, _midi_header_edit))
def test_fuzzed_midi_as_prompt(tiny_root, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("prompt")
    path = folder / "prompt.mid"
    path.write_bytes(data)
    studio = _tiny_studio(tiny_root)
    try:
        outputs = studio.generate("tiny-remi", Conditioning(prompt=str(path), bars=1), Sampling(seed=1, max_tokens=64))
    except CadenzaError:
        return
    saved = outputs[0].save(folder / "out.mid")
    assert load_midi(saved).note_num() > 0


@FUZZ
@given(data=mutated(AUDIO_SEEDS, _audio_header_edit), suffix=st.sampled_from([".wav", ".flac"]))
def test_fuzzed_audio_reads_or_is_refused(tmp_path_factory, data, suffix):
    folder = tmp_path_factory.mktemp("audio")
    path = folder / f"in{suffix}"
    path.write_bytes(data)
    try:
        seconds = audio_seconds(path)
        samples, sr = read_audio(path, sample_rate=16000, mono=True)
    except CadenzaError:
        return
    assert math.isfinite(seconds) and seconds >= 0
    assert samples.ndim == 2 and samples.shape[0] == 1 and np.isfinite(samples).all()
    write_audio(folder / "out.flac", np.clip(samples, -1, 1), sr)
    _whole_audio(folder / "out.flac", samples.shape[1])


@FUZZ
@given(data=mutated(AUDIO_SEEDS, _audio_header_edit))
def test_fuzzed_audio_as_prompt_and_transfer_source(ddsp_studio, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("transfer")
    path = folder / "in.wav"
    path.write_bytes(data)
    try:
        Conditioning(prompt=str(path))  # what a diffusion prompt goes through before the model
        output = ddsp_studio.transfer(path, "ddsp-tiny", sampling=Sampling(seed=0))
    except CadenzaError:
        return
    output.save(folder / "out.wav")
    _whole_audio(folder / "out.wav", output.samples.shape[1])


_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12), st.none(),
                    st.booleans(), st.text(max_size=5))
_ints = st.one_of(st.integers(-2**70, 2**70), st.none(), st.booleans(), st.floats(), st.text(max_size=5))


@FUZZ
@given(temperature=_floats, top_k=_ints, top_p=_floats, cfg=_floats, steps=_ints, samples=_ints, strength=_floats,
       key_bias=_floats, seed=_ints, max_tokens=_ints)
def test_sampling_fields(temperature, top_k, top_p, cfg, steps, samples, strength, key_bias, seed, max_tokens):
    try:
        sampling = Sampling(seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg, steps=steps,
                            num_samples=samples, strength=strength, key_bias=key_bias, max_tokens=max_tokens)
    except CadenzaError:
        return
    for value in (sampling.temperature, sampling.top_p, sampling.cfg_scale):
        assert math.isfinite(value)
    assert Sampling(**sampling.to_dict()) == sampling


@FUZZ
@given(tempo=_floats, bars=_ints, duration=_floats, key=st.one_of(st.none(), st.text(max_size=12)),
       meter=st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["3/4", "0/4", "4/0", "99/1", "7/8"])),
       text=st.one_of(st.none(), st.text(max_size=20)), form=st.one_of(st.none(), st.text(max_size=8)),
       regenerate=st.one_of(st.none(), st.tuples(_ints, _ints)))
def test_conditioning_fields(tempo, bars, duration, key, meter, text, form, regenerate):
    try:
        conditioning = Conditioning(tempo_bpm=tempo, bars=bars, duration_s=duration, key=key, time_signature=meter,
                                    text=text, form=form, regenerate=regenerate)
    except CadenzaError:
        return
    assert Conditioning.from_dict(conditioning.to_dict()) == conditioning


@FUZZ
@given(sample_rate=_ints, gain=_floats, tail=_floats, lufs=_floats, limit=_floats)
def test_render_options_fields(sample_rate, gain, tail, lufs, limit):
    try:
        RenderOptions(sample_rate=sample_rate, gain=gain, tail_s=tail, normalize_lufs=lufs, max_duration_s=limit)
    except CadenzaError:
        return
    except TypeError:  # a comparison of a str with a number: must not happen
        raise


@FUZZ
@given(pitch=_floats, loudness=_floats, quiet=_floats, confidence=_floats, amount=_floats, chunk=_floats)
def test_transfer_and_transcribe_options_fields(pitch, loudness, quiet, confidence, amount, chunk):
    from cadenza.analysis import TranscribeOptions
    from cadenza.generators.ddsp.transfer import TransferOptions

    try:
        TransferOptions(pitch_shift=pitch, loudness_shift=loudness, quiet_db=quiet, confidence=confidence,
                        autotune_amount=amount, chunk_s=chunk)
    except CadenzaError:
        pass
    try:
        TranscribeOptions(onset_threshold=confidence, frame_threshold=amount, min_note_ms=quiet, chunk_s=chunk,
                          tempo_bpm=pitch)
    except CadenzaError:
        pass


_STUDIOS: dict[str, Studio] = {}


def _tiny_studio(root: Path) -> Studio:
    """One studio per model folder for the whole module (the model loads once), with a short input limit."""
    key = str(root)
    if key not in _STUDIOS:
        _STUDIOS[key] = Studio(model_dirs=[root], max_duration_s=LIMIT_S)
    return _STUDIOS[key]


@pytest.fixture(scope="module")
def ddsp_studio(tmp_path_factory) -> Studio:
    import torch

    from cadenza.generators.ddsp.export import save_instrument
    from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, InstrumentStats

    root = tmp_path_factory.mktemp("ddsp_models")
    torch.manual_seed(0)
    save_instrument(DDSPDecoder(DecoderConfig(n_harmonics=8, n_noise=9, hidden=16, gru=16, mlp_layers=1)),
                    InstrumentStats(), root / "ddsp-tiny", "ddsp-tiny", license="test", description="tiny",
                    made_by={"recipe": "test"}, metrics={})
    return Studio(model_dirs=[root], max_duration_s=LIMIT_S)


@pytest.mark.parametrize("division", [0, 1, 0x8000, 0xE250, 0xFFFF])
@pytest.mark.parametrize("seed", range(len(MIDI_SEEDS)))
def test_header_division_cases(renderer, tmp_path, seed, division):
    # The ValueError from a division-0 header: now a CorruptMidi naming the division (or, for
    # division 1, a piece far too long for the limit), never another exception.
    data = bytearray(MIDI_SEEDS[seed])
    data[12:14] = division.to_bytes(2, "big")
    (tmp_path / "d.mid").write_bytes(bytes(data))
    try:
        renderer.render_to_file(tmp_path / "d.mid", tmp_path / "d.wav")
    except CadenzaError as exc:
        assert division != 0 or "ticks per quarter" in str(exc)
        return
    _whole_audio(tmp_path / "d.wav")


@pytest.mark.parametrize(("frames", "rate"), [(1, 96000), (1, 16000), (159, 16000), (3, 8000)])
def test_transfer_of_a_recording_too_short_to_track(ddsp_studio, tmp_path, frames, rate):
    # Found by the reliability benchmark's fuzzing: one sample at 96 kHz is no sample at all at 16 kHz, and the
    # pitch tracker failed with a torch RuntimeError on the empty frame.
    write_audio(tmp_path / "short.wav", np.full((1, frames), 0.1, np.float32), rate)
    with pytest.raises(CadenzaError, match="too short"):
        ddsp_studio.transfer(tmp_path / "short.wav", "ddsp-tiny")
