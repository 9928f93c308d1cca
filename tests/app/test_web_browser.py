"""End to end in a real browser: the studio served on a free localhost port, driven by Playwright in
Debian's headless Chromium (never a downloaded browser). Generate with the symbolic default, hear it,
download it, continue it; a corrupt MIDI upload gives a readable error; Cancel stops the engine; a
batch render returns a zip."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CADENZA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not os.path.isfile(CHROMIUM):
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; `bash scripts/setup.sh dev` does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_root):
    """The studio in this process over the installed models (the shipped symbolic default among them)
    plus a listed-only audio model, to see the page follow another model's capabilities, and the tiny
    random symbolic model (its manifest lists "form" and "regenerate")."""
    pytest.importorskip("gradio")
    from cadenza.app.web import launch
    from cadenza.checkpoints import write_manifest
    from cadenza.conditioning import Capability
    from cadenza.studio import Studio

    extra = tmp_path_factory.mktemp("models")
    fake = extra / "listed-songs"
    fake.mkdir()
    (fake / "weights.bin").write_bytes(b"never loaded by this test")
    write_manifest(fake, name="listed-songs", family="codec_lm", files={"weights": "weights.bin"}, config={},
                   capabilities=[Capability.TEXT, Capability.DURATION, Capability.MELODY_AUDIO,
                                 Capability.PROMPT_AUDIO],
                   license="test", description="a listed-only model")
    port = _free_port()
    app = launch(Studio(model_dirs=[extra, tiny_root]), host="127.0.0.1", port=port, block=False)
    yield app, f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture
def app_url(served):
    return served[1]


@pytest.fixture
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#generate")
    yield page
    page.close()


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _wait_status(page, pattern: str, timeout_ms: int = 45_000) -> str:
    status = page.locator("#status")
    status.filter(has_text=re.compile(pattern)).wait_for(timeout=timeout_ms)
    return status.inner_text()


def _seconds(summary: str) -> float:
    return float(re.search(r"([\d.]+) s\s*$", summary.strip()).group(1))


def test_generate_hear_download_and_continue(page):
    assert "symbolic" in page.locator("#model input").input_value()
    assert page.locator("#key").is_visible() and page.locator("#bars").is_visible()
    assert not page.locator("#duration").is_visible()  # the symbolic model has no length-in-seconds control
    _pick(page, "key", "D major")
    page.locator("#bars textarea, #bars input").first.fill("4")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    page.locator("#result-audio-0 audio").first.wait_for(state="attached")
    links = page.locator("#result-files-0 a[download]")
    names = [links.nth(i).get_attribute("download") for i in range(links.count())]
    assert sorted(Path(n).suffix for n in names) == [".flac", ".json", ".mid", ".wav"], names
    href = page.locator("#result-files-0 a[download$='.mid']").get_attribute("href")
    body = page.request.get(href if href.startswith("http") else page.url.rstrip("/") + "/" + href.lstrip("/")).body()
    assert body[:4] == b"MThd"
    summary = page.locator("#result-summary-0").inner_text()
    assert "D major" in summary and "4 bars" in summary
    first_length = _seconds(summary)

    page.locator("#continue-0").click()
    _wait_status(page, "is the prompt now")
    page.locator("#bars textarea, #bars input").first.fill("2")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    assert _seconds(page.locator("#result-summary-0").inner_text()) > first_length  # the prompt plus 2 new bars


def test_the_page_follows_the_chosen_model(page):
    assert page.locator("#key").is_visible() and not page.locator("#duration").is_visible()
    _pick(page, "model", "listed-songs (codec_lm → audio)")
    page.locator("#duration").wait_for()
    assert page.locator("#melody_audio").is_visible() and page.locator("#text").is_visible()
    assert not page.locator("#key").is_visible() and not page.locator("#bars").is_visible()
    assert not page.locator("#synth").is_visible()  # audio models need no synth
    page.locator("#sampling").click()
    page.locator("#cfg_scale").wait_for()
    assert not page.locator("#key_bias").is_visible()
    _pick(page, "model", "remi-folk-small (symbolic → midi)")
    page.locator("#key").wait_for()
    assert not page.locator("#duration").is_visible() and page.locator("#key_bias").is_visible()


def test_leaving_the_page_removes_its_files(browser, served):
    app, url = served
    root = app.context.workspace.root  # the session's job and Gradio's copies of what the page showed
    before = {p for p in root.rglob("*") if p.is_file()}  # earlier tests' pages

    def left() -> list[Path]:
        return [p for p in root.rglob("*") if p.is_file() and p not in before]

    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#generate")
    page.locator("#bars textarea, #bars input").first.fill("1")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    assert left()
    page.close()
    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left(), left()[:6]


def test_corrupt_midi_gives_a_readable_error(page, tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"definitely not a midi file")
    page.locator("#prompt input[type=file]").set_input_files(str(broken))
    text = _wait_status(page, "Error")
    assert "not a MIDI file" in text
    page.locator("#generate").click()
    page.locator("#status", has_text="not a MIDI file").wait_for()
    assert not page.locator("#result-0").first.is_visible()


def test_cancel_stops_a_long_generation(page):
    page.locator("#bars textarea, #bars input").first.fill("256")
    page.locator("#generate").click()
    # the progress bar over the status line says the model is writing
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('writing')", timeout=30_000)
    page.locator("#cancel").click()
    try:
        _wait_status(page, "Stopped", timeout_ms=60_000)
    except Exception as exc:  # playwright's TimeoutError: say what the page shows instead
        pytest.fail(f"the status line never said Stopped ({type(exc).__name__}); it says "
                    f"{page.locator('#status').inner_text()!r}")


def test_batch_render_returns_a_zip(page, tmp_path, score_of):
    files = []
    for name, pitch in (("one.mid", 60), ("two.mid", 67)):
        path = tmp_path / name
        score_of(((0, 480, pitch, 90), (480, 480, pitch + 2, 90))).dump_midi(str(path))
        files.append(str(path))
    page.get_by_role("tab", name="Batch render").click()
    page.locator("#batch-files input[type=file]").set_input_files(files)
    page.locator("#batch-files", has_text=re.compile(r"two\s*\.mid")).wait_for()
    page.locator("#batch-go").click()
    page.locator("#batch-status", has_text="Rendered 2 of 2").wait_for(timeout=45_000)
    page.locator("#batch-zip a[download$='.zip']").wait_for()


def _ddsp_instrument(served) -> str:
    names = [m.name for m in served[0].context.ddsp_models()]
    if not names:
        pytest.skip("no DDSP instrument is installed")
    return names[0]


def test_timbre_transfer_of_an_upload(page, served, tmp_path):
    import numpy as np
    import soundfile

    _ddsp_instrument(served)
    sr = 16000
    t = np.arange(sr) / sr
    hum = tmp_path / "hum.wav"
    soundfile.write(hum, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    page.get_by_role("tab", name="Timbre transfer").click()
    page.locator("#transfer-source input[type=file]").set_input_files(str(hum))
    page.locator("#transfer-pitch input[type=number]").fill("-12")
    page.locator("#transfer-go").click()
    page.locator("#transfer-status", has_text="Done").wait_for(timeout=60_000)
    page.locator("#transfer-audio audio").first.wait_for(state="attached")
    assert page.locator("#transfer-files a[download$='.wav']").count() == 1


def test_midi_played_by_a_ddsp_instrument(page, served):
    name = _ddsp_instrument(served)
    page.locator("#bars textarea, #bars input").first.fill("2")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    _pick(page, "synth", f"DDSP · {name}")
    _wait_status(page, f"Now playing with DDSP · {name}", timeout_ms=60_000)
    page.locator("#result-audio-0 audio").first.wait_for(state="attached")


def test_regenerate_with_this_seed_makes_the_same_sample(page):
    page.locator("#bars textarea, #bars input").first.fill("2")
    page.locator("#sampling").click()
    samples = page.locator("#num_samples input[type=number]")
    samples.fill("2")
    samples.press("Enter")
    page.locator("#generate").click()
    _wait_status(page, "Done: 2 samples")
    second = page.locator("#result-summary-1").inner_text()
    page.locator("#reseed-1").click()
    _wait_status(page, "Making sample 2 again")
    _wait_status(page, "Done: 2 samples")
    assert page.locator("#result-summary-1").inner_text() == second
    seed = re.search(r"seed (\d+)", second).group(1)
    assert page.locator("#seed textarea, #seed input").first.input_value() == seed


def test_form_and_regenerate_bars_of_a_result(page):
    _pick(page, "model", "tiny-remi (symbolic → midi)")
    page.locator("#form").wait_for()
    page.locator("#form textarea, #form input").first.fill("AABB")
    page.locator("#bars textarea, #bars input").first.fill("4")
    page.locator("#generate").click()
    _wait_status(page, "Done")
    first = page.locator("#result-summary-0").inner_text()
    assert "form A1 A1 B1 B1" in first
    bars = page.locator("#regen-bars-0 textarea, #regen-bars-0 input").first
    bars.fill("9-12")  # past the end of a 4-bar piece
    page.locator("#regen-0").click()
    assert "the prompt has bars 1-" in _wait_status(page, "Error")
    assert not page.locator("#result-1").first.is_visible()
    bars.fill("2-3")
    page.locator("#regen-0").click()
    _wait_status(page, "written anew as sample 2")
    assert "bars 2-3 written anew" in page.locator("#result-summary-1").inner_text()
    assert page.locator("#result-summary-0").inner_text() == first  # the original stays
    page.locator("#result-files-1 a[download$='.mid']").wait_for()
    assert not page.locator("#reseed-1").is_visible() and page.locator("#regen-1").is_visible()


def test_the_server_hands_out_no_file_it_did_not_make(served):
    import urllib.error
    import urllib.request

    app, url = served
    inside = app.context.workspace.root / "not-yet-shown.txt"
    inside.write_text("private")
    for path in (Path(__file__).resolve(), Path("/etc/passwd"), inside):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={path}")
        assert refused.value.code in (403, 404)
    inside.unlink()
