"""Who gets in and how much they may ask (issue 19): off loopback the studio starts only with a login, and
then a request without one gets no model and no file; an upload over the limit gets a clear "too large";
one visitor may queue only so many jobs. Traffic goes to 127.0.0.1 only (a server bound to 0.0.0.0
answers there too)."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from cadenza.app.cli import main
from cadenza.app.web.auth import AUTH_ENV, is_loopback, read_auth_file, server_logins
from cadenza.errors import ServerSetupError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_launch(monkeypatch):
    """``cadenza app`` with the server replaced: the calls it would have made."""
    pytest.importorskip("gradio")
    import cadenza.app.web

    calls = []
    monkeypatch.setattr(cadenza.app.web, "launch", lambda studio, **kwargs: calls.append(kwargs))
    monkeypatch.delenv(AUTH_ENV, raising=False)
    return calls


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--host", "192.168.1.20"], ["--host", "studio.local"],
                                   ["--share", "on"]])
def test_off_loopback_without_a_login_it_refuses_to_start(no_launch, capsys, flags):
    assert main(["app", *flags]) == 2
    err = capsys.readouterr().err
    assert not no_launch
    assert err.count("\n") == 1 and err.startswith("cadenza: error:") and "needs a login" in err
    assert "--auth-file" in err and AUTH_ENV in err


def test_a_login_or_an_explicit_no_auth_lets_it_start(no_launch, capsys, tmp_path, monkeypatch):
    logins = tmp_path / "logins"
    logins.write_text("# the studio's users\nann:s3cret:with:colons\n\nbob: x y \n")
    logins.chmod(0o600)
    assert main(["app", "--host", "0.0.0.0", "--auth-file", str(logins)]) == 0
    assert no_launch[-1]["settings"].logins == (("ann", "s3cret:with:colons"), ("bob", " x y "))
    assert "s3cret" not in repr(no_launch[-1]["settings"])  # never printed in a log line
    monkeypatch.setenv(AUTH_ENV, "carol:pw")
    assert main(["app", "--host", "0.0.0.0"]) == 0
    assert no_launch[-1]["settings"].logins == (("carol", "pw"),)
    monkeypatch.delenv(AUTH_ENV)
    assert main(["app", "--host", "0.0.0.0", "--no-auth"]) == 0
    assert no_launch[-1]["settings"].logins == ()
    assert "no login (--no-auth)" in capsys.readouterr().err
    assert main(["app"]) == 0 and no_launch[-1]["settings"].logins == ()  # loopback: no login needed
    assert main(["app", "--max-upload-mb", "500"]) == 0  # a visit may then upload four such files
    assert no_launch[-1]["settings"].upload_total_bytes == 2000 * 2**20
    assert main(["app", "--max-upload-mb", "nan"]) == 2 and "positive number of MB" in capsys.readouterr().err


def test_login_files_and_variables_that_are_refused(tmp_path):
    open_file = tmp_path / "open"
    open_file.write_text("ann:pw\n")
    open_file.chmod(0o644)
    if os.name == "posix":
        with pytest.raises(ServerSetupError, match="chmod 600"):
            read_auth_file(open_file)
    for text, match in [("ann\n", "line 1"), ("# only a comment\n", "no login"), (":pw\n", "line 1"),
                        ("ann:\n", "line 1")]:
        bad = tmp_path / "bad"
        bad.write_text(text)
        bad.chmod(0o600)
        with pytest.raises(ServerSetupError, match=match):
            read_auth_file(bad)
    with pytest.raises(ServerSetupError, match="does not exist"):
        read_auth_file(tmp_path / "missing")
    with pytest.raises(ServerSetupError, match=AUTH_ENV.replace("$", "")):
        server_logins("0.0.0.0", False, environ={AUTH_ENV: "no-colon"})
    with pytest.raises(ServerSetupError, match="choose one"):
        server_logins("0.0.0.0", False, no_auth=True, environ={AUTH_ENV: "ann:pw"})
    assert server_logins("127.0.0.1", False, environ={}) == []


def test_which_hosts_are_this_computer_only():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.2", "example.org", ""))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_root):
    """The studio bound to every interface with one login, reached on 127.0.0.1."""
    pytest.importorskip("gradio")
    from cadenza.app.web import launch
    from cadenza.app.web.context import AppSettings
    from cadenza.studio import Studio

    port = _free_port()
    app = launch(Studio(model_dirs=[tiny_root]), host="0.0.0.0", port=port, block=False,
                 settings=AppSettings(logins=(("ann", "s3cret"),)))
    yield app, f"http://127.0.0.1:{port}"
    app.close()


def test_without_the_login_a_request_gets_no_model_and_no_file(guarded):
    import httpx

    app, base = guarded
    shown = app.context.workspace.served / "abc" / "tune.wav"  # a file the server would hand to a visitor
    shown.parent.mkdir()
    shown.write_bytes(b"RIFF")
    stranger = httpx.Client(base_url=base, timeout=30)
    for path in ("/config", "/gradio_api/info", f"/gradio_api/file={shown}", "/gradio_api/upload_progress"):
        assert stranger.get(path).status_code == 401, path
    assert stranger.post("/gradio_api/upload", files={"files": ("a.mid", b"MThd")}).status_code == 401
    assert stranger.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}
                         ).status_code == 401
    page = stranger.get("/")
    assert "tiny-remi" not in page.text and "s3cret" not in page.text  # the login page, nothing of the studio
    assert stranger.post("/login", data={"username": "ann", "password": "wrong"}).status_code >= 400
    member = httpx.Client(base_url=base, timeout=30)
    assert member.post("/login", data={"username": "ann", "password": "s3cret"}).status_code == 200
    config = member.get("/config")
    assert config.status_code == 200 and "tiny-remi" in config.text
    assert "tiny-remi" in member.get("/").text  # the page itself, once logged in
    assert member.get(f"/gradio_api/file={shown}").content == b"RIFF"


@pytest.fixture(scope="module")
def small_limit(tiny_root):
    """The studio on loopback with a 1 MB upload limit."""
    pytest.importorskip("gradio")
    from cadenza.app.web import launch
    from cadenza.app.web.context import AppSettings
    from cadenza.studio import Studio

    port = _free_port()
    app = launch(Studio(model_dirs=[tiny_root]), port=port, block=False,
                 settings=AppSettings(max_upload_bytes=2**20))
    yield app, port
    app.close()


def test_an_upload_over_the_limit_gets_a_clear_message(small_limit):
    """Sent as a plain client does (the whole body, then read the answer): the answer arrives, and says why."""
    app, port = small_limit
    boundary = "cadenza-test"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="long.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    payload = os.urandom(3 * 2**20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(head) + len(payload) + len(tail)}\r\n\r\n".encode())
        for i in range(0, len(payload), 1 << 16):
            s.sendall((head if i == 0 else b"") + payload[i:i + (1 << 16)])
        s.sendall(tail)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status, _, body = answer.decode().partition("\r\n\r\n")
    assert status.startswith("HTTP/1.1 413")
    assert "too large (max 1 MB per file)" in body
    assert not any(p.is_file() for p in app.context.workspace.served.rglob("*"))  # nothing of it kept

    import httpx

    small = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", files={"files": ("ok.mid", b"MThd" * 100)})
    assert small.status_code == 200  # under the limit: taken, into the app's own folder
    assert small.json()[0].startswith(str(app.context.workspace.served))


class _Gradio:
    """Stands for Gradio behind the middleware: reads the whole body (kept in ``seen``), answers 200."""

    def __init__(self) -> None:
        self.seen = b""

    async def __call__(self, scope, receive, send) -> None:
        self.seen, more = b"", True
        while more:
            message = await receive()
            self.seen += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"queued"})


def _post(middleware, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through ``middleware``, its body in two pieces: (status, response body)."""
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": body[:10], "more_body": True},
                {"type": "http.request", "body": body[10:], "more_body": False}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware({"type": "http", "method": "POST", "path": path, "headers": []}, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_visitor_may_have_only_so_many_jobs_queued():
    from cadenza.app.web.limits import RequestLimits

    pending = {"busy": 2, "calm": 1}
    gradio = _Gradio()
    limits = RequestLimits(gradio, max_upload_bytes=2**20, max_jobs=2, pending_jobs=lambda s: pending.get(s, 0))
    busy = json.dumps({"data": [1], "fn_index": 3, "session_hash": "busy"}).encode()
    status, body = _post(limits, "/gradio_api/queue/join", busy)
    assert status == 429 and "already have 2 jobs waiting or running" in json.loads(body)["detail"]
    assert gradio.seen == b""  # never reached the queue
    calm = json.dumps({"data": [1], "fn_index": 3, "session_hash": "calm"}).encode()
    assert _post(limits, "/gradio_api/queue/join", calm) == (200, b"queued")
    assert gradio.seen == calm  # the body reaches Gradio whole
    assert _post(limits, "/gradio_api/predict", busy)[0] == 200  # other routes are not counted


def test_the_server_counts_a_visitors_queued_jobs(small_limit):
    """Through Gradio's queue: a page that never reads its results keeps them pending, so its fifth
    request is refused while another page is still served."""
    import httpx

    app, port = small_limit
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        config = http.get("/config").json()
        index, dep = next((i, d) for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "on_model")

        def join(session: str) -> httpx.Response:
            return http.post("/gradio_api/queue/join", json={
                "data": ["tiny-remi"], "event_data": None, "fn_index": dep.get("id", index),
                "trigger_id": dep["targets"][0][0], "session_hash": session})

        assert [join("greedy").status_code for _ in range(4)] == [200] * 4
        refused = join("greedy")
        assert refused.status_code == 429 and "already have 4 jobs" in refused.json()["detail"]
        assert join("polite").status_code == 200
