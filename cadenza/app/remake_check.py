"""`cadenza remake`: write a remade output, put a missing one back, or check one comes out the same."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cadenza import Studio


def remake_command(studio: Studio, sidecar: str, out: str | None, *, as_json: bool = False) -> int:
    """Remake the output of ``sidecar`` into ``out``; without ``out``, into the original's place when
    that file is missing, else into a temporary file compared with the original byte for byte.
    Returns the exit status: 0, or 1 when the remade file differs from the original."""
    from cadenza.sidecars import sidecar_of

    sidecar_path = sidecar_of(sidecar)
    original = sidecar_path.with_name(sidecar_path.name[: -len(".json")])
    if out is not None:
        output = studio.remake(sidecar_path, out=out)
        same = _same_file(original, Path(out)) if original.is_file() else None
        report = {"path": str(out), "remade_from": str(sidecar_path), "identical_to_original": same}
        text = f"wrote {out}" + ("" if same is None else f" ({'identical to' if same else 'differs from'} {original})")
    elif not original.exists():
        output = studio.remake(sidecar_path)
        output.save(original, sidecar=False)  # the sidecar it was remade from stays as it is
        report = {"path": str(original), "remade_from": str(sidecar_path), "identical_to_original": None}
        text = f"wrote {original} (it was missing; remade from {sidecar_path.name})"
    else:
        output = studio.remake(sidecar_path)
        fd, name = tempfile.mkstemp(prefix=f".{original.stem}.remake.", suffix=original.suffix, dir=original.parent)
        os.close(fd)
        try:
            output.save(name, sidecar=False)
            same = _same_file(original, Path(name))
        finally:
            os.unlink(name)
        report = {"path": str(original), "remade_from": str(sidecar_path), "identical_to_original": same}
        text = (f"{original}: remade identical, bit for bit{' (decoded; Ogg stream numbers are random)' if original.suffix.lower() == '.ogg' else ''}" if same else
                f"{original}: the remade file differs (another machine, device or library version can change the "
                "last bits; the sidecar's versions and notes say what it was made with)")
    del output
    if as_json:
        print(json.dumps(report))
    else:
        print(text)
    return 0 if report["identical_to_original"] in (True, None) else 1


def _same_file(a: Path, b: Path) -> bool:
    """Byte for byte; Ogg files by their decoded samples (each Ogg stream gets a random serial number, so
    two encodings of the same audio never match byte for byte)."""
    if a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes():
        return True
    if a.suffix.lower() != ".ogg" or b.suffix.lower() != ".ogg":
        return False
    import numpy as np

    from cadenza.fileio.audio import read_audio

    (x, rate_x), (y, rate_y) = read_audio(a), read_audio(b)
    return rate_x == rate_y and x.shape == y.shape and bool(np.array_equal(x, y))
