"""Codec language models (MusicGen family): a codec turns audio into K parallel token streams, a
transformer LM (``lm.CodecLM``) predicts them in a delay pattern, driven by ``cadenza.engine.decode``.

Nothing here imports audiocraft at import time; modules that need it call
``cadenza.compat.import_audiocraft()`` when a model is loaded.
"""
