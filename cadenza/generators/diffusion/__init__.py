"""Latent diffusion: real diffusers pipelines (AudioLDM2, Stable Audio Open) and our small default, all
denoised by ``engine.denoise``."""
