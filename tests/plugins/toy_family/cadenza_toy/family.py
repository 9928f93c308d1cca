"""The toy family's descriptor: light (no torch, no generator code imported here)."""

from cadenza.generators.family import Family, Recipe

DIRECTIONS = ("up", "down", "up-down")

FAMILY = Family(
    name="toy",
    output="midi",
    generator="cadenza_toy.generator:ScaleGenerator",
    sampling=frozenset({"temperature"}),
    description="scales in a key, N bars of eighth notes",
    recipes={"toy-scale": Recipe("cadenza_toy.recipe", "write the toy scale model's checkpoint folder")},
    choices={"style": DIRECTIONS},
)
