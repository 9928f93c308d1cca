"""Studio.transcribe, hum to tune (an audio prompt for a model that continues MIDI), and `cadenza
transcribe` for a file and a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

import cadenza.checkpoints
from cadenza import Conditioning, InvalidConditioning, MidiOutput, Sampling, UnsupportedConditioning
from cadenza.app.cli import main

from made_audio import SR, hum, tones

HUMMED = [62, 64, 66, 67, 69, 67, 66, 64]


@pytest.fixture
def hum_wav(tmp_path):
    path = tmp_path / "hum.wav"
    sf.write(path, hum(HUMMED), 16000)
    return path


def test_studio_transcribe_writes_midi_with_a_sidecar(studio, hum_wav, tmp_path):
    output = studio.transcribe(hum_wav, mode="mono", quantize=True)
    assert isinstance(output, MidiOutput)
    assert [n.pitch for n in output.score.tracks[0].notes] == HUMMED
    path = output.save(tmp_path / "out" / "hum.mid")
    sidecar = json.loads((tmp_path / "out" / "hum.mid.json").read_text())
    assert sidecar["family"] == "transcription" and sidecar["model"] == "torchfcpe"
    assert sidecar["conditioning"]["source_audio"] == str(hum_wav)
    assert sidecar["notes"]["notes"] == len(HUMMED) and sidecar["notes"]["key"] in ("D major", "E minor")
    assert sidecar["notes"]["options"]["mode"] == "mono"
    assert [n.pitch for n in MidiOutput.load(path).score.tracks[0].notes] == HUMMED
    poly = studio.transcribe(hum_wav)
    assert poly.provenance.model == "basic-pitch-icassp-2022" and len(poly.provenance.checkpoint_sha256) == 64
    with pytest.raises(UnsupportedConditioning, match="no option"):
        studio.transcribe(hum_wav, treshold=0.2)


def test_a_hummed_prompt_is_continued_and_saved_beside_the_output(studio, hum_wav, tmp_path):
    [output] = studio.generate("tiny-remi", Conditioning(prompt=hum_wav, bars=2), Sampling(seed=1, max_tokens=200))
    assert output.provenance.conditioning["prompt"] == str(hum_wav)
    heard = output.provenance.notes["heard"]["prompt"]
    assert heard["from"] == str(hum_wav) and heard["notes"] == len(HUMMED)
    first = sorted(output.score.tracks[0].notes, key=lambda n: n.time)[: len(HUMMED)]
    assert [n.pitch for n in first] == HUMMED  # the prompt's notes are kept, then continued
    path = output.save(tmp_path / "tune.mid")
    assert [n.pitch for n in MidiOutput.load(tmp_path / "tune.prompt.mid").score.tracks[0].notes] == HUMMED
    assert json.loads((tmp_path / "tune.mid.json").read_text())["notes"]["transcribed"] == {"prompt": "tune.prompt.mid"}
    assert path.exists()


def test_a_silent_prompt_is_refused_with_the_reason(studio, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    with pytest.raises(InvalidConditioning, match="silent"):
        studio.generate("tiny-remi", Conditioning(prompt=silent), Sampling(seed=1, max_tokens=50))


@pytest.fixture
def models_env(monkeypatch, tmp_path, tiny_root):
    monkeypatch.setenv("CADENZA_MODELS", str(tiny_root))
    monkeypatch.setattr(cadenza.checkpoints, "REPO_CHECKPOINTS", tmp_path / "no-repo")
    monkeypatch.setattr(cadenza.checkpoints, "USER_CHECKPOINTS", tmp_path / "no-user")


def test_cli_transcribes_a_file(models_env, hum_wav, tmp_path, capsys):
    out = tmp_path / "take.mid"
    assert main(["transcribe", str(hum_wav), "-o", str(out), "--mono", "--quantize", "--json"]) == 0
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"][0]
    assert written["path"] == str(out) and written["notes"]["notes"] == len(HUMMED)
    assert main(["transcribe", str(hum_wav), "-o", str(tmp_path / "x.mid"), "--pitch-range", "C5-C8"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["transcribe", str(hum_wav), "-o", str(out), "--onset-threshold", "2"]) == 2
    assert "onset_threshold" in capsys.readouterr().err


def test_cli_transcribes_a_folder_resumes_and_reports_broken_files(models_env, tmp_path, capsys):
    src = tmp_path / "takes"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", tones([(0.1, 0.4, 60), (0.6, 0.4, 64)], 1.2), SR)
    sf.write(src / "sub" / "b.flac", tones([(0.1, 0.4, 67)], 0.8), SR)
    (src / "broken.wav").write_text("not audio")
    out = tmp_path / "midi"
    assert main(["transcribe", str(src), "-o", str(out), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["ok"], summary["failed"], summary["total"]) == (2, 1, 3)
    assert (out / "a.mid").exists() and (out / "sub" / "b.mid").exists() and (out / "a.mid.json").exists()
    report = [json.loads(line) for line in (out / "transcribe_report.jsonl").read_text().splitlines()]
    assert {r["status"] for r in report} == {"ok", "error"}
    assert main(["transcribe", str(src), "-o", str(out), "--json"]) == 1
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (again["ok"], again["skipped"], again["failed"]) == (0, 2, 1)
