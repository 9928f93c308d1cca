"""Our plain-torch Stable Audio DiT (`diffusion.dit`) against diffusers' classes it replaces at run time:
the same state dict gives the same outputs, so checkpoints trained with either load in the other."""

import pytest
import torch

from cadenza.generators.diffusion.dit import rotary_tables
from cadenza.generators.diffusion.model import DiTConfig, LatentDiT

diffusers = pytest.importorskip("diffusers")


def diffusers_twins(config: DiTConfig):
    from diffusers.models.transformers.stable_audio_transformer import StableAudioDiTModel
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

    projection = StableAudioProjectionModel(text_encoder_dim=config.text_dim, conditioning_dim=config.cond_dim,
                                            min_value=0, max_value=config.max_seconds)
    in_channels = (config.latent_dim + (config.score_channels if config.score_dim else 0)) * config.patch
    dit = StableAudioDiTModel(sample_size=1024, in_channels=in_channels, num_layers=config.layers,
                              attention_head_dim=config.head_dim, num_attention_heads=config.heads,
                              num_key_value_attention_heads=config.heads, out_channels=config.latent_dim * config.patch,
                              cross_attention_dim=config.cond_dim, time_proj_dim=config.time_proj_dim,
                              global_states_input_dim=2 * config.cond_dim, cross_attention_input_dim=config.cond_dim)
    return projection, dit


@pytest.mark.parametrize("score_dim", [None, 12])
def test_same_state_dict_same_velocity_as_diffusers(score_dim):
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    torch.manual_seed(0)
    config = DiTConfig(latent_dim=8, text_dim=24, cond_dim=16, layers=2, heads=2, head_dim=8, time_proj_dim=16,
                       max_seconds=4.0, patch=2, score_dim=score_dim, score_channels=4)
    ours = LatentDiT(config).eval()
    projection, dit = diffusers_twins(config)
    # every parameter name of ours exists there with the same shape: the state dicts are interchangeable
    theirs = {f"projection.{k}": v for k, v in projection.state_dict().items()}
    theirs.update({f"dit.{k}": v for k, v in dit.state_dict().items()})
    own = {k: v for k, v in ours.state_dict().items() if not k.startswith("score_proj.")}
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.3)
    projection.load_state_dict({k[len("projection."):]: v for k, v in own.items() if k.startswith("projection.")})
    dit.load_state_dict({k[len("dit."):]: v for k, v in own.items() if k.startswith("dit.")})

    batch, frames = 2, 11
    states, pooled = torch.randn(batch, 5, 24), torch.randn(batch, 24)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    seconds = torch.tensor([3.0, 1.5])
    cond = ours.conditions(states, mask, pooled, seconds)
    if score_dim:
        cond["score"] = torch.randn(batch, frames, score_dim)
    latents, time = torch.randn(batch, config.latent_dim, frames), torch.tensor([0.3, 0.9])
    with torch.no_grad():
        got = ours(latents, time, cond)
        # the same computation through diffusers' modules
        text = projection(text_hidden_states=torch.cat([pooled[:, None], states], dim=1)).text_hidden_states
        timing = projection(start_seconds=torch.zeros_like(seconds), end_seconds=seconds)
        cross = torch.cat([text, timing.seconds_start_hidden_states, timing.seconds_end_hidden_states], dim=1)
        assert torch.allclose(cross, cond["cross"], atol=1e-6)
        x = latents
        if score_dim:
            x = torch.cat([x, ours.score_channels(cond["score"], batch, frames, latents)], dim=1)
        x = torch.nn.functional.pad(x, (0, 1))
        x = x.reshape(batch, x.shape[1], -1, 2).permute(0, 1, 3, 2).reshape(batch, x.shape[1] * 2, -1)
        rotary = get_1d_rotary_pos_embed(config.head_dim // 2, x.shape[2] + 1, use_real=True,
                                         repeat_interleave_real=False)
        out = dit(x, time, encoder_hidden_states=cond["cross"], global_hidden_states=cond["global"],
                  rotary_embedding=rotary, encoder_attention_mask=cond["mask"], return_dict=False)[0]
        want = out.reshape(batch, config.latent_dim, 2, -1).permute(0, 1, 3, 2).reshape(batch, config.latent_dim, -1)
    assert torch.allclose(got, want[:, :, :frames], atol=1e-5), (got - want[:, :, :frames]).abs().max()


def test_rotary_tables_match_diffusers():
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    want = get_1d_rotary_pos_embed(16, 37, use_real=True, repeat_interleave_real=False)
    got = rotary_tables(16, 37)
    assert all(torch.equal(g, w) for g, w in zip(got, want))
