"""What loading a built-in model imports, in a fresh process: only what it needs (the cold-start budget of
issue 20 is kept by what is imported, checked here without timing anything)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Imported by nothing a small built-in model needs: each cost 1-5 s of a cold start before.
NEVER = ("audiocraft.data", "audiocraft.solvers", "audiocraft.models", "audiocraft.modules.conditioners",
         "transformers.modeling_utils", "spacy", "gradio", "librosa", "matplotlib")


@pytest.mark.parametrize(("model", "also_never"), [
    ("musicgen-folk-small", ("torch._dynamo", "diffusers")),
    ("diffusion-folk-small", ("torch._dynamo", "diffusers.models.transformers.ace_step_transformer",
                              "diffusers.pipelines.stable_audio.pipeline_stable_audio")),
    ("remi-folk-small", ("torch._dynamo", "audiocraft", "diffusers", "transformers")),
])
def test_loading_a_built_in_model_imports_only_what_it_needs(model, also_never):
    code = ("import json, sys\nfrom cadenza import Studio\nStudio().load(%r)\n"
            "print(json.dumps(sorted(sys.modules)))\n" % model)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = set(json.loads(done.stdout.splitlines()[-1]))
    assert not imported & set(NEVER + also_never)
