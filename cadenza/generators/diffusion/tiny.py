"""Tiny random AudioLDM2 and Stable Audio pipelines, built from configs in code (no hub, no network), for
the tests and the denoise benchmark (one place for both).

Text tokenizers are trained on the fly with the ``tokenizers`` library and wrapped in the transformers
classes each pipeline expects; every component is random. ``save_pretrained`` lays a pipeline out as a
real download does, so tests load it through the same path a user's folder or HF-cache snapshot takes.
"""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "a calm solo piano piece in c major", "an upbeat techno track with a strong beat", "low quality, noisy",
    "a sad violin melody", "a lively irish reel on the fiddle", "ambient pads and soft strings",
    "a jazz trio with walking bass", "drums and bass", "birds singing", "orchestral film music",
]

# Audio layout of the tiny models (kept small so a whole generation takes tens of milliseconds).
AUDIOLDM2_SR = 16000       # vocoder output rate
AUDIOLDM2_HOP = 64         # vocoder upsampling (samples per mel frame)
AUDIOLDM2_MELS = 8         # mel bins = vocoder model_in_dim
STABLE_AUDIO_SR = 8000
STABLE_AUDIO_HOP = 32      # Oobleck downsampling (samples per latent frame)
STABLE_AUDIO_WINDOW = 128  # the DiT's sample_size: latent frames of the full window (0.512 s)


def roberta_tokenizer(max_length: int = 32):
    """A byte-level BPE trained on ``CORPUS``, wrapped as transformers' RobertaTokenizer."""
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    vocab = bpe.get_vocab()
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(bpe.to_str())["model"]["merges"]]
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def t5_tokenizer(max_length: int = 32):
    """A Unigram model trained on ``CORPUS``, wrapped as transformers' T5Tokenizer."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    uni.train_from_iterator(CORPUS, trainer=trainer)
    vocab = [(piece, float(score)) for piece, score in json.loads(uni.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


def _t5(vocab_size: int, seed: int):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=2,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()


def build_audioldm2(seed: int = 0, channels: tuple[int, int] = (8, 16)):
    """A random ``AudioLDM2Pipeline``: CLAP + T5 -> projection -> GPT-2 -> UNet over a VAE of mels -> HiFi-GAN.
    ``channels``: the UNet's block widths (wider for benchmarks)."""
    from diffusers import AudioLDM2Pipeline, AutoencoderKL, DDIMScheduler
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig, GPT2Config,
                              GPT2LMHeadModel, SpeechT5HifiGan, SpeechT5HifiGanConfig)

    tokenizer, tokenizer_2 = roberta_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=tuple(channels), layers_per_block=1, norm_num_groups=8, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]), attention_head_dim=4)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1, norm_num_groups=8,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4)
    torch.manual_seed(seed + 2)
    clap = ClapModel(ClapConfig(
        text_config=ClapTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=37,
                                   num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tokenizer),
                                   max_position_embeddings=40).to_dict(),
        audio_config=ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[2, 2],
                                     num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=192, patch_size=2,
                                     patch_stride=2, patch_embed_input_channels=4).to_dict(),
        projection_dim=32)).eval()
    feature_extractor = ClapFeatureExtractor(sampling_rate=AUDIOLDM2_SR, hop_length=7900)
    text_encoder_2 = _t5(len(tokenizer_2), seed + 3)
    torch.manual_seed(seed + 4)
    language_model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=100, n_ctx=99,
                                                n_positions=99)).eval()
    language_model.config.max_new_tokens = 4
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=32, text_encoder_1_dim=32, langauge_model_dim=16)
    torch.manual_seed(seed + 5)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=AUDIOLDM2_MELS, sampling_rate=AUDIOLDM2_SR, upsample_initial_channel=16, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False)).eval()
    return AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=text_encoder_2, projection_model=projection_model,
                             language_model=language_model, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                             feature_extractor=feature_extractor, unet=unet, scheduler=scheduler, vocoder=vocoder)


def build_stable_audio(seed: int = 0, layers: int = 2, heads: int = 2, head_dim: int = 8):
    """A random ``StableAudioPipeline``: T5 -> projection (+ start/end seconds) -> DiT over an Oobleck VAE.
    ``layers`` / ``heads`` / ``head_dim``: the DiT's size (larger for benchmarks)."""
    from diffusers import AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel, StableAudioPipeline
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

    tokenizer = t5_tokenizer()
    text_encoder = _t5(len(tokenizer), seed)
    torch.manual_seed(seed + 1)
    transformer = StableAudioDiTModel(
        sample_size=STABLE_AUDIO_WINDOW, in_channels=4, num_layers=layers, attention_head_dim=head_dim,
        num_attention_heads=heads, num_key_value_attention_heads=heads, out_channels=4, cross_attention_dim=16, time_proj_dim=8,
        global_states_input_dim=32, cross_attention_input_dim=16)
    # Stable Audio Open's own scheduler (v-prediction over continuous sigmas).
    scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0,
                                                  sigma_min=0.3, sigma_max=500, sigma_schedule="exponential")
    torch.manual_seed(seed + 2)
    vae = AutoencoderOobleck(encoder_hidden_size=8, downsampling_ratios=[4, 8], decoder_channels=6,
                             decoder_input_channels=4, audio_channels=2, channel_multiples=[2, 4],
                             sampling_rate=STABLE_AUDIO_SR)
    torch.manual_seed(seed + 3)
    projection_model = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=16, min_value=0, max_value=47)
    return StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection_model,
                               tokenizer=tokenizer, transformer=transformer, scheduler=scheduler)


def save_pipeline(pipe, directory: Path) -> Path:
    """``save_pretrained`` into ``directory`` (safetensors), as a real model folder is laid out."""
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory
