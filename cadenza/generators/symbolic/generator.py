"""The symbolic generator: REMI Transformer + grammar-constrained decoding on the engine -> MIDI.

Controls map as follows: style, key, meter and bar count are control tokens (forced by the grammar, or
left for the model to choose when unset); the bar count and the meter of every bar are exact by
grammar; tempo and instruments are written exactly into the output file (the corpus carries no usable
tempo or instrument labels to learn from). A MIDI ``prompt`` is continued: its notes are kept exactly
as they were and the new bars are appended after its last bar, in its key and meter. A ``form`` (or the
style's usual one) is laid out by ``bar_writer``; ``regenerate`` rewrites bars of the prompt by
infilling (``infill``), keeping every other note.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import symusic
import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.engine.decode import DecodeParams, decode, decode_step
from cadenza.engine.device import DevicePolicy
from cadenza.errors import CheckpointError, InvalidConditioning
from cadenza.generators.base import Callbacks, Progress, begin_call, cpu_threads, make_rng, provenance
from cadenza.generators.symbolic.bar_writer import BarWriter, strip_body
from cadenza.generators.symbolic.infill import MIDDLE_TOKENS_PER_BAR, infill_context, meter_at, plan_infill, splice_bars
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.music.form import FormPlan, parse_form, style_form
from cadenza.music.instruments import program_of
from cadenza.music.theory import (estimate_key, key_correlations, parse_key, parse_time_signature,
                                  score_pitch_class_histogram)
from cadenza.outputs import MidiOutput
from cadenza.tokenizers.remi import STYLES, RemiTokenizer, key_token
from cadenza.tokenizers.remi_grammar import NEED_BAR, GrammarSpec, RemiGrammar
from cadenza.tokenizers.text_controls import parse_text

DEFAULT_BARS = 16
# Strength of the key's pitch-class log-prior when Sampling.key_bias is None. Measured on remi-folk-small
# (20 random requests; KS key of the output; mean pitch-class entropy, test set 2.71 bits):
#   0 -> 50% in key, 2.76 bits | 1 -> 85%, 2.52 | 1.5 -> 95%, 2.25 | 2 -> 90%, 2.06
# A scale-only penalty (no tonic pull) did far worse on an earlier checkpoint: the misses are relative or
# dominant keys, which share the scale. A strong bias buys adherence with flatter melodies (lower entropy
# than real tunes), so the default is gentle (1.0) and adherence comes from choosing among candidates:
# with a key requested, KEY_CANDIDATES pieces are written per output in the same batch and, of those whose
# Krumhansl-Schmuckler key is the requested one, one ending on the tonic with the clearest key is kept
# (else the one correlating best with it). Measured on remi-folk-small (python -m benchmarks
# symbolic_controls, 40 requests): 97.5% in key with 3 candidates. Five, choosing the clearest key: the
# key heard in FluidSynth renders of the 20 audio_controls scores by the transcribing ear went from 16/20
# (3 candidates, first in key) to 19/20 (their own notes' key: 20/20). A short piece has few notes to
# state its key with, so up to SHORT_PIECE_BARS bars it gets SHORT_KEY_CANDIDATES: on the 160 scores of
# eight audio_controls prompt sets (2-6 bars each, the 8 s a text-to-music model performs), the key heard
# in their FluidSynth renders went from 0.925 with 5 to 0.975 with 8 (their own notes' key: 0.981 ->
# 0.988); composing 4 bars then takes about 0.25 s more on one thread (16 bars would take 40% more).
DEFAULT_KEY_BIAS = 1.0
KEY_CANDIDATES = 5
SHORT_KEY_CANDIDATES = 8
SHORT_PIECE_BARS = 8
STYLE_TEMPO = {"irish": 112, "scottish": 80, "chorale": 72, "string-quartet": 100, "renaissance": 90,
               "folk-song": 100, "classical": 100}
CAPABILITIES = frozenset({Capability.TEXT, Capability.STYLE, Capability.KEY, Capability.TEMPO,
                          Capability.TIME_SIGNATURE, Capability.BARS, Capability.INSTRUMENTS, Capability.PROMPT_MIDI,
                          Capability.FORM})


def key_candidates(bars: int) -> int:
    """How many pieces are written per output when a key is asked for (the clearest in the key is kept)."""
    return SHORT_KEY_CANDIDATES if bars <= SHORT_PIECE_BARS else KEY_CANDIDATES


def capabilities_of(tokenizer: RemiTokenizer) -> frozenset[Capability]:
    """What a model with this tokenizer honours: regenerating bars needs the infilling tokens."""
    return CAPABILITIES | {Capability.REGENERATE} if tokenizer.infill else CAPABILITIES


@dataclass(frozen=True)
class Request:
    """Conditioning resolved against the text and the prompt: what will actually be asked of the model."""

    style: str | None
    key: str | None
    meter: str | None
    bars: int
    tempo_bpm: float | None
    instruments: tuple[str, ...]
    prompt: symusic.Score | None
    form: FormPlan | None = None  # an explicit plan; None = the style's usual form (chosen per row)
    regenerate: tuple[int, int] | None = None  # bars of the prompt to write anew (1-based, inclusive)
    straight: bool | None = None  # False: triplets allowed in every style (the text asked for them)


def resolve(conditioning: Conditioning, prompt: symusic.Score | None) -> Request:
    """Merge explicit fields with what ``text`` names; raise on contradictions."""
    text = parse_text(conditioning.text) if conditioning.text else None

    def pick(name: str, explicit, from_text):
        if explicit not in (None, ()) and from_text not in (None, ()) and explicit != from_text:
            raise InvalidConditioning(f"{name}: the text says {from_text!r} but {name} is set to {explicit!r}")
        return explicit if explicit not in (None, ()) else from_text

    style = pick("style", conditioning.style, text and text.style)
    key = pick("key", conditioning.key, text and text.key)
    meter = pick("time_signature", conditioning.time_signature, text and text.time_signature)
    bars = pick("bars", conditioning.bars, text and text.bars)
    tempo = pick("tempo_bpm", conditioning.tempo_bpm, text and text.tempo_bpm)
    instruments = pick("instruments", conditioning.instruments, text.instruments if text else ())
    form_text = pick("form", conditioning.form, text and text.form)
    if conditioning.regenerate is not None:
        given = [name for name, value in (("bars", bars), ("form", form_text), ("tempo_bpm", tempo),
                                          ("instruments", instruments)) if value not in (None, ())]
        if given:
            raise InvalidConditioning(f"regenerate keeps the rest of the file as it is: {', '.join(given)} cannot be "
                                      "set with it")
    if style is not None and style not in STYLES:
        raise InvalidConditioning(f"unknown style {style!r}; styles: {', '.join(STYLES)}")
    for name in instruments:
        program_of(name)
    if prompt is not None:
        prompt_meter = _meter_of(prompt)
        if meter is not None and meter != prompt_meter:
            raise InvalidConditioning(f"the prompt is in {prompt_meter}; a continuation cannot switch to {meter}")
        meter = prompt_meter
        if key is None:
            key = _key_of(prompt)
        if tempo is None:  # a MIDI file without tempo events plays at 120 BPM
            # MIDI stores whole microseconds per beat, so 110 BPM reads back as 109.9999
            tempo = round(float(prompt.tempos[-1].qpm), 2) if len(prompt.tempos) else 120.0
    plan = None
    if form_text is not None:
        plan = parse_form(form_text, bars)
        bars = plan.bars
    return Request(style, key, meter, bars or DEFAULT_BARS, tempo, tuple(instruments), prompt, plan,
                   conditioning.regenerate, False if text is not None and text.triplets else None)


def _meter_of(score: symusic.Score) -> str:
    sigs = score.time_signatures
    return f"{sigs[-1].numerator}/{sigs[-1].denominator}" if len(sigs) else "4/4"


def _key_of(score: symusic.Score) -> str:
    return estimate_key(score_pitch_class_histogram(score)).name


def ends_on(score: symusic.Score, tonic: int) -> bool:
    """Whether the lowest note struck last in ``score`` (its pitched tracks) has pitch class ``tonic``:
    the piece comes home."""
    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not arrays:
        return False
    times = np.concatenate([a["time"] for a in arrays])
    pitches = np.concatenate([a["pitch"] for a in arrays])
    return int(pitches[times == times.max()].min()) % 12 == tonic


class SymbolicGenerator:
    """Loaded symbolic model. Stateless between calls: Sampling and rng come with each request."""

    family = "symbolic"

    def __init__(self, spec: CheckpointSpec, model: SymbolicTransformer, tokenizer: RemiTokenizer,
                 policy: DevicePolicy | None = None) -> None:
        """``policy`` (default: where the model already is) sets the dtype (bf16 on CUDA) and whether the
        one-token step is compiled (on CUDA by default: one CUDA graph per batch size)."""
        self.spec, self.tokenizer = spec, tokenizer
        self.policy = policy or DevicePolicy(prefer=str(next(model.parameters()).device))
        device = self.policy.device()
        self.model = model.to(device=device, dtype=self.policy.dtype_for(device)).eval()
        self._step = self.policy.maybe_compile(decode_step, device)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.spec.capabilities

    @classmethod
    def from_checkpoint(cls, spec: CheckpointSpec, device: str | None = None) -> SymbolicGenerator:
        tensors = spec.load_safetensors("weights")
        tokenizer = RemiTokenizer.load(spec.path("tokenizer"))
        config = TransformerConfig(**spec.config["model"])
        if config.vocab_size != len(tokenizer):
            raise CheckpointError(f"{spec.name}: model vocabulary {config.vocab_size} != tokenizer's {len(tokenizer)}")
        model = SymbolicTransformer(config)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:  # lm_head is tied to embed and not stored twice
            raise CheckpointError(f"{spec.name}: weights do not fit the config (missing {missing}, unexpected {unexpected})")
        return cls(spec, model, tokenizer, DevicePolicy(prefer=device or "cpu"))

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, conditioning: Conditioning, sampling: Sampling, callbacks: Callbacks = Callbacks()) -> list[MidiOutput]:
        device = next(self.model.parameters()).device
        # A one-token step of this small model is too short to split across threads: on CPU one thread
        # is fastest at small batch (and 2 threads on 2 busy cores were 40x slower here).
        with cpu_threads(1 if sampling.num_samples <= 4 else 2, device):
            return self._generate(conditioning, sampling, callbacks)

    def _generate(self, conditioning: Conditioning, sampling: Sampling, callbacks: Callbacks) -> list[MidiOutput]:
        started = time.perf_counter()
        seed = begin_call(self.spec, conditioning, sampling)
        prompt = None
        if conditioning.prompt is not None:
            from cadenza.fileio.midi import load_midi

            prompt = load_midi(conditioning.prompt)
        request = resolve(conditioning, prompt)
        rng = make_rng(seed, next(self.model.parameters()).device)
        # A fresh piece in a requested key: several candidates per output, the one in the key is kept.
        candidates = key_candidates(request.bars) if request.key is not None and prompt is None else 1
        n = sampling.num_samples * candidates
        tok = self.tokenizer
        # The pull toward a key serves a key that was asked for (or a prompt's key); with no key requested
        # the model's own choice stands unbiased unless the caller sets key_bias explicitly.
        if sampling.key_bias is not None:
            key_bias = sampling.key_bias
        else:
            key_bias = DEFAULT_KEY_BIAS if request.key is not None else 0.0

        style_id = tok.vocab[f"Style_{request.style}"] if request.style else None
        key_id = tok.vocab[key_token(parse_key(request.key))] if request.key else None
        meter_id = None
        if request.meter:
            if f"Meter_{request.meter}" not in tok.vocab:
                raise InvalidConditioning(f"time signature {request.meter} is not one this model writes; "
                                          f"choose one of {', '.join(tok.meters())}")
            meter_id = tok.vocab[f"Meter_{request.meter}"]

        prompt_bars: list[list[int]] = []
        if prompt is not None:
            prompt_bars = tok.split_bars(tok.encode_body(prompt))
        counter = Progress(callbacks, request.bars * 30, estimate=True)

        def params(limit: int) -> DecodeParams:
            return DecodeParams(max_new_tokens=limit, temperature=sampling.temperature, top_k=sampling.top_k,
                                top_p=sampling.top_p, repetition_penalty=sampling.repetition_penalty,
                                eos_id=tok.eos_id, pad_id=tok.pad_id, rng=rng, progress=counter.step,
                                should_cancel=callbacks.should_cancel)

        bos = torch.full((n, 1), tok.bos_id, dtype=torch.long)
        writer = BarWriter(self._decode, tok, params, self.model.max_seq_len, sampling.max_tokens or 100_000, key_bias,
                           request.straight)
        if request.regenerate is not None:
            return self._regenerate(conditioning, sampling, request, seed, bos, writer, started, key_id, style_id)
        prefixes, bodies, plans = self._write(request, prompt_bars, bos, (style_id, key_id, meter_id), writer)
        chosen_rows, key_matched = list(range(n)), [None] * n
        if candidates > 1:
            chosen_rows, key_matched = self._pick_in_key(bodies, parse_key(request.key), candidates)
        elapsed = time.perf_counter() - started
        outputs = []
        for index, row in enumerate(chosen_rows):
            body = bodies[row]
            controls = [tok.id_to_token[i] for i in prefixes[row, 1:5].tolist()]
            chosen = {c.split("_", 1)[0].lower(): c.split("_", 1)[1] for c in controls}
            style = chosen["style"]
            tempo = request.tempo_bpm or STYLE_TEMPO.get(style, 120)
            score = self._to_score(body, tempo, request, len(prompt_bars), chosen["meter"])
            made = provenance(
                self.spec, conditioning, sampling, seed=seed, sample_index=index,
                timings_s={"generate": round(elapsed, 3)},
                notes={"style": style, "key": chosen["key"].replace("_", " "), "time_signature": chosen["meter"],
                       "bars": request.bars, "tempo_bpm": tempo, "continued_bars": len(prompt_bars),
                       "form": plans[row].text if plans[row] else "through-composed",
                       "instruments": list(request.instruments),
                       **({"triplets": True} if request.straight is False else {}),
                       "bars_written": sum(1 for i in body if i == tok.bar_id), "key_bias": key_bias,
                       **({"key_candidates": candidates, "in_requested_key": key_matched[index]} if candidates > 1 else {})})
            outputs.append(MidiOutput(score, made))
        return outputs

    def _write(self, request: Request, prompt_bars: list[list[int]], bos: torch.Tensor,
               controls: tuple[int | None, int | None, int | None], writer: BarWriter,
               ) -> tuple[torch.Tensor, list[list[int]], list[FormPlan | None]]:
        """Every row's control prefix ``[n, 5]``, its body of new bars, and the form plan it follows.

        ``controls``: the forced Style, Key and Meter ids (None: the model chooses).
        """
        tok, prompt, n = self.tokenizer, request.prompt, bos.shape[0]
        style_id, key_id, meter_id = controls
        window, token_cap, key_bias, params = writer.window, writer.token_cap, writer.key_bias, writer.params
        # The form is known before decoding when it is asked for, or when the style is (its usual form);
        # else each row's plan follows the style the model chooses.
        known = request.form is not None or request.style is not None or prompt is not None
        plan = request.form or (style_form(request.style, request.bars) if prompt is None else None)
        if prompt is None and known:
            # One batched pass writes the controls and the first section (or as many bars as fit the window).
            first = plan.sections[0].bars if plan else request.bars
            limit = min(window - 1, token_cap + 4)
            grammar = RemiGrammar(tok, GrammarSpec(style_id, key_id, meter_id, first, limit, bars_control=request.bars,
                                                   window=token_cap + 4 > window - 1, key_bias=key_bias,
                                                   open_end=first < request.bars, straight=request.straight))
            sequences = self._decode(bos, params(limit), grammar)
            prefixes = sequences[:, :5]
            bodies = [strip_body(row[5:], tok) for row in sequences.tolist()]
            plans = [plan] * n
        else:
            total = len(prompt_bars) + request.bars
            grammar = RemiGrammar(tok, GrammarSpec(style_id, key_id, meter_id, total, 4))
            prefixes = self._decode(bos, params(4), grammar)
            bodies = [[] for _ in range(n)]
            plans = [plan if known else style_form(tok.value_of(int(prefixes[row, 1])), request.bars) for row in range(n)]
            if prompt is None:  # each row's form follows its style: rows whose form opens alike go on together
                groups: dict[int, list[int]] = {}
                for row, row_plan in enumerate(plans):
                    groups.setdefault(row_plan.sections[0].bars if row_plan else request.bars, []).append(row)
                for first, rows in groups.items():
                    limit = min(window - 5, token_cap)
                    spec = GrammarSpec(None, None, None, first, limit, start_state=NEED_BAR, window=token_cap > window - 5,
                                       key_bias=key_bias, open_end=first < request.bars, straight=request.straight)
                    out = self._decode(prefixes[rows], params(limit), RemiGrammar(tok, spec))
                    for k, row in enumerate(rows):
                        bodies[row] = strip_body(out[k, 5:].tolist(), tok)
        for row in range(n):
            bodies[row] = writer.realize(prefixes[row].tolist(), prompt_bars, bodies[row], plans[row], request.bars)
        return prefixes, bodies, plans

    def _regenerate(self, conditioning: Conditioning, sampling: Sampling, request: Request, seed: int,
                    bos: torch.Tensor, writer: BarWriter, started: float, key_id: int | None,
                    style_id: int | None) -> list[MidiOutput]:
        """Bars i..j of the prompt written anew with the bars before and after them in view (infilling)."""
        tok, prompt = self.tokenizer, request.prompt
        if not tok.infill:
            raise InvalidConditioning(f"{self.spec.name} was trained without the infilling tokens: it cannot regenerate bars")
        bars = tok.split_bars(tok.encode_body(prompt))
        gap = plan_infill(prompt, len(bars), request.regenerate)
        meter = meter_at(prompt, gap.gap_ticks[0])
        if f"Meter_{meter}" not in tok.vocab:
            raise InvalidConditioning(f"bars {request.regenerate[0]}-{request.regenerate[1]} are in {meter}, "
                                      f"which this model does not write")
        grammar = RemiGrammar(tok, GrammarSpec(style_id, key_id, tok.vocab[f"Meter_{meter}"], len(bars), 4))
        prefixes = self._decode(bos, writer.params(4), grammar)
        context = infill_context(tok, prefixes[0].tolist(), bars, gap, self.model.max_seq_len)
        limit = min(MIDDLE_TOKENS_PER_BAR * gap.bars, self.model.max_seq_len - len(context))
        spec = GrammarSpec(None, None, None, gap.bars, limit, start_state=NEED_BAR, key_bias=writer.key_bias,
                           straight=request.straight)
        rows = torch.tensor([context] * bos.shape[0])
        out = self._decode(rows, writer.params(limit), RemiGrammar(tok, spec))
        elapsed = time.perf_counter() - started
        outputs = []
        for index, row in enumerate(out[:, len(context):].tolist()):
            middle = [i for i in row if i not in (tok.pad_id, tok.eos_id)]
            score = splice_bars(prompt, tok.decode_body(middle), gap)
            controls = {tok.id_to_token[i].split("_", 1)[0].lower(): tok.value_of(i) for i in prefixes[0, 1:4].tolist()}
            made = provenance(
                self.spec, conditioning, sampling, seed=seed, sample_index=index, timings_s={"generate": round(elapsed, 3)},
                notes={"style": controls["style"], "key": controls["key"].replace("_", " "), "time_signature": meter,
                       "regenerated_bars": list(request.regenerate), "bars": len(bars),
                       "context_tokens": len(context), "key_bias": writer.key_bias})
            outputs.append(MidiOutput(score, made))
        return outputs

    def _decode(self, prompt: torch.Tensor, params: DecodeParams, grammar: RemiGrammar) -> torch.Tensor:
        """``engine.decode`` with this model's step: eager, or compiled over a static cache of the whole
        window, so every call of a batch size replays the same graph."""
        if self._step is decode_step:
            return decode(self.model, prompt, params, constraint=grammar)
        return decode(self.model, prompt, params, constraint=grammar, step_fn=self._step,
                      cache_len=self.model.max_seq_len, static=True)

    def _pick_in_key(self, bodies: list[list[int]], key, candidates: int) -> tuple[list[int], list[bool]]:
        """For each group of ``candidates`` consecutive rows, the row to keep and whether its estimated
        key is ``key``. Among the candidates in the key, those ending on its tonic come first, and of
        those the one whose key is clearest: the largest margin of the key's correlation over the next
        best key's (a listener, or an ear estimating the key from audio, then hears the same key). With
        none in the key, the one correlating best with it."""
        rows, matched = [], []
        for start in range(0, len(bodies), candidates):
            scores = []
            for row in range(start, start + candidates):
                score = self.tokenizer.decode_body([i for i in bodies[row] if i not in (self.tokenizer.pad_id, self.tokenizer.eos_id)])
                correlations = key_correlations(score_pitch_class_histogram(score))
                others = np.delete(correlations, key.index)
                scores.append((int(np.argmax(correlations)) == key.index, ends_on(score, key.tonic),
                               float(correlations[key.index] - others.max()), float(correlations[key.index])))
            in_key = [i for i, (hit, _, _, _) in enumerate(scores) if hit]
            if in_key:
                best = max(in_key, key=lambda i: (scores[i][1], scores[i][2]))
            else:
                best = max(range(candidates), key=lambda i: scores[i][3])
            rows.append(start + best)
            matched.append(scores[best][0])
        return rows, matched

    def _to_score(self, body: list[int], tempo: float, request: Request, prompt_bar_count: int,
                  meter: str) -> symusic.Score:
        """Decode new REMI ids into a score with the exact tempo and instruments; append to a prompt if any.

        ``meter`` is the meter the new bars were written in; no new note rings past the last of them.
        """
        tok = self.tokenizer
        ids = [i for i in body if i not in (tok.pad_id, tok.eos_id)]
        new = tok.decode_body(ids)
        if request.prompt is None:
            score = new
            score.tempos = symusic.Score(score.ticks_per_quarter).tempos
            score.tempos.append(symusic.Tempo(0, float(tempo)))
            notes = score.tracks[0].notes if len(score.tracks) else symusic.Track().notes
        else:
            score = request.prompt.copy()
            # An explicit tempo is written exactly; the prompt's own (rounded in resolve) keeps its tempo map.
            if not len(score.tempos) or abs(score.tempos[-1].qpm - tempo) > 0.01:
                score.tempos = symusic.Score(score.ticks_per_quarter).tempos
                score.tempos.append(symusic.Tempo(0, float(tempo)))
            meter = parse_time_signature(request.meter)
            bar_ticks = int(round(meter.quarters_per_bar * score.ticks_per_quarter))
            offset = prompt_bar_count * bar_ticks
            scale = score.ticks_per_quarter / new.ticks_per_quarter
            notes = symusic.Track().notes
            for track in new.tracks:
                for note in track.notes:
                    notes.append(symusic.Note(offset + int(round(note.time * scale)),
                                              max(1, int(round(note.duration * scale))), note.pitch, note.velocity))
        velocity = 80
        programs = [program_of(name) for name in request.instruments] or [
            request.prompt.tracks[0].program if request.prompt is not None and len(request.prompt.tracks) else 0]
        tracks = [symusic.Track(name=request.instruments[i] if request.instruments else "melody", program=p)
                  for i, p in enumerate(programs)]
        # The grammar makes the bar count exact, but a Duration token may reach beyond the final barline:
        # cut it there, or a 4-bar request would sound (and render) several bars longer.
        bar_ticks = parse_time_signature(meter).quarters_per_bar * score.ticks_per_quarter
        end = int(round((prompt_bar_count + request.bars) * bar_ticks))
        for voice, note in _split_voices(notes, len(tracks)):
            duration = max(1, min(note.duration, end - note.time))
            tracks[voice].notes.append(symusic.Note(note.time, duration, note.pitch, velocity))
        if request.prompt is None:
            score.tracks = symusic.Score(score.ticks_per_quarter).tracks
            for track in tracks:
                score.tracks.append(track)
        else:
            for track in tracks:
                track.name = f"{track.name} (continued)"
                score.tracks.append(track)
        return score


def _split_voices(notes, voices: int):
    """Yield ``(voice, note)``: at each onset the highest note goes to voice 0, the next to voice 1, ..."""
    by_onset: dict[int, list] = {}
    for note in notes:
        by_onset.setdefault(note.time, []).append(note)
    for onset in sorted(by_onset):
        for rank, note in enumerate(sorted(by_onset[onset], key=lambda n: -n.pitch)):
            yield min(rank, voices - 1), note
