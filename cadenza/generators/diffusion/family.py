"""The latent diffusion family: diffusers pipelines (AudioLDM2, Stable Audio Open) and our small model."""

from cadenza.generators.diffusion.pull import PULLABLE
from cadenza.generators.diffusion.schedulers import scheduler_names
from cadenza.generators.family import Family, Recipe

FAMILY = Family(
    name="diffusion",
    output="audio",
    generator="cadenza.generators.diffusion.generator:DiffusionGenerator",
    sampling=frozenset({"cfg_scale", "steps", "scheduler", "strength"}),
    description="latent diffusion: text (and audio to start from) to audio",
    recipes={"diffusion": Recipe("cadenza.generators.diffusion.recipe",
                                 "the small text-to-music latent diffusion model")},
    find="cadenza.generators.diffusion.pipeline_dir:spec_for_name",
    pull="cadenza.generators.diffusion.pull:pull_pipeline",
    pullable={name: item.description for name, item in PULLABLE.items()},
    choices={"scheduler": scheduler_names()},
)
