"""`ModelInfo`: what ``cadenza models`` (and the web studio's model list) says about one installed model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    """What ``cadenza models`` lists. From the model's family: ``output`` ('midi' or 'audio'),
    ``sampling`` (the `Sampling` fields it honours beyond seed and num_samples) and ``choices``
    (suggested values for free-text settings, e.g. ``{"scheduler": ("dpm++", ...)}``)."""

    name: str
    family: str
    output: str
    capabilities: tuple[str, ...]
    license: str
    description: str
    path: str
    sampling: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "output": self.output,
                "capabilities": list(self.capabilities), "sampling": list(self.sampling),
                "choices": {k: list(v) for k, v in self.choices.items()}, "license": self.license,
                "description": self.description, "path": self.path}
