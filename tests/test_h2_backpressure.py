"""--backpressure for HTTP/2 streams (issue 14), on both engines: streams past the worker's
cap wait, in arrival order, and start as slots free; a waiting stream's body stays under flow
control; RST_STREAM drops it from the queue; a graceful stop still finishes it; a wait past
the header-read timeout is RST_STREAM REFUSED_STREAM."""

from __future__ import annotations

import signal
import time
from typing import Any

from apps.h2_client import H2Client, ev
from h2_serve import engine as _engine
from h2_serve import serve_fixture

APP = "h2_bp_apps:app"
MiB = 1 << 20

engine = _engine  # the shared fixture (h2_serve), under its name
serve = serve_fixture(APP)


def _text(c: H2Client, sid: int) -> str:
    status, _, body = c.response(sid)
    assert status == 200, (sid, status)
    return body.decode()


def test_streams_past_the_cap_wait_and_all_complete(serve: Any, engine: str) -> None:
    srv = serve(backpressure=2)
    c = H2Client(srv.port)
    try:
        sids = [c.request(f"/run?id={i}&s=0.3") for i in range(6)]
        answers = [_text(c, sid) for sid in sids]
        # each answer: "<body length> <most requests in the app at once so far>"
        most = [int(a.split()[1]) for a in answers]
        assert max(most) == 2  # two ran together, never three
        # they started in arrival order
        assert _text(c, c.request("/started")) == "0,1,2,3,4,5"
    finally:
        c.close()


def test_a_waiting_stream_body_stays_flow_controlled(serve: Any, engine: str) -> None:
    srv = serve(backpressure=1, http2_initial_stream_window_size=65535)
    c = H2Client(srv.port)
    try:
        # A holds the only slot: its body never ends until we say so
        a = c.request("/run?id=a&s=0", method="POST", body=b"x", end=False)
        c.until(lambda c: bool(c.of(ev.WindowUpdated)), timeout=1)
        b = c.request("/run?id=b&s=0", method="POST", body=b"", end=False)
        body = b"y" * (2 * MiB)
        # B is parked: the server takes what fits its read buffer and window, then no more
        sent = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            window = min(c.c.local_flow_control_window(b), c.c.max_outbound_frame_size)
            if window > 0:
                c.c.send_data(b, body[sent : sent + window])
                sent += window
                c.flush()
                continue
            if not c.read(0.5):  # no credit came back within half a second
                break
        assert c.c.local_flow_control_window(b) == 0 and sent < len(body)
        # A ends; B starts and its credit comes back: the rest of its body goes through
        c.c.send_data(a, b"", end_stream=True)
        c.flush()
        assert _text(c, a) == "1 1"
        c.send_body(b, body[sent:])
        assert _text(c, b) == f"{len(body)} 1"  # never two in the app at once
    finally:
        c.close()


def test_a_reset_waiting_stream_leaves_the_queue(serve: Any, engine: str) -> None:
    srv = serve(backpressure=1)
    c = H2Client(srv.port)
    try:
        a = c.request("/run?id=a&s=0", method="POST", body=b"x", end=False)
        b = c.request("/run?id=b&s=0")
        d = c.request("/run?id=c&s=0")
        c.c.reset_stream(b)
        c.flush()
        time.sleep(0.2)  # the reset is read before A ends
        c.c.send_data(a, b"", end_stream=True)
        c.flush()
        assert _text(c, a) == "1 1"
        assert _text(c, d) == "0 1"
        assert _text(c, c.request("/started")) == "a,c"  # B never ran
    finally:
        c.close()


def test_a_graceful_stop_finishes_the_waiting_streams(serve: Any, engine: str) -> None:
    srv = serve(backpressure=1)
    c = H2Client(srv.port)
    try:
        sids = [c.request(f"/run?id={i}&s=0.3") for i in range(3)]
        time.sleep(0.1)  # all three are read: one runs, two wait
        # h2 answers the frames that follow a GOAWAY with its own GOAWAY(PROTOCOL_ERROR),
        # which would end the connection: from here the client only reads
        c.auto_ack = False
        srv.proc.send_signal(signal.SIGTERM)
        c.until(lambda c: c.goaway() is not None)
        goaway = c.goaway()
        # the stop's first GOAWAY (RFC 9113 §6.8: 2^31-1), the final one names the last stream
        assert goaway is not None and goaway.last_stream_id == 2**31 - 1
        # h2 takes no frame after a GOAWAY: read the rest as raw frames
        assert c.wait_closed(10)
        assert [f.last_stream_id for f in c.frames() if f.type == 0x7] == [2**31 - 1, sids[-1]]
        for sid in sids:
            data = [f for f in c.frames() if f.type == 0x0 and f.stream_id == sid]
            assert data and "END_STREAM" in data[-1].flags
            assert b"".join(f.data for f in data) == b"0 1"
    finally:
        c.close()
    code, _err = srv.stop()
    assert code == 0


def test_a_wait_past_the_header_read_timeout_is_refused(serve: Any, engine: str) -> None:
    srv = serve(backpressure=1, http1_header_read_timeout=1000)  # ms
    c = H2Client(srv.port)
    try:
        a = c.request("/run?id=a&s=0", method="POST", body=b"x", end=False)
        b = c.request("/run?id=b&s=0")
        assert c.until(lambda c: bool(c.of(ev.StreamReset, b)), timeout=8)
        assert c.of(ev.StreamReset, b)[0].error_code == 0x7  # REFUSED_STREAM
        assert not c.ended(a)  # the running stream is not the waiting one
        c.c.send_data(a, b"", end_stream=True)
        c.flush()
        assert _text(c, a) == "1 1"
        assert _text(c, c.request("/started")) == "a"
    finally:
        c.close()


def test_a_lost_connection_leaves_the_queue(serve: Any, engine: str) -> None:
    # Its parked streams' entries leave ctx.waiting: the slot A frees goes to the stream on
    # the third connection, not to the closed one (else C would wait for the timeout).
    srv = serve(backpressure=1)
    x, y, z = H2Client(srv.port), H2Client(srv.port), H2Client(srv.port)
    try:
        for c in (y, z):
            # a first request makes each an HTTP/2 connection while a slot is free (an h2c
            # preface is read through HTTP/1's sniffing, which parks whole connections)
            assert _text(c, c.request("/started")) == ""
        a = x.request("/run?id=a&s=0", method="POST", body=b"x", end=False)
        x.until(lambda c: bool(c.of(ev.WindowUpdated)), timeout=1)
        y.request("/run?id=b&s=0")
        y.request("/run?id=b2&s=0")
        time.sleep(0.2)  # both parked
        y.close()
        time.sleep(0.2)  # the close is seen
        d = z.request("/run?id=c&s=0")
        time.sleep(0.2)  # parked behind A
        x.c.send_data(a, b"", end_stream=True)
        x.flush()
        assert _text(x, a) == "1 1"
        assert _text(z, d) == "0 1"
        assert _text(z, z.request("/started")) == "a,c"
    finally:
        for c in (x, y, z):
            c.close()
