"""The SoundFonts installed on this machine, by name (what the web studio offers to play MIDI with)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cadenza.errors import MissingDependency
from cadenza.render.fluidsynth import find_soundfont

SOUNDFONT_FOLDERS = ((Path("/usr/share/sounds/sf2"), "*.sf2"), (Path("/usr/share/sounds/sf3"), "*.sf3"))


def installed_soundfonts() -> dict[str, Path]:
    """SoundFonts on this machine by name, the one FluidSynth uses by default first
    (``render.fluidsynth.find_soundfont``), then Debian's sf2/sf3 folders and pretty_midi's TimGM6mb;
    the same file under two names (Debian's default-GM link) is listed once."""
    candidates: list[Path] = []
    try:
        candidates.append(find_soundfont())
    except MissingDependency:
        pass
    for folder, pattern in SOUNDFONT_FOLDERS:
        if folder.is_dir():
            candidates += sorted(folder.glob(pattern))
    spec = importlib.util.find_spec("pretty_midi")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(d) / "TimGM6mb.sf2" for d in spec.submodule_search_locations]
    fonts: dict[str, Path] = {}
    seen: set[str] = set()
    for path in candidates:
        real = os.path.realpath(path)
        if path.is_file() and real not in seen and path.stem not in fonts:
            seen.add(real)
            fonts[path.stem] = path
    return fonts
