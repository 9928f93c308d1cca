"""The codec language model: a MusicGen-shaped transformer over ``K`` parallel codebooks.

One module serves MusicGen's weights (renamed from audiocraft's release layout by ``audiocraft_load.py``
or from transformers' ``MusicgenForConditionalGeneration`` by ``transformers_layout.py``) and our own
small default (saved as safetensors in this module's names).

- Input: ``K`` token streams in a delay pattern, one embedding table per codebook (``card + 1`` rows:
  the extra id ``card`` is the start / padding token, as in audiocraft), summed per step; sinusoidal
  positions (audiocraft's ``create_sin_embedding``); optional prefix states prepended before the
  first step (audiocraft's ``prepend`` fuser: MusicGen-melody's chroma and text).
- Layers: pre- or post-norm self-attention (causal), optional cross-attention to conditioning states,
  feed-forward; one linear head per codebook -> ``logits [B, K, S, card]``.
- Conditioning states follow MusicGen's convention: positions a mask marks False are **zero vectors**
  and cross-attention attends over all of them (no key mask), so an "empty condition" (the
  unconditional half of CFG) is all-zero states or an all-False mask.
- Inference: ``setup_cache`` preallocates the engine's static KV cache (``cadenza.engine.kv_cache``);
  cross-attention keys/values are computed once per generation (``set_cross_states``), not per step.
  On CPU (float32, not static) a one-frame step runs the C++ step (``step.py``) where it is built and
  supports the model. ``CodecLMRunner`` wraps a model and its conditioning into the engine's
  ``CodebookLM`` protocol for ``cadenza.engine.decode.decode_codebooks``.
- Training: ``forward_train`` applies the delay pattern internally and returns logits aligned with the
  codes; ``loss`` is the cross entropy over valid positions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.engine.cpp_kernel import parameters_key
from cadenza.engine.kv_cache import KVCache, LayerCaches, mark_static
from cadenza.engine.patterns import DelayPattern
from cadenza.generators.codec_lm.step import CodecStepWeights, build_step_weights, make_step, supports

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}
_NO_SCORE = torch.empty(0)  # the C++ step's "no score rows"


@dataclass(frozen=True)
class CodecLMConfig:
    """Shape of a codec LM.

    - ``n_q`` codebooks (K) of ``card`` codes each; ``delays`` per codebook (None = ``0..K-1``).
    - ``dim`` model width, ``num_heads``, ``num_layers``, ``ffn_dim`` feed-forward width.
    - ``cross_attention``: layers attend to conditioning states ``[B, S, dim]``.
    - ``cond_dim``: width of the conditioning states handed to the model; when set, the model owns a
      ``cond_proj`` Linear(cond_dim -> dim) (like MusicGen's T5 ``output_proj``). None: states arrive
      already projected to ``dim`` (audiocraft checkpoints keep the projection in their conditioners).
    - ``norm_first``: pre-norm (MusicGen) with a final ``out_norm``; else post-norm.
    - ``bias_attn`` / ``bias_ff`` / ``bias_proj``: biases of attention, feed-forward, output heads.
    - ``activation``: 'gelu' or 'relu'. ``max_period`` / ``positional_scale``: sinusoidal positions.
    - ``cross_attention_pos_emb`` (+ ``_scale``): add sinusoidal positions to the cross states.
    - ``max_seq_len``: most positions (prefix + steps) one KV cache holds.
    - ``dropout``: training only.
    - ``score_dim``: width of a frame-aligned score (``cadenza.music.score_roll``); when set, the model owns
      a ``score_proj`` Linear(score_dim -> dim) whose output is added to the input of each step: step ``s``
      (which predicts codebook 0 of frame ``s``) reads the score of frame ``s``. All-zero rows = no score.
    """

    n_q: int = 4
    card: int = 2048
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    ffn_dim: int = 4096
    cross_attention: bool = True
    cond_dim: int | None = None
    norm_first: bool = True
    bias_attn: bool = False
    bias_ff: bool = False
    bias_proj: bool = False
    activation: str = "gelu"
    max_period: float = 10_000.0
    positional_scale: float = 1.0
    cross_attention_pos_emb: bool = False
    cross_attention_pos_emb_scale: float = 1.0
    delays: tuple[int, ...] | None = None
    max_seq_len: int = 2048
    dropout: float = 0.0
    score_dim: int | None = None

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.dim % 2:
            raise ValueError(f"sinusoidal positions need an even dim, got {self.dim}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not supported (use {', '.join(ACTIVATIONS)})")
        if self.delays is not None:
            object.__setattr__(self, "delays", tuple(int(d) for d in self.delays))
        DelayPattern(self.n_q, self.delays)  # validates the delays

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def pattern(self) -> DelayPattern:
        return DelayPattern(self.n_q, self.delays)

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["delays"] is not None:
            data["delays"] = list(data["delays"])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CodecLMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown codec LM config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def sin_embedding(positions: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """Sinusoidal embedding as audiocraft's ``create_sin_embedding``: ``positions [T]`` -> ``[T, dim]``
    (float32, ``[cos | sin]`` halves)."""
    half = dim // 2
    adim = torch.arange(half, device=positions.device, dtype=torch.float32)
    phase = positions.float()[:, None] / (max_period ** (adim / (half - 1)))[None, :]
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, T, H * D]`` -> ``[B, H, T, D]``."""
    b, t, _ = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, D]`` -> ``[B, T, H * D]``."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with a packed ``in_proj`` (q, k, v rows, as torch's MHA)."""

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__()
        self.n_heads = config.num_heads
        self.dropout = config.dropout
        self.in_proj = nn.Linear(config.dim, 3 * config.dim, bias=config.bias_attn)
        self.out_proj = nn.Linear(config.dim, config.dim, bias=config.bias_attn)
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, input_pos: torch.Tensor | None, kv_len: int | None) -> torch.Tensor:
        """``x [B, T, dim]`` at positions ``input_pos [T]`` (None: no cache, causal over ``x``)."""
        q, k, v = (_split_heads(t, self.n_heads) for t in self.in_proj(x).chunk(3, dim=-1))
        if input_pos is None or self.kv_cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                 dropout_p=self.dropout if self.training else 0.0)
        else:
            keys, values = self.kv_cache.update(input_pos, k, v)
            if kv_len is not None:  # attend over the filled part only (cheaper on CPU)
                keys, values = keys[:, :, :kv_len], values[:, :, :kv_len]
            if x.shape[1] == 1 and kv_len is not None:
                out = F.scaled_dot_product_attention(q, keys, values)
            else:
                slots = torch.arange(keys.shape[2], device=x.device)
                mask = slots[None, :] <= input_pos[:, None]  # [T, S_kv]
                out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.out_proj(_merge_heads(out))


