"""Drop-in gaps (issue 10): behaviours that differed from Granian or from the specs, each checked
over a real socket or through the real embedding API."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServerProc, start_server
from wire import Conn

ROOT = Path(__file__).resolve().parent.parent

# 1. embed.Server on a loop that is not the policy's "current" one. `asyncio.run()` leaves the
# policy with no current loop (set_event_loop(None)); a fresh loop is then only *running*.
_EMBED = textwrap.dedent(
    """
    import asyncio, sys, urllib.request
    from granian.server.embed import Server

    iface = sys.argv[1]
    seen = {}

    class RSGIApp:
        def __rsgi_init__(self, loop):
            seen["init_loop"] = loop

        async def __call__(self, scope, proto):
            proto.response_str(200, [], "rsgi")

    async def asgi_app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                t = "startup" if m["type"] == "lifespan.startup" else "shutdown"
                await send({"type": f"lifespan.{t}.complete"})
                if t == "shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi"})

    def wsgi_app(environ, start_response):
        start_response("200 OK", [])
        return [b"wsgi"]

    app = {"rsgi": RSGIApp(), "asgi": asgi_app, "wsgi": wsgi_app}[iface]

    async def main():
        seen["running"] = asyncio.get_running_loop()
        server = Server(app, address="127.0.0.1", port=0, interface=iface)
        task = asyncio.ensure_future(server.serve())
        await asyncio.wait_for(server.wait_started(), 10)
        url = f"http://127.0.0.1:{server.port}/"
        fetch = lambda: urllib.request.urlopen(url, timeout=5).read()
        body = await seen["running"].run_in_executor(None, fetch)
        server.stop()
        await asyncio.wait_for(task, 10)
        return body

    asyncio.run(asyncio.sleep(0))  # leaves no current loop behind
    loop = asyncio.new_event_loop()  # not set as current
    try:
        body = loop.run_until_complete(main())
    finally:
        loop.close()
    if "init_loop" in seen:
        assert seen["init_loop"] is seen["running"], "__rsgi_init__ got another loop"
    print("BODY", body.decode())
    """
)


@pytest.mark.parametrize("iface", ["rsgi", "asgi", "wsgi"])
def test_embed_on_a_loop_that_is_not_current(iface: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _EMBED, iface], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert f"BODY {iface}" in proc.stdout


def test_no_policy_loop_lookups_in_the_package() -> None:
    """Code that runs inside a loop uses the running loop: the only policy lookup left is the
    RSGI adapter's fallback for being built outside any loop (tests, direct use)."""
    hits = []
    for path in (ROOT / "granian").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "get_event_loop(" in line or "get_event_loop_policy(" in line:
                hits.append(f"{path.relative_to(ROOT)}:{n}")
    assert [h.split(":")[0] for h in hits] == ["granian/apps/rsgi.py"], hits


# 3. WSGI SERVER_PORT is the port the request came in on (RFC 3875 §4.1.15), not Host's.
@pytest.fixture(scope="module")
def wsgi_server() -> Iterator[ServerProc]:
    s = start_server("wsgi_app:app", interface="wsgi")
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("host", "name"), [("127.0.0.1", "127.0.0.1"), ("example.org:81", "example.org"), ("[::1]", "[::1]")]
)
def test_wsgi_server_port_is_the_listening_port(wsgi_server: ServerProc, host: str, name: str) -> None:
    with Conn(wsgi_server.port) as c:
        r = c.request("GET", "/environ", {"host": host})
    env = json.loads(r.body)
    assert env["SERVER_PORT"] == str(wsgi_server.port)
    assert env["SERVER_NAME"] == name
    assert env["HTTP_HOST"] == host


# 4. --static-path-expires 0 sends no cache-control at all (Granian: 0 disables it).
@pytest.fixture(scope="module")
def static_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static0")
    (root / "a.txt").write_bytes(b"static")
    return root


@pytest.mark.parametrize(("expires", "want"), [(0, None), (60, "max-age=60")])
def test_static_expires_zero_sends_no_cache_control(
    static_tree: Path, expires: int, want: str | None
) -> None:
    s = start_server(
        "static_apps:asgi",
        static_path_route=["/static"],
        static_path_mount=[str(static_tree)],
        static_path_expires=expires,
    )
    try:
        with Conn(s.port) as c:
            r = c.request("GET", "/static/a.txt")
            assert (r.status, r.body) == (200, b"static")
            assert r.headers.get("cache-control") == want
            # a 304 carries the same validators (RFC 9110 §15.4.5)
            r2 = c.request("GET", "/static/a.txt", {"if-none-match": r.headers["etag"]})
            assert r2.status == 304
            assert r2.headers.get("cache-control") == want
    finally:
        s.stop()


# 2. --opt (and --task-impl rust) keep asyncio's task contract: a current Task for the whole app
# call, sniffio, anyio task groups, asyncio.timeout(), FastAPI streaming. The default mode is the
# control: both must answer the same.
_MODES = [{}, {"opt": True}, {"task_impl": "rust"}]


@pytest.fixture(scope="module", params=_MODES, ids=["default", "opt", "task-impl-rust"])
def contract_servers(request: pytest.FixtureRequest) -> Iterator[tuple[ServerProc, ServerProc]]:
    plain = start_server("task_contract_app:plain", interface="asginl", **request.param)
    try:
        fast = start_server("task_contract_app:fastapi_app", interface="asgi", **request.param)
        try:
            yield plain, fast
        finally:
            fast.stop()
    finally:
        plain.stop()


def test_current_task_for_the_whole_call(contract_servers: tuple[ServerProc, ServerProc]) -> None:
    plain, _ = contract_servers
    with Conn(plain.port) as c:
        for _ in range(3):  # keep-alive: every request gets its own Task
            r = c.request("GET", "/task")
            assert r.status == 200
            assert json.loads(r.body) == {
                "first_is_task": True,
                "same": True,
                "sniffio": "asyncio",
                "in_all_tasks": True,
            }


def test_anyio_task_group_and_timeouts(contract_servers: tuple[ServerProc, ServerProc]) -> None:
    plain, _ = contract_servers
    with Conn(plain.port) as c:
        assert json.loads(c.request("GET", "/taskgroup").body) == {"children": [0, 1, 2]}
        assert json.loads(c.request("GET", "/timeout-ok").body) == {"timeout": "not expired"}
        assert json.loads(c.request("GET", "/timeout-expires").body) == {"timeout": "expired"}


def test_fastapi_streaming_response(contract_servers: tuple[ServerProc, ServerProc]) -> None:
    _, fast = contract_servers
    with Conn(fast.port) as c:
        r = c.request("GET", "/stream")
        assert (r.status, r.body) == (200, b"part0;part1;part2;part3;part4;")
        r = c.request("GET", "/sniff")
        assert (r.status, json.loads(r.body)) == (200, {"lib": "asyncio"})
