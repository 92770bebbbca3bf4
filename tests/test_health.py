"""granian.health: the health paths' answers (CLI.md "Health"), parsed back with h11 as a
client would, for each state, method, HTTP version and connection framing."""

from __future__ import annotations

import email.utils
from typing import Any

import h11
import pytest

from granian.health import Health

NOW = 1_700_000_000.5


def parse(raw: bytes, method: bytes, keep_alive: bool = True) -> tuple[Any, bytes, Any]:
    """Feed the bytes to an h11 client that sent `method` and return (response, body, state)."""
    client = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"x")]
    if not keep_alive:
        headers.append((b"connection", b"close"))
    client.send(h11.Request(method=method, target=b"/healthz", headers=headers, http_version="1.1"))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    response = client.next_event()
    assert isinstance(response, h11.Response), response
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise AssertionError(event)
    # Nothing may follow the response: the framing accounts for every byte.
    assert client.next_event() in (h11.NEED_DATA, h11.PAUSED)
    return response, body, client.their_state


def fields(response: Any) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in response.headers}


def test_routes_are_one_dict_of_path_bytes() -> None:
    health = Health(["/healthz", "/readyz"])
    assert set(health.routes) == {b"/healthz", b"/readyz"}
    assert health.routes[b"/healthz"] is health
    assert b"/healthz/" not in health.routes and b"/HEALTHZ" not in health.routes
    assert Health([]).routes == {}


def test_serving_get() -> None:
    raw = Health(["/healthz"]).http1(b"GET", 1, True, now=NOW)
    response, body, _ = parse(raw, b"GET")
    f = fields(response)
    assert (response.status_code, body) == (200, b"ok")
    assert f[b"content-type"] == b"text/plain; charset=utf-8"
    assert f[b"cache-control"] == b"no-store"
    assert f[b"content-length"] == b"2"
    assert b"connection" not in f
    assert f[b"server"] == b"granian"
    assert email.utils.parsedate_to_datetime(f[b"date"].decode()).timestamp() == int(NOW)


def test_draining_get_and_head() -> None:
    health = Health(["/healthz"])
    before = health.http1(b"GET", 1, True, now=NOW)
    health.start_draining()
    health.start_draining()  # idempotent
    response, body, _ = parse(health.http1(b"GET", 1, True, now=NOW), b"GET")
    assert (response.status_code, body) == (503, b"draining")
    assert fields(response)[b"content-length"] == b"8"
    response, body, _ = parse(health.http1(b"HEAD", 1, True, now=NOW), b"HEAD")
    assert (response.status_code, body) == (503, b"")
    assert fields(response)[b"content-length"] == b"8"  # the GET body's length (RFC 9110 §9.3.2)
    assert before != health.http1(b"GET", 1, True, now=NOW)


def test_head_while_serving_and_str_methods() -> None:
    health = Health(["/h"])
    raw = health.http1("HEAD", 1, True, now=NOW)
    assert raw == health.http1(b"HEAD", 1, True, now=NOW)
    response, body, _ = parse(raw, b"HEAD")
    assert (response.status_code, body, fields(response)[b"content-length"]) == (200, b"", b"2")
    assert raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("draining", [False, True])
def test_other_methods_get_405_with_allow(draining: bool) -> None:
    health = Health(["/h"])
    if draining:
        health.start_draining()
    response, body, _ = parse(health.http1(b"POST", 1, True, now=NOW), b"POST")
    assert response.status_code == 405 and fields(response)[b"allow"] == b"GET, HEAD"
    assert body == b"method not allowed"
    assert health.status("DELETE") == 405


def test_connection_close() -> None:
    raw = Health(["/h"]).http1(b"GET", 1, False, now=NOW)
    response, body, state = parse(raw, b"GET", keep_alive=False)
    assert fields(response)[b"connection"] == b"close" and body == b"ok"
    assert state is h11.MUST_CLOSE


def test_http10_keep_alive_is_explicit() -> None:
    health = Health(["/h"])
    persistent = health.http1(b"GET", 0, True, now=NOW)
    assert b"\r\nconnection: keep-alive\r\n" in persistent
    assert b"\r\nconnection: close\r\n" in health.http1(b"GET", 0, False, now=NOW)
    assert b"connection:" not in health.http1(b"GET", 1, True, now=NOW)
    assert persistent.startswith(b"HTTP/1.1 200 OK\r\n")  # RFC 9110 §2.5: our version, 1.0 framing


def test_date_follows_the_clock_and_answers_are_reused() -> None:
    health = Health(["/h"])
    first = health.http1(b"GET", 1, True, now=NOW)
    assert health.http1(b"GET", 1, True, now=NOW + 0.4) is first  # same second: same bytes
    later = health.http1(b"GET", 1, True, now=NOW + 1)
    assert later != first
    f = fields(parse(later, b"GET")[0])
    assert email.utils.parsedate_to_datetime(f[b"date"].decode()).timestamp() == int(NOW) + 1


def test_answer_for_other_carriers() -> None:
    health = Health(["/h"])
    status, hdrs, body = health.answer(b"GET")
    assert (status, body) == (200, b"ok") and (b"cache-control", b"no-store") in hdrs
    assert not {b"content-length", b"date", b"server", b"connection"} & {n for n, _ in hdrs}
    health.start_draining()
    assert health.answer("HEAD")[:1] == (503,) and health.answer(b"GET")[2] == b"draining"
    assert health.answer(b"PUT")[0] == 405 and (b"allow", b"GET, HEAD") in health.answer(b"PUT")[1]
