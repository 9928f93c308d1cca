"""`cadenza batch` on Ray against the local process pool: the same jobs file, the same machine, same run.

The jobs: 200 renders of short MIDI pieces (5-20 s, from /work/shared/corpus/midi, or generated here)
and 50 pieces of 4 bars from the built-in ``remi-folk-small`` (``--quick``: 40 and 10). Both runners get
2 workers; both walls count what a batch pays for its workers (spawning them, each loading its
SoundFont and model once). Ray's own start (``ray.init`` of a local instance) is timed apart and left out
of ``ray_vs_pool``: a cluster is started once and joined by many batches. ``ray_vs_pool`` = pool wall /
Ray wall, each the mean of two runs in the order pool, Ray, Ray, pool (a load that drifts during the
runs then favours neither).

Then one worker is killed with SIGKILL once a fifth of the jobs are done, on each runner:
``recovered_after_kill`` says that both batches still completed every job, and ``lost`` counts the jobs
of those runs that are missing or differ from the first pool run's bytes (0 is the goal). Per-job costs
(model load, generate, render, write) are measured in this process for the "scale on paper" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

MODEL = "remi-folk-small"


def main(quick: bool) -> dict:
    import ray

    from benchmarks.render_batch import CORPUS, _copy_corpus, _generate
    from cadenza import Studio
    from cadenza.runners import ProcessPoolRunner, RayRunner

    renders, generates = (40, 10) if quick else (200, 50)
    studio = Studio()
    with tempfile.TemporaryDirectory(prefix="cadenza-scale-") as tmp:
        root = Path(tmp)
        source = _copy_corpus(root / "midi", renders) if CORPUS.is_dir() else _generate(root / "midi", renders)
        jobs = _jobs_file(root, sorted((root / "midi").rglob("*.mid")), generates)
        total = renders + generates
        print(f"{total} jobs: {renders} renders ({source}), {generates} x {MODEL} 4 bars", flush=True)

        walls: dict[str, list[float]] = {"pool": [], "ray": []}
        load = [os.getloadavg()[0]]
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start_s = time.perf_counter() - started
        # pool, ray, ray, pool: a machine whose load drifts during the runs favours neither (means are compared)
        for name in ("pool", "ray", "ray", "pool"):
            runner = ProcessPoolRunner(2) if name == "pool" else RayRunner(workers=2)
            out = root / f"{name}-{len(walls[name])}"
            summary = studio.batch(jobs, out, runner=runner, progress=False)
            _check(summary, total)
            walls[name].append(summary.seconds)
            load.append(os.getloadavg()[0])
            print(f"{name} run {len(walls[name])}: {summary.seconds:.1f} s, {total / summary.seconds:.2f} jobs/s, "
                  f"load {load[-1]:.1f}", flush=True)
        reference = _outputs(root / "pool-0")
        same = _outputs(root / "ray-0") == reference

        killed = {}
        for name, runner, victims in (("ray", RayRunner(workers=2), _ray_workers),
                                      ("pool", ProcessPoolRunner(2), _pool_workers)):
            out = root / f"{name}-killed"
            killer = threading.Thread(target=_kill_one, args=(out, total // 5, victims, killed, name), daemon=True)
            killer.start()
            summary = studio.batch(jobs, out, runner=runner, progress=False)
            killer.join()
            outputs = _outputs(out)
            lost = sum(1 for rel, data in reference.items() if outputs.get(rel) != data)
            parts = sum(1 for p in out.rglob("*") if ".part" in p.name)  # half-written files left behind
            killed[name] = {**killed.get(name, {}), "ok": summary.ok, "failed": summary.failed, "lost": lost,
                            "parts_left": parts}
            print(f"{name} with a worker killed: {killed[name]}", flush=True)
        ray.shutdown()
        costs = _per_job_costs(studio, sorted((root / "midi").rglob("*.mid"))[:10], root)

    pool_s, ray_s = sum(walls["pool"]) / 2, sum(walls["ray"]) / 2
    recovered = all(k.get("pid") and k["ok"] == total and k["failed"] == 0 for k in killed.values())
    return {
        "jobs": total, "renders": renders, "generates": generates, "workers": 2, "cpus": os.cpu_count(),
        "ray_vs_pool": round(pool_s / ray_s, 3),
        "pool_s": [round(s, 2) for s in walls["pool"]], "ray_s": [round(s, 2) for s in walls["ray"]],
        "ray_start_s": round(ray_start_s, 2),
        "ray_overhead_ms_per_job": round(1000 * (ray_s - pool_s) / total, 1),
        "ray_same_bytes_as_pool": same,
        "recovered_after_kill": recovered,
        "lost": sum(k["lost"] for k in killed.values()),
        "killed": killed,
        "per_job_s": costs,
        "load_avg_1min": [round(x, 2) for x in load],
    }


def _jobs_file(root: Path, midis: list[Path], generates: int) -> Path:
    lines = [{"render": str(p), "output": f"played/{i:04d}.wav"} for i, p in enumerate(midis)]
    lines += [{"model": MODEL, "conditioning": {"bars": 4}, "output": f"made/{i:04d}.mid"} for i in range(generates)]
    path = root / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _check(summary, expected: int) -> None:
    if summary.ok != expected:
        raise SystemExit(f"batch made {summary.ok} of {expected} jobs; see {summary.report_path}")


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.suffix in (".wav", ".mid") and ".part" not in p.name}


def _kill_one(out: Path, after: int, victims, killed: dict, name: str) -> None:
    """Once ``after`` sidecars are written under ``out``, SIGKILL one of ``victims()``'s processes."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = sum(1 for _ in out.rglob("*.json")) if out.is_dir() else 0
        pids = victims() if done >= after else []
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed[name] = {"pid": pids[0], "after_jobs": done}
            return
        time.sleep(0.05)


def _pool_workers() -> list[int]:
    return [p.pid for p in multiprocessing.active_children()]


def _ray_workers() -> list[int]:
    """This Ray instance's actor processes (children of its raylet named ``ray::TaskWorker...``)."""
    import ray

    node = ray._private.worker._global_node  # private, but only a benchmark looks a worker up to kill it
    raylet = node.all_processes["raylet"][0].process.pid
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == raylet and cmdline.startswith(b"ray::TaskWorker"):
            pids.append(int(entry.name))
    return sorted(pids)


def _per_job_costs(studio, midis: list[Path], root: Path) -> dict:
    """Seconds per step in this process (one thread): model load, a 4-bar generate, a render, the writes."""
    from cadenza import Conditioning, Sampling

    started = time.perf_counter()
    studio.load(MODEL)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = [studio.generate(MODEL, Conditioning(bars=4), Sampling(seed=i))[0] for i in range(5)]
    generate_s = (time.perf_counter() - started) / len(scores)
    studio.render(midis[0])  # the SoundFont loads once
    started = time.perf_counter()
    played = [studio.render(p) for p in midis]
    render_s = (time.perf_counter() - started) / len(played)
    started = time.perf_counter()
    for i, audio in enumerate(played):
        audio.save(root / f"w{i}.wav")
    write_s = (time.perf_counter() - started) / len(played)
    mb = sum((root / f"w{i}.wav").stat().st_size for i in range(len(played))) / len(played) / 2**20
    return {"model_load": round(load_s, 3), "generate_4_bars": round(generate_s, 3), "render": round(render_s, 3),
            "write_wav": round(write_s, 4), "wav_mb": round(mb, 2),
            "audio_s": round(sum(a.duration_s for a in played) / len(played), 1)}
