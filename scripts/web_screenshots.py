"""Screenshots of the web studio for the README: serves `cadenza app` on a free localhost port, drives it
in Debian's headless Chromium with Playwright, and writes PNGs into docs/.

    .venv/bin/python scripts/web_screenshots.py [--out docs] [--images docs/images]

`--only transcribe` takes docs/images/web-transcribe.png (a hummed tune made in code, on the Transcribe tab).

The "Form" field and a result's "Regenerate bars" (docs/images/web-form-regenerate.png) need a symbolic
model whose manifest lists the "form" and "regenerate" capabilities. Until the shipped remi-folk-small is
re-exported with them, take that one shot with the tests' tiny random checkpoint (its notes are noise,
the controls are real):

    .venv/bin/python scripts/web_screenshots.py --only form-regenerate --tiny-model
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import tempfile
from pathlib import Path

import symusic
from playwright.sync_api import sync_playwright

from cadenza.app.web import launch
from cadenza.studio import Studio

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(value)


def _wait_status(page, pattern: str) -> None:
    page.locator("#status").filter(has_text=re.compile(pattern)).wait_for(timeout=120_000)


def _tunes(folder: Path) -> list[str]:
    paths = []
    for name, root in (("scale-up.mid", 60), ("arpeggio.mid", 55), ("fifths.mid", 48)):
        score = symusic.Score(480)
        track = symusic.Track(program=0)
        for i, step in enumerate((0, 2, 4, 5, 7, 9, 11, 12)):
            track.notes.append(symusic.Note(i * 240, 240, root + step, 90))
        score.tracks.append(track)
        score.dump_midi(str(folder / name))
        paths.append(str(folder / name))
    return paths


def _hum(folder: Path) -> str:
    """A 3 s sung-like line: a gliding tone with vibrato and a little breath noise."""
    import numpy as np
    import soundfile

    sr = 16000
    t = np.arange(3 * sr) / sr
    f0 = 220.0 * 2 ** ((np.floor(t * 2) % 4) * 2 / 12) * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t))
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.005 * np.random.default_rng(0).standard_normal(t.size)
    path = folder / "hum.wav"
    soundfile.write(path, wave.astype(np.float32), sr)
    return str(path)


NO_FORM_MODEL = ("no installed model lists the 'form' and 'regenerate' capabilities yet: re-export remi-folk-small, "
                 "or take that shot with the tests' tiny random checkpoint: "
                 ".venv/bin/python scripts/web_screenshots.py --only form-regenerate --tiny-model")


def _form_regenerate_model(studio: Studio) -> str | None:
    """The symbolic model for the form/regenerate shot: remi-folk-small when its manifest has both
    capabilities, else another installed model that has them (None: none has)."""
    able = [m for m in studio.models() if m.output == "midi" and {"form", "regenerate"} <= set(m.capabilities)]
    return next((m.name for m in able if m.name == "remi-folk-small"), able[0].name if able else None)


def _tiny_model(folder: Path) -> Path:
    """The tests' tiny random REMI checkpoint (see tests/conftest.py) written into ``folder``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import TINY_NAME, build_tiny_checkpoint

    build_tiny_checkpoint(folder / TINY_NAME)
    return folder


