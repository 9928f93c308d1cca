"""The one autoregressive loop: prefill, then one-token steps over a static KV cache.

Two entry points share the same step function and logit pipeline:

- ``decode``: one token stream (the symbolic REMI LM), with constraints (grammar masks), EOS and
  per-row stopping.
- ``decode_codebooks``: ``K`` parallel codebook streams (codec LMs such as MusicGen) interleaved by a
  ``DelayPattern``; every step samples all ``K`` codebooks from one forward.

Sampling settings travel per call in ``DecodeParams`` and are never stored on a model. The forward for
one new token lives in ``decode_step`` so a ``DevicePolicy`` can hand in a compiled / CUDA-graphed
version (``step_fn=``) without touching the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from cadenza.engine.device import inference
from cadenza.engine.patterns import DelayPattern
from cadenza.engine.sampling import apply_allowed_mask, apply_repetition_penalty, sample
from cadenza.errors import Cancelled, InvalidConditioning


class CausalLM(Protocol):
    """A decoder with a static KV cache (``SymbolicTransformer`` is one).

    ``model(tokens [B, T], input_pos [T]) -> logits [B, T, V]`` writes the cache at ``input_pos`` and
    attends to cache slots ``<= input_pos``.
    """

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_seq_len(self) -> int: ...

    def setup_cache(self, batch_size: int, max_seq_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, *, static: bool | None = None) -> None: ...

    def clear_cache(self) -> None: ...

    def __call__(self, tokens: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor: ...


class CodebookLM(Protocol):
    """A codec LM over ``K`` parallel codebooks with a static KV cache.

    ``model(codes [B, K, T], input_pos [T]) -> logits [B, K, T, V]``; conditioning that is not in the
    token stream (text cross-attention) is the adapter's business: under CFG the batch it sees is
    ``2B`` rows, the first ``B`` conditional and the last ``B`` unconditional.
    """

    @property
    def n_codebooks(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_seq_len(self) -> int: ...

    def setup_cache(self, batch_size: int, max_seq_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, *, static: bool | None = None) -> None: ...

    def clear_cache(self) -> None: ...

    def __call__(self, codes: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor: ...


class Constraint(Protocol):
    """A per-row token grammar consulted at every step (REMI grammar, forced sequences, ...).

    Call order per decode: ``start`` once, then for each step ``mask(step)`` -> sample ->
    ``advance(ids)`` -> ``done()``. A mask row with exactly one True forces that token. Rows that
    ``done`` reported True (or that emitted EOS) keep being passed ``pad_id`` in ``advance`` and their
    mask rows are ignored; the constraint must accept that.
    """

    def start(self, batch_size: int, prompt: torch.Tensor) -> None:
        """Reset for ``batch_size`` rows that begin with ``prompt [B, T0]`` (already consumed)."""
        ...

    def mask(self, step: int) -> torch.Tensor | None:
        """Allowed tokens at new-token index ``step`` (0-based): bool ``[B, V]``, or None for any."""
        ...

    def advance(self, ids: torch.Tensor) -> None:
        """Consume the tokens ``ids [B]`` just chosen."""
        ...

    def done(self) -> torch.Tensor:
        """Bool ``[B]``: rows whose grammar has reached its end (they stop and then emit pad)."""
        ...

    # Optional: ``bias(step) -> float [B, V] | None`` is added to the logits before the mask (a soft
    # preference, e.g. for the pitches of a key); decode calls it only when the constraint defines it.


ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]
StepFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DecodeParams:
    """Settings for one decode call.

    - ``max_new_tokens``: tokens to add (``decode``) or frames to add (``decode_codebooks``).
    - ``temperature``: 0 (or <= 1e-5) is greedy; ``top_k`` <= 0 and ``top_p`` >= 1 disable those filters.
    - ``repetition_penalty``: > 1 discourages tokens already generated in this call (not the prompt).
    - ``cfg_scale``: classifier-free guidance, used when an unconditional prompt is given and the
      scale is not 1: ``uncond + cfg_scale * (cond - uncond)``.
    - ``eos_id``: a row that emits it stops; ``pad_id`` fills stopped rows.
    - ``rng``: the only random source (on the model's device); None uses torch's global generator,
      which is not reproducible.
    - ``progress(step, total)`` is called after each new token; ``should_cancel()`` is polled before
      each step and a True makes the call raise ``Cancelled``.
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    cfg_scale: float = 1.0
    eos_id: int | None = None
    pad_id: int = 0
    rng: torch.Generator | None = None
    progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InvalidConditioning(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise InvalidConditioning(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidConditioning(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise InvalidConditioning(f"repetition_penalty must be > 0 (1 is off), got {self.repetition_penalty}")
        if self.cfg_scale < 0:
            raise InvalidConditioning(f"cfg_scale must be >= 0 (1 is off), got {self.cfg_scale}")


def decode_step(model: torch.nn.Module, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
    """One cached forward: ``tokens [N, 1]`` (or ``[N, K, 1]``) at ``input_pos [1]`` -> last logits
    ``[N, V]`` (or ``[N, K, V]``). Kept alone so it can be ``torch.compile``d / CUDA-graphed."""
    return model(tokens, input_pos).select(-2, -1)


def cfg_combine(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """``[2B, ...]`` stacked (cond rows first, then uncond) -> ``[B, ...]`` guided logits."""
    cond, uncond = logits.chunk(2, dim=0)
    return uncond + scale * (cond - uncond)


def _check_cancel(params: DecodeParams, done: int, total: int) -> None:
    if params.should_cancel is not None and params.should_cancel():
        raise Cancelled(f"generation cancelled after {done} of {total} steps")


def _check_rng(rng: torch.Generator | None, device: torch.device) -> None:
    if rng is not None and rng.device.type != device.type:
        raise ValueError(f"rng lives on {rng.device} but the model runs on {device}; "
                         f"create it with torch.Generator(device={str(device)!r})")


def _use_cfg(params: DecodeParams, prompt: torch.Tensor, uncond: torch.Tensor | None) -> bool:
    if uncond is None:
        return False
    if uncond.shape != prompt.shape:
        raise ValueError(f"the unconditional prompt {tuple(uncond.shape)} must match the prompt "
                         f"{tuple(prompt.shape)} (pad the control prefix to the same length)")
    return params.cfg_scale != 1.0


def _cache_len(model, needed: int, asked: int | None) -> int:
    if needed > model.max_seq_len:
        raise InvalidConditioning(f"prompt plus new tokens needs {needed} positions but the model holds "
                                  f"{model.max_seq_len}; ask for fewer tokens or a shorter prompt")
    if asked is None:
        return needed
    if not needed <= asked <= model.max_seq_len:
        raise ValueError(f"cache_len {asked} must lie between the {needed} positions needed and the "
                         f"model's {model.max_seq_len}")
    return asked


def _model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


@inference
def decode(
    model: CausalLM,
    prompt: torch.Tensor,
    params: DecodeParams,
    constraint: Constraint | None = None,
    uncond_prompt: torch.Tensor | None = None,
    step_fn: StepFn = decode_step,
    *,
    cache_len: int | None = None,
    static: bool | None = None,
) -> torch.Tensor:
    """Continue ``prompt [B, T0]`` (long) by up to ``params.max_new_tokens`` -> ``[B, T0 + n]``.

    Every row of a batch must have the same prompt length ``T0 >= 1``: the cache attends by position,
    so left padding is not supported (the symbolic generator uses one control prefix per batch).
    ``n`` is ``max_new_tokens`` unless every row stopped earlier (EOS or ``constraint.done()``);
    rows that stopped are filled with ``pad_id``. With ``uncond_prompt [B, T0]`` and ``cfg_scale !=
    1`` the conditional and unconditional rows run as one ``[2B, ...]`` forward.
    Deterministic for a given ``params.rng`` state on a given device.

    ``step_fn`` runs each one-token forward (pass ``DevicePolicy.maybe_compile(decode_step)``);
    ``cache_len`` fixes the KV cache length (default ``T0 + max_new_tokens``) so a compiled step keeps
    one graph across calls with different lengths. ``static`` asks the model for fixed step shapes (its
    default: static off the CPU), what a compiled step needs to be one graph / one CUDA graph.
    """
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be [B, T0] with T0 >= 1, got shape {tuple(prompt.shape)}")
    device, dtype = _model_device_dtype(model)
    _check_rng(params.rng, device)
    use_cfg = _use_cfg(params, prompt, uncond_prompt)
    b, t0 = prompt.shape
    n_new = params.max_new_tokens
    cache_len = _cache_len(model, t0 + n_new, cache_len)

    prompt = prompt.to(device=device, dtype=torch.long)
    out = torch.full((b, t0 + n_new), params.pad_id, dtype=torch.long, device=device)
    out[:, :t0] = prompt
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    seen = torch.zeros(b, model.vocab_size, dtype=torch.bool, device=device) if params.repetition_penalty != 1.0 else None
    stops = params.eos_id is not None or constraint is not None
    # Host syncs stall a GPU queue: poll "all rows done" every step only where a sync is free (CPU)
    # or already paid (a constraint reads ids on the host); else every 16 steps and trim at the end.
    poll_every = 1 if device.type == "cpu" or constraint is not None else 16
    alive = torch.ones(n_new, dtype=torch.bool, device=device) if stops and poll_every > 1 else None
    positions = torch.arange(t0 + n_new, device=device)
    if constraint is not None:
        constraint.start(b, prompt)

    _check_cancel(params, 0, n_new)
    model.setup_cache(2 * b if use_cfg else b, cache_len, dtype=dtype, device=device, static=static)
    try:
        x = torch.cat([prompt, uncond_prompt.to(device=device, dtype=torch.long)]) if use_cfg else prompt
        logits = model(x, positions[:t0])[:, -1]
        steps = n_new
        for step in range(n_new):
            if step:
                _check_cancel(params, step, n_new)
            ids = _next_ids(logits, params, use_cfg, seen, constraint, step, finished)
            if stops:
                if alive is not None:
                    alive[step] = ~finished.all()
                ids = ids.masked_fill(finished, params.pad_id)
            out.select(1, t0 + step).copy_(ids)
            if seen is not None:
                seen.scatter_(1, ids[:, None], True)
            if constraint is not None:
                constraint.advance(ids)
                finished |= constraint.done().to(device)
            if params.eos_id is not None:
                finished |= ids == params.eos_id
            if params.progress is not None:
                params.progress(step + 1, n_new)
            if stops and (step + 1) % poll_every == 0 and bool(finished.all()):
                steps = step + 1
                break
            if step + 1 < n_new:
                # Methods, not ``t[...]`` indexing: at batch 1 a step is short enough that the
                # microseconds of Python indexing show.
                x = torch.cat([ids, ids]) if use_cfg else ids
                logits = step_fn(model, x.unsqueeze(1), positions.narrow(0, t0 + step, 1))
        if alive is not None:
            steps = int(alive[:steps].sum())  # one sync at the end, not one per step
    finally:
        model.clear_cache()
    return out[:, : t0 + steps]


def _next_ids(logits: torch.Tensor, params: DecodeParams, use_cfg: bool, seen: torch.Tensor | None,
              constraint: Constraint | None, step: int, finished: torch.Tensor) -> torch.Tensor:
    """The logit pipeline for one step: ``[N, V]`` model logits -> ``ids [B]``."""
    logits = logits.float()
    if use_cfg:
        logits = cfg_combine(logits, params.cfg_scale)
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    bias = constraint.bias(step) if constraint is not None and hasattr(constraint, "bias") else None
    if bias is not None:
        logits = logits + bias.to(device=logits.device, dtype=logits.dtype)
    allowed = constraint.mask(step) if constraint is not None else None
    if allowed is not None:
        # Stopped rows emit pad whatever the grammar says, so their (possibly empty) rows must not trip
        # the empty-mask check.
        allowed = allowed.to(device=logits.device, dtype=torch.bool) | finished[:, None]
        logits = apply_allowed_mask(logits, allowed)
    return sample(logits, params.rng, temperature=params.temperature, top_k=params.top_k,
                  top_p=params.top_p, check=allowed is not None)


@inference
def decode_codebooks(
    model: CodebookLM,
    prompt: torch.Tensor,
    params: DecodeParams,
    uncond_prompt: torch.Tensor | None = None,
    pattern: DelayPattern | None = None,
    start_id: int | None = None,
    step_fn: StepFn = decode_step,
    *,
    cache_len: int | None = None,
    static: bool | None = None,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Continue ``prompt [B, K, T0]`` codes (``T0`` may be 0) by ``max_new_tokens`` frames -> ``[B, K, T0 + N]``.

    The model sees the delayed layout of ``pattern`` (default ``DelayPattern(K)``) behind one start
    column of ``start_id`` (default ``pad_id``), so its sequence is ``1 + T + max_delay`` steps for ``T``
    frames. At each step all ``K`` codebooks are sampled; positions the prompt already fixes and
    positions the delay leaves empty (``pad_id``) are kept, not sampled. For CFG pass
    ``uncond_prompt`` (same shape; the prompt itself when conditioning is outside the tokens).
    Codec LMs run to a fixed length, so ``eos_id`` and ``repetition_penalty`` are not supported here.
    ``step_fn``, ``cache_len`` and ``static`` are as in ``decode``.

    ``fixed [B or 1, K, N]``: codes of the new frames that are given rather than sampled (-1 where the
    model samples), e.g. the first codebook of a sketch the model performs; the model reads them like
    prompt codes, in the CFG rows too.
    """
    if prompt.dim() != 3:
        raise ValueError(f"prompt must be [B, K, T0] codes, got shape {tuple(prompt.shape)}")
    if params.eos_id is not None or params.repetition_penalty != 1.0:
        raise InvalidConditioning("codebook decoding runs to a fixed length: eos_id and repetition_penalty "
                                  "are not supported; leave them unset")
    b, k, t0 = prompt.shape
    pattern = pattern or DelayPattern(k)
    if pattern.n_codebooks != k or model.n_codebooks != k:
        raise ValueError(f"prompt has {k} codebooks, pattern {pattern.n_codebooks}, model {model.n_codebooks}")
    device, dtype = _model_device_dtype(model)
    _check_rng(params.rng, device)
    use_cfg = _use_cfg(params, prompt, uncond_prompt)
    n_frames = t0 + params.max_new_tokens
    length = 1 + pattern.sequence_length(n_frames)
    cache_len = _cache_len(model, length, cache_len)
    start_id = params.pad_id if start_id is None else start_id

    unknown = -1
    if fixed is not None and (fixed.dim() != 3 or fixed.shape[0] not in (1, b) or fixed.shape[1:] != (k, params.max_new_tokens)):
        raise ValueError(f"fixed codes must be [B or 1, {k}, {params.max_new_tokens}], got {tuple(fixed.shape)}")
    seqs = []
    for p in (prompt, uncond_prompt) if use_cfg else (prompt,):
        codes = torch.full((b, k, n_frames), unknown, dtype=torch.long, device=device)
        codes[..., :t0] = p.to(device=device, dtype=torch.long)
        if fixed is not None:
            codes[..., t0:] = fixed.to(device=device, dtype=torch.long).clamp_min(unknown).expand(b, -1, -1)
        seq = torch.full((b, k, length), start_id, dtype=torch.long, device=device)
        seq[..., 1:] = pattern.build(codes, params.pad_id)
        seqs.append(seq)
    seq = seqs[0]
    known = seq != unknown
    first = t0 + 1  # first step with an unknown token: codebook 0 of frame t0 (after the start column)
    total = length - first
    positions = torch.arange(length, device=device)

    _check_cancel(params, 0, total)
    model.setup_cache(2 * b if use_cfg else b, cache_len, dtype=dtype, device=device, static=static)
    try:
        x = torch.cat([s[..., :first] for s in seqs]) if use_cfg else seq[..., :first]
        logits = model(x, positions[:first])[..., -1, :]
        for i, pos in enumerate(range(first, length)):
            if i:
                _check_cancel(params, i, total)
            step_logits = logits.float()
            if use_cfg:
                step_logits = cfg_combine(step_logits, params.cfg_scale)
            sampled = sample(step_logits.reshape(b * k, -1), params.rng, temperature=params.temperature,
                             top_k=params.top_k, top_p=params.top_p).view(b, k)
            keep = known[..., pos]
            tokens = torch.where(keep, seq[..., pos], sampled)
            seq[..., pos] = tokens
            if params.progress is not None:
                params.progress(i + 1, total)
            if pos + 1 < length:
                # Unconditional rows share the sampled tokens but keep their own prompt tokens.
                x = torch.cat([tokens, torch.where(keep, seqs[1][..., pos], sampled)]) if use_cfg else tokens
                logits = step_fn(model, x[..., None], positions[pos : pos + 1])
    finally:
        model.clear_cache()
    return pattern.revert(seq[..., 1:])

