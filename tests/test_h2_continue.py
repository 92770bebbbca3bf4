"""`Expect: 100-continue` on HTTP/2 (RFC 9110 §10.1.1; RFC 9113 §8.1's interim HEADERS), over
real sockets, with both engines: the stream sends `:status 100` when the app first waits for
the body, not when the request arrives, and never when the app answers without reading.

"Not before the app reads" is checked without timing: the app waits (tests/apps/
trailers_apps.py, `/read?key=K`) until the client itself releases it (`/go?key=K`), and the
client first makes two PING round trips, after which anything the server would have sent at the
request's arrival or when its handler started has been written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apps.h2_client import H2Client, ev
from h2_serve import NG_OK, NG_WHY, wait_h2
from helpers import ServerProc, start_server

EXPECT = [(b"expect", b"100-continue")]


@pytest.fixture(scope="module", params=["nghttp2", "h2"])
def server(request: Any) -> Iterator[ServerProc]:
    engine: str = request.param
    if engine == "nghttp2" and not NG_OK:
        pytest.skip(f"libnghttp2 is not loadable here: {NG_WHY}")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRANIAN_HTTP2_ENGINE", engine)  # read by granian.server.h2 in the worker
    try:
        srv = start_server("trailers_apps:app", interface="asgi")
    finally:
        mp.undo()
    try:
        wait_h2(srv)
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: ServerProc) -> Iterator[H2Client]:
    c = H2Client(server.port)
    yield c
    c.close()


def round_trips(c: H2Client, n: int = 2) -> None:
    """`n` PING round trips: the server has handled every frame sent before, and the loop turns
    after them (where an app's task starts) are flushed too."""
    for i in range(n):
        want = len(c.of(ev.PingAckReceived)) + 1
        c.c.ping(b"rtt-%04d" % i)
        c.flush()
        assert c.until(lambda c, want=want: len(c.of(ev.PingAckReceived)) >= want), "no PING ack"


def interim(c: H2Client, sid: int) -> list[int]:
    return [int(dict(e.headers)[b":status"]) for e in c.of(ev.InformationalResponseReceived, sid)]


def test_continue_once_the_app_reads(server: ServerProc, client: H2Client) -> None:
    c = client
    sid = c.request("/read?key=a", method="POST", headers=EXPECT, end=False)
    round_trips(c)
    assert interim(c, sid) == []  # the app has not asked for the body yet
    assert not c.of(ev.ResponseReceived, sid)
    # another stream on the connection is served meanwhile, and releases the first app
    assert c.get("/go?key=a")[:3:2] == (200, b"go")
    assert c.until(lambda c: bool(interim(c, sid))), c.events
    assert interim(c, sid) == [100]
    assert not c.of(ev.ResponseReceived, sid)  # the final response waits for the body
    c.send_body(sid, b"the body", end=True)
    status, _, body = c.response(sid)
    assert status == 200 and body == b"the body"
    assert interim(c, sid) == [100]  # once
    kinds = [type(e) for e in c.events if getattr(e, "stream_id", None) == sid]
    assert kinds.index(ev.InformationalResponseReceived) < kinds.index(ev.ResponseReceived)
    # the connection goes on
    assert c.get("/echo", method="POST", body=b"next")[2] == b"next"


def test_continue_is_case_insensitive(server: ServerProc, client: H2Client) -> None:
    c = client
    sid = c.request("/read?key=b", method="POST", headers=[(b"expect", b"100-Continue")], end=False)
    assert c.get("/go?key=b")[0] == 200
    assert c.until(lambda c: bool(interim(c, sid)))
    c.send_body(sid, b"x" * 70000, end=True)  # more than one window's worth
    status, _, body = c.response(sid)
    assert status == 200 and body == b"x" * 70000 and interim(c, sid) == [100]


def test_no_continue_when_the_app_answers_without_reading(server: ServerProc, client: H2Client) -> None:
    c = client
    sid = c.request("/noread", method="POST", headers=EXPECT, end=False)
    status, _, body = c.response(sid)
    assert status == 200 and body == b"not read"
    round_trips(c)
    assert interim(c, sid) == []
    # the client ends its side (it would send the body nobody reads); other streams go on
    c.send_body(sid, b"", end=True)
    assert c.get("/echo", method="POST", body=b"after")[2] == b"after"
    assert not c.of(ev.ConnectionTerminated)


def test_no_continue_without_the_expectation(server: ServerProc, client: H2Client) -> None:
    c = client
    sid = c.request("/read?key=c", method="POST", end=False)
    assert c.get("/go?key=c")[0] == 200
    round_trips(c)
    c.send_body(sid, b"plain", end=True)
    status, _, body = c.response(sid)
    assert status == 200 and body == b"plain" and interim(c, sid) == []


def test_no_continue_for_a_request_without_a_body(server: ServerProc, client: H2Client) -> None:
    c = client
    sid = c.request("/echo", method="POST", headers=EXPECT)  # END_STREAM on the HEADERS
    status, _, body = c.response(sid)
    assert status == 200 and body == b"" and interim(c, sid) == []
