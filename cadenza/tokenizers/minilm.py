"""all-MiniLM-L6-v2 in plain torch: a 6-layer BERT encoder and its WordPiece tokenizer (the ``tokenizers``
library), numerically the same as transformers' ``BertModel`` run with SDPA attention (tested bit for
bit against it), without importing transformers (~1.5-3.5 s of every start of an audio model).

Shapes: ``ids``/``mask`` ``[B, T]`` (mask 1 = real token, padding on the right); states ``[B, T, 384]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cadenza.errors import CheckpointError


@dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT ``config.json`` this encoder uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int = 0

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        data = json.loads(Path(path).read_text())
        if data.get("model_type") != "bert" or data.get("hidden_act", "gelu") != "gelu" \
                or data.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"{path}: not a plain BERT encoder (gelu, absolute positions)")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        x = self.word_embeddings(ids) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x + self.position_embeddings(positions))


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        shape = (*x.shape[:-1], -1, self.head_dim)
        q, k, v = (proj(x).view(shape).transpose(1, 2) for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=self.head_dim ** -0.5,
                                             is_causal=False)
        return out.transpose(1, 2).contiguous().reshape(*x.shape[:-1], -1).contiguous()


class _Output(nn.Module):
    """``LayerNorm(dense(x) + residual)``."""

    def __init__(self, c: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Output(c, c.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Output(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class BertEncoder(nn.Module):
    """A BERT encoder (no pooler), parameter names as in a transformers ``BertModel`` checkpoint."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``[B, T, H]`` of token ``ids [B, T]`` (``mask [B, T]``, 1 = real token)."""
        # As transformers does for SDPA: no mask when nothing is padded, else a boolean [B, 1, T, T] one
        # (True = attend), so the same attention kernel runs on the same inputs.
        attend = None
        if not bool(mask.all()):
            attend = mask.bool()[:, None, None, :].expand(-1, 1, ids.shape[1], -1)
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, attend)
        return x

    @classmethod
    def load(cls, directory: Path) -> BertEncoder:
        """The encoder in ``directory`` (``config.json`` + ``model.safetensors``)."""
        from safetensors.torch import load_file

        model = cls(BertConfig.from_file(directory / "config.json"))
        state = {k: v for k, v in load_file(directory / "model.safetensors").items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{directory}: not the BERT this encoder expects (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        return model.eval().requires_grad_(False)


class WordPiece:
    """The model's own tokenizer (``tokenizer.json``): lower-cased WordPiece, ``[CLS] ... [SEP]``, padded
    on the right to the longest text of a batch, cut at ``max_tokens``."""

    def __init__(self, directory: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(direction="right", pad_id=0, pad_type_id=0, pad_token="[PAD]")

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [B, T] long, mask [B, T] long)``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        return ids, mask
