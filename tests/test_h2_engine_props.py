"""Properties of granian.http2 sessions on arbitrary input: the events do not depend on how the
bytes are cut into chunks, and random frames after a valid preface never crash the C shim
(they end in events or a CLOSE, nothing else). Also: the package stays sans-I/O."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from h2_peer import ENGINES, PREFACE, Peer, engine_param, request_headers, server
from hyperframe.frame import SettingsFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from granian.http2 import CLOSE, DATA, REQUEST, RESET, TRAILERS


@pytest.fixture(params=ENGINES)
def engine(request: Any) -> str:
    return engine_param(request)


def client_bytes() -> bytes:
    """Requests with bodies, trailers, a reset and padding, as one client byte stream."""
    peer = Peer(server("h2"))
    peer.c.send_headers(1, request_headers(b"/a", extra=[(b"x-a", b"1")]), end_stream=True)
    peer.c.send_headers(3, request_headers(b"/b", method=b"POST", extra=[(b"te", b"trailers")]))
    peer.c.send_data(3, b"x" * 3000, pad_length=9)
    peer.c.send_data(3, b"y" * 20)
    peer.c.send_headers(3, [(b"x-t", b"2")], end_stream=True)
    peer.c.send_headers(5, request_headers(b"/c", method=b"PUT"))
    peer.c.send_data(5, b"z" * 100)
    peer.c.reset_stream(5, 8)
    peer.c.send_headers(7, request_headers(b"/d", extra=[(b"cookie", b"a=1"), (b"cookie", b"b=2")]))
    peer.c.send_data(7, b"", end_stream=True)
    return peer.c.data_to_send()


CLIENT = client_bytes()


def summary(events: list[Any]) -> list[Any]:
    """Events with DATA merged per stream (chunking may split DATA, never anything else)."""
    out: list[Any] = []
    for e in events:
        if e[0] == DATA:
            if out and out[-1][0] == DATA and out[-1][1] == e[1] and not out[-1][3]:
                prev = out.pop()
                e = (DATA, e[1], prev[2] + e[2], e[3], prev[4] + e[4])
            out.append(e)
        elif e[0] in (REQUEST, TRAILERS, RESET, CLOSE):
            out.append(e)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(CLIENT) - 1), max_size=12))
def test_events_do_not_depend_on_chunking(engine: str, cuts: list[int]) -> None:
    whole = server(engine)
    whole.data_to_send()
    expected = summary(whole.feed(CLIENT))
    assert [e[1] for e in expected if e[0] == REQUEST] == [1, 3, 5, 7]
    s = server(engine)
    s.data_to_send()
    events = []
    bounds = [0, *sorted(set(cuts)), len(CLIENT)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        events.extend(s.feed(CLIENT[a:b]))
        s.data_to_send()  # output between chunks must not change what is read
    assert summary(events) == expected


frame = st.builds(
    lambda length, kind, flags, sid, payload: (
        length.to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload
    ),
    st.integers(0, 64),
    st.integers(0, 10),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF]),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(frame, max_size=8), piece=st.integers(1, 40))
def test_random_frames_never_crash(engine: str, frames: list[bytes], piece: int) -> None:
    s = server(engine)
    s.data_to_send()
    data = PREFACE + SettingsFrame(0).serialize() + b"".join(frames)
    closed = False
    for i in range(0, len(data), piece):
        events = s.feed(data[i : i + piece])
        assert not closed or events == []  # nothing is read after CLOSE
        if events and events[-1][0] == CLOSE:
            closed = True
            assert len(events) == 1
        for e in events:
            if e[0] == REQUEST:
                assert s.send_response(e[1], 200, [(b"x", b"y")], b"ok") >= -1
        s.data_to_send()
    if closed:
        assert s.finished


def test_the_package_imports_no_io() -> None:
    code = (
        "import sys; from granian import http2; "
        "s = [http2.new_session(engine=e) for e in ('auto', 'h2')]; "
        "[x.feed(b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n') for x in s]; "
        "print(sorted(m for m in ('asyncio', 'socket', 'selectors', 'ssl') if m in sys.modules))"
    )
    # Without coverage's start-up hook (CI measures subprocesses): coverage itself imports
    # socket and selectors, which would be counted against the package.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
