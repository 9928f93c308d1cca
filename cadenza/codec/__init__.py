"""The shared neural audio codec (SEANet + RVQ, built from audiocraft's modules).

One codec serves two families, so it lives below both: its quantized codes are the tokens the codec LM
predicts, and its continuous encoder output is the latent space of the diffusion family.

- ``model``: ``CodecConfig``, ``build_codec``, ``load_codec`` (the model itself).
- ``train``: ``cadenza train codec`` training loop and reconstruction metrics.
- ``export``: ``codec.safetensors`` + ``codec.json`` release folders (``export_codec``, ``load_codec_dir``).
- ``recipe``: the command-line recipe behind ``cadenza train codec``.

Nothing here imports audiocraft at import time (``cadenza.compat.import_audiocraft()`` on build).
"""
