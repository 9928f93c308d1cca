"""The symbolic family: a REMI Transformer writing MIDI under music-level controls."""

from cadenza.generators.family import Family, Recipe
from cadenza.tokenizers.styles import STYLES

FAMILY = Family(
    name="symbolic",
    output="midi",
    generator="cadenza.generators.symbolic.generator:SymbolicGenerator",
    sampling=frozenset({"temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "key_bias"}),
    description="REMI-token Transformer: style, key, meter, tempo and bars to MIDI",
    recipes={"symbolic": Recipe("cadenza.generators.symbolic.recipe",
                                "the REMI Transformer (remi-folk-small) from the music21 corpus")},
    choices={"style": STYLES},
)
