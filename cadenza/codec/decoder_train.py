"""A new decoder for a trained codec (`cadenza train codec --decoder istft --from DIR`): the encoder and
the quantizer stay frozen, so every code and latent the codec LM and the diffusion model learned keeps
its meaning, and only the way back to audio is retrained.

Losses: a waveform L1 (alone for the first ``waveform_warmup`` steps: it locks the predicted phase to the
input's, as in `cadenza.codec.train`), the multi-scale log-mel L1 of `cadenza.codec.train`, and from step
``adversarial_from`` on, an adversary as in EnCodec: audiocraft's ``MultiScaleSTFTDiscriminator`` (complex
STFTs at three resolutions, so it hears phase; ``disc_filters`` 8 instead of EnCodec's 32, which costs
12 s a step on one CPU thread) with hinge losses and an L1 feature-matching loss (normalised by the real
features' scale). The mel loss gets the spectrum right fast; the adversary works on the texture a
reconstruction loss leaves.

A ``bypass_quantizer`` fraction of steps decodes the continuous latent (what the diffusion family
decodes), the rest the quantized one (what the codec LM's tokens give). Seeded per step, resumable from
``<run>/state.pt``: the whole codec (frozen parts included, so `cadenza train codec --export` reads it
like any codec run), the decoder's optimiser, and the discriminator with its optimiser.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from cadenza.codec.model import CodecConfig, build_codec
from cadenza.codec.train import MultiScaleMelLoss, OnsetFluxLoss, evaluate, load_split, random_crops
from cadenza.training import load_state, save_state, warmup_cosine_lr


@dataclass(frozen=True)
class DecoderTrainConfig:
    data_dir: str = "data/audio"
    codec_dir: str = ""  # the exported codec whose encoder and quantizer are kept
    run_dir: str = "runs/codec-istft"
    max_steps: int = 8000
    minutes: float | None = None
    batch: int = 8
    crop_s: float = 1.0
    lr: float = 5e-4
    disc_lr: float = 2e-4
    warmup: int = 200
    adversarial_from: int = 7000
    waveform_warmup: int = 300
    seed: int = 0
    max_clips: int = 3000
    threads: int = 1
    log_every: int = 25
    save_every: int = 200
    eval_every: int = 1000
    weight_mel: float = 1.0
    weight_l1: float = 10.0
    weight_adv: float = 0.07
    weight_feat: float = 0.13
    weight_flux: float = 0.0  # `OnsetFluxLoss`: how sharply notes begin (0: off)
    disc_filters: int = 8
    disc_batch: int = 4  # the adversary judges the first rows of each batch only (it dominates the step cost)
    bypass_quantizer: float = 0.25
    decoder_dim: int = 256
    decoder_layers: int = 8


def _discriminator(filters: int):
    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.adversarial.discriminators import MultiScaleSTFTDiscriminator

    return MultiScaleSTFTDiscriminator(filters=filters, n_ffts=[1024, 2048, 512], hop_lengths=[256, 512, 128],
                                       win_lengths=[1024, 2048, 512])


def _feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over every discriminator layer of ``|real - fake| / mean|real|``."""
    terms = [(f - r.detach()).abs().mean() / r.detach().abs().mean().clamp_min(1e-5)
             for r_maps, f_maps in zip(real, fake) for r, f in zip(r_maps, f_maps)]
    return torch.stack(terms).mean()


def _lr(step: int, config: DecoderTrainConfig, peak: float) -> float:
    return warmup_cosine_lr(step, peak=peak, warmup=config.warmup, total=config.max_steps, floor_ratio=0.1)


