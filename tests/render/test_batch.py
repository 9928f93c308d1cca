"""Batch rendering: a mirrored tree, errors reported not raised, resume, the JSONL report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf

import cadenza.render.jobs as jobs
from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.render.batch import plan_batch, render_batch, render_file
from cadenza.runners import InlineRunner, Outcome

SHORT = [(0, 240, 60, 100), (240, 240, 64, 100)]  # 0.5 s at the default 120 BPM


def report_rows(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(r["input"]).name: r for r in rows}


@pytest.fixture
def tree(tmp_path, write_midi):
    """in/ with 3 good files (one .MIDI) in nested folders, 4 unusable ones and a non-MIDI file."""
    write_midi("in/top.mid", notes=SHORT)
    write_midi("in/a/one.mid", notes=SHORT, program=40)
    write_midi("in/a/b/two.MIDI", notes=SHORT, drum=True)
    write_midi("in/a/silent.mid", notes=[], qpm=90)
    (tmp_path / "in/a/b/empty.mid").write_bytes(b"")
    (tmp_path / "in/text.midi").write_text("not midi")
    (tmp_path / "in/a/cut.mid").write_bytes((tmp_path / "in/top.mid").read_bytes()[:30])
    (tmp_path / "in/a/notes.txt").write_text("ignored")
    return tmp_path / "in"


def test_tree_with_good_and_bad_files(tree, tmp_path, fast_options):
    out = tmp_path / "out"
    summary = render_batch(tree, out, options=fast_options, workers=2, progress=False)
    assert (summary.ok, summary.skipped, summary.failed, summary.total) == (3, 0, 4, 7)
    assert summary.files_per_s > 0 and summary.report_path == out / "render_report.jsonl"
    for rel in ["top.wav", "a/one.wav", "a/b/two.wav"]:
        info = sf.info(out / rel)
        assert info.samplerate == 22050 and info.channels == 2 and info.frames > 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == ["a/b/two.wav", "a/one.wav", "top.wav"]
    rows = report_rows(summary.report_path)
    assert len(rows) == 7
    assert {name for name, r in rows.items() if r["status"] == "ok"} == {"top.mid", "one.mid", "two.MIDI"}
    assert "no notes" in rows["silent.mid"]["reason"] and "empty" in rows["empty.mid"]["reason"]
    assert "not a MIDI file" in rows["text.midi"]["reason"] and "cannot parse" in rows["cut.mid"]["reason"]
    assert all(r["reason"].startswith("CorruptMidi") for r in rows.values() if r["status"] == "error")


def test_resume_skips_done_files_and_redoes_touched_ones(tree, tmp_path, fast_options):
    out = tmp_path / "out"
    render_batch(tree, out, options=fast_options, workers=1, progress=False)
    stamp = (out / "top.wav").stat().st_mtime_ns

    again = render_batch(tree, out, options=fast_options, workers=1, progress=False)
    assert (again.ok, again.skipped, again.failed) == (0, 3, 4)
    assert (out / "top.wav").stat().st_mtime_ns == stamp
    assert report_rows(again.report_path)["top.mid"]["status"] == "skipped"

    later = (out / "a/one.wav").stat().st_mtime_ns + 10**9
    os.utime(tree / "a/one.mid", ns=(later, later))  # the input was edited after its output was made
    third = render_batch(tree, out, options=fast_options, workers=1, progress=False)
    assert (third.ok, third.skipped, third.failed) == (1, 2, 4)
    assert report_rows(third.report_path)["one.mid"]["status"] == "ok"

    forced = render_batch(tree, out, options=fast_options, workers=1, progress=False, force=True)
    assert (forced.ok, forced.skipped) == (3, 0)


def test_stale_part_file_is_not_an_output(tmp_path, write_midi, fast_options):
    write_midi("in/song.mid", notes=SHORT)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".song.wav.x1y2z3.part.wav"  # what a run killed mid-write leaves (fileio.atomic_path)
    stale.write_bytes(b"RIFF half a file")
    summary = render_batch(tmp_path / "in", out, options=fast_options, workers=1, progress=False)
    assert (summary.ok, summary.skipped) == (1, 0)
    assert sf.info(out / "song.wav").frames > 0
    assert not stale.exists()


def test_interrupted_run_keeps_its_report_and_resumes(tmp_path, write_midi, fast_options, monkeypatch):
    for i in range(4):
        write_midi(f"in/{i}.mid", notes=SHORT)
    out = tmp_path / "out"
    real = jobs.render_job
    done = []

    def interrupt_after_two(renderer, job):
        if len(done) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third file
        done.append(job)
        return real(renderer, job)

    monkeypatch.setattr(jobs, "render_job", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        render_batch(tmp_path / "in", out, options=fast_options, workers=1, progress=False)
    assert [r["status"] for r in report_rows(out / "render_report.jsonl").values()] == ["ok", "ok"]
    assert len(list(out.glob("*.wav"))) == 2

    monkeypatch.setattr(jobs, "render_job", real)
    resumed = render_batch(tmp_path / "in", out, options=fast_options, workers=1, progress=False)
    assert (resumed.ok, resumed.skipped, resumed.failed) == (2, 2, 0)


def test_flac_output_and_custom_report(tree, tmp_path, fast_options):
    report = tmp_path / "logs/report.jsonl"
    summary = render_batch(tree, tmp_path / "out", options=fast_options, fmt="flac", workers=1,
                           report_path=report, progress=False)
    assert summary.ok == 3 and summary.report_path == report and report.is_file()
    info = sf.info(tmp_path / "out/a/one.flac")
    assert info.format == "FLAC" and info.subtype == "PCM_16"


def test_same_output_name_is_reported(tmp_path, write_midi, fast_options):
    write_midi("in/song.mid", notes=SHORT)
    write_midi("in/song.MIDI", notes=SHORT)
    summary = render_batch(tmp_path / "in", tmp_path / "out", options=fast_options, workers=1, progress=False)
    assert (summary.ok, summary.failed) == (1, 1)
    assert "same output" in report_rows(summary.report_path)["song.mid"]["reason"]


def test_bad_arguments(tmp_path, fast_options):
    with pytest.raises(InvalidConditioning, match="not found"):
        render_batch(tmp_path / "missing", tmp_path / "out", options=fast_options)
    (tmp_path / "in").mkdir()
    with pytest.raises(InvalidConditioning, match="mp3"):
        render_batch(tmp_path / "in", tmp_path / "out", options=fast_options, fmt="mp3")


def test_render_file(tmp_path, write_midi, fast_options, renderer):
    song = write_midi("song.mid", notes=SHORT)
    out = render_file(song, tmp_path / "deep/song.flac", fast_options)
    assert sf.info(out).format == "FLAC"
    render_file(song, tmp_path / "again.wav", renderer=renderer)
    assert sf.info(tmp_path / "again.wav").samplerate == 22050
    with pytest.raises(InvalidConditioning, match="mp3"):
        render_file(song, tmp_path / "song.mp3", fast_options)
    with pytest.raises(CorruptInput, match="not found"):
        render_file(tmp_path / "missing.mid", tmp_path / "x.wav", fast_options)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker pids from /proc (Linux)")
def test_killed_run_leaves_no_workers_and_resumes(tmp_path, write_midi, fast_options):
    import signal
    import subprocess
    import sys
    import time

    for i in range(24):  # 8 s pieces: the batch runs long enough to be killed halfway
        write_midi(f"in/{i:02d}.mid", notes=[(k * 240, 240, 60 + k % 12, 100) for k in range(32)])
    out, report = tmp_path / "out", tmp_path / "out/render_report.jsonl"
    script = (
        "import sys\n"
        "from cadenza.render.batch import render_batch\n"
        "from cadenza.render.fluidsynth import RenderOptions\n"
        "if __name__ == '__main__':\n"
        f"    render_batch(sys.argv[1], sys.argv[2], options=RenderOptions(**{fast_options.__dict__!r}),\n"
        "                 workers=2, progress=False)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "in"), str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (report.exists() and report.read_text().count("\n") >= 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == parent.pid]
        parent.send_signal(signal.SIGKILL)  # no cleanup at all: the workers must notice on their own
        parent.wait()
    finally:
        if parent.poll() is None:
            parent.kill()
    assert workers, "the batch had started its worker processes"
    deadline = time.monotonic() + 10
    try:
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "worker processes outlived the killed batch"
            time.sleep(0.05)
    finally:
        for pid in workers:  # if the test fails, do not leave its orphans running
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    resumed = render_batch(tmp_path / "in", out, options=fast_options, workers=1, progress=False)
    assert resumed.skipped >= 2 and resumed.ok + resumed.skipped == 24 and resumed.failed == 0
    assert all(sf.info(p).frames > 0 for p in out.glob("*.wav"))


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the name: [state, ppid, ...] (the name may hold spaces); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _ppid(proc: Path) -> int:
    fields = _stat_fields(proc.name)
    return int(fields[1]) if fields else 0


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")  # a zombie has exited, only not yet reaped


@pytest.mark.parametrize("workers", [1, 2])
def test_a_soundfont_fluidsynth_cannot_load_stops_the_batch(tmp_path, write_midi, fast_options, workers):
    from cadenza.errors import MissingDependency
    from cadenza.render.fluidsynth import RenderOptions

    write_midi("in/a.mid", notes=SHORT)
    write_midi("in/b.mid", notes=SHORT)
    broken = tmp_path / "broken.sf2"
    broken.write_text("not a soundfont")
    options = RenderOptions(**{**fast_options.__dict__, "soundfont": str(broken)})
    with pytest.raises(MissingDependency, match="SoundFont"):
        render_batch(tmp_path / "in", tmp_path / "out", options=options, workers=workers, progress=False)


def test_plan_mirrors_the_tree_and_settles_done_files(tree, tmp_path):
    out = tmp_path / "out"
    plan = plan_batch(tree, out, ".flac")
    assert plan.total == 7 and plan.settled == []
    assert sorted(Path(job.output).relative_to(out).as_posix() for job in plan.jobs) == [
        "a/b/empty.flac", "a/b/two.flac", "a/cut.flac", "a/one.flac", "a/silent.flac", "text.flac", "top.flac"]
    (out / "top.flac").parent.mkdir(parents=True)
    (out / "top.flac").write_bytes(b"done")
    later = (tree / "top.mid").stat().st_mtime_ns + 10**9
    os.utime(out / "top.flac", ns=(later, later))  # newer than its input
    plan = plan_batch(tree, out, ".flac")
    assert [(Path(e["input"]).name, e["status"]) for e in plan.settled] == [("top.mid", "skipped")]
    assert len(plan.jobs) == 6 and plan_batch(tree, out, ".flac", force=True).settled == []


class RecordingRunner:
    """A runner of our own: in this process, remembering what it ran; its second job's worker 'dies'."""

    def __init__(self):
        self.jobs = []

    def map(self, task, jobs):
        state = task.setup(*task.setup_args)
        try:
            for index, job in enumerate(jobs):
                self.jobs.append(job)
                yield Outcome(job, lost="the node went away") if index == 1 else Outcome(job, task.run(state, job))
        finally:
            task.teardown(state)


def test_any_runner_plugs_into_the_batch(tmp_path, write_midi, fast_options):
    for i in range(3):
        write_midi(f"in/{i}.mid", notes=SHORT)
    runner = RecordingRunner()
    summary = render_batch(tmp_path / "in", tmp_path / "out", options=fast_options, runner=runner, progress=False)
    assert len(runner.jobs) == 3 and (summary.ok, summary.failed) == (2, 1)
    lost = [r for r in report_rows(summary.report_path).values() if r["status"] == "error"]
    assert lost[0]["reason"] == "WorkerLost: the node went away; run again to retry it"
    again = render_batch(tmp_path / "in", tmp_path / "out", options=fast_options, runner=InlineRunner(),
                         progress=False)
    assert (again.ok, again.skipped, again.failed) == (1, 2, 0)  # the lost file is retried