def shoot_form_regenerate(page, studio: Studio, path: Path) -> bool:
    """A piece in a chosen form, then bars 5-8 of it written anew: the Form field, both results, and the
    "Regenerate bars" control of the first. False (and a note) when no installed model can."""
    name = _form_regenerate_model(studio)
    if name is None:
        print("skipped", path, "-", NO_FORM_MODEL, file=sys.stderr)
        return False
    if name not in page.locator("#model input").input_value():
        _pick(page, "model", next(f"{m.name} ({m.family} → {m.output})" for m in studio.models() if m.name == name))
    page.locator("#form").wait_for()
    _fill(page, "form", "AABB")
    _fill(page, "bars", "8")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    page.locator("#regen-row-0").wait_for()
    _fill(page, "regen-bars-0", "5-8")
    page.locator("#regen-0").click()
    _wait_status(page, "written anew")
    page.locator("#result-image-1 img").wait_for()
    page.wait_for_timeout(1500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    print("wrote", path)
    return True


def shoot_transcribe(page, folder: Path, path: Path) -> None:
    """A hummed line on the Transcribe tab: heard as notes (one voice, snapped to the beat), its piano roll,
    the MIDI download and "Continue this"."""
    page.get_by_role("tab", name="Transcribe").click()
    page.locator("#transcribe-source input[type=file]").set_input_files(_hum_tune(folder))
    page.locator("#transcribe-mono input").check()
    page.locator("#transcribe-go").click()
    page.locator("#transcribe-status", has_text="notes").wait_for(timeout=120_000)
    page.locator("#transcribe-image img").wait_for()
    page.wait_for_timeout(1500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    print("wrote", path)


def _hum_tune(folder: Path) -> str:
    """A hummed tune of 12 notes at 120 BPM: glides between notes, vibrato, breaths and breath noise."""
    import numpy as np
    import soundfile

    sr, per = 16000, 8000
    pitches = [62, 64, 66, 67, 69, 69, 71, 69, 67, 66, 64, 62]
    target = np.concatenate([np.repeat(np.asarray(pitches, float), per), np.full(sr // 2, 62.0)])
    glide = np.convolve(np.pad(target, (480, 480), mode="edge"), np.ones(960) / 960, mode="same")[480:-480]
    t = np.arange(target.size) / sr
    pitch = glide + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(440 * 2 ** ((pitch - 69) / 12)) / sr
    level = np.ones(target.size)
    for k in range(1, len(pitches)):
        level[k * per - 480:k * per + 160] = 0.35
    level[per * len(pitches):] = 0
    voice = sum(np.sin(k * phase) * 0.6 ** k for k in range(1, 6)) * np.convolve(level, np.ones(80) / 80, "same")
    wave = 0.25 * voice + 0.004 * np.random.default_rng(0).standard_normal(target.size)
    path = folder / "hummed-tune.wav"
    soundfile.write(path, wave.astype(np.float32), sr)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs", help="folder for the PNGs")
    parser.add_argument("--images", default="docs/images", help="folder for web-form-regenerate.png")
    parser.add_argument("--only", choices=["form-regenerate", "transcribe"], help="take only this screenshot")
    parser.add_argument("--tiny-model", action="store_true",
                        help="also list the tests' tiny random checkpoint (it has 'form' and 'regenerate')")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    models = tempfile.TemporaryDirectory()
    studio = Studio(model_dirs=[_tiny_model(Path(models.name))]) if args.tiny_model else Studio()
    app = launch(studio, port=port, block=False)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#generate")
            if args.only == "transcribe":
                shoot_transcribe(page, Path(tmp), Path(args.images) / "web-transcribe.png")
                browser.close()
                return
            if args.only == "form-regenerate":
                took = shoot_form_regenerate(page, studio, Path(args.images) / "web-form-regenerate.png")
                browser.close()
                if not took:
                    raise SystemExit(1)
                return

            _pick(page, "style", "irish")
            _pick(page, "key", "D major")
            _pick(page, "meter", "6/8")
            _fill(page, "bars", "8")
            page.locator("#sampling").click()  # open "How to sample"
            _fill(page, "seed", "7")
            page.locator("#generate").click()
            _wait_status(page, "Done")
            page.locator("#result-image-0 img").wait_for()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "web-generate.png"), full_page=True)
            print("wrote", out / "web-generate.png")

            page.locator("#continue-0").click()
            _wait_status(page, "is the prompt now")
            _fill(page, "bars", "4")
            page.locator("#generate").click()
            _wait_status(page, "Done")
            page.locator("#result-image-0 img").wait_for()
            page.get_by_text("Provenance (how this was made)").first.click()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "web-continue.png"), full_page=True)
            print("wrote", out / "web-continue.png")

            broken = Path(tmp) / "broken.mid"
            broken.write_bytes(b"this is not a MIDI file")
            page.reload()
            page.wait_for_selector("#generate")
            page.locator("#prompt input[type=file]").set_input_files(str(broken))
            _wait_status(page, "Error")
            page.locator("#status").scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "web-error.png"))
            print("wrote", out / "web-error.png")

            page.reload()  # drop the warning toast
            page.wait_for_selector("#generate")
            page.get_by_role("tab", name="Batch render").click()
            page.locator("#batch-files input[type=file]").set_input_files(_tunes(Path(tmp)))
            page.locator("#batch-files", has_text=re.compile(r"fifths\s*\.mid")).wait_for()
            page.locator("#batch-go").click()
            page.locator("#batch-zip a[download$='.zip']").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)  # let the page finish fading in the result
            page.screenshot(path=str(out / "web-batch.png"), full_page=True)
            print("wrote", out / "web-batch.png")

            if any(m.family == "ddsp" for m in studio.models()):
                page.get_by_role("tab", name="Timbre transfer").click()
                page.locator("#transfer-source input[type=file]").set_input_files(_hum(Path(tmp)))
                page.locator("#transfer-go").click()
                page.locator("#transfer-status", has_text="Done").wait_for(timeout=120_000)
                page.locator("#transfer-image img").wait_for()
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / "web-transfer.png"), full_page=True)
                print("wrote", out / "web-transfer.png")

            page.reload()
            page.wait_for_selector("#generate")
            shoot_transcribe(page, Path(tmp), Path(args.images) / "web-transcribe.png")
            page.reload()
            page.wait_for_selector("#generate")
            shoot_form_regenerate(page, studio, Path(args.images) / "web-form-regenerate.png")
            browser.close()
    finally:
        app.close()
        models.cleanup()


if __name__ == "__main__":
    main()