def build_from(codec_dir: str, config: DecoderTrainConfig):
    """``(model, codec_config, continued)``: the source codec with an istft decoder; encoder and quantizer
    frozen (``requires_grad=False``, eval mode). When the source already has an istft decoder of the same
    shape, training continues it (``continued``); otherwise the decoder starts fresh."""
    from cadenza.codec.export import read_codec_dir
    from safetensors.torch import load_file

    source_config, weights, _ = read_codec_dir(codec_dir)
    codec_config = replace(source_config, decoder="istft", decoder_dim=config.decoder_dim,
                           decoder_layers=config.decoder_layers)
    model = build_codec(codec_config)
    continued = codec_config == source_config
    kept = {k: v for k, v in load_file(weights).items() if continued or not k.startswith("decoder.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise ValueError(f"{codec_dir}: encoder/quantizer weights do not fit (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    for part in (model.encoder, model.quantizer):
        part.requires_grad_(False)
    return model, codec_config, continued


def train_decoder(config: DecoderTrainConfig, log=print) -> Path:
    """Train (or resume) the new decoder in ``config.run_dir``; stops at ``max_steps`` or after ``minutes``."""
    torch.set_num_threads(config.threads)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    model, codec_config, continued = build_from(config.codec_dir, config)
    if continued:
        log(f"continuing the istft decoder of {config.codec_dir}")
        config = replace(config, waveform_warmup=0)  # its phase is already locked to the input's
    (run / "config.json").write_text(json.dumps({"train": asdict(config), "codec": codec_config.to_dict()}, indent=1))
    torch.manual_seed(config.seed)
    disc = _discriminator(config.disc_filters)
    opt_g = torch.optim.AdamW(model.decoder.parameters(), lr=config.lr, betas=(0.8, 0.99), weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=config.disc_lr, betas=(0.8, 0.99), weight_decay=0.0)
    step = 0
    state_path = run / "state.pt"
    if (state := load_state(state_path, model, opt_g)) is not None:
        step = int(state["step"])
        disc.load_state_dict(state["disc"])
        opt_d.load_state_dict(state["disc_optimizer"])
        log(f"resumed at step {step}")
    train_audio = load_split(config.data_dir, "train", config.max_clips)
    val_audio = load_split(config.data_dir, "validation", 48)
    crop = int(config.crop_s * codec_config.sample_rate)
    mel_loss = MultiScaleMelLoss(codec_config.sample_rate)
    flux_loss = OnsetFluxLoss(codec_config.sample_rate) if config.weight_flux else None
    started = time.time()

    def save() -> None:
        save_state(state_path, model, opt_g, step, disc=disc.state_dict(), disc_optimizer=opt_d.state_dict())

    model.encoder.eval()
    model.quantizer.eval()
    with open(run / "log.jsonl", "a") as log_file:
        while step < config.max_steps:
            if config.minutes is not None and time.time() - started > config.minutes * 60:
                break
            rng = random.Random(config.seed * 1_000_003 + step)
            x = random_crops(train_audio, rng, config.batch, crop)
            with torch.no_grad():
                latent = model.encoder(x)
                if rng.random() >= config.bypass_quantizer:
                    latent = model.quantizer.decode(model.quantizer.encode(latent))
            for group in opt_g.param_groups:
                group["lr"] = _lr(step, config, config.lr)
            for group in opt_d.param_groups:
                group["lr"] = _lr(step, config, config.disc_lr)
            model.decoder.train()
            y = model.decoder(latent)[..., : x.shape[-1]]
            adversarial = step >= config.adversarial_from
            d_loss = x.new_zeros(())
            if adversarial:
                real_logits, real_maps = disc(x[: config.disc_batch])
                fake_logits, _ = disc(y[: config.disc_batch].detach())
                d_loss = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
                             for r, f in zip(real_logits, fake_logits)) / len(real_logits)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            l1 = (y - x).abs().mean()
            warming = step < config.waveform_warmup
            mel = x.new_zeros(()) if warming else mel_loss(y, x)
            g_loss = config.weight_l1 * l1 + config.weight_mel * mel
            flux = x.new_zeros(()) if flux_loss is None or warming else flux_loss(y, x)
            g_loss = g_loss + config.weight_flux * flux
            adv = feat = x.new_zeros(())
            if adversarial:
                fake_logits, fake_maps = disc(y[: config.disc_batch])
                adv = sum(torch.relu(1 - f).mean() for f in fake_logits) / len(fake_logits)
                feat = _feature_matching(real_maps, fake_maps)
                g_loss = g_loss + config.weight_adv * adv + config.weight_feat * feat
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.decoder.parameters(), 1.0)
            opt_g.step()
            step += 1
            if step % config.log_every == 0:
                entry = {"step": step, "l1": round(l1.item(), 5), "mel": round(mel.item(), 4), "flux": round(flux.item(), 4),
                         "adv": round(adv.item(), 4),
                         "feat": round(feat.item(), 4), "disc": round(d_loss.item(), 4),
                         "lr": _lr(step, config, config.lr), "minutes": round((time.time() - started) / 60, 2)}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
                log(json.dumps(entry))
            if step % config.save_every == 0 or step == config.max_steps:
                save()
            if step % config.eval_every == 0 or step == config.max_steps:
                metrics = evaluate(model, val_audio, codec_config.sample_rate)
                log_file.write(json.dumps({"step": step, "validation": asdict(metrics)}) + "\n")
                log_file.flush()
                log(f"validation at {step}: {metrics}")
    save()
    return run
