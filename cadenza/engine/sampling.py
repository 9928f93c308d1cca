"""Logit processors and the sampler: small pure functions over ``logits [B, V]``.

Every function returns a new tensor (inputs are never modified) and works on any device. None of them
reads a value back to the host except ``check_rows`` (opt-in), so a CUDA decode loop does not stall
on a sync per token. Randomness comes only from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import torch

from cadenza.errors import CadenzaError

#: Temperatures at or below this are treated as greedy decoding (argmax), never as a division.
GREEDY_TEMPERATURE = 1e-5


class EmptyMask(CadenzaError, RuntimeError):
    """A constraint or mask left a row with no allowed token: a bug in the constraint, not the model."""


def is_greedy(temperature: float) -> bool:
    """Whether ``temperature`` means argmax decoding (0, or small enough to overflow a division)."""
    return temperature <= GREEDY_TEMPERATURE


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits [B, V] / temperature``; greedy temperatures (<= 1e-5) return ``logits`` unchanged."""
    if is_greedy(temperature) or temperature == 1.0:
        return logits
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits per row of ``[B, V]`` (ties at the k-th value are kept); the
    rest become ``-inf``. ``k <= 0`` or ``k >= V`` is a no-op."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter on ``[B, V]``: keep the smallest set of top tokens whose probability reaches
    ``p``; the top token is always kept. ``p >= 1`` is a no-op."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # Mass strictly before each token; a token is dropped only if the nucleus was already full
    # without it, which always keeps rank 0 (its preceding mass is 0 <= p, even for p <= 0).
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before > p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty (as in HF ``RepetitionPenaltyLogitsProcessor``) on tokens already seen.

    ``seen`` is either a bool presence mask ``[B, V]`` (cheap to keep up to date in a loop) or ids
    ``[B, T]``. Positive logits are divided by ``penalty``, negative ones multiplied, so ``penalty >
    1`` always makes a repeat less likely. ``penalty == 1`` is a no-op.
    """
    if penalty == 1.0:
        return logits
    if penalty <= 0:
        raise ValueError(f"repetition penalty must be > 0, got {penalty}")
    if seen.dtype != torch.bool:
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, seen.long(), True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_allowed_mask(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Set every token that ``allowed`` (bool ``[B, V]`` or ``[V]``) marks False to ``-inf``."""
    if allowed is None:
        return logits
    # Grammars usually build masks on the host; moving them here keeps callers device-agnostic.
    allowed = allowed.to(device=logits.device, dtype=torch.bool, non_blocking=True)
    return logits.masked_fill(~allowed, float("-inf"))


def apply_bias(logits: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Add an additive bias ``[B, V]`` or ``[V]`` (``-inf`` entries ban a token)."""
    if bias is None:
        return logits
    return logits + bias.to(device=logits.device, dtype=logits.dtype, non_blocking=True)


def check_rows(logits: torch.Tensor) -> None:
    """Raise ``EmptyMask`` if a row of ``[B, V]`` has no finite logit (every token banned).

    This reads one bool back to the host, so the decode loop calls it only when a mask was applied.
    Without it such a row would turn into NaN probabilities and a silent token 0.
    """
    dead = torch.isneginf(logits).all(dim=-1)
    if bool(dead.any()):
        rows = dead.nonzero().flatten().tolist()
        raise EmptyMask(
            f"every token is masked out in batch row(s) {rows}: the constraint allowed nothing "
            "at this step (a grammar bug, or a prompt the grammar does not accept)"
        )


def sample(
    logits: torch.Tensor,
    rng: torch.Generator | None,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    check: bool = False,
) -> torch.Tensor:
    """Draw one id per row from ``logits [B, V]`` -> ``ids [B]`` (long).

    Greedy (argmax) when ``temperature <= 1e-5``; otherwise temperature, then top-k, then top-p, then
    an exponential race: ``argmax(probs / E)`` with ``E ~ Exp(1)`` picks token i with probability
    ``probs[i]``, needs no host sync (as in gpt-fast) and is deterministic for a given ``rng`` state
    (``rng`` must live on ``logits``' device). ``check=True`` raises ``EmptyMask`` on a row with every
    token at ``-inf`` (see ``check_rows``).
    """
    if check:
        check_rows(logits)
    logits = logits.float()
    if is_greedy(temperature):
        return logits.argmax(dim=-1)
    logits = top_p_filter(top_k_filter(apply_temperature(logits, temperature), top_k), top_p)
    probs = logits.softmax(dim=-1)
    # Exponential race: E = -log(U) with U ~ U[0, 1). Drawn via ``rand`` because ``exponential_`` is
    # several times slower on CPU. U == 0 gives E = inf and a weight of 0, never NaN.
    race = torch.rand(probs.shape, generator=rng, device=probs.device, dtype=probs.dtype).log_().neg_()
    return probs.div_(race).argmax(dim=-1)
