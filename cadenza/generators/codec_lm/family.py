"""The codec LM family: MusicGen-style language models over neural audio codec tokens."""

from cadenza.generators.codec_lm.release_dir import PULLABLE
from cadenza.generators.family import Family, Recipe

FAMILY = Family(
    name="codec_lm",
    output="audio",
    generator="cadenza.generators.codec_lm.generator:CodecLMGenerator",
    sampling=frozenset({"temperature", "top_k", "top_p", "cfg_scale", "strength"}),
    description="codec language model (MusicGen and our small one): text, melody or audio prompt to audio",
    recipes={"codec-lm": Recipe("cadenza.generators.codec_lm.lm_recipe",
                                "the small text-to-music codec language model")},
    find="cadenza.generators.codec_lm.release_dir:spec_for_name",
    pull="cadenza.generators.codec_lm.release_dir:pull",
    pullable={name: item.description for name, item in PULLABLE.items()},
)
