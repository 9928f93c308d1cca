"""Run a benchmark: ``python -m benchmarks NAME [--quick]``.

Each benchmark is a module here with ``main(quick: bool) -> dict``. It prints progress lines as it
goes; the runner then prints the figures it returns as one JSON object, always the last line of
output (scripts read that line).

Benchmark modules must import heavy libraries (torch, cadenza's models) inside ``main``, not at the
top: worker processes started with "spawn" re-import this module, and so every module listed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from benchmarks import render_batch

BENCHMARKS: dict[str, Callable[[bool], dict]] = {
    "render_batch": render_batch.main,
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
