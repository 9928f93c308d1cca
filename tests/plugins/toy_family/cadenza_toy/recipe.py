"""Write the toy scale model: a settings file and its manifest, in OUT/toy-scale/.

The toy has nothing to learn; the recipe shows where a plugin's training hooks into `cadenza train`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETTINGS = {"bars": 2, "tempo_bpm": 100.0, "octave": 4, "velocity": 80, "program": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write toy-scale/ into")
    parser.add_argument("--octave", type=int, default=SETTINGS["octave"], help="octave of the tonic (4: middle C)")


def write_checkpoint(root: str | Path, octave: int = SETTINGS["octave"]):
    from cadenza.checkpoints import write_manifest
    from cadenza.conditioning import Capability

    directory = Path(root) / "toy-scale"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scale.json").write_text(json.dumps({**SETTINGS, "octave": octave}, indent=1, sort_keys=True) + "\n")
    return write_manifest(directory, name="toy-scale", family="toy", files={"weights": "scale.json"}, config={},
                          capabilities=[Capability.BARS, Capability.KEY, Capability.STYLE, Capability.TEMPO],
                          license="CC0-1.0", description="a scale of N bars (test plugin)",
                          made_by={"recipe": "cadenza train toy-scale"})


def run(args: argparse.Namespace) -> int:
    spec = write_checkpoint(args.out, args.octave)
    print(f"wrote {spec.directory}")
    return 0
