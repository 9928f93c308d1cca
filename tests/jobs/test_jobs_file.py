"""Jobs files (`cadenza batch`): every line checked up front with its line number, seeds derived from the
line, resume, a sidecar as a job, and the same bytes whichever runner ran them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.errors import CheckpointError, InputNotFound
from cadenza.jobs import plan_jobs
from cadenza.runners import InlineRunner


def outputs_of(name: str) -> str:
    """A stand-in for Studio.info(name).output: 'tiny' writes MIDI, 'loud' audio, anything else is missing."""
    kinds = {"tiny": "midi", "loud": "audio"}
    if name not in kinds:
        raise CheckpointError(f"no model named {name!r}")
    return kinds[name]


def test_each_bad_line_is_reported_with_its_number_and_the_others_plan(tmp_path, song, write_jobs):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"model": "tiny", "conditioning": {"bars": 2}, "output": "a.mid"},
        "not json",
        "",  # blank lines and comments are not jobs
        "# a comment",
        ["a", "list"],
        {"model": "tiny", "conditoning": {}, "output": "b.mid"},
        {"model": "missing", "output": "c.mid"},
        {"render": "nowhere.mid", "output": "d.wav"},
        {"render": "song.mid", "output": "a.mid"},
        {"model": "tiny", "output": "../escape.mid"},
        {"model": "loud", "output": "e.mid"},
        {"model": "tiny", "conditioning": {"bars": 2}, "output": "a.mid"},
        {"transcribe": "song.mid", "output": "t.mid"},
        {"model": "tiny", "conditioning": {"tempo_bpm": 1000}, "output": "f.mid"},
        {"model": "tiny", "output": "g.mid", "synth": "fluidsynth"},
        {"render": "song.mid", "output": "song.flac"},
    ])
    plan = plan_jobs(jobs, tmp_path / "out", outputs_of)
    assert plan.total == 14 and [j.line for j in plan.jobs] == [1, 16]
    reasons = {e["line"]: e["reason"] for e in plan.settled}
    assert all(e["status"] == "error" and e["reason"].startswith(f"line {e['line']}: ") for e in plan.settled)
    assert sorted(reasons) == [2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert "not JSON" in reasons[2] and "JSON object" in reasons[5] and "'conditoning'" in reasons[6]
    assert "no model named 'missing'" in reasons[7] and "nowhere.mid" in reasons[8] and ".wav" in reasons[9]
    assert "inside the output folder" in reasons[10] and "makes audio" in reasons[11]
    assert "same output as line 1" in reasons[12] and "recording" in reasons[13] and "tempo" in reasons[14]
    assert "audio output" in reasons[15]


def test_a_missing_seed_is_derived_from_the_line(tmp_path, write_jobs):
    lines = [{"model": "tiny", "conditioning": {"bars": 2}, "output": f"{name}.mid"} for name in ("a", "b")]
    lines.append({"model": "tiny", "conditioning": {"bars": 2}, "sampling": {"seed": 7}, "output": "c.mid"})
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    first, again = (plan_jobs(jobs, tmp_path / "out", outputs_of).jobs for _ in range(2))
    seeds = {Path(j.output).name: (j.seed, j.seed_derived) for j in first}
    assert seeds == {Path(j.output).name: (j.seed, j.seed_derived) for j in again}  # the same every run
    assert seeds["c.mid"] == (7, False) and seeds["a.mid"][1] and seeds["b.mid"][1]
    assert seeds["a.mid"][0] != seeds["b.mid"][0]  # two lines, two pieces
    assert all(j.plan.sampling.seed == j.seed for j in first)
    write_jobs(tmp_path / "moved.jsonl", ["# the same jobs, further down", *lines])
    moved = {Path(j.output).name: j.seed for j in plan_jobs(tmp_path / "moved.jsonl", tmp_path / "out", outputs_of).jobs}
    assert moved == {name: seed for name, (seed, _) in seeds.items()}  # the line's content, not its number


def test_a_missing_jobs_file_is_an_error(tmp_path):
    with pytest.raises(InputNotFound, match="no jobs file"):
        plan_jobs(tmp_path / "none.jsonl", tmp_path / "out", outputs_of)


def test_a_batch_writes_files_and_sidecars_resumes_and_redoes_a_changed_line(studio, tmp_path, song, write_jobs):
    lines = [{"model": "tiny-remi", "conditioning": {"bars": 2}, "output": "one.mid"},
             {"model": "tiny-remi", "conditioning": {"bars": 2}, "sampling": {"seed": 3}, "output": "deep/two.mid"},
             {"render": "song.mid", "render_options": {"reverb": False, "sample_rate": 22050}, "output": "song.wav"},
             {"model": "tiny-remi", "output": "bad.wav", "render_options": {"no_such": 1}}]
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    out = tmp_path / "out"
    summary = studio.batch(jobs, out, runner=InlineRunner(), progress=False)
    assert (summary.ok, summary.skipped, summary.failed, summary.total) == (3, 0, 1, 4)
    report = {r["line"]: r for r in map(json.loads, (out / "report.jsonl").read_text().splitlines())}
    assert [report[n]["status"] for n in (1, 2, 3, 4)] == ["ok", "ok", "ok", "error"]
    assert "no_such" in report[4]["reason"] and report[2]["seed"] == 3 and isinstance(report[1]["seed"], int)
    sidecar = json.loads((out / "one.mid.json").read_text())
    assert sidecar["sampling"]["seed"] == report[1]["seed"]  # the derived seed is recorded
    made = {p: (out / p).read_bytes() for p in ("one.mid", "deep/two.mid", "song.wav")}

    again = studio.batch(jobs, out, runner=InlineRunner(), progress=False)
    assert (again.ok, again.skipped, again.failed) == (0, 3, 1)
    lines[1]["sampling"]["seed"] = 4  # a changed request is made again, though its output is there
    write_jobs(jobs, lines)
    third = studio.batch(jobs, out, runner=InlineRunner(), progress=False)
    assert (third.ok, third.skipped, third.failed) == (1, 2, 1)
    assert (out / "deep/two.mid").read_bytes() != made["deep/two.mid"]
    assert (out / "one.mid").read_bytes() == made["one.mid"]


def test_a_sidecar_is_a_job(studio, tmp_path, write_jobs):
    from cadenza import Conditioning, Sampling

    made = studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=5, num_samples=2))[1]
    first = made.save(tmp_path / "first.mid")
    record = json.loads(Path(f"{first}.json").read_text())
    jobs = write_jobs(tmp_path / "jobs.jsonl", [record | {"output": "again.mid"}])
    summary = studio.batch(jobs, tmp_path / "out", runner=InlineRunner(), progress=False)
    assert summary.ok == 1 and (tmp_path / "out/again.mid").read_bytes() == first.read_bytes()


def test_cli_batch_reports_bad_lines_and_exits_1(studio, tiny_root, tmp_path, capsys, monkeypatch, write_jobs):
    from cadenza.app import cli

    monkeypatch.setenv("CADENZA_MODELS", str(tiny_root))
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"model": "tiny-remi", "conditioning": {"bars": 2}, "output": "a.mid"},
                                                {"model": "tiny-remi", "output": "a.txt"}])
    assert cli.main(["batch", str(jobs), "-o", str(tmp_path / "out"), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "line 2: output 'a.txt'" in captured.err and "1 made, 0 already done, 1 failed of 2" in captured.out
    assert cli.main(["batch", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "out")]) == 2
    assert "no jobs file" in capsys.readouterr().err


def test_each_kind_of_request_reads_into_its_plan(tmp_path, song, write_jobs):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "hum.wav", np.zeros(1600, dtype="float32"), 16000)  # checked, not heard, while planning
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"model": "loud", "conditioning": {"source_audio": "hum.wav"}, "transfer_options": {"pitch_shift": 2},
         "output": "v.wav"},
        {"transcribe": "hum.wav", "transcribe_options": {"mode": "mono"}, "output": "hum.mid"},
        {"render": "song.mid", "synth": "ddsp:violin", "render_options": {"vibrato_cents": 0}},
        {"model": "tiny", "conditioning": {"bars": 2}, "sampling": {"seed": 1, "num_samples": 2}, "sample_index": 1,
         "output": "second.wav"},
        {"transcribe": "hum.wav", "transcribe_options": {"mode": "loud"}, "output": "bad.mid"},
    ])
    plan = plan_jobs(jobs, tmp_path / "out", outputs_of)
    by_line = {job.line: job for job in plan.jobs}
    transfer, heard, played, second = by_line[1].plan, by_line[2].plan, by_line[3].plan, by_line[4].plan
    assert by_line[1].kind == "transfer" and transfer.transfer_options == {"pitch_shift": 2}
    assert transfer.sampling.seed == by_line[1].seed and transfer.conditioning.source_audio == str(tmp_path / "hum.wav")
    assert by_line[2].kind == "transcribe" and heard.transcribe_options == {"mode": "mono"}
    assert heard.audio == tmp_path / "hum.wav"
    assert by_line[3].kind == "render" and played.midi == song and played.render.synth == "ddsp:violin"
    assert by_line[3].output == str(tmp_path / "out" / "job-000003.wav")  # no output named: one by line
    assert second.sample_index == 1 and second.render.synth == "fluidsynth"  # a MIDI model's audio is played
    assert [e["line"] for e in plan.settled] == [5] and "loud" in plan.settled[0]["reason"]
