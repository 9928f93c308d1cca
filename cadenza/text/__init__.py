"""Offline text encoders shared by the text-conditioned families (codec LM, diffusion)."""
