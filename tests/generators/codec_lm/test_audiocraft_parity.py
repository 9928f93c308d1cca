"""Our CodecLM on audiocraft's weights gives audiocraft's logits and audiocraft's greedy generations."""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode_codebooks
from cadenza.generators.codec_lm.audiocraft_load import lm_state_from_audiocraft, read_release
from cadenza.generators.codec_lm.chroma import ChromaSettings, chroma
from cadenza.generators.codec_lm.conditioners import AudiocraftConditioning, ConditionInputs, conditioner_state
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMRunner

from tiny_musicgen import SAMPLE_RATE, build_tiny_audiocraft, write_tiny_release


def _ours(directory):
    release = read_release(directory)
    lm = CodecLM(release.lm_config)
    lm.load_state_dict(lm_state_from_audiocraft(release.lm_state))
    cond = AudiocraftConditioning(release.lm_cfg, release.lm_config.dim, [])
    cond.load_state_dict(conditioner_state(release.lm_state))
    return lm.eval(), cond.eval()


def _attributes(texts):
    from audiocraft.modules.conditioners import ConditioningAttributes

    return [ConditioningAttributes(text={"description": t}) for t in texts]


@pytest.mark.parametrize("custom", [False, True])
def test_logits_match_audiocraft_lmmodel(tmp_path, custom):
    ref, codec, lm_cfg, codec_cfg = build_tiny_audiocraft("mono", custom=custom)
    from cadenza.generators.codec_lm.audiocraft_configs import save_release

    save_release(tmp_path, ref, lm_cfg, codec, codec_cfg)
    lm, cond = _ours(tmp_path)
    texts = ["warm jazz trio", None]
    seq = torch.randint(0, lm.config.card + 1, (2, 4, 15), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tensors = ref.condition_provider(ref.condition_provider.tokenize(_attributes(texts)))
        want = ref(seq, [], condition_tensors=tensors)
        cross, prefix = cond(ConditionInputs(texts, [None, None]))
        got = lm(seq, cross=lm.project_conditioning(cross, None), prefix=prefix)
        with ref.streaming():  # audiocraft's own cache vs our static cache, step by step
            want_steps = [ref(seq[..., :6], [], condition_tensors=tensors)]
            want_steps += [ref(seq[..., i : i + 1], [], condition_tensors=tensors) for i in range(6, 9)]
        runner = CodecLMRunner(lm, cross=lm.project_conditioning(cross, None))
        runner.setup_cache(2, 9)
        got_steps = [runner(seq[..., :6], torch.arange(6))]
        got_steps += [runner(seq[..., i : i + 1], torch.tensor([i])) for i in range(6, 9)]
    assert got.shape == want.shape == (2, 4, 15, lm.config.card)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert torch.allclose(torch.cat(got_steps, 2), torch.cat(want_steps, 2), atol=1e-4)


def test_prepended_conditions_match_audiocraft(tmp_path):
    """MusicGen-melody fuses text and chroma by prepending them; order and positions must agree."""
    import sys

    from tiny_musicgen import demucs_stand_in

    ref, codec, lm_cfg, codec_cfg = build_tiny_audiocraft("melody")
    from cadenza.generators.codec_lm.audiocraft_configs import save_release

    save_release(tmp_path, ref, lm_cfg, codec, codec_cfg)
    lm, cond = _ours(tmp_path)
    from audiocraft.modules.conditioners import ConditioningAttributes, WavCondition

    null_wav = WavCondition(torch.zeros(1, 1, 1), torch.tensor([0]), [SAMPLE_RATE], [None], [None])
    attrs = [ConditioningAttributes(text={"description": t}, wav={"self_wav": null_wav}) for t in ("folk", None)]
    for a in attrs:  # as MusicGen.get_pretrained configures the melody conditioner for inference
        ref.condition_provider.conditioners["self_wav"].match_len_on_eval = True
        ref.condition_provider.conditioners["self_wav"]._use_masking = False
    seq = torch.randint(0, lm.config.card + 1, (2, 4, 10), generator=torch.Generator().manual_seed(1))
    saved = dict(sys.modules)
    sys.modules.update(demucs_stand_in())
    try:
        with torch.no_grad():
            tensors = ref.condition_provider(ref.condition_provider.tokenize(attrs))
            want = ref(seq, [], condition_tensors=tensors)
    finally:
        for name in ("demucs", "demucs.pretrained"):
            if name not in saved:
                sys.modules.pop(name, None)
    with torch.no_grad():
        cross, prefix = cond(ConditionInputs(["folk", None], [None, None]))
        got = lm(seq, prefix=prefix)
    assert cross is None and prefix.shape[1] > 1
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_greedy_generation_matches_audiocraft_generate(tmp_path):
    ref, codec, lm_cfg, codec_cfg = build_tiny_audiocraft("mono")
    from cadenza.generators.codec_lm.audiocraft_configs import save_release

    save_release(tmp_path, ref, lm_cfg, codec, codec_cfg)
    lm, cond = _ours(tmp_path)
    texts = ["ambient pads", "fast drums"]
    prompt = torch.randint(0, lm.config.card, (2, 4, 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref.generate(prompt, _attributes(texts), max_gen_len=20, use_sampling=False, cfg_coef=3.0)
        cross, _ = cond(ConditionInputs(texts + [None, None], [None] * 4))
        runner = CodecLMRunner(lm, cross=lm.project_conditioning(cross, None))
        params = DecodeParams(max_new_tokens=17, temperature=0.0, cfg_scale=3.0, pad_id=lm.special_token_id)
        got = decode_codebooks(runner, prompt, params, uncond_prompt=prompt, start_id=lm.special_token_id)
    assert torch.equal(got, want)


def test_chroma_matches_audiocraft_extractor():
    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.modules.chroma import ChromaExtractor

    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    wav = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 659.25 * t))[None]
    for argmax in (False, True):
        want = ChromaExtractor(SAMPLE_RATE, 12, 10, argmax=argmax)(wav.clone())
        got = chroma(wav, ChromaSettings(SAMPLE_RATE, 12, 10, argmax))
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5)


def test_release_loads_only_plain_data(tmp_path):
    import pickle

    from cadenza.errors import CheckpointError

    directory = write_tiny_release(tmp_path / "r")
    (directory / "compression_state_dict.bin").unlink()
    with pytest.raises(CheckpointError, match="compression_state_dict.bin is missing"):
        read_release(directory)
    with open(directory / "state_dict.bin", "wb") as handle:
        pickle.dump({"best_state": {}, "xp.cfg": "", "evil": print}, handle)  # a callable: not plain data
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        read_release(directory)