class CrossAttention(nn.Module):
    """Attention from the token stream to conditioning states; packed ``in_proj`` as torch's MHA."""

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__()
        self.n_heads = config.num_heads
        self.dim = config.dim
        self.dropout = config.dropout
        self.in_proj = nn.Linear(config.dim, 3 * config.dim, bias=config.bias_attn)
        self.out_proj = nn.Linear(config.dim, config.dim, bias=config.bias_attn)
        self.cached_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``states [B, S, dim]`` -> keys, values ``[B, H, S, D]``."""
        w, b = self.in_proj.weight[self.dim:], None if self.in_proj.bias is None else self.in_proj.bias[self.dim:]
        k, v = F.linear(states, w, b).chunk(2, dim=-1)
        return _split_heads(k, self.n_heads), _split_heads(v, self.n_heads)

    def forward(self, x: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """``x [B, T, dim]`` attends to ``states [B, S, dim]`` (or the cached keys/values when None)."""
        w, b = self.in_proj.weight[: self.dim], None if self.in_proj.bias is None else self.in_proj.bias[: self.dim]
        q = _split_heads(F.linear(x, w, b), self.n_heads)
        if states is not None:
            k, v = self.keys_values(states)
        elif self.cached_kv is not None:
            k, v = self.cached_kv
        else:
            raise RuntimeError("cross-attention needs conditioning states: pass cond_states or call set_cross_states")
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(_merge_heads(out))


class Layer(nn.Module):
    """One transformer layer (audiocraft's ``StreamingTransformerLayer`` without layer scale)."""

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.act = ACTIVATIONS[config.activation]
        self.self_attn = SelfAttention(config)
        self.cross_attn = CrossAttention(config) if config.cross_attention else None
        self.norm_cross = nn.LayerNorm(config.dim, eps=1e-5) if config.cross_attention else None
        self.linear1 = nn.Linear(config.dim, config.ffn_dim, bias=config.bias_ff)
        self.linear2 = nn.Linear(config.ffn_dim, config.dim, bias=config.bias_ff)
        self.norm1 = nn.LayerNorm(config.dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(config.dim, eps=1e-5)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, input_pos: torch.Tensor | None, kv_len: int | None,
                cross: torch.Tensor | None) -> torch.Tensor:
        # Dropout only while training: at a decode step a module call per dropout is pure overhead.
        drop = self.drop if self.training else _same
        if self.norm_first:
            x = x + drop(self.self_attn(self.norm1(x), input_pos, kv_len))
            if self.cross_attn is not None:
                x = x + drop(self.cross_attn(self.norm_cross(x), cross))
            return x + drop(self.linear2(drop(self.act(self.linear1(self.norm2(x))))))
        x = self.norm1(x + drop(self.self_attn(x, input_pos, kv_len)))
        if self.cross_attn is not None:
            x = self.norm_cross(x + drop(self.cross_attn(x, cross)))
        return self.norm2(x + drop(self.linear2(drop(self.act(self.linear1(x))))))


class CodecLM(nn.Module):
    """MusicGen-shaped LM: ``codes [B, K, S]`` (delay-pattern layout, id ``card`` = start/pad) ->
    ``logits [B, K, S, card]``, where logits at step ``s`` predict the tokens at step ``s + 1``."""

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.ModuleList(nn.Embedding(config.card + 1, config.dim) for _ in range(config.n_q))
        self.cond_proj = nn.Linear(config.cond_dim, config.dim) if config.cond_dim is not None else None
        self.score_proj = nn.Linear(config.score_dim, config.dim) if config.score_dim is not None else None
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        self.out_norm = nn.LayerNorm(config.dim, eps=1e-5) if config.norm_first else None
        self.linears = nn.ModuleList(nn.Linear(config.dim, config.card, bias=config.bias_proj)
                                     for _ in range(config.n_q))
        self.kv_caches = LayerCaches(config.num_layers, config.num_heads, config.head_dim)
        self._static = False  # set by setup_cache: fixed shapes for a compiled / CUDA-graphed step
        self._spare_cross: list[tuple[torch.Tensor, ...] | None] | None = None  # and its cross keys/values
        self._step_weights: CodecStepWeights | None = None  # derived from the parameters, kept while they hold
        self._step_impl = None  # the C++ one-frame step over ``_step_weights`` (see ``step.py``)
        self.step_impl = None  # ``_step_impl`` while a cache is set up for it, else None

    def __getstate__(self) -> dict:
        # The C++ step object cannot be copied or pickled; a copy builds its own at its next setup_cache.
        state = dict(super().__getstate__())
        state["_step_weights"] = state["_step_impl"] = state["step_impl"] = None
        return state

    # -- engine protocol facts ---------------------------------------------------------------------
    @property
    def n_codebooks(self) -> int:
        return self.config.n_q

    @property
    def vocab_size(self) -> int:
        return self.config.card

    @property
    def special_token_id(self) -> int:
        """The start / padding id (one past the last code), as audiocraft's ``special_token_id``."""
        return self.config.card

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    # -- conditioning ------------------------------------------------------------------------------
    def project_conditioning(self, states: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Conditioning ``states [B, S, cond_dim]`` + ``mask [B, S]`` (bool; None = all True) ->
        cross states ``[B, S, dim]`` with masked positions zeroed (MusicGen's null-condition convention)."""
        if states is None:
            return None
        states = states.to(self.linears[0].weight.dtype)  # text encoders run in fp32; the LM may not
        if self.cond_proj is not None:
            states = self.cond_proj(states)
        if states.shape[-1] != self.config.dim:
            raise ValueError(f"conditioning states have width {states.shape[-1]}, the model expects "
                             f"{self.config.cond_dim or self.config.dim}")
        if mask is not None:
            states = states * mask[..., None].to(states.dtype)
        if self.config.cross_attention_pos_emb:
            pos = sin_embedding(torch.arange(states.shape[1], device=states.device), states.shape[-1],
                                self.config.max_period)
            states = states + self.config.cross_attention_pos_emb_scale * pos.to(states.dtype)
        return states

    def set_cross_states(self, cross: torch.Tensor | None) -> None:
        """Precompute every layer's cross-attention keys/values from projected ``cross [B, S, dim]``
        (None clears them). The cached forward then needs no states per step. With a static cache
        they are written into the previous call's tensors when the shapes agree, so a CUDA graph
        captured over them stays valid."""
        if cross is None:
            for layer in self.layers:
                if layer.cross_attn is not None:
                    layer.cross_attn.cached_kv = None
            return
        self._set_cross_kv(cross)
        self._hand_cross_to_step()

    def _set_cross_kv(self, cross: torch.Tensor) -> None:
        spare, self._spare_cross = self._spare_cross, None
        for i, layer in enumerate(self.layers):
            attn = layer.cross_attn
            if attn is None:
                continue
            k, v = attn.keys_values(cross)
            old = spare[i] if spare is not None else None
            if self._static and old is not None and old[0].shape == k.shape and old[0].dtype == k.dtype:
                attn.cached_kv = (old[0].copy_(k), old[1].copy_(v))
            else:
                attn.cached_kv = (k, v)
                if self._static:
                    mark_static(k, v)

    # -- KV cache ----------------------------------------------------------------------------------
    def setup_cache(self, batch_size: int, max_seq_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, *, static: bool | None = None) -> None:
        """Preallocate keys/values ``[B, H, max_seq_len, D]`` for every layer (``LayerCaches``).

        ``static`` (default: True off the CPU) keeps every step's shapes fixed (attention over the whole
        cache under a mask) so a compiled step is one graph that CUDA graphs can replay; the cache is then
        kept by ``clear_cache`` and reused by the next call of the same shape, so its addresses stay put.
        Not static (the CPU default): a step attends over the filled part of the cache only.
        """
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(f"cache of {max_seq_len} positions exceeds the model's {self.config.max_seq_len}")
        p = next(self.parameters())
        dtype = dtype or p.dtype
        device = torch.empty(0, device=device or p.device).device  # "cuda" -> "cuda:0", comparable below
        self._static = device.type != "cpu" if static is None else static
        caches = self.kv_caches.setup(batch_size, max_seq_len, dtype, device, self._static)
        for layer, cache in zip(self.layers, caches):
            layer.self_attn.kv_cache = cache
        self.step_impl = None
        if (not self._static and device.type == "cpu" and p.dtype == torch.float32 and dtype == torch.float32
                and supports(self)):
            key = parameters_key(self)
            if self._step_weights is None or key is None or self._step_weights.key != key:
                self._step_weights = build_step_weights(self, key)
                self._step_impl = make_step(self._step_weights, self)
            if self._step_impl is not None:
                self._step_impl.set_caches([cache.kv for cache in caches])
                self.step_impl = self._step_impl
                self._hand_cross_to_step()
        else:
            self._step_weights = self._step_impl = None

    def _hand_cross_to_step(self) -> None:
        """Give the C++ step this generation's cross keys/values (when both exist)."""
        if self.step_impl is None or not self.config.cross_attention:
            return
        kvs = [layer.cross_attn.cached_kv for layer in self.layers]
        if all(kv is not None for kv in kvs):
            self.step_impl.set_cross([k.contiguous() for k, _ in kvs], [v.contiguous() for _, v in kvs])

    def clear_cache(self) -> None:
        """Detach the KV cache and cross states from the layers; a static cache is kept for reuse."""
        self.kv_caches.release()
        if self.step_impl is not None:  # the step and its weights stay: the next setup_cache reuses them
            self.step_impl.set_caches([])
            self.step_impl = None
        if self._static and any(layer.cross_attn is not None and layer.cross_attn.cached_kv is not None
                                for layer in self.layers):
            self._spare_cross = [layer.cross_attn.cached_kv if layer.cross_attn is not None else None
                                 for layer in self.layers]
        for layer in self.layers:
            layer.self_attn.kv_cache = None
        self.set_cross_states(None)

    def _step_has_cross(self) -> bool:
        """Whether the C++ step has what the model cross-attends to (always, without cross-attention)."""
        return not self.config.cross_attention or self.layers[0].cross_attn.cached_kv is not None

    # -- forward -----------------------------------------------------------------------------------
    def project_score(self, score: torch.Tensor) -> torch.Tensor:
        """``score [B, F, score_dim]`` -> ``[B, F, dim]`` (added to the step inputs); zero rows stay zero."""
        if self.score_proj is None:
            raise ValueError("this model takes no score (its config has no score_dim)")
        if score.shape[-1] != self.config.score_dim:
            raise ValueError(f"score rows have width {score.shape[-1]}, the model expects {self.config.score_dim}")
        score = score.to(self.linears[0].weight.dtype)
        present = (score.abs().sum(-1, keepdim=True) > 0).to(score.dtype)
        return self.score_proj(score) * present

    def forward(self, codes: torch.Tensor, input_pos: torch.Tensor | None = None, *,
                cross: torch.Tensor | None = None, prefix: torch.Tensor | None = None,
                score: torch.Tensor | None = None) -> torch.Tensor:
        """``codes [B, K, T]`` -> ``logits [B, K, T, card]``.

        ``input_pos [T]``: cache positions of the steps (None: no cache, positions ``0..T-1``).
        ``cross [B, S, dim]``: projected conditioning (``project_conditioning``); None uses the states
        given to ``set_cross_states``. ``prefix [B, P, dim]``: states prepended before the first step
        (only with ``input_pos`` None or starting at 0); they take positions ``0..P-1``, so with a cache
        ``input_pos`` must already count them, and their logits are dropped. ``score [B, T, dim]``:
        projected score rows of these steps (``project_score``), added to their inputs.
        """
        b, k, t = codes.shape
        if k != self.config.n_q:
            raise ValueError(f"expected {self.config.n_q} codebooks, got {k}")
        if (t == 1 and self.step_impl is not None and input_pos is not None and prefix is None and cross is None
                and not torch.is_grad_enabled() and self._step_has_cross()):
            row = _NO_SCORE if score is None else score.select(1, 0)
            return self.step_impl(codes.select(2, 0), int(input_pos[0]), row).view(b, k, 1, self.config.card)
        x = self.emb[0](codes[:, 0])
        for cb in range(1, k):
            x = x + self.emb[cb](codes[:, cb])
        if score is not None:
            x = x + score.to(x.dtype)
        n_prefix = 0
        if prefix is not None:
            n_prefix = prefix.shape[1]
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        if input_pos is None:
            positions = torch.arange(x.shape[1], device=x.device)
        else:
            positions = input_pos if prefix is None else torch.cat(
                [torch.arange(n_prefix, device=x.device), input_pos])
        x = x + self.config.positional_scale * sin_embedding(positions, self.config.dim, self.config.max_period).to(x.dtype)
        cached = input_pos is not None and self.layers[0].self_attn.kv_cache is not None
        kv_len = int(positions[-1]) + 1 if cached and not self._static else None
        for layer in self.layers:
            x = layer(x, positions if cached else None, kv_len, cross)
        if self.out_norm is not None:
            x = self.out_norm(x)
        if n_prefix:
            x = x[:, n_prefix:]
        return torch.stack([lin(x) for lin in self.linears], dim=1)

    # -- training ----------------------------------------------------------------------------------
    def pattern_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, K, T]`` -> model input ``[B, K, T + max_delay]``: a start column of
        ``special_token_id`` then the delay layout, without its last step (teacher forcing)."""
        pattern = self.config.pattern
        seq = pattern.build(codes, self.special_token_id)
        start = seq.new_full((*seq.shape[:2], 1), self.special_token_id)
        return torch.cat([start, seq[..., :-1]], dim=-1)

    def score_inputs(self, score: torch.Tensor, steps: int) -> torch.Tensor:
        """Projected score ``[B, F, score_dim]`` -> step inputs ``[B, steps, dim]``: step ``s`` gets frame
        ``s`` (zeros past the last frame)."""
        projected = self.project_score(score)[:, :steps]
        return F.pad(projected, (0, 0, 0, steps - projected.shape[1]))

    def forward_train(self, codes: torch.Tensor, cond_states: torch.Tensor | None = None,
                      cond_mask: torch.Tensor | None = None, prefix: torch.Tensor | None = None,
                      score: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits aligned with the codes: ``codes [B, K, T]`` (long, in ``[0, card)``),
        ``cond_states [B, S, cond_dim]`` + ``cond_mask [B, S]`` (bool; all-False = the empty
        condition for CFG dropout) -> ``logits [B, K, T, card]`` where ``logits[:, k, t]`` predicts
        ``codes[:, k, t]`` (the delay pattern is applied and reverted inside). ``score [B, T, score_dim]``:
        the frame-aligned score (all-zero rows: none)."""
        if self.config.cross_attention and cond_states is None:
            raise ValueError("this model cross-attends to conditioning: pass cond_states (zeros for none)")
        cross = self.project_conditioning(cond_states, cond_mask) if self.config.cross_attention else None
        inputs = self.pattern_inputs(codes)
        steps = None if score is None else self.score_inputs(score, inputs.shape[-1])
        logits = self(inputs, cross=cross, prefix=prefix, score=steps)
        return self.config.pattern.revert(logits)

    @staticmethod
    def loss(logits: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross entropy of ``logits [B, K, T, card]`` against ``codes [B, K, T]`` over positions
        where ``mask [B, K, T]`` (or ``[B, T]``, e.g. frames of padded clips) is True (None = all)."""
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1),
                             reduction="none").view(codes.shape)
        if mask is None:
            return ce.mean()
        if mask.dim() == 2:
            mask = mask[:, None, :].expand_as(codes)
        mask = mask.to(ce.dtype)
        return (ce * mask).sum() / mask.sum().clamp_min(1.0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CodecLMRunner(nn.Module):
    """``CodecLM`` + one generation's conditioning as the engine's ``CodebookLM``.

    ``cross [N, S, dim]`` and ``prefix [N, P, dim]`` are already projected (``N`` = the decode batch:
    ``2B`` under CFG, conditional rows first). The prefix occupies cache positions ``0..P-1``; the engine
    sees only token positions. ``score [N, S, dim]``: projected score inputs per token step
    (``CodecLM.score_inputs``; the unconditional rows zero), indexed by the steps' positions.
    """

    def __init__(self, lm: CodecLM, cross: torch.Tensor | None = None, prefix: torch.Tensor | None = None,
                 score: torch.Tensor | None = None) -> None:
        super().__init__()
        if lm.config.cross_attention and cross is None:
            raise ValueError("this model cross-attends to conditioning: pass cross states (zeros for none)")
        self.lm = lm
        self.cross = cross
        self.prefix = prefix
        self.score = score
        self.n_prefix = 0 if prefix is None else prefix.shape[1]
        self._prefill_next = True  # the first cached forward after setup_cache carries the prefix

    @property
    def n_codebooks(self) -> int:
        return self.lm.n_codebooks

    @property
    def vocab_size(self) -> int:
        return self.lm.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.lm.max_seq_len - self.n_prefix

    def _check_batch(self, batch_size: int) -> None:
        for name, t in (("cross", self.cross), ("prefix", self.prefix), ("score", self.score)):
            if t is not None and t.shape[0] != batch_size:
                raise ValueError(f"{name} states hold {t.shape[0]} rows but the decode batch is {batch_size}")

    def setup_cache(self, batch_size: int, max_seq_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, *, static: bool | None = None) -> None:
        self._check_batch(batch_size)
        self.lm.setup_cache(batch_size, max_seq_len + self.n_prefix, dtype=dtype, device=device, static=static)
        self._prefill_next = True
        if self.cross is not None:
            self.lm.set_cross_states(self.cross)

    def clear_cache(self) -> None:
        self.lm.clear_cache()

    def forward(self, codes: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """``codes [N, K, T]`` at token positions ``input_pos [T]`` -> ``logits [N, K, T, card]``."""
        # Decided in Python, not by reading ``input_pos`` (a host sync, and a graph break when compiled).
        first = self.prefix is not None and (input_pos is None or self._prefill_next)
        if input_pos is None:
            input_pos = torch.arange(codes.shape[-1], device=codes.device)
        else:
            self._prefill_next = False
        score = None
        if self.score is not None:
            score = self.score.index_select(1, input_pos.clamp(max=self.score.shape[1] - 1))
            score = score * (input_pos < self.score.shape[1]).to(score.dtype)[None, :, None]
        return self.lm(codes, input_pos + self.n_prefix, prefix=self.prefix if first else None, score=score)


def init_weights(lm: CodecLM, std: float = 0.02) -> None:
    """Initialise a fresh model for training: normal(0, std) linears/embeddings, depth-scaled output
    projections of the residual branches (GPT-2 style), zero biases."""
    depth_std = std / math.sqrt(2 * max(1, lm.config.num_layers))
    for name, module in lm.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            scaled = name.endswith("out_proj") or name.endswith("linear2")
            nn.init.normal_(module.weight, std=depth_std if scaled else std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
