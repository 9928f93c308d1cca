"""Run a benchmark: ``python -m benchmarks NAME [--quick]``.

Each benchmark is a module here with ``main(quick: bool) -> dict``. It prints progress lines as it
goes; the runner then prints the figures it returns as one JSON object, always the last line of
output (scripts read that line).

``--device cpu|cuda``, ``--dtype float32|bfloat16|float16`` and ``--compile/--no-compile`` go only to a
benchmark whose ``main`` takes them (decode_symbolic, decode_codec: ``python -m benchmarks decode_codec
--device cuda``); given to another they are an error, never silently dropped. Left out, the benchmark
picks: cpu, ``pick_dtype`` (fp32 on CPU, bf16 on CUDA), compiled on CUDA only. ``--seed N`` and
``--prompts N`` likewise go only to a benchmark that draws its inputs from a seed (audio_controls: other
prompts, and how many).

To add one: write ``benchmarks/NAME.py`` with that ``main`` and add its name to ``BENCHMARKS`` below.
It runs from any folder: files of the repository are found through ``benchmarks.paths``, never the
current folder (``pip install -e .`` installs ``benchmarks`` beside ``cadenza``).
Only the chosen benchmark's module is imported, so one benchmark's optional dependencies never break
another. (Worker processes started with "spawn" do not re-import a package's ``__main__``.)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys

# name -> one line of what it measures (the module benchmarks/<name>.py has ``main(quick) -> dict``)
BENCHMARKS: dict[str, str] = {
    "batch_scale": "cadenza batch on Ray vs the local process pool (250 jobs), and a worker killed mid-run on each",
    "audio_controls": "audio models: asked key, tempo, tune (note F1 vs the score) and instrument heard; vs FluidSynth",
    "busy_machine": "built-in models' slowdown with two CPU-bound processes beside them (busy / idle)",
    "cold_start": "`cadenza generate` from a fresh process: import, load, generate (8 s of audio, 16 bars)",
    "decode_symbolic": "symbolic decode tokens/s vs HF generate on the same weights",
    "decode_codec": "MusicGen-shaped LM ms/step with CFG vs audiocraft's generate on the same weights",
    "denoise": "our denoise loop vs the diffusers pipeline's __call__; DPM-Solver++ 20 vs DDIM 200",
    "ddsp": "DDSP timbre transfer real-time factor on one core; f0 tracker accuracy",
    "reliability": "fuzzed MIDI/audio through render, prompt, transfer: crashes, NaN written; peak RSS of long renders",
    "render_batch": "batch MIDI -> audio files/s vs one fluidsynth process per file",
    "symbolic_controls": "symbolic control adherence: decode, exact bars/tempo/meter, key",
    "symbolic_form": "whole tunes: pile-ups, form plans kept, repeated bars vs corpus, one line, infilling",
    "text_to_music": "audio defaults: prompted instrument heard (offline probe) and real-time factor",
    "transcribe": "audio -> MIDI note F1 (solo lines, chorales, DDSP renders) and x real time on one thread",
    "web_load": "web studio, 20 visitors at a time x 20 rounds on loopback: requests ok, RSS growth, temp files left",
}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.hardware import add_device_options

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(BENCHMARKS),
                        help="; ".join(f"{k}: {v}" for k, v in sorted(BENCHMARKS.items())))
    parser.add_argument("--quick", action="store_true", help="a smaller run, for CI and quick checks")
    parser.add_argument("--seed", type=int, help="draw other inputs (audio_controls: other prompts and tunes)")
    parser.add_argument("--prompts", type=_positive, help="how many inputs (audio_controls: prompts, default 20)")
    device = parser.add_argument_group("where it runs (decode_symbolic, decode_codec)")
    add_device_options(device)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"benchmarks.{args.name}")
    options = {k: v for k, v in (("device", args.device), ("dtype", args.dtype), ("compile", args.compile),
                                 ("seed", args.seed), ("prompts", args.prompts)) if v is not None}
    accepted = inspect.signature(module.main).parameters
    refused = sorted(set(options) - set(accepted))
    if refused:
        parser.error(f"{args.name} does not take --{', --'.join(refused)}")
    from cadenza.errors import DeviceUnavailable

    try:
        figures = module.main(args.quick, **options)
    except DeviceUnavailable as exc:
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        return 2
    sys.stderr.flush()
    print(json.dumps({"benchmark": args.name, "quick": args.quick, **figures}), flush=True)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
