"""MusicGen in the transformers layout (tiny random ``MusicgenForConditionalGeneration`` saved with
``save_pretrained``) loads onto CodecLM with transformers' logits, and generates through Studio."""

from __future__ import annotations

import pytest
import torch
from tiny_musicgen import write_tiny_t5

from cadenza import Conditioning, Sampling
from cadenza.generators.codec_lm.conditioners import ConditionInputs
from cadenza.generators.codec_lm.generator import CodecLMGenerator
from cadenza.generators.codec_lm.release_dir import find_release, spec_for_release
from cadenza.studio import Studio


@pytest.fixture(scope="module")
def hf_musicgen(tmp_path_factory):
    from transformers import (AutoTokenizer, EncodecConfig, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, T5Config)

    root = tmp_path_factory.mktemp("hf-musicgen")
    tokenizer = AutoTokenizer.from_pretrained(write_tiny_t5(root / "t5"), local_files_only=True)
    text = T5Config(vocab_size=len(tokenizer), d_model=24, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    audio = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, upsampling_ratios=[5, 4, 4, 2],
                          codebook_size=32, codebook_dim=16, hidden_size=16, num_residual_layers=1,
                          use_causal_conv=False, normalize=False, target_bandwidths=[1.0])  # 1000 / (50 * 5) = 4 codebooks
    decoder = MusicgenDecoderConfig(vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    ffn_dim=64, num_codebooks=4, max_position_embeddings=256, pad_token_id=32,
                                    bos_token_id=32)
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("decoder.") or name.startswith("enc_to_dec"):
                p.add_(torch.randn_like(p) * 0.2)
    directory = root / "musicgen-tiny-hf"
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer, directory


def test_logits_match_transformers(hf_musicgen):
    model, tokenizer, directory = hf_musicgen
    spec = spec_for_release(find_release(directory))
    assert spec.config["format"] == "transformers" and len(spec.sha256) == 64
    gen = CodecLMGenerator.from_checkpoint(spec)
    lm = gen.bundle.lm
    texts = ["calm piano with rain", "calm piano with rain"]
    states, mask, _ = gen.bundle.condition(ConditionInputs(texts, [None, None]))
    cross = lm.project_conditioning(states, mask)
    seq = torch.randint(0, 33, (2, 4, 10), generator=torch.Generator().manual_seed(0))
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model.text_encoder(**batch).last_hidden_state
        hidden = model.enc_to_dec_proj(hidden) * batch["attention_mask"][..., None]
        want = model.decoder(input_ids=seq.reshape(8, 10), encoder_hidden_states=hidden,
                             encoder_attention_mask=batch["attention_mask"]).logits
        got = lm(seq, cross=cross)
    assert torch.allclose(got.reshape(want.shape), want, atol=1e-4), (got.reshape(want.shape) - want).abs().max()


def test_transformers_folder_generates_through_studio(hf_musicgen):
    _, _, directory = hf_musicgen
    out = Studio(model_dirs=[]).generate(str(directory), Conditioning(text="loud drums", duration_s=0.5),
                                         Sampling(seed=1))[0]
    assert out.sample_rate == 8000 and out.samples.shape == (1, 4000)
    assert out.provenance.notes["sampling_used"]["top_k"] == 250
