"""AudioLDM2 (e.g. ``cvssp/audioldm2-music``) through its diffusers components: CLAP + T5 -> projection
-> GPT-2 -> UNet over a VAE of log-mel spectrograms -> HiFi-GAN vocoder, mono at the vocoder's rate.

Text encoding calls the pipeline's own ``encode_prompt``; the denoising runs in our loop; decoding is
the pipeline's (unscale, VAE decode, vocoder, crop), so with the same scheduler and seed the result
equals ``pipe(...)`` (tested). Init audio, which the pipeline has no way to take, is turned into the
same log-mel the vocoder inverts (see ``log_mel``), VAE-encoded (mean) and scaled by the VAE's
``scaling_factor``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cadenza.generators.diffusion.backend import ModelDefaults, TextConditions

# AudioLDM2's model card uses cfg 3.5; DPM-Solver++ reaches DDIM-200 quality in ~25 steps.
DEFAULTS = ModelDefaults(steps=25, cfg_scale=3.5, scheduler="dpm++", duration_s=10.0, strength=0.7)
MAX_DURATION_S = 60.0  # the UNet is convolutional; it was trained on 10.24 s, and memory grows with length


class AudioLDM2Backend:
    """Wraps a loaded ``diffusers.AudioLDM2Pipeline`` (its components; never its ``__call__``)."""

    scheduler_kind = "discrete"

    def __init__(self, pipe: Any, defaults: ModelDefaults = DEFAULTS) -> None:
        self.pipe = pipe
        self.defaults = defaults
        self.scheduler_config = dict(pipe.scheduler.config)
        vocoder = pipe.vocoder.config
        self.sample_rate = int(vocoder.sampling_rate)
        self.channels = 1
        self.hop = int(np.prod(vocoder.upsample_rates))  # samples per mel frame
        self.mels = int(vocoder.model_in_dim)
        self.max_duration_s = MAX_DURATION_S
        self.device = pipe.unet.device

    @torch.no_grad()
    def encode_text(self, prompts: list[str], negatives: list[str | None], durations_s: list[float],
                    use_cfg: bool) -> TextConditions:
        """GPT-2 states ``[B, 8, D]``, T5 states ``[B, S, D1]`` and T5 mask ``[B, S]`` per prompt (AudioLDM2
        has no timing conditioning: ``durations_s`` only sets the latent length). A missing negative prompt
        is the empty string, as in the pipeline."""
        negative = [n if n is not None else "" for n in negatives] if use_cfg else None
        embeds, mask, generated = self.pipe.encode_prompt(prompts, self.device, 1, use_cfg, negative_prompt=negative)
        cond = {"generated": generated, "t5": embeds, "mask": mask}
        if not use_cfg:
            return TextConditions(cond, None)
        b = len(prompts)
        uncond = {k: v[:b] for k, v in cond.items()}
        return TextConditions({k: v[b:] for k, v in cond.items()}, uncond)

    def height(self, duration_s: float) -> int:
        """Mel frames for ``duration_s``, rounded up to a multiple of the VAE's downsampling.

        Rounded up from the first frame count that holds the whole duration; the pipeline floors it first,
        so its 0.25 s at hop 64 / 16 kHz comes back 32 samples short.
        """
        factor = self.pipe.vae_scale_factor
        frames = math.ceil(duration_s / (self.hop / self.sample_rate) - 1e-9)
        return int(math.ceil(frames / factor)) * factor

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        factor = self.pipe.vae_scale_factor
        return (int(self.pipe.unet.config.in_channels), self.height(duration_s) // factor, self.mels // factor)

    def model_fn(self, scheduler: Any):
        unet = self.pipe.unet

        def predict(x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
            return unet(x, t, encoder_hidden_states=cond["generated"], encoder_hidden_states_1=cond["t5"],
                        encoder_attention_mask_1=cond["mask"], return_dict=False)[0]

        return predict

    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor, duration_s: float) -> torch.Tensor:
        mel = log_mel(wav.mean(1), self.sample_rate, self.hop, self.mels)  # [B, frames, mels]
        height = self.height(duration_s)
        fitted = mel.new_full((mel.shape[0], height, self.mels), math.log(1e-5))
        n = min(height, mel.shape[1])
        fitted[:, :n] = mel[:, :n]
        vae = self.pipe.vae
        latents = vae.encode(fitted.unsqueeze(1).to(self.device, vae.dtype)).latent_dist.mode()
        return latents * vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        vae = self.pipe.vae
        mel = vae.decode(latents / vae.config.scaling_factor).sample
        audio = self.pipe.mel_spectrogram_to_waveform(mel)  # [B, N]
        return audio[:, None, : int(duration_s * self.sample_rate)].float()


    @torch.no_grad()
    def text_audio_scores(self, prompt: str, wav: torch.Tensor) -> list[float]:
        """CLAP text-audio similarity of each candidate ``wav [N, 1, T]`` with ``prompt`` (higher = closer):
        the same ranking ``pipe(...)`` applies to its ``num_waveforms_per_prompt`` outputs."""
        from cadenza.fileio.audio import resample

        pipe = self.pipe
        rate = int(pipe.feature_extractor.sampling_rate)
        audio = wav[:, 0].numpy()
        if rate != self.sample_rate:
            audio = resample(audio, self.sample_rate, rate)  # rows as channels: one soxr call for all candidates
        inputs = pipe.tokenizer([prompt], return_tensors="pt", padding=True, truncation=True,
                                max_length=pipe.tokenizer.model_max_length)
        features = pipe.feature_extractor(list(audio), return_tensors="pt", sampling_rate=rate).input_features
        logits = pipe.text_encoder(input_ids=inputs.input_ids.to(self.device), attention_mask=inputs.attention_mask.to(self.device),
                                   input_features=features.to(self.device, pipe.text_encoder.dtype)).logits_per_text
        return [float(x) for x in logits[0]]


def log_mel(wav: torch.Tensor, sample_rate: int, hop: int, mels: int) -> torch.Tensor:
    """HiFi-GAN's input features, as AudioLDM computes them: ``wav [B, T]`` -> ``log(max(mel, 1e-5))``
    ``[B, T // hop, mels]`` from a magnitude STFT (Hann window, reflect-padded, not centred) through a
    Slaney mel filterbank from 0 Hz to min(8 kHz, Nyquist).

    For AudioLDM2's 16 kHz / hop 160 / 64 mels this is n_fft 1024, AudioLDM's own setting; other layouts
    scale the window with the hop (n_fft = the power of two at or above 4 * hop).
    """
    import librosa  # the mel filterbank (librosa's Slaney filters are what AudioLDM's features used)

    n_fft = 1024 if hop == 160 else 2 ** math.ceil(math.log2(4 * hop))
    fmax = min(8000.0, sample_rate / 2)
    basis = torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=mels, fmin=0.0, fmax=fmax)).to(wav)
    pad = (n_fft - hop) // 2
    padded = torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(padded, n_fft, hop_length=hop, win_length=n_fft, window=torch.hann_window(n_fft).to(wav),
                      center=False, return_complex=True).abs()
    mel = torch.matmul(basis, spec)  # [B, mels, frames]
    return torch.log(torch.clamp(mel, min=1e-5)).transpose(1, 2)
