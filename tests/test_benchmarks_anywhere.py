"""`python -m benchmarks` from any folder: the runner starts, and benchmark paths are the repository's."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_runner_starts_outside_the_repository_and_finds_the_repositorys_files(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # what the editable install puts on the path
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cold_start" in done.stdout and "busy_machine" in done.stdout
    code = ("from benchmarks import paths, text_to_music, symbolic_form, cold_start\n"
            "print(paths.REPO, text_to_music.DATA, symbolic_form.DATA, sep='\\n')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    repo, audio, data = (Path(line) for line in done.stdout.split())
    assert repo == REPO and audio == REPO / "data" / "audio" and data == REPO / "data"


def test_an_install_ships_the_benchmarks_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "benchmarks" in config["tool"]["setuptools"]["packages"]["find"]["include"]


def test_no_benchmark_reads_a_path_relative_to_the_current_folder():
    for module in (REPO / "benchmarks").glob("*.py"):
        text = module.read_text()
        assert 'Path("data' not in text and "Path('data" not in text, module.name
