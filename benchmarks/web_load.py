"""Web load: does the web studio hold its size under sustained traffic, and leave no file behind?

``cadenza app`` runs on a free loopback port in a child process (one torch thread, its own temp folder:
``TMPDIR`` points into a folder of this run). ``CLIENTS`` visitors at a time, for ``ROUNDS`` rounds
(``--quick``: 5 x 4), each do what a browser does: open the page's config, hold the heartbeat stream that
keeps a session alive, press Generate on ``remi-folk-small`` (2 bars, rendered with FluidSynth: the
fast model, so a run takes minutes), read the queue's stream to the end, download the result's audio,
then leave (the heartbeat closes, so the app's "visitor left" clean-up runs). Every round waits for its
visitors; nothing is retried; the loop ends after the last round by itself.

Figures: ``requests`` and ``requests_ok`` (a finished generate whose audio downloaded), ``rss_mb`` of the
server after each round (its process and children, from /proc), ``rss_growth_mb`` over the last 10 rounds
(all but the first with ``--quick``, whose 4 rounds still include the server's warm-up), ``max_rss_mb``, and ``temp_files_left``: files anywhere in the
server's temp folder after it was stopped with SIGTERM (as a service manager stops it). Issue 19's done
when: every request ok, ``rss_growth_mb`` <= 50, ``temp_files_left`` 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.paths import REPO

CLIENTS, ROUNDS = 20, 20
QUICK_CLIENTS, QUICK_ROUNDS = 5, 4
MODEL, BARS = "remi-folk-small", "2"
GROWTH_WINDOW = 10  # rounds
START_TIMEOUT_S, REQUEST_TIMEOUT_S, STOP_TIMEOUT_S = 180.0, 600.0, 60.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def start_server(port: int, tmp: Path) -> subprocess.Popen:
    """``cadenza app`` on ``port`` with ``tmp`` as its temp folder and current folder; its messages go to
    ``server.log`` beside ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    env.update(TMPDIR=str(tmp), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with open(tmp.parent / "server.log", "w") as log_file:
        return subprocess.Popen([sys.executable, "-m", "cadenza.app.cli", "--threads", "1", "app", "--host",
                                 "127.0.0.1", "--port", str(port)], env=env, cwd=tmp, stdout=log_file,
                                stderr=subprocess.STDOUT)


def wait_until_up(base: str, server: subprocess.Popen, log_path: Path | None = None) -> dict:
    """The page's config once the app answers (it loads nothing before that)."""
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path else ""
            raise RuntimeError(f"the app stopped while starting: {tail}")
        try:
            reply = httpx.get(f"{base}/config", timeout=5)
            if reply.status_code == 200:
                return reply.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app did not answer within {START_TIMEOUT_S:.0f} s")


class GenerateCall:
    """The page's Generate click as the queue sees it: the function index, the button that triggers it and
    the value of every input (the page's defaults, with the model, bars, one sample and a seed set)."""

    def __init__(self, config: dict) -> None:
        dependencies = config["dependencies"]
        index, dep = next((i, d) for i, d in enumerate(dependencies) if d.get("api_name") == "run")
        self.fn_index = dep.get("id", index)
        self.trigger_id = dep["targets"][0][0]
        components = {c["id"]: c for c in config["components"]}
        self.inputs = [components[i].get("props", {}) for i in dep["inputs"]]
        self.outputs = [components[i].get("props", {}) for i in dep["outputs"]]

    def data(self, seed: int, model: str = MODEL, bars: str = BARS) -> list:
        wanted = {"model": model, "bars": bars, "num_samples": 1, "seed": str(seed), "synth": "fluidsynth"}
        return [wanted.get(props.get("elem_id"), props.get("value")) for props in self.inputs]

    def audio_url(self, output: list) -> str | None:
        for props, value in zip(self.outputs, output):
            if props.get("elem_id") == "result-audio-0" and isinstance(value, dict):
                return value.get("url")
        return None


def hold_heartbeat(port: int, session: str) -> socket.socket:
    """Open the heartbeat stream a page keeps while it is open; closing the socket is the visitor leaving."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S)
    sock.sendall(f"GET /gradio_api/heartbeat/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Accept: text/event-stream\r\n\r\n".encode())
    sock.recv(4096)  # the headers and the first ALIVE: the session is known to the server
    return sock


def generate(http, call: GenerateCall, session: str, data: list) -> list | None:
    """Press Generate as ``session`` (an ``httpx.Client`` on the app) and wait for the end: the outputs,
    or None when the queue reports a failure."""
    joined = http.post("/gradio_api/queue/join", json={
        "data": data, "event_data": None, "fn_index": call.fn_index, "trigger_id": call.trigger_id,
        "session_hash": session})
    joined.raise_for_status()
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"]["data"] if message.get("success") else None
    return None


def visit(base: str, port: int, call: GenerateCall, seed: int) -> bool:
    """One visitor: page config, heartbeat, Generate, read the result, download its audio, leave."""
    import httpx

    session = uuid.uuid4().hex[:11]
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        http.get("/config").raise_for_status()
        heartbeat = hold_heartbeat(port, session)
        try:
            output = generate(http, call, session, call.data(seed))
            if output is None:
                return False
            url = call.audio_url(output)
            if not (isinstance(output[0], str) and output[0].startswith("Done") and url):
                return False
            return http.get(url if url.startswith("http") else base + url).status_code == 200
        finally:
            heartbeat.close()


def stop_server(server: subprocess.Popen) -> float:
    """SIGTERM, as a service manager stops it; the seconds it took to leave."""
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise RuntimeError(f"the app did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
    return time.monotonic() - started


def measure(quick: bool) -> dict:
    """Run the load and return the figures (see the module docstring)."""
    clients, rounds = (QUICK_CLIENTS, QUICK_ROUNDS) if quick else (CLIENTS, ROUNDS)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cadenza-web-load-") as work:
        tmp = Path(work) / "tmp"
        tmp.mkdir()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(port, tmp)
        try:
            call = GenerateCall(wait_until_up(base, server, Path(work) / "server.log"))
            rss_start = rss_mb(server.pid)
            log(f"web_load: app up on {base}, {rss_start:.0f} MB; {clients} visitors x {rounds} rounds")
            ok, series = 0, []
            with ThreadPoolExecutor(clients) as pool:
                for r in range(rounds):
                    t0 = time.monotonic()
                    results = list(pool.map(lambda i, r=r: _safe_visit(base, port, call, r * clients + i),
                                            range(clients)))
                    ok += sum(results)
                    time.sleep(0.5)  # the unload clean-ups run in the background once a heartbeat closes
                    series.append(round(rss_mb(server.pid), 1))
                    log(f"web_load: round {r + 1}/{rounds}: {sum(results)}/{clients} ok in "
                        f"{time.monotonic() - t0:.1f} s, server RSS {series[-1]:.0f} MB")
        finally:
            stop_s = stop_server(server) if server.poll() is None else float("nan")
        left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if not p.is_dir())
    window = min(GROWTH_WINDOW, len(series) - 1)
    return {"clients": clients, "rounds": rounds, "model": MODEL, "bars": int(BARS),
            "requests": clients * rounds, "requests_ok": ok,
            "rss_start_mb": round(rss_start, 1), "rss_mb": series, "max_rss_mb": max(series),
            "rss_growth_mb": round(series[-1] - series[-1 - window], 1), "growth_window_rounds": window,
            "temp_files_left": len(left), "temp_files_left_examples": left[:5], "stop_s": round(stop_s, 2),
            "load_average": round(os.getloadavg()[0], 2), "wall_s": round(time.monotonic() - started, 1)}


def _safe_visit(base: str, port: int, call: GenerateCall, seed: int) -> bool:
    try:
        return visit(base, port, call, seed)
    except Exception as exc:  # a failed request is counted, never allowed to stop the run
        log(f"web_load: request failed: {type(exc).__name__}: {exc}")
        return False


def main(quick: bool = False) -> dict:
    return measure(quick)


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv)))
