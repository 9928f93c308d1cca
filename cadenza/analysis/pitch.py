"""f0 with voicing confidence from torchfcpe, the pitch tracker the DDSP family and the monophonic
transcriber share (it sits here, below both).

torchfcpe's weights ship in its PyPI wheel (~36x real time on one core here, median error a few cents).
Frames are 10 ms at 16 kHz (hop 160), frame ``k`` centred on sample ``k * hop``: ``N // hop + 1`` frames
for ``N`` samples.
"""

from __future__ import annotations

import numpy as np
import torch

from cadenza.errors import MissingDependency

SAMPLE_RATE = 16000
HOP = 160
FCPE_MIN_HZ = 32.70


def n_frames(n_samples: int, hop: int = HOP) -> int:
    return n_samples // hop + 1


class PitchTracker:
    """torchfcpe's bundled model: ``track(audio [N] at 16 kHz) -> (f0_hz [F], confidence [F])``; unvoiced
    frames (confidence below ``threshold``) get f0 0. Load once, call many times (not thread-safe)."""

    def __init__(self, device: str = "cpu") -> None:
        from cadenza.compat import import_with_shims

        try:
            (torchfcpe,) = import_with_shims("torchfcpe")
        except ImportError as exc:
            raise MissingDependency(f"pitch tracking needs torchfcpe ({exc}): pip install --no-deps torchfcpe") from exc
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # torchfcpe prints [INFO]/[WARN] lines while loading
            self.model = torchfcpe.spawn_bundled_infer_model(device)
        if self.model.get_model_sr() != SAMPLE_RATE or self.model.get_hop_size() != HOP:
            raise MissingDependency("this torchfcpe version uses other frames than 16 kHz / hop 160; install torchfcpe 0.0.4")

    def track(self, audio: np.ndarray, threshold: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """``audio [N]`` float32 at 16 kHz -> ``(f0_hz [N // 160 + 1], confidence [same])``."""
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, :, None]
        with torch.inference_mode():
            latent = self.model.model(self.model.wav2mel(wav, SAMPLE_RATE))  # [1, F, 360]
            cents = self.model.model.latent2cents_local_decoder(latent, mask=False)
            f0 = self.model.model.cent_to_f0(cents)[0, :, 0]
            confidence = latent.max(dim=-1).values[0]
        f0 = torch.where((confidence > threshold) & (f0 >= FCPE_MIN_HZ), f0, torch.zeros_like(f0))
        frames = n_frames(audio.shape[-1])
        return _fit(f0.numpy(), frames), _fit(confidence.numpy(), frames)


def _fit(x: np.ndarray, frames: int) -> np.ndarray:
    x = x.astype(np.float32)
    if x.shape[0] >= frames:
        return x[:frames]
    return np.pad(x, (0, frames - x.shape[0]), mode="edge")
