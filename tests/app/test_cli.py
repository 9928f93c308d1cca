"""The `cadenza` command, run in-process: models, generate, render; exit codes and messages."""

from __future__ import annotations

import json

import pytest
import soundfile
import torch

import cadenza.checkpoints
from cadenza.app.cli import main


@pytest.fixture(autouse=True)
def models_env(monkeypatch, tmp_path, tiny_root):
    """The CLI builds its own Studio(): point $CADENZA_MODELS at the tiny model and hide other folders."""
    monkeypatch.setenv("CADENZA_MODELS", str(tiny_root))
    monkeypatch.setattr(cadenza.checkpoints, "REPO_CHECKPOINTS", tmp_path / "no-repo")
    monkeypatch.setattr(cadenza.checkpoints, "USER_CHECKPOINTS", tmp_path / "no-user")


FAST_RENDER = ["--sample-rate", "22050", "--no-reverb", "--no-normalize", "--tail", "0.2"]


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in models] == ["tiny-remi"]
    tiny = models[0]
    assert tiny["family"] == "symbolic" and tiny["output"] == "midi"
    assert {"key", "bars", "tempo_bpm", "prompt_midi"} <= set(tiny["capabilities"])
    assert "duration_s" not in tiny["capabilities"]


def test_models_text(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-remi" in out and "symbolic" in out and "midi" in out


def test_generate_writes_midi_and_sidecar(tmp_path, capsys):
    out = tmp_path / "out.mid"
    code = main(["generate", "tiny-remi", "--key", "E minor", "--bars", "4", "--seed", "1", "-o", str(out)])
    assert code == 0
    assert out.is_file() and (tmp_path / "out.mid.json").is_file()
    sidecar = json.loads((tmp_path / "out.mid.json").read_text())
    assert sidecar["seed"] == 1 and sidecar["conditioning"] == {"key": "E minor", "bars": 4}
    assert sidecar["notes"]["key"] == "E minor" and sidecar["notes"]["bars_written"] == 4
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "seed 1" in printed


def test_generate_samples_are_numbered(tmp_path):
    out = tmp_path / "out.mid"
    assert main(["generate", "tiny-remi", "--bars", "2", "--seed", "4", "--samples", "2", "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mid") == ["out-1.mid", "out-2.mid"]
    assert json.loads((tmp_path / "out-2.mid.json").read_text())["sample_index"] == 1
    assert (tmp_path / "out-1.mid").read_bytes() != (tmp_path / "out-2.mid").read_bytes()


def test_generate_bad_tempo_returns_2(tmp_path, capsys):
    out = tmp_path / "out.mid"
    assert main(["generate", "tiny-remi", "--tempo", "900", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cadenza: error:") and "900" in err and "20-300" in err
    assert not out.exists()


def test_generate_duration_on_symbolic_returns_2(tmp_path, capsys):
    assert main(["generate", "tiny-remi", "--duration", "5", "-o", str(tmp_path / "o.mid")]) == 2
    err = capsys.readouterr().err
    assert "cannot honour --duration" in err and "tiny-remi" in err and "duration_s" not in err  # the user's terms


def test_bad_sampling_values_are_named_by_flag_and_value(tmp_path, capsys):
    assert main(["generate", "tiny-remi", "--samples", "0", "-o", str(tmp_path / "o.mid")]) == 2
    assert capsys.readouterr().err.strip() == "cadenza: error: --samples must be 1-64 (got 0)"


def test_generate_device_option(tmp_path, capsys):
    out = tmp_path / "o.mid"
    assert main(["generate", "tiny-remi", "--bars", "2", "--seed", "1", "--device", "cpu", "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["generate", "tiny-remi", "--device", "gpu", "-o", str(tmp_path / "x.mid")]) == 2
    assert "'gpu' is not a device name" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["generate", "tiny-remi", "--device", "cuda", "-o", str(tmp_path / "x.mid")]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "x.mid").exists()


def test_generate_unknown_model_returns_2(tmp_path, capsys):
    assert main(["generate", "nope", "-o", str(tmp_path / "o.mid")]) == 2
    assert "installed: tiny-remi" in capsys.readouterr().err


def test_generate_corrupt_prompt_returns_2(tmp_path, capsys):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    assert main(["generate", "tiny-remi", "--prompt", str(bad), "-o", str(tmp_path / "o.mid")]) == 2
    assert "bad.mid" in capsys.readouterr().err


def test_missing_output_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "tiny-remi"])
    assert info.value.code == 2
    assert "--output" in capsys.readouterr().err


def test_app_serves_on_localhost_by_default(monkeypatch, capsys):
    pytest.importorskip("gradio")
    import cadenza.app.web

    calls = []
    monkeypatch.setattr(cadenza.app.web, "launch", lambda studio, **kwargs: calls.append(kwargs))
    assert main(["app"]) == 0
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 7860 and calls[0]["share"] is False
    assert "http://127.0.0.1:7860" in capsys.readouterr().err
    assert main(["app", "--port", "9000", "--share", "on", "--max-upload-mb", "2", "--no-auth"]) == 0
    assert calls[1]["port"] == 9000 and calls[1]["share"] is True
    assert calls[1]["settings"].max_upload_bytes == 2 * 2**20


def test_render_one_file(tmp_path, midi_file, capsys):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    src = midi_file("in.mid", notes=[(0, 480, 60, 100), (480, 480, 64, 100)], qpm=120)
    out = tmp_path / "out.wav"
    assert main(["render", str(src), "-o", str(out), *FAST_RENDER]) == 0
    data, sr = soundfile.read(out, always_2d=True)
    assert sr == 22050 and data.shape[1] == 2 and data.shape[0] >= 22050  # 1 s of notes
    assert f"wrote {out}" in capsys.readouterr().out


def test_render_folder_reports_corrupt_files(tmp_path, midi_file, capsys):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    midi_file("songs/a.mid", notes=[(0, 240, 60, 100)])
    midi_file("songs/sub/b.mid", notes=[(0, 240, 67, 100)])
    outdir = tmp_path / "rendered"
    assert main(["render", str(tmp_path / "songs"), "-o", str(outdir), "--workers", "1", *FAST_RENDER]) == 0
    assert (outdir / "a.wav").is_file() and (outdir / "sub" / "b.wav").is_file()
    assert "2 rendered" in capsys.readouterr().out

    (tmp_path / "songs" / "broken.mid").write_bytes(b"MThd garbage")
    assert main(["render", str(tmp_path / "songs"), "-o", str(outdir), "--workers", "1", *FAST_RENDER]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "2 already done" in out
    report = [json.loads(line) for line in (outdir / "render_report.jsonl").read_text().splitlines()]
    assert {r["status"] for r in report if r["input"].endswith("broken.mid")} == {"error"}


def test_render_refuses_ddsp_flags_with_fluidsynth(tmp_path, midi_file, capsys):
    src = midi_file("in.mid", notes=[(0, 480, 60, 100)])
    assert main(["render", str(src), "-o", str(tmp_path / "out.wav"), "--stems", str(tmp_path / "stems")]) == 2
    assert "--stems" in capsys.readouterr().err and not (tmp_path / "out.wav").exists()


def test_generate_midi_model_to_audio_renders_through_studio(tmp_path, capsys):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    out = tmp_path / "out.flac"
    assert main(["generate", "tiny-remi", "--bars", "2", "--seed", "1", "-o", str(out)]) == 0
    assert soundfile.info(out).samplerate == 44100
    sidecar = json.loads((tmp_path / "out.flac.json").read_text())
    assert sidecar["seed"] == 1 and sidecar["notes"]["rendered_with"] == "fluidsynth"
    score = json.loads((tmp_path / "out.mid.json").read_text())  # the score is kept beside its rendering
    assert (tmp_path / "out.mid").is_file() and score["seed"] == 1 and "rendered_with" not in score["notes"]


def test_generate_with_a_form_prints_and_records_it(tmp_path, capsys):
    out = tmp_path / "reel.mid"
    assert main(["generate", "tiny-remi", "--text", "a two-part reel for fiddle", "--bars", "8", "--seed", "1",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "form A2 A2 B2 B2" in printed and "instruments ['fiddle']" in printed
    notes = json.loads(out.with_name("reel.mid.json").read_text())["notes"]
    assert notes["form"] == "A2 A2 B2 B2" and notes["instruments"] == ["fiddle"]
    assert main(["generate", "tiny-remi", "--form", "A8 B8", "--bars", "12", "-o", str(tmp_path / "x.mid")]) == 2
    assert "adds up to 16" in capsys.readouterr().err
    assert not (tmp_path / "x.mid").exists()


def test_regenerate_bars_of_a_file(tmp_path, midi_file, capsys):
    import symusic

    notes = [(bar * 1920 + beat * 480, 480, 62 + beat, 90) for bar in range(6) for beat in range(4)]
    tune = midi_file("tune.mid", notes=notes, tpq=480, time_signature=(4, 4))
    out = tmp_path / "tune-v2.mid"
    assert main(["generate", "tiny-remi", "--prompt", str(tune), "--regenerate", "3-4", "--seed", "2", "-o", str(out)]) == 0
    assert "regenerated_bars [3, 4]" in capsys.readouterr().out
    before, after = symusic.Score(tune), symusic.Score(out)
    kept = lambda s: sorted((n.time, n.duration, n.pitch) for t in s.tracks for n in t.notes  # noqa: E731
                            if not 2 * 1920 <= n.time < 4 * 1920)
    assert kept(after) == kept(before)
    assert main(["generate", "tiny-remi", "--prompt", str(tune), "--regenerate", "5-9", "-o", str(tmp_path / "y.mid")]) == 2
    assert "bars 1-6" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "tiny-remi", "--prompt", str(tune), "--regenerate", "five", "-o", str(tmp_path / "z.mid")])


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("cadenza ")


def test_a_pullable_model_not_yet_downloaded_says_how_to_get_it(tmp_path, capsys):
    from cadenza.studio import Studio

    name = sorted(Studio.pullable())[0]
    assert main(["generate", name, "--text", "a reel", "-o", str(tmp_path / "x.wav")]) == 2
    assert f"cadenza pull {name}" in capsys.readouterr().err


def test_library_noise_is_hidden_unless_verbose(monkeypatch):
    import os
    import warnings

    import cadenza.app.cli as cli

    real = cli.quiet_dependencies
    calls = []
    monkeypatch.setattr(cli, "quiet_dependencies", lambda: calls.append("quiet"))
    assert main(["models"]) == 0 and calls == ["quiet"]
    assert main(["-v", "models"]) == 0 and calls == ["quiet"]  # -v leaves the libraries' output alone
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):  # restored after the test
        monkeypatch.delenv(name, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        real()
        warnings.warn("old API", FutureWarning)
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert not caught


def test_help_shows_defaults_and_plain_descriptions(capsys):
    with pytest.raises(SystemExit):
        main(["train", "symbolic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 2600)" in text and "(default: 0.0)" in text  # a zero default is shown too
    assert "``" not in text and "`--prepare`" in text


def test_json_output_of_generate_and_render(tmp_path, midi_file, capsys):
    out = tmp_path / "t.mid"
    assert main(["generate", "tiny-remi", "--bars", "2", "--samples", "2", "--seed", "3", "--json", "-o", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert len(lines) == 1 and [w["path"] for w in report["written"]] == [str(tmp_path / "t-1.mid"), str(tmp_path / "t-2.mid")]
    assert all(w["seed"] == 3 and w["notes"]["bars"] == 2 for w in report["written"])
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    assert main(["render", str(tmp_path / "t-1.mid"), "-o", str(tmp_path / "t.wav"), "--json"] + FAST_RENDER) == 0
    rendered = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rendered["written"][0]["path"] == str(tmp_path / "t.wav") and rendered["written"][0]["stems"] == []
