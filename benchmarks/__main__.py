"""Run a benchmark: ``python -m benchmarks NAME [--quick]``.

Each benchmark is a module here with ``main(quick: bool) -> dict``. It prints progress lines as it
goes; the runner then prints the figures it returns as one JSON object, always the last line of
output (scripts read that line).

To add one: write ``benchmarks/NAME.py`` with that ``main`` and add it to ``BENCHMARKS`` below. Keep
heavy imports (torch, models) inside ``main``: this file imports every benchmark module, so a
top-level import is paid by every other benchmark too. (Worker processes started with "spawn" do
not re-import a package's ``__main__``, so render workers never see these imports.)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from benchmarks import decode_symbolic, render_batch, symbolic_controls

BENCHMARKS: dict[str, Callable[[bool], dict]] = {
    "decode_symbolic": decode_symbolic.main,
    "render_batch": render_batch.main,
    "symbolic_controls": symbolic_controls.main,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="a smaller run, for CI and quick checks")
    args = parser.parse_args(argv)
    figures = BENCHMARKS[args.name](args.quick)
    sys.stderr.flush()
    print(json.dumps({"benchmark": args.name, "quick": args.quick, **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
